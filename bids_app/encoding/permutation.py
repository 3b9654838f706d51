"""Permutation tests of held-out correlations that respect autocorrelation.

BOLD and predictions from HRF-convolved features are smooth in time, so shuffling
single volumes would give a null distribution that is too narrow. Two schemes keep
the temporal structure within blocks:

``block``
    The held-out time series of the predictions is cut into consecutive blocks of
    ``block_length`` volumes, whose order is permuted.
``circular``
    The predictions are shifted circularly by a random lag (uniform over all
    lags: the cyclic group, which keeps the test exact for exchangeable series).

The same permutations are used for every voxel. Each outer fold is tested on
its own: its model never saw the held-out run, so permuting that run's
predictions gives a valid null, summarised as a standardised score
``z_k = (r_k - mean(null_k)) / sd(null_k)``. Fold scores are *not* independent
under the null: every fold's model was trained on the other folds' test runs
(their correlation is about 0.25 in simulations), so averaging independently
permuted fold nulls would give p values that are too small. Their correlation
``rho`` is therefore measured on pseudo-null data — a sample of voxels whose
runs have their time axis block-permuted (jointly in the training and test
roles, so the cross-validation dependence is kept while the link to the
stimulus is broken) and that go through the same cross-validation — and the
fold scores are combined as ``Z = sum(z_k) / sqrt(K + K (K - 1) rho)``, with
``p = 1 - Phi(Z)`` (one-sided, H1: r > 0). Benjamini–Hochberg q values follow.
"""

from __future__ import annotations

import numpy as np

METHODS = ("block", "circular")


def permutation_indices(n_samples: int, n_permutations: int, *, method: str = "block",
                        block_length: int = 10, random_state=None) -> np.ndarray:
    """Row orders of the permuted predictions.

    Parameters
    ----------
    n_samples : int
        Held-out volumes.
    n_permutations : int
        Number of permutations.
    method : {'block', 'circular'}
        Scheme (see module docstring).
    block_length : int
        Block length in volumes (``'block'``).
    random_state : int or numpy.random.Generator, optional
        Seed.

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
        # uniform over the whole cyclic group (exact for exchangeable series)
        shifts = rng.integers(1, max(n_samples, 2), size=n_permutations)
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
    """Row order that permutes the time axis within every run (blocks or shifts).

    Parameters
    ----------
    groups : ndarray of shape (n_samples,)
        Run of every sample.

    Returns
    -------
    ndarray of shape (n_samples,)
        Indices; rows of a run stay in that run.
    """
    order = np.arange(len(groups))
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        perm = permutation_indices(len(rows), 1, method=method, block_length=block_length,
                                   random_state=[int(seed), 99, int(g)])[0]
        order[rows] = rows[perm]
    return order


def fold_z(y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Held-out r standardised by its permutation null, per voxel.

    Returns
    -------
    ndarray of shape (n_voxels,)
        ``(r - mean(null)) / sd(null)`` (0 where the null is degenerate).
    """
    from .scoring import pearson_r

    null = null_correlations(y_true, y_pred, indices)
    r = pearson_r(y_true, y_pred)
    sd = null.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (r - null.mean(axis=0)) / sd, 0.0)
    return z.astype(np.float32)


def combine_fold_z(z_folds: np.ndarray, z_null: np.ndarray | None = None):
    """Combine dependent fold scores into one p value per voxel.

    Parameters
    ----------
    z_folds : ndarray of shape (n_folds, n_voxels)
        From :func:`fold_z`.
    z_null : ndarray of shape (n_folds, n_null_voxels), optional
        Fold scores of pseudo-null voxels, to measure the correlation between folds
        (0 assumed without them).

    Returns
    -------
    p : ndarray of shape (n_voxels,)
        One-sided p values (float32).
    rho : float
        Correlation between fold scores used.
    """
    from scipy import stats

    k = z_folds.shape[0]
    rho = 0.0
    if k > 1 and z_null is not None and z_null.shape[1] >= 10:
        corr = np.corrcoef(z_null)
        rho = float(np.clip(np.nanmean(corr[~np.eye(k, dtype=bool)]), 0.0, 0.95))
    total = z_folds.astype(np.float64).sum(axis=0) / np.sqrt(k + k * (k - 1) * rho)
    return stats.norm.sf(total).astype(np.float32), rho
