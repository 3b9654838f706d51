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


def centre_runs(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Subtract each run's mean over its rows (the kept volumes).

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_columns)
    groups : ndarray of int, shape (n_samples,)
        Run of every row.

    Returns
    -------
    ndarray of shape (n_samples, n_columns)
        float32, every column of mean zero within every run.
    """
    out = np.asarray(values, dtype=np.float32).copy()
    for g in np.unique(groups):
        rows = groups == g
        out[rows] -= out[rows].mean(axis=0, dtype=np.float64).astype(np.float32)
    return out


def residualize_design(C: np.ndarray, X: np.ndarray, train: np.ndarray,
                       rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove the shared confounds from a design as from the BOLD of one fold.

    The coefficients of the confounds on every design column are fitted on the
    training samples and applied unchanged to ``rows``, exactly as
    :func:`residualize_fold` treats the BOLD: the two-step fit then equals one
    regression on the design and the confounds together (Frisch–Waugh–Lovell), as
    in a GLM whose design holds the confounds, and a design column lying in the
    confound space is removed on the training and the held-out samples alike.

    Parameters
    ----------
    C : ndarray of shape (n_samples, n_confounds)
        Shared confounds of every sample.
    X : ndarray of shape (n_samples, n_features)
        Design of every sample.
    train, rows : ndarray of int
        Training samples, and the samples to predict (held-out first).

    Returns
    -------
    X_train, X_rows : ndarray
        float32 residual designs. Columns of which the confounds explain all but a
        1e-4 share of the training norm are set to 0: their round-off residue would
        otherwise still correlate with the held-out BOLD (r does not see scale).
    """
    C1 = np.column_stack([np.ones(len(C)), np.asarray(C, dtype=np.float64)])
    Xtr = np.asarray(X[train], dtype=np.float64)
    coef = np.linalg.lstsq(C1[train], Xtr, rcond=None)[0]
    res_train = Xtr - C1[train] @ coef
    res_rows = np.asarray(X[rows], dtype=np.float64) - C1[rows] @ coef
    inside = np.linalg.norm(res_train, axis=0) <= 1e-4 * np.linalg.norm(Xtr, axis=0)
    res_train[:, inside] = 0.0
    res_rows[:, inside] = 0.0
    return res_train.astype(np.float32), res_rows.astype(np.float32)
