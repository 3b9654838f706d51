"""One permutation test of held-out correlations for every cross-validated model.

:class:`HeldoutTest` collects, fold by fold and voxel batch by voxel batch, what
:mod:`bids_app.encoding.permutation` needs for a calibrated p value of the
held-out r: the observed and permuted fold scores of every voxel, and the fold
scores of pseudo-null voxels that measure how dependent the folds are. Plain
ridge (:func:`~bids_app.encoding.engine.cross_validate`), banded ridge
(:func:`~bids_app.encoding.banded.banded_cross_validate`) and any other outer
cross-validation loop use it the same way::

    test = HeldoutTest(n_folds, n_voxels, n_permutations=200)
    Y_null = test.pseudo_null(y_cols, groups)          # (n_samples, n_null)
    for k, (train, test_rows) in enumerate(splits):
        for cols in batches:
            ...                                        # fit, predict held-out rows
            test.add(k, cols, Y_test, prediction, train_prediction)
        ...                                            # same fit on Y_null
        test.add_null(k, Y_null_test, null_prediction, null_train_prediction)

``train_prediction`` (the refitted model's predictions of its own training
volumes, in run order) is needed by the default ``mismatched`` null only
(:attr:`HeldoutTest.needs_training_predictions`).
    p, q, info = test.finish()
"""

from __future__ import annotations

import warnings

import numpy as np

from .permutation import (
    METHODS,
    P_VALUES,
    combine_folds,
    combined_score,
    fold_correlation,
    fold_scores,
    permutation_indices,
    pseudo_null_rows,
    window_indices,
)
from .voxel_stats import fdr_bh

#: Said whenever the block scheme is chosen: it is not calibrated at short TRs.
BLOCK_WARNING = ("'permutation' = 'block' is kept for comparison only and is not calibrated for "
                 "strongly autocorrelated BOLD: shuffled blocks break autocorrelation slower "
                 "than a block, and on null data with AR(1) 0.95 per volume (TRs near 0.7 s) it "
                 "marked 6.5 % of voxels p < .05 on whole runs (5.2 % with the default edge "
                 "trims); use 'mismatched' (the default).")


