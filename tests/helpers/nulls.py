"""Null story data that fails naive tests the way real data does.

BOLD independent of the features, with AR(1) noise per volume (0.8 and 0.95 are
typical of TRs of 2 s and 0.7 s), spatially smooth (innovations blurred over a
3-D grid, so neighbouring voxels share their noise), and features that drift
slowly as language-model states do (random walks, blurred in time like an HRF).
Every voxel is a true null: any p < alpha is a false positive.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np


def ar1(rng: np.random.Generator, n: int, shape: tuple, phi: float,
        smooth: float = 0.0) -> np.ndarray:
    """Unit-variance AR(1) series of shape ``(n, *shape)``, spatially blurred by ``smooth``."""
    from scipy.ndimage import gaussian_filter

    e = rng.normal(size=(n, *shape))
    if smooth:
        e = np.stack([gaussian_filter(vol, smooth, mode="wrap") for vol in e])
    out = np.empty_like(e)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + np.sqrt(1 - phi ** 2) * e[t]
    return out / out.reshape(n, -1).std(axis=0).reshape(shape)


def drifting_features(rng: np.random.Generator, n: int, p: int) -> np.ndarray:
    """Slowly drifting features of shape (n, p): random walks blurred over ~6 volumes."""
    from scipy.ndimage import gaussian_filter1d

    walk = np.cumsum(rng.normal(size=(n + 40, p)), axis=0)
    walk = gaussian_filter1d(walk, 3.0, axis=0)[20:-20]
    walk -= walk.mean(axis=0)
    return (walk / walk.std(axis=0)).astype(np.float32)


def null_story_data(seed: int, phi: float, *, lengths=(150, 170, 160, 180),
                    grid=(10, 10, 8), n_features: int = 16, smooth: float = 1.5):
    """Designs and BOLD of one participant under a complete null.

    Parameters
    ----------
    seed : int
    phi : float
        AR(1) coefficient of the BOLD per volume.
    lengths : sequence of int
        Volumes per run (runs of different lengths, like stories).
    grid : tuple of int
        Voxel grid (the BOLD is smooth over it).
    n_features : int
        Design columns.
    smooth : float
        Spatial blur of the noise (voxels, Gaussian sigma).

    Returns
    -------
    Xs : list of ndarray of shape (n_volumes_i, n_features)
    Ys : list of ndarray of shape (n_volumes_i, n_voxels)
    """
    rng = np.random.default_rng([seed, int(phi * 1000)])
    Xs = [drifting_features(rng, n, n_features) for n in lengths]
    Ys = [ar1(rng, n, grid, phi, smooth).reshape(n, -1).astype(np.float32) for n in lengths]
    return Xs, Ys


#: Repetition time (s) at which each AR(1) coefficient per volume is typical: 0.8 at
#: TR 2 s (as in LeBel et al.), 0.95 at SMN4Lang's 0.71 s. The default edge trims
#: (``encoding.trim_seconds``) become volumes at this TR, as the CLI converts them.
NULL_TR = {0.8: 2.0, 0.95: 0.71}

#: The CI-sized null shared by the participant and group tests, so that each null
#: participant is fitted once per process: groups of ``GROUP_SIZE`` participants on
#: ``CI_GRID`` spatially independent voxels (counts binomial given the designs).
CI_GRID = (10, 10, 6)
CI_GROUPS = tuple(range(50, 58))
GROUP_SIZE = 8


def null_tr(phi: float) -> float:
    """Repetition time (s) of null BOLD with AR(1) coefficient ``phi`` (:data:`NULL_TR`)."""
    tr = NULL_TR.get(round(float(phi), 4))
    if tr is None:
        raise ValueError(f"'phi' must be one of {sorted(NULL_TR)}; got {phi}")
    return tr


def group_seeds(group: int, size: int = GROUP_SIZE) -> list[int]:
    """Seeds of the ``size`` participants of null group ``group`` (disjoint across groups)."""
    return [1000 * int(group) + s for s in range(size)]


def default_settings(tr: float) -> dict:
    """The participant-level encoding and held-out test settings a user gets by default.

    Parameters
    ----------
    tr : float
        Repetition time (s) of the runs: the default ``encoding.trim_seconds``
        become volumes at it (``config.trim_volumes``), as in the CLI.

    Returns
    -------
    dict
        Keyword arguments of ``cross_validate`` (``alphas`` included).
    """
    from bids_app.config import ExperimentSpec, trim_volumes

    spec = ExperimentSpec()
    enc, stats = spec.encoding, spec.statistics
    return {"alphas": enc.alphas, "outer_cv": enc.outer_cv, "inner_folds": enc.inner_folds,
            "trim": tuple(trim_volumes(enc, tr)), "n_permutations": stats.heldout_permutations,
            "permutation": stats.permutation, "block_length": stats.block_length,
            "heldout_p": stats.heldout_p}


def group_settings() -> dict:
    """The group-level settings a user gets by default (sign flips, FDR level)."""
    from bids_app.config import ExperimentSpec

    stats = ExperimentSpec().statistics
    return {"n_permutations": stats.n_permutations, "fdr_alpha": stats.fdr_alpha}


def nuisance_columns(rng: np.random.Generator, n: int, tr: float, k: int) -> np.ndarray:
    """``k`` word-rate-like columns of shape (n, k): words per volume, blurred like an HRF.

    About 2.5 words per second (Poisson counts per volume of ``tr`` seconds), blurred
    over about 4 s: positive, slowly varying, independent of the null BOLD.
    """
    from scipy.ndimage import gaussian_filter1d

    counts = rng.poisson(2.5 * tr, size=(n, k)).astype(np.float32)
    return gaussian_filter1d(counts, 4.0 / tr, axis=0)


def null_fits(phi: float, seeds, *, grid=(10, 10, 8), smooth: float = 1.5,
              lengths=(150, 170, 160, 180), joint: bool = False, **overrides) -> list:
    """Fit the real ``cross_validate`` on one null dataset per seed (cached per process).

    Parameters
    ----------
    phi : float
        AR(1) coefficient of the BOLD.
    seeds : iterable of int
        One participant per seed (also the seed of its permutations).
    grid, smooth, lengths
        As in :func:`null_story_data`; ``smooth=0`` makes voxels independent given
        the design, so that voxel counts follow a binomial law.
    joint : bool
        Fit as the CLI fits a design with the default nuisance bands
        (``features.nuisance``, word rate): one :func:`nuisance_columns` column per
        band appended to the design, and the joint estimator of
        ``bids_app.unique_variance.joint_estimator``.
    **overrides
        Settings replacing :func:`default_settings` at :func:`null_tr` of ``phi``
        (e.g. ``permutation='block'``, or ``trim=(0, 0)`` for untrimmed runs).

    Returns
    -------
    list of EncodingResult
    """
    return [_null_fit(phi, int(seed), tuple(grid), float(smooth), tuple(lengths), bool(joint),
                      tuple(sorted(overrides.items()))) for seed in seeds]


@functools.lru_cache(maxsize=512)
def _null_fit(phi, seed, grid, smooth, lengths, joint, overrides):
    from bids_app.config import ExperimentSpec
    from bids_app.encoding.engine import cross_validate
    from bids_app.threads import limit_threads
    from bids_app.unique_variance import joint_estimator

    settings = {**default_settings(null_tr(phi)), **dict(overrides)}
    alphas = settings.pop("alphas")
    Xs, Ys = null_story_data(seed, phi, grid=grid, smooth=smooth, lengths=lengths)
    if joint:
        names = list(ExperimentSpec().features.nuisance)
        p = Xs[0].shape[1]
        rng = np.random.default_rng([seed, int(phi * 1000), 7])
        Xs = [np.column_stack([x, nuisance_columns(rng, len(x), null_tr(phi), len(names))])
              for x in Xs]
        bands = {"language": (0, p), **{name: (p + i, p + i + 1) for i, name in enumerate(names)}}
        settings["estimator"] = joint_estimator(bands, names, alphas, "numpy")
    with warnings.catch_warnings(), limit_threads(1):
        # noise-only voxels choose the largest alpha: the grid-edge warning is expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return cross_validate(Xs, Ys, alphas, backend="numpy", random_state=seed, **settings)


def binomial_upper(rate: float, n: int, z: float = 3.29) -> float:
    """Largest share of ``n`` independent trials a test of size ``rate`` passes.

    ``rate + z * sqrt(rate (1 - rate) / n)``: with ``z = 3.29`` a calibrated test
    exceeds it with probability about 0.0005 (one-sided normal approximation of the
    binomial), so a test comparing a count with it is not flaky.
    """
    return rate + z * float(np.sqrt(rate * (1 - rate) / n))


def count_upper(rate: float, n: int, tail: float = 0.0005) -> int:
    """Largest number of ``n`` independent events of probability ``rate`` a test passes.

    The smallest ``k`` with ``P(X > k) <= tail`` for ``X ~ Binomial(n, rate)``
    (e.g. null datasets with any BH discovery, null families with any FWE discovery).
    """
    from scipy import stats

    return int(stats.binom.isf(tail, n, rate))
