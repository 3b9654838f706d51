"""Per-voxel scores of held-out predictions."""

from __future__ import annotations

import numpy as np


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column pair.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_targets)

    Returns
    -------
    ndarray of shape (n_targets,)
        float32; 0 where either column is constant.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    out = np.zeros(a.shape[1])
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out.astype(np.float32)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination of every column (1 - SSE / SST).

    Returns
    -------
    ndarray of shape (n_targets,)
        float32; 0 where the true column is constant.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    sse = ((a - b) ** 2).sum(axis=0)
    sst = ((a - a.mean(axis=0)) ** 2).sum(axis=0)
    out = np.zeros(a.shape[1])
    ok = sst > 0
    out[ok] = 1.0 - sse[ok] / sst[ok]
    return out.astype(np.float32)
