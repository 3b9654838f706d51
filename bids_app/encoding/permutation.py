"""Permutation tests of held-out correlations that respect autocorrelation.

BOLD and predictions from HRF-convolved features are smooth in time, so shuffling
single volumes would give a null distribution that is too narrow. Two schemes keep
the temporal structure:

``mismatched`` (default)
    The held-out BOLD is correlated with the model's predictions of other stretches
    of the story data of the same length: windows of the (refitted) model's
    predictions of the training volumes, starting at random volumes. Each null
    prediction is an uncut series made by the same model from the same kind of
    features, so it keeps every autocorrelation of a real prediction, and under the
    null it is independent of the held-out BOLD (the model never saw that run).
    When the training runs are shorter than the held-out run, the fold falls back
    to ``circular``.
``circular``
    The held-out predictions are shifted circularly by a random lag, uniform over
    the lags at least ``min_shift`` volumes from zero. The wrap joins the end of
    the run to its start; in runs short against the autocorrelation (AR 0.8-0.95
    per volume, a few hundred volumes) the shifted series are not exchangeable
    with the observed one and each fold's null is too narrow (fold scores of null
    voxels have variance 1.4-1.9 instead of 1). The fold combination below absorbs
    that excess, because it measures the spread of summed scores on pseudo-null
    voxels, but a single fold's test would be anti-conservative.
``block``
    The held-out predictions are cut into blocks of ``block_length`` volumes whose
    order is permuted. Autocorrelation slower than a block does not survive the
    shuffle: this scheme is anti-conservative for strongly autocorrelated BOLD
    (short TRs) and is kept for comparison only.

The same permutations are used for every voxel. Each outer fold is tested on its
own: its model never saw the held-out run, so permuting that run's predictions
gives a null of that fold's r, summarised as a standardised score
``z_k = (r_k - mean(null_k)) / sd(null_k)`` and the null scores ``z_k^j``.

Fold scores are *not* independent under the null: every fold's model was trained
on the other folds' test runs. Their effective correlation ``rho`` is measured on
pseudo-null data — a sample of voxels whose runs have their time axis reversed
(jointly in the training and test roles, so the cross-validation dependence is
kept while the link to the stimulus is broken; a stationary series reversed keeps
its autocovariance) and that go through the same cross-validation — from the
variance of their summed fold scores. The observed combined score is
``Z = sum_k z_k / sqrt(K + K (K - 1) rho)`` (unit variance under the null) and is
ranked among the null scores ``Z^j = sum_k z_k^j / sqrt(K)`` (fold nulls are
independent permutations, so their sum has variance ``K``)::

    p = (1 + #{j : Z^j >= Z}) / (n_permutations + 1)

an exact permutation p for one fold and, with several folds, a rank p that
cannot fall below ``1 / (n_permutations + 1)``. ``p_value='normal'`` gives the
normal tail ``1 - Phi(Z)`` instead (an approximation, documented as such).
"""

from __future__ import annotations

import numpy as np

from .scoring import pearson_r

METHODS = ("mismatched", "circular", "block")
P_VALUES = ("permutation", "normal")


