"""Joint fit with low-level nuisance bands, and the language bands' unique variance.

With nuisance bands (word rate ...) in the design, the language and nuisance
bands are fitted jointly with one penalty per band: the nuisance columns are
weighted by each of :data:`NUISANCE_WEIGHTS` in turn (a weight w divides that
band's ridge penalty by w²) and the weight and the overall alpha are chosen per
voxel on the inner folds (banded ridge by grid search, on the plain ridge
solver: :class:`~bids_app.encoding.EncodingJointRidgeCV`). The full model is
compared with the model of the nuisance bands alone, cross-validated the same
way (same outer folds, trimming and confounds). The language bands' unique
variance per voxel is

    R²(full) - R²(nuisance only)

the held-out variance the language model explains beyond what the low-level
controls explain (variance partitioning as in de Heer et al. 2017 and
Deniz et al. 2019). It is written as ``stat-r2unique``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .encoding.engine import cross_validate
from .encoding.joint_estimator import NUISANCE_WEIGHTS, EncodingJointRidgeCV

#: Suffix of the file beside an encoding result holding the unique variance.
SUFFIX = "_r2unique.npy"


def nuisance_candidates(Xs: list[np.ndarray], bands: dict, nuisance: list[str],
                        weights=NUISANCE_WEIGHTS) -> list[list[np.ndarray]]:
    """Candidate designs: the nuisance columns weighted by each of ``weights``.

    Parameters
    ----------
    Xs : list of ndarray of shape (n_volumes_i, n_features)
        Design of each run.
    bands : dict of str -> (int, int)
        Column range of each band.
    nuisance : list of str
        Names of the nuisance bands.
    weights : sequence of float
        Weights of the nuisance columns.

    Returns
    -------
    list of list of ndarray
        One list of run designs per weight (for
        :func:`bids_app.encoding.engine.cross_validate`, which chooses one per voxel).
    """
    columns = nuisance_columns(bands, nuisance)
    candidates = []
    for weight in weights:
        designs = []
        for X in Xs:
            X = np.array(X, dtype=np.float32)
            X[:, columns] *= np.float32(weight)
            designs.append(X)
        candidates.append(designs)
    return candidates


def joint_estimator(bands: dict, nuisance: list[str], alphas,
                    backend: str = "torch") -> EncodingJointRidgeCV:
    """The joint model the CLI fits on each training split (data centred per run, no intercept).

    Parameters
    ----------
    bands : dict of str -> (int, int)
        Column range of each band (the design sidecar's ``bands``).
    nuisance : list of str
        Names of the nuisance bands.
    alphas : sequence of float
        Candidate overall regularisation strengths.
    backend : str
        himalaya backend.

    Returns
    -------
    EncodingJointRidgeCV
        Unfitted; the nuisance columns weighted by each of :data:`NUISANCE_WEIGHTS`.
    """
    return EncodingJointRidgeCV(bands={k: tuple(int(x) for x in v) for k, v in bands.items()},
                                nuisance=tuple(n for n in nuisance if n in bands),
                                weights=NUISANCE_WEIGHTS,
                                alphas=alphas, fit_intercept=False, backend=backend)


def unique_variance_file(result_file: str | Path) -> Path:
    """Where the unique variance of ``result_file`` (an encoding ``.npz``) is saved."""
    result_file = Path(result_file)
    return result_file.with_name(result_file.name.replace(".npz", SUFFIX))


def nuisance_columns(bands: dict, nuisance: list[str]) -> np.ndarray:
    """Column indices of the nuisance bands of a design.

    Parameters
    ----------
    bands : dict of str -> (int, int)
        Column range of each band (the design sidecar's ``bands``).
    nuisance : list of str
        Names of the nuisance bands.

    Returns
    -------
    ndarray of int
        Sorted column indices (empty when no band is a nuisance band).
    """
    columns = [np.arange(int(bands[name][0]), int(bands[name][1]))
               for name in nuisance if name in bands]
    return np.concatenate(columns) if columns else np.zeros(0, dtype=int)


def unique_variance(Xs: list[np.ndarray], Ys: list[np.ndarray], bands: dict,
                    nuisance: list[str], full_r2: np.ndarray, alphas, **cv) -> np.ndarray:
    """Held-out R² of the full model minus that of the nuisance bands alone.

    Parameters
    ----------
    Xs : list of ndarray of shape (n_volumes_i, n_features)
        Design of each run (language and nuisance bands side by side).
    Ys : list of ndarray of shape (n_volumes_i, n_voxels)
        BOLD of each run.
    bands : dict of str -> (int, int)
        Column range of each band.
    nuisance : list of str
        Names of the nuisance bands.
    full_r2 : ndarray of shape (n_voxels,)
        Held-out R² of the full model (mean over outer folds).
    alphas : sequence of float
        Candidate regularisation strengths of the nuisance-only ridge.
    **cv
        Cross-validation settings passed on to
        :func:`bids_app.encoding.engine.cross_validate` (the same as the full model's).

    Returns
    -------
    ndarray of shape (n_voxels,)
        Unique variance of the language bands (float32; negative where the
        language bands hurt held-out prediction).

    Raises
    ------
    ValueError
        When no band of the design is a nuisance band, or every band is one.
    """
    columns = nuisance_columns(bands, nuisance)
    n_features = Xs[0].shape[1]
    if columns.size == 0 or columns.size == n_features:
        raise ValueError(f"the design's bands {sorted(bands)} must hold the nuisance bands "
                         f"{nuisance} and at least one other band")
    reduced = [np.ascontiguousarray(x[:, columns]) for x in Xs]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        nuisance_only = cross_validate(reduced, Ys, alphas, **cv)
    for warning in caught:  # say which of the two fits a warning (e.g. the alpha grid) is about
        text = str(warning.message)
        if issubclass(warning.category, RuntimeWarning) and "alpha" in text:
            text = "nuisance-only model of the unique variance: " + text
        warnings.warn(text, warning.category, stacklevel=2)
    return (np.asarray(full_r2, dtype=np.float64) - nuisance_only.r2).astype(np.float32)
