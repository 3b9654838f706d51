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


def alpha_grid_edges(alpha_folds: np.ndarray, alphas) -> dict:
    """Share of voxels whose chosen regularisation sits at either end of the grid.

    Parameters
    ----------
    alpha_folds : ndarray of shape (n_folds, n_voxels)
        Chosen alpha per outer fold and voxel.
    alphas : sequence of float
        The grid.

    Returns
    -------
    dict
        ``smallest`` and ``largest``: share of (fold, voxel) choices equal to the
        grid's smallest and largest value; ``grid``: ``[min, max]``.
    """
    grid = np.asarray(alphas, dtype=np.float64)
    chosen = np.asarray(alpha_folds, dtype=np.float64)
    low, high = float(grid.min()), float(grid.max())
    size = max(chosen.size, 1)
    return {"smallest": float(np.isclose(chosen, low, rtol=1e-5).sum() / size),
            "largest": float(np.isclose(chosen, high, rtol=1e-5).sum() / size),
            "grid": [low, high]}


#: Share of voxels at an end of the alpha grid above which the grid is said to be too narrow.
ALPHA_EDGE_LIMIT = 0.05


def alpha_edge_message(edges: dict) -> str | None:
    """One sentence when more than 5 % of choices sit at an end of the grid, else None."""
    parts = []
    if edges["largest"] > ALPHA_EDGE_LIMIT:
        parts.append(f"{100 * edges['largest']:.1f} % of voxels chose the largest alpha "
                     f"({edges['grid'][1]:g}); extend 'encoding.alphas' upwards")
    if edges["smallest"] > ALPHA_EDGE_LIMIT:
        parts.append(f"{100 * edges['smallest']:.1f} % of voxels chose the smallest alpha "
                     f"({edges['grid'][0]:g}); extend 'encoding.alphas' downwards")
    if not parts:
        return None
    return "; ".join(parts) + " (their regularisation may be cut off by the grid)."
