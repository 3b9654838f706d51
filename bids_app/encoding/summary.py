"""Whole-mask and top-voxel summaries of one participant's encoding result.

The top-voxel row never selects and scores voxels on the same map: the voxels of
outer fold ``k`` are chosen by the other folds' mean r, and fold ``k``'s r is
reported (the single-participant analogue of the group's leave-one-participant-out
selection).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .engine import EncodingResult
from .maps import n_significant


def crossfold_top(result: EncodingResult, n_top: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-voxel r of each outer fold, the voxels chosen on the other folds' mean r.

    Choosing the voxels with the highest r and reporting their r on the same map
    would report the selection's own noise; here fold ``k``'s voxels are the
    ``n_top`` best by the mean r of the other folds, and fold ``k``'s r is reported.

    Returns
    -------
    fold_r : ndarray of shape (n_folds,)
        Mean r of fold ``k`` over its selected voxels.
    voxels : ndarray of int
        Voxels selected in every fold (for the descriptive columns).
    """
    folds = result.r_folds
    if len(folds) < 2:  # one fold: nothing to select on independently
        order = np.argsort(result.r)[::-1][:n_top]
        return np.array([float(np.mean(result.r[order]))]), order
    fold_r, chosen = [], []
    for k in range(len(folds)):
        others = np.delete(folds, k, axis=0).mean(axis=0)
        top = np.argsort(others)[::-1][:n_top]
        fold_r.append(float(np.mean(folds[k, top])))
        chosen.append(set(top.tolist()))
    common = np.array(sorted(set.intersection(*chosen)), dtype=np.int64)
    return np.asarray(fold_r), common


def region_summary(result: EncodingResult, top_fraction: float = 0.1,
                   fdr_alpha: float = 0.05) -> pd.DataFrame:
    """Whole-mask and top-voxel summaries of a result (``n_significant``: q < fdr_alpha).

    The top-voxel row selects voxels on other folds than it scores them on
    (:func:`crossfold_top`): its ``mean_r`` is an unbiased held-out value.
    """
    rows = []
    r = result.r
    n_top = max(1, int(round(top_fraction * len(r))))
    top_fold_r, top = crossfold_top(result, n_top)
    for region, index in (("brain", np.arange(len(r))), (f"top{int(top_fraction * 100)}pct", top)):
        is_top = region != "brain"
        if len(index) == 0:
            index = np.argsort(r)[::-1][:n_top]
        rows.append({
            "region": region,
            "n_voxels": int(n_top if is_top else len(index)),
            "mean_r": float(np.mean(top_fold_r) if is_top else np.mean(r[index])),
            "median_r": float(np.median(r[index])),
            "max_r": float(np.max(r[index])),
            "mean_r2": float(np.mean(result.r2[index])),
            "median_alpha": float(np.median(result.alpha[index])),
            "fold_mean_r": ";".join(f"{v:.4f}" for v in (
                top_fold_r if is_top else result.r_folds[:, index].mean(axis=1))),
            "n_significant": n_significant(result, fdr_alpha, index),
        })
    return pd.DataFrame(rows)
