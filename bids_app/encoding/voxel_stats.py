"""Statistics shared by the participant and group levels."""

from __future__ import annotations

import numpy as np


def fdr_bh(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p values (q values).

    Parameters
    ----------
    p_values : ndarray of shape (n,)
        p values in [0, 1] (NaN are kept as NaN).

    Returns
    -------
    ndarray of shape (n,)
        q values: the smallest FDR at which each test is declared significant.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    n = int(ok.sum())
    if n == 0:
        return q
    order = np.argsort(p[ok])
    ranked = p[ok][order] * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def one_sample_t(values: np.ndarray, *, fisher_z: bool = True):
    """One-sample t test across subjects that the mean is above 0 (one-sided).

    Parameters
    ----------
    values : ndarray of shape (n_subjects, n_voxels)
        Per-subject correlations (Fisher z-transformed first when ``fisher_z``).
    fisher_z : bool
        Apply ``arctanh`` before testing (correlations are bounded).

    Returns
    -------
    t : ndarray of shape (n_voxels,)
    p : ndarray of shape (n_voxels,)
        One-sided p values (``H1: mean > 0``); NaN where the variance is 0.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if fisher_z:
        x = np.arctanh(np.clip(x, -0.999999, 0.999999))
    n = x.shape[0]
    mean = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / np.sqrt(n))
    t[~np.isfinite(t)] = np.nan
    p = stats.t.sf(t, df=n - 1)
    return t, p
