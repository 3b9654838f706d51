"""Confound regression fitted within cross-validation training folds.

Regressing confounds out of every run with coefficients estimated on that same
run lets the held-out run shape its own cleaning. Here the coefficients are
estimated on the training runs of a fold only and then applied, unchanged, to
the held-out run (as recommended for decoding by Snoek et al., 2019,
NeuroImage 184): nothing about the test run's BOLD enters the model before it is
scored.
"""

from __future__ import annotations

import numpy as np


class FoldConfoundRegressor:
    """Least-squares confound removal with scikit-learn's fit/transform API.

    Parameters
    ----------
    ridge : float
        Small ridge added to ``CᵀC`` (relative to its trace) for stability when
        confounds are collinear.

    Attributes
    ----------
    coef_ : ndarray of shape (n_confounds + 1, n_voxels)
        Coefficients of an intercept and each confound, from the training data.
    """

    def __init__(self, ridge: float = 1e-6):
        self.ridge = ridge

    @staticmethod
    def _design(confounds: np.ndarray) -> np.ndarray:
        confounds = np.asarray(confounds, dtype=np.float64)
        return np.column_stack([np.ones(len(confounds)), confounds])

    def fit(self, confounds: np.ndarray, Y: np.ndarray) -> FoldConfoundRegressor:
        """Estimate coefficients on training samples.

        Parameters
        ----------
        confounds : ndarray of shape (n_samples, n_confounds)
        Y : ndarray of shape (n_samples, n_voxels)

        Returns
        -------
        self
        """
        C = self._design(confounds)
        if C.shape[0] != Y.shape[0]:
            raise ValueError(f"{C.shape[0]} confound rows for {Y.shape[0]} samples")
        gram = C.T @ C
        gram[np.diag_indices_from(gram)] += self.ridge * max(np.trace(gram) / len(gram), 1e-12)
        self.coef_ = np.linalg.solve(gram, C.T @ np.asarray(Y, dtype=np.float64)).astype(
            np.float32)
        return self

    def transform(self, confounds: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Remove the fitted confound effects.

        Parameters
        ----------
        confounds : ndarray of shape (n_samples, n_confounds)
        Y : ndarray of shape (n_samples, n_voxels)

        Returns
        -------
        ndarray of shape (n_samples, n_voxels)
            float32 residuals.
        """
        C = self._design(confounds).astype(np.float32)
        return (np.asarray(Y, dtype=np.float32) - C @ self.coef_).astype(np.float32, copy=False)


def residualize_fold(C: np.ndarray, Y: np.ndarray, train: np.ndarray,
                     test: np.ndarray) -> tuple[np.ndarray, np.ndarray, FoldConfoundRegressor]:
    """Regress confounds out of a fold's training and test samples, fitted on training only.

    Parameters
    ----------
    C : ndarray of shape (n_samples, n_confounds)
        Confounds of every sample (all runs concatenated).
    Y : ndarray of shape (n_samples, n_voxels)
        BOLD of every sample.
    train, test : ndarray of int
        Sample indices of the fold.

    Returns
    -------
    Y_train, Y_test : ndarray
        Residual BOLD of the training and test samples (float32).
    regressor : FoldConfoundRegressor
        Fitted on the training samples.
    """
    regressor = FoldConfoundRegressor().fit(C[train], Y[train])
    return regressor.transform(C[train], Y[train]), regressor.transform(C[test], Y[test]), \
        regressor


def stack_confounds(confounds: list[np.ndarray], lengths: list[int]) -> np.ndarray:
    """Concatenate per-run confounds into one matrix, one block of columns per run.

    Runs may have different confound columns (e.g. a different number of
    CompCor components); then each run's confounds get their own columns (zero in
    other runs). Runs with the same columns share coefficients.

    Parameters
    ----------
    confounds : list of ndarray of shape (n_samples_i, n_confounds_i)
    lengths : list of int
        Samples of each run (checked against the confounds).

    Returns
    -------
    ndarray of shape (sum(n_samples_i), n_columns)
    """
    widths = {c.shape[1] for c in confounds}
    for c, n in zip(confounds, lengths, strict=True):
        if len(c) != n:
            raise ValueError(f"{len(c)} confound rows for a run of {n} samples")
    total = sum(lengths)
    if len(widths) == 1:  # same columns in every run: shared coefficients
        return np.concatenate([np.asarray(c, dtype=np.float32) for c in confounds])
    out = np.zeros((total, sum(c.shape[1] for c in confounds)), dtype=np.float32)
    row = col = 0
    for c in confounds:
        out[row:row + len(c), col:col + c.shape[1]] = c
        row, col = row + len(c), col + c.shape[1]
    return out
