"""Inter-subject noise ceiling for datasets without repeated stimuli.

When every participant heard the same stories, the part of a voxel's response
that is driven by the stimulus is shared across participants. The
leave-one-subject-out correlation — each participant's BOLD against the mean of
the others, in a common space — estimates how much of the signal any stimulus
model can predict (Nastase et al., 2019, "Measuring shared responses across
subjects using intersubject correlation"). Encoding scores divided by it are
*ceiling-normalised* scores. The group stage calls these functions.
"""

from __future__ import annotations

import numpy as np


def _check(data) -> list:
    data = list(data)
    if len(data) < 3:
        raise ValueError("an inter-subject ceiling needs at least 3 participants; "
                         f"got {len(data)}")
    shapes = {tuple(d.shape) for d in data}
    if len(shapes) != 1:
        raise ValueError("every participant needs the same volumes and voxels (a common "
                         f"space and the same stories); got shapes {sorted(shapes)}")
    return data


def loso_correlation(data, *, batch: int = 8192) -> np.ndarray:
    """Correlation of each participant with the mean of the others, per voxel.

    Parameters
    ----------
    data : sequence of ndarray of shape (n_volumes, n_voxels)
        BOLD of each participant for the same stimulus time line (memory-mapped
        arrays are read one voxel batch at a time).
    batch : int
        Voxels processed at once.

    Returns
    -------
    ndarray of shape (n_subjects, n_voxels)
        float32 Pearson r (0 where a series is constant).
    """
    from .scoring import pearson_r

    data = _check(data)
    n_sub, v = len(data), data[0].shape[1]
    out = np.zeros((n_sub, v), np.float32)
    for start in range(0, v, batch):
        cols = slice(start, min(start + batch, v))
        block = np.stack([np.asarray(d[:, cols], dtype=np.float32) for d in data])
        total = block.sum(axis=0)
        for s in range(n_sub):
            others = (total - block[s]) / (n_sub - 1)
            out[s, cols] = pearson_r(block[s], others)
    return out


def noise_ceiling(data, *, batch: int = 8192) -> np.ndarray:
    """Mean leave-one-subject-out correlation (the group's noise ceiling in r).

    Returns
    -------
    ndarray of shape (n_voxels,)
        float32; values at or below 0 mean no reliable shared signal.
    """
    return loso_correlation(data, batch=batch).mean(axis=0)


def ceiling_normalised(r: np.ndarray, ceiling: np.ndarray, *,
                       min_ceiling: float = 0.1) -> np.ndarray:
    """Divide encoding r by the noise ceiling where the ceiling is reliable.

    Parameters
    ----------
    r : ndarray of shape (..., n_voxels)
        Held-out correlations (one row per participant, or group means).
    ceiling : ndarray of shape (n_voxels,) or same shape as ``r``
        From :func:`noise_ceiling` or :func:`loso_correlation`.
    min_ceiling : float
        Voxels whose ceiling is below this are NaN (dividing by noise is meaningless).

    Returns
    -------
    ndarray
        float32, shape of ``r``.
    """
    r = np.asarray(r, dtype=np.float32)
    ceiling = np.asarray(ceiling, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ceiling >= min_ceiling, r / ceiling, np.nan)
    return out.astype(np.float32)
