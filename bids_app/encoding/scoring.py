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


def predicted_voxels(r: np.ndarray, q: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Voxels the model predicts, for judging whether the alpha grid is too narrow.

    On voxels the model does not predict, the largest alpha (a prediction of
    almost zero) is the right choice, so choices at the grid's ends only matter
    where the model predicts something.

    Parameters
    ----------
    r : ndarray of shape (n_voxels,)
        Held-out r (mean over outer folds).
    q : ndarray of shape (n_voxels,), optional
        FDR q values of the held-out test (NaN where unanalysed).

    Returns
    -------
    voxels : ndarray of bool, shape (n_voxels,)
        ``q < .05`` when q is given and some voxel reaches it (the permutation floor
        can keep every q above .05); otherwise r above three times the spread of the
        negative r values (the noise spread of the map, mirrored).
    among : str
        Which rule chose them, in words.
    """
    r = np.nan_to_num(np.asarray(r, dtype=np.float64), nan=0.0)
    if q is not None:
        with np.errstate(invalid="ignore"):
            significant = np.asarray(q) < 0.05
        if significant.any():
            return significant, "voxels with q < .05"
    negative = r[r < 0]
    spread = float(np.sqrt(np.mean(negative ** 2))) if negative.size else 0.0
    return r > 3 * spread, "voxels with r above 3 times the spread of the negative r values"


def alpha_grid_edges(alpha_folds: np.ndarray, alphas, voxels: np.ndarray | None = None,
                     among: str = "all voxels") -> dict:
    """Share of predicted voxels whose chosen regularisation sits at either end of the grid.

    Parameters
    ----------
    alpha_folds : ndarray of shape (n_folds, n_voxels)
        Chosen alpha per outer fold and voxel.
    alphas : sequence of float
        The grid.
    voxels : ndarray of bool, shape (n_voxels,), optional
        Voxels counted (:func:`predicted_voxels`); all by default.
    among : str
        What ``voxels`` are, in words.

    Returns
    -------
    dict
        ``smallest`` and ``largest``: share of the counted (fold, voxel) choices equal
        to the grid's smallest and largest value; ``grid``: ``[min, max]``; ``among``
        and ``n_voxels``: which voxels were counted, and how many.
    """
    grid = np.asarray(alphas, dtype=np.float64)
    chosen = np.asarray(alpha_folds, dtype=np.float64)
    if voxels is not None:
        chosen = chosen[:, np.asarray(voxels, dtype=bool)]
    low, high = float(grid.min()), float(grid.max())
    size = max(chosen.size, 1)
    return {"smallest": float(np.isclose(chosen, low, rtol=1e-5).sum() / size),
            "largest": float(np.isclose(chosen, high, rtol=1e-5).sum() / size),
            "grid": [low, high], "among": among, "n_voxels": int(chosen.shape[1]),
            "n_total": int(np.asarray(alpha_folds).shape[1])}


#: Share of voxels at an end of the alpha grid above which the grid is said to be too narrow.
ALPHA_EDGE_LIMIT = 0.05
#: Fewest counted voxels for which the share is reported as a warning.
ALPHA_EDGE_MIN_VOXELS = 10


def alpha_edge_message(edges: dict) -> str | None:
    """One sentence when more than 5 % of choices sit at an end of the grid, else None.

    Only choices of the counted voxels (``edges['among']``, at least
    :data:`ALPHA_EDGE_MIN_VOXELS` of them and 1 % of the map) are judged.
    """
    fewest = max(ALPHA_EDGE_MIN_VOXELS, 0.01 * edges.get("n_total", 0))
    if edges.get("n_voxels", fewest) < fewest:  # at least 10 voxels and 1 % of the map
        return None
    among = edges.get("among", "all voxels")
    whom = f"of {among}" if "n_voxels" not in edges else (
        f"of the {edges['n_voxels']} voxels" if among == "all voxels"
        else f"of the {edges['n_voxels']} {among}")
    parts = []
    if edges["largest"] > ALPHA_EDGE_LIMIT:
        parts.append(f"{100 * edges['largest']:.1f} % {whom} chose the largest alpha "
                     f"({edges['grid'][1]:g}); extend 'encoding.alphas' upwards")
    if edges["smallest"] > ALPHA_EDGE_LIMIT:
        parts.append(f"{100 * edges['smallest']:.1f} % {whom} chose the smallest alpha "
                     f"({edges['grid'][0]:g}); extend 'encoding.alphas' downwards")
    if not parts:
        return None
    return "; ".join(parts) + " (their regularisation may be cut off by the grid)."


def check_alpha_edges(alpha_folds: np.ndarray, alphas, r: np.ndarray,
                      q: np.ndarray | None = None, model: str = "") -> dict:
    """Record, and warn about, alpha choices at the grid's ends among predicted voxels.

    Parameters
    ----------
    alpha_folds : ndarray of shape (n_folds, n_voxels)
        Chosen alpha per outer fold and voxel.
    alphas : sequence of float
        The grid.
    r : ndarray of shape (n_voxels,)
        Held-out r (mean over outer folds).
    q : ndarray of shape (n_voxels,), optional
        FDR q values of the held-out test.
    model : str
        Which model, for the warning (e.g. ``'banded ridge: '``).

    Returns
    -------
    dict
        :func:`alpha_grid_edges` of the predicted voxels (:func:`predicted_voxels`).
    """
    edges = alpha_grid_edges(alpha_folds, alphas, *predicted_voxels(r, q))
    message = alpha_edge_message(edges)
    if message:
        import warnings

        warnings.warn(model + message, RuntimeWarning, stacklevel=3)
    return edges