def permutation_indices(n_samples: int, n_permutations: int, *, method: str = "circular",
                        block_length: int = 10, random_state=None,
                        min_shift: int = 0) -> np.ndarray:
    """Row orders of the permuted predictions.

    Parameters
    ----------
    n_samples : int
        Held-out volumes.
    n_permutations : int
        Number of permutations.
    method : {'circular', 'block'}
        Scheme (see module docstring).
    block_length : int
        Block length in volumes (``'block'``).
    random_state : int or numpy.random.Generator, optional
        Seed.
    min_shift : int
        ``'circular'``: smallest distance (in volumes, either way round the
        circle) of a shift from zero; 0 allows every non-zero lag.

    Returns
    -------
    ndarray of shape (n_permutations, n_samples)
        Integer indices.
    """
    if method not in METHODS:
        raise ValueError(f"'permutation' must be one of {set(METHODS)}; got {method!r}")
    rng = np.random.default_rng(random_state)
    block_length = max(1, int(block_length))
    base = np.arange(n_samples)
    out = np.empty((n_permutations, n_samples), dtype=np.int64)
    if method == "circular":
        low = max(1, min(int(min_shift), n_samples // 4))
        lags = np.arange(low, max(n_samples - low + 1, low + 1))
        shifts = rng.choice(lags, size=n_permutations)
        for i in range(n_permutations):
            out[i] = np.roll(base, int(shifts[i]) % max(n_samples, 1))
        return out
    blocks = [base[i:i + block_length] for i in range(0, n_samples, block_length)]
    for i in range(n_permutations):
        order = rng.permutation(len(blocks))
        out[i] = np.concatenate([blocks[j] for j in order])
    return out


def _standardize(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    a = a - a.mean(axis=0)
    norm = np.sqrt((a * a).sum(axis=0))
    norm[norm == 0] = np.inf
    return a / norm


def null_correlations(y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray, *,
                      chunk: int = 32) -> np.ndarray:
    """Pearson r of ``y_true`` with row-permuted ``y_pred`` for every permutation.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_voxels)
    indices : ndarray of shape (n_permutations, n_samples)
        From :func:`permutation_indices`.
    chunk : int
        Permutations evaluated at once (bounds memory to ``chunk × n_samples × n_voxels``).

    Returns
    -------
    ndarray of shape (n_permutations, n_voxels)
        float32 correlations (0 for constant columns).
    """
    zt = _standardize(y_true)
    zp = _standardize(y_pred)
    out = np.empty((len(indices), zt.shape[1]), dtype=np.float32)
    for start in range(0, len(indices), chunk):
        block = indices[start:start + chunk]
        # (chunk, n, v) gathered predictions times the fixed true series
        out[start:start + len(block)] = np.einsum("knv,nv->kv", zp[block], zt, optimize=False)
    return out


def pseudo_null_rows(groups: np.ndarray, method: str, block_length: int, seed) -> np.ndarray:
    """Row order that permutes the time axis within every run (blocks, shifts or reversal).

    Parameters
    ----------
    groups : ndarray of shape (n_samples,)
        Run of every sample.

    method : {'reverse', 'circular', 'block'}
        ``'reverse'`` reverses every run's time axis: a stationary process reversed
        keeps its autocovariance exactly and has no cut.

    Returns
    -------
    ndarray of shape (n_samples,)
        Indices; rows of a run stay in that run.
    """
    order = np.arange(len(groups))
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        if method == "reverse":
            order[rows] = rows[::-1]
            continue
        perm = permutation_indices(len(rows), 1, method=method, block_length=block_length,
                                   random_state=[int(seed), 99, int(g)],
                                   min_shift=len(rows) // 4)[0]
        order[rows] = rows[perm]
    return order


def window_indices(n_train: int, n_test: int, n_permutations: int, *,
                   random_state=None) -> np.ndarray:
    """Windows of ``n_test`` consecutive training volumes, one per permutation.

    Parameters
    ----------
    n_train : int
        Training volumes (at least ``n_test``), in run order.
    n_test : int
        Held-out volumes.
    n_permutations : int
    random_state : int or sequence of int, optional

    Returns
    -------
    ndarray of shape (n_permutations, n_test)
        Row indices into the training volumes (starts uniform over every position).
    """
    if n_train < n_test:
        raise ValueError(f"windows of {n_test} volumes need at least as many training volumes; "
                         f"got {n_train}")
    rng = np.random.default_rng(random_state)
    starts = rng.integers(0, n_train - n_test + 1, size=n_permutations)
    return starts[:, None] + np.arange(n_test)[None, :]


def window_correlations(y_true: np.ndarray, pred_train: np.ndarray, indices: np.ndarray, *,
                        chunk: int = 16) -> np.ndarray:
    """Pearson r of ``y_true`` with windows of the training-volume predictions.

    Parameters
    ----------
    y_true : ndarray of shape (n_test, n_voxels)
    pred_train : ndarray of shape (n_train, n_voxels)
    indices : ndarray of shape (n_permutations, n_test)
        From :func:`window_indices`.

    Returns
    -------
    ndarray of shape (n_permutations, n_voxels)
        float32 correlations (0 for constant windows).
    """
    zt = _standardize(y_true)
    pred_train = np.asarray(pred_train, dtype=np.float32)
    out = np.empty((len(indices), zt.shape[1]), dtype=np.float32)
    for start in range(0, len(indices), chunk):
        windows = pred_train[indices[start:start + chunk]]  # (chunk, n, v)
        windows -= windows.mean(axis=1, keepdims=True)
        norm = np.sqrt(np.einsum("knv,knv->kv", windows, windows))
        norm[norm == 0] = np.inf
        out[start:start + len(windows)] = np.einsum("knv,nv->kv", windows, zt) / norm
    return out


def fold_scores(y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray,
                pred_train: np.ndarray | None = None):
    """Held-out r standardised by its permutation null, and the null's own scores.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_voxels)
        Held-out BOLD and prediction of one outer fold.
    indices : ndarray of shape (n_permutations, n_samples)
        From :func:`permutation_indices` or, with ``pred_train``, :func:`window_indices`.
    pred_train : ndarray of shape (n_train, n_voxels), optional
        The model's predictions of its training volumes (``mismatched`` null).

    Returns
    -------
    z : ndarray of shape (n_voxels,)
        ``(r - mean(null)) / sd(null)`` (0 where the null is degenerate).
    z_null : ndarray of shape (n_permutations, n_voxels)
        The null correlations standardised the same way.
    """
    if pred_train is None:
        null = null_correlations(y_true, y_pred, indices)
    else:
        null = window_correlations(y_true, pred_train, indices)
    r = pearson_r(y_true, y_pred)
    mean, sd = null.mean(axis=0), null.std(axis=0)
    scale = np.where(sd > 0, sd, np.inf).astype(np.float32)
    z = ((r - mean) / scale).astype(np.float32)
    null -= mean
    null /= scale
    return z, null


def fold_z(y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Held-out r standardised by its permutation null, per voxel.

    Returns
    -------
    ndarray of shape (n_voxels,)
        ``(r - mean(null)) / sd(null)`` (0 where the null is degenerate).
    """
    return fold_scores(y_true, y_pred, indices)[0]


def fold_correlation(z_null: np.ndarray | None) -> float:
    """Effective correlation between outer folds' scores, from pseudo-null voxels.

    Measured through the mean square of the summed fold scores (their spread around
    0), ``rho = (mean((sum_k z_k)^2) / K - 1) / (K - 1)``, so that it also absorbs any excess
    variance of the fold scores over their permutation nulls. Sums further than 4
    robust standard deviations (median absolute deviation × 1.4826) from the median
    are left out: pseudo-null voxels in which some signal survives the reversal.

    Parameters
    ----------
    z_null : ndarray of shape (n_folds, n_null_voxels) or None

    Returns
    -------
    float
        Clipped to [0, 0.95]; 0 when it cannot be measured (one fold, < 10 voxels).
    """
    if z_null is None or z_null.shape[0] < 2 or z_null.shape[1] < 10:
        return 0.0
    k = z_null.shape[0]
    total = z_null.astype(np.float64).sum(axis=0)
    total = total[np.isfinite(total)]
    # pseudo-null voxels that carry signal the reversal does not fully break (slowly drifting
    # features) are outliers: leave out sums beyond 4 robust standard deviations
    centre = np.median(total)
    robust_sd = 1.4826 * np.median(np.abs(total - centre))
    if robust_sd > 0:
        total = total[np.abs(total - centre) <= 4 * robust_sd]
    # spread around 0, the null's centre, not around the sample mean: pseudo-null voxels are
    # spatially correlated, so their sample mean follows their noise and would shrink it
    rho = (np.mean(total ** 2) / k - 1.0) / (k - 1)
    return float(np.clip(rho, 0.0, 0.95))


def combined_score(z_folds: np.ndarray, rho: float) -> np.ndarray:
    """Sum of the fold scores scaled to unit variance under the null.

    Parameters
    ----------
    z_folds : ndarray of shape (n_folds, n_voxels)
        Observed fold scores (:func:`fold_scores`), each centred and scaled by its
        own fold's null.
    rho : float
        Correlation between fold scores under the null (:func:`fold_correlation`).

    Returns
    -------
    ndarray of shape (n_voxels,)
        ``sum_k z_k / sqrt(K + K (K - 1) rho)`` (float64): mean 0 and variance 1 under
        the null, whatever the voxel's autocorrelation.
    """
    k = z_folds.shape[0]
    return z_folds.astype(np.float64).sum(axis=0) / np.sqrt(k + k * (k - 1) * rho)


def combine_folds(z_folds: np.ndarray, null_sum: np.ndarray | None, rho: float, *,
                  p_value: str = "permutation") -> np.ndarray:
    """One p value per voxel from dependent fold scores.

    Parameters
    ----------
    z_folds : ndarray of shape (n_folds, n_voxels)
        Observed fold scores (:func:`fold_scores`).
    null_sum : ndarray of shape (n_permutations, n_voxels) or None
        Sum over folds of the null fold scores (independent permutations per fold);
        needed for ``p_value='permutation'``.
    rho : float
        Correlation between fold scores under the null (:func:`fold_correlation`).
    p_value : {'permutation', 'normal'}
        Rank among the null scores (+1 corrected) or the normal tail (approximation).

    Returns
    -------
    ndarray of shape (n_voxels,)
        One-sided p values (H1: r > 0), float32; NaN where every fold's null is
        degenerate (e.g. a constant voxel).
    """
    if p_value not in P_VALUES:
        raise ValueError(f"'heldout_p' must be one of {set(P_VALUES)}; got {p_value!r}")
    k = z_folds.shape[0]
    observed = combined_score(z_folds, rho)
    if p_value == "normal":
        from scipy import stats

        p = stats.norm.sf(observed)
    else:
        if null_sum is None:
            raise ValueError("a permutation p value needs the null fold scores")
        null = null_sum / np.sqrt(k)
        # a relative tolerance keeps float32 rounding from breaking ties in the observed's favour
        floor = observed - 1e-6 * np.maximum(1.0, np.abs(observed))
        exceed = (null >= floor[None, :]).sum(axis=0)
        p = (1.0 + exceed) / (null.shape[0] + 1.0)
    degenerate = np.all(z_folds == 0, axis=0)
    if null_sum is not None:
        degenerate &= np.all(null_sum == 0, axis=0)
    p = np.asarray(p, dtype=np.float32)
    p[degenerate] = np.nan
    return p