class HeldoutTest:
    """Permutation test of the fold-averaged held-out r of a cross-validated model.

    Parameters
    ----------
    n_folds : int
        Outer folds.
    n_voxels : int
        Voxels tested.
    n_permutations : int
        Permutations of each fold's held-out predictions.
    method : {'mismatched', 'circular', 'block'}
        Permutation scheme (:mod:`bids_app.encoding.permutation`).
    block_length : int
        Volumes per block (``'block'``); smallest circular shift (``'circular'``).
    p_value : {'permutation', 'normal'}
        Rank p with the +1 correction, or the normal approximation.
    random_state : int
        Seed of the permutations and of the pseudo-null voxels.
    n_null_voxels : int
        Pseudo-null voxels used to measure the fold dependence.
    """

    def __init__(self, n_folds: int, n_voxels: int, n_permutations: int, *,
                 method: str = "mismatched", block_length: int = 10,
                 p_value: str = "permutation", random_state: int = 0,
                 n_null_voxels: int = 1000):
        if method not in METHODS:
            raise ValueError(f"'permutation' must be one of {set(METHODS)}; got {method!r}")
        if p_value not in P_VALUES:
            raise ValueError(f"'heldout_p' must be one of {set(P_VALUES)}; got {p_value!r}")
        if n_permutations < 1:
            raise ValueError(f"'n_permutations' must be at least 1; got {n_permutations}")
        if method == "block":
            warnings.warn(BLOCK_WARNING, UserWarning, stacklevel=2)
        self.n_folds, self.n_voxels = int(n_folds), int(n_voxels)
        self.n_permutations, self.method = int(n_permutations), method
        self.block_length, self.p_value = int(block_length), p_value
        self.random_state, self.n_null_voxels = int(random_state), int(n_null_voxels)
        self.z = np.zeros((n_folds, n_voxels), np.float32)
        self.null_sum = (np.zeros((n_permutations, n_voxels), np.float32)
                         if p_value == "permutation" else None)
        self.z_null = None
        self._indices: dict = {}
        self.fallback_folds: set = set()
        #: Combined held-out score of every voxel, set by :meth:`finish`: the fold scores
        #: (each centred and scaled by its own fold's null) summed and scaled to unit
        #: variance under the null; NaN where nothing was tested. The group stage tests it.
        self.score: np.ndarray | None = None

    @property
    def needs_training_predictions(self) -> bool:
        """Whether :meth:`add` needs the predictions of the training volumes."""
        return self.method == "mismatched"

    def indices(self, fold: int, n_test: int, n_train: int = 0) -> np.ndarray:
        """Null rows of fold ``fold`` (the same for every voxel).

        Returns
        -------
        ndarray of shape (n_permutations, n_test)
            Windows into the training predictions (``mismatched``) or orders of
            the held-out predictions (otherwise, and when the training volumes
            are fewer than the held-out ones).
        """
        if fold not in self._indices:
            seed = [self.random_state, fold]
            if self.method == "mismatched" and n_train >= n_test:
                rows = window_indices(n_train, n_test, self.n_permutations, random_state=seed)
            else:
                if self.method == "mismatched":
                    self.fallback_folds.add(int(fold))
                method = "circular" if self.method == "mismatched" else self.method
                rows = permutation_indices(n_test, self.n_permutations, method=method,
                                           block_length=self.block_length, random_state=seed,
                                           min_shift=self.block_length)
            self._indices[fold] = rows
        return self._indices[fold]

    def _scores(self, fold, y_true, y_pred, pred_train):
        n_train = 0 if pred_train is None else len(pred_train)
        if self.needs_training_predictions and pred_train is None:
            raise ValueError("the 'mismatched' null needs the training predictions")
        rows = self.indices(fold, len(y_true), n_train)
        windows = fold not in self.fallback_folds and self.needs_training_predictions
        return fold_scores(y_true, y_pred, rows, pred_train if windows else None)

    def pseudo_null(self, y_cols, groups: np.ndarray) -> np.ndarray:
        """BOLD of random voxels with each run's time axis reversed.

        Parameters
        ----------
        y_cols : callable
            ``y_cols(columns)`` returns the kept volumes of those voxels.
        groups : ndarray of shape (n_samples,)
            Run of every kept volume.

        Returns
        -------
        ndarray of shape (n_samples, n_null_voxels)
            To be fitted like the real voxels and passed to :meth:`add_null`.
        """
        rng = np.random.default_rng([self.random_state, 7])
        size = min(self.n_voxels, self.n_null_voxels)
        chosen = np.sort(rng.choice(self.n_voxels, size=size, replace=False))
        Y = np.array(y_cols(chosen), dtype=np.float32)
        self.z_null = np.zeros((self.n_folds, size), np.float32)
        return Y[pseudo_null_rows(groups, "reverse", self.block_length, self.random_state)]

    def add(self, fold: int, cols, y_true: np.ndarray, y_pred: np.ndarray,
            pred_train: np.ndarray | None = None) -> None:
        """Record fold ``fold``'s scores of voxels ``cols``.

        Parameters
        ----------
        fold : int
        cols : slice or ndarray of int
            Voxels of the batch.
        y_true, y_pred : ndarray of shape (n_test, n_batch)
            Held-out BOLD (as scored) and prediction.
        pred_train : ndarray of shape (n_train, n_batch), optional
            Predictions of the training volumes (run order); needed by ``mismatched``.
        """
        z, null = self._scores(fold, y_true, y_pred, pred_train)
        self.z[fold, cols] = z
        if self.null_sum is not None:
            self.null_sum[:, cols] += null

    def add_null(self, fold: int, y_true: np.ndarray, y_pred: np.ndarray,
                 pred_train: np.ndarray | None = None) -> None:
        """Record fold ``fold``'s scores of the pseudo-null voxels (as :meth:`add`)."""
        if self.z_null is None:
            raise RuntimeError("call pseudo_null() before add_null()")
        self.z_null[fold] = self._scores(fold, y_true, y_pred, pred_train)[0]

    def finish(self):
        """Return the p and q values of every voxel and the settings to record.

        Returns
        -------
        p, q : ndarray of shape (n_voxels,)
            One-sided p (H1: r > 0) and Benjamini–Hochberg q; NaN for voxels whose
            held-out BOLD or prediction is constant in every fold.
        info : dict
            ``n_permutations``, ``permutation``, ``block_length``, ``heldout_p``,
            ``null_fold_correlation`` and ``p_floor`` (the smallest p possible).
        """
        rho = fold_correlation(self.z_null)
        p = combine_folds(self.z, self.null_sum, rho, p_value=self.p_value)
        score = combined_score(self.z, rho).astype(np.float32)
        score[np.isnan(p)] = np.nan
        self.score = score
        q = fdr_bh(p).astype(np.float32)
        floor = 1.0 / (self.n_permutations + 1) if self.p_value == "permutation" else 0.0
        info = {"n_permutations": self.n_permutations, "permutation": self.method,
                "block_length": self.block_length, "heldout_p": self.p_value,
                "null_fold_correlation": rho, "p_floor": floor,
                "circular_fallback_folds": sorted(self.fallback_folds)}
        return p, q, info
