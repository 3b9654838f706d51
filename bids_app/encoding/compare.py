"""Voxel-wise comparison of two encoding models with a paired block bootstrap.

Two variants (e.g. prompt-tuned vs fully fine-tuned features) predict the same
held-out BOLD. Their difference in held-out Pearson r, averaged over outer folds
like the scores themselves, is tested by resampling blocks of consecutive
held-out volumes with replacement — the same blocks for both models, so the test
is paired, and blocks keep the autocorrelation. The two-sided p value is twice
the smaller tail of the bootstrap distribution of the difference around zero;
Benjamini–Hochberg q values follow.
"""

from __future__ import annotations

import numpy as np

from .stats import fdr_bh


def _block_resamples(n: int, n_boot: int, block_length: int, rng) -> np.ndarray:
    """Row indices of ``n_boot`` block-bootstrap resamples of ``n`` volumes."""
    block_length = max(1, min(int(block_length), n))
    starts = np.arange(0, n - block_length + 1)  # moving blocks
    n_blocks = int(np.ceil(n / block_length))
    chosen = rng.choice(starts, size=(n_boot, n_blocks))
    rows = (chosen[:, :, None] + np.arange(block_length)[None, None, :]).reshape(n_boot, -1)
    return rows[:, :n]


def _corr_rows(y: np.ndarray, pred: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Correlation of ``y[rows]`` and ``pred[rows]`` for each resample, (n_boot, v)."""
    yb, pb = y[rows], pred[rows]  # (k, n, v)
    yb = yb - yb.mean(axis=1, keepdims=True)
    pb = pb - pb.mean(axis=1, keepdims=True)
    num = np.einsum("knv,knv->kv", yb, pb)
    den = np.sqrt(np.einsum("knv,knv->kv", yb, yb) * np.einsum("knv,knv->kv", pb, pb))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, 0.0).astype(np.float32)


def _corr(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return _corr_rows(y, pred, np.arange(len(y))[None])[0]


def paired_bootstrap(y, pred_a, pred_b, folds, *, n_bootstrap: int = 1000,
                     block_length: int = 10, random_state=0, chunk: int = 25) -> dict:
    """Test the voxel-wise difference in held-out r between two models.

    Parameters
    ----------
    y : ndarray of shape (n_volumes, n_voxels)
        Held-out BOLD (every volume belongs to one test fold).
    pred_a, pred_b : ndarray of shape (n_volumes, n_voxels)
        Held-out predictions of the two models.
    folds : list of ndarray of int
        Volumes of each outer test fold.
    n_bootstrap : int
        Bootstrap resamples.
    block_length : int
        Volumes per resampled block.
    random_state : int
        Seed.
    chunk : int
        Resamples evaluated at once (bounds memory).

    Returns
    -------
    dict
        ``rdiff`` (mean over folds of r_a - r_b), ``p`` (two-sided), ``q`` (BH),
        ``ci_low``/``ci_high`` (2.5 and 97.5 percentiles), each of shape (n_voxels,).
    """
    rng = np.random.default_rng(random_state)
    y = np.asarray(y, dtype=np.float32)
    pred_a = np.asarray(pred_a, dtype=np.float32)
    pred_b = np.asarray(pred_b, dtype=np.float32)
    v = y.shape[1]
    observed = np.mean([_corr(y[f], pred_a[f]) - _corr(y[f], pred_b[f]) for f in folds], axis=0)
    boot = np.zeros((n_bootstrap, v), np.float32)
    for f in folds:
        rows = _block_resamples(len(f), n_bootstrap, block_length, rng)
        yf, af, bf = y[f], pred_a[f], pred_b[f]
        for start in range(0, n_bootstrap, chunk):
            part = rows[start:start + chunk]
            boot[start:start + len(part)] += _corr_rows(yf, af, part) - _corr_rows(yf, bf, part)
    boot /= len(folds)
    below = (1.0 + (boot <= 0).sum(axis=0)) / (n_bootstrap + 1.0)
    above = (1.0 + (boot >= 0).sum(axis=0)) / (n_bootstrap + 1.0)
    p = np.minimum(1.0, 2.0 * np.minimum(below, above)).astype(np.float32)
    return {"rdiff": observed.astype(np.float32), "p": p, "q": fdr_bh(p).astype(np.float32),
            "ci_low": np.percentile(boot, 2.5, axis=0).astype(np.float32),
            "ci_high": np.percentile(boot, 97.5, axis=0).astype(np.float32)}


def compare_predictions(y, pred_a, pred_b, folds, *, batch: int = 4096, **kwargs) -> dict:
    """:func:`paired_bootstrap` one voxel batch at a time (memory-mapped inputs welcome).

    The same seed is used for every batch, so every voxel sees the same resamples.
    """
    v = y.shape[1]
    parts = []
    for start in range(0, v, batch):
        cols = slice(start, min(start + batch, v))
        parts.append(paired_bootstrap(y[:, cols], pred_a[:, cols], pred_b[:, cols], folds,
                                      **kwargs))
    out = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    out["q"] = fdr_bh(out["p"]).astype(np.float32)  # over all voxels, not per batch
    return out
