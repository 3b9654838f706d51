"""A scikit-learn estimator of banded ridge regression, with per-band prediction splits.

:class:`EncodingBandedRidgeCV` gives each band of design columns (e.g. tuned
features, pretrained features, word rate) its own regularisation per voxel,
chosen by himalaya's random search over band weights on inner folds of whole
runs. It is himalaya's ``BandedRidgeCV`` with bands named by column ranges,
run-aware inner folds, a scoped backend, numpy outputs and per-voxel scores
(R² split between bands with ``split=True``).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from .estimator_base import (
    RunFoldsRegressor,
    backend_scope,
    band_slices,
    check_alphas,
    voxel_scores,
)

__all__ = ["EncodingBandedRidgeCV"]


class EncodingBandedRidgeCV(RunFoldsRegressor):
    """Banded ridge regression: one regularisation per band of columns and voxel.

    Parameters
    ----------
    bands : dict of str -> (int, int), optional
        Column range ``[start, stop)`` of each band; the bands must tile the
        design's columns. None: one band holding every column.
    alphas : sequence of float, optional
        Candidate overall regularisation strengths (13 values from 1 to 1e6 by default).
    cv : int, scikit-learn splitter or iterable of (train, validation), default=5
        Inner folds, as in :class:`bids_app.encoding.EncodingRidgeCV`.
    n_iter : int, default=20
        Band-weight combinations tried by the random search (the first is uniform).
    random_state : int, default=0
        Seed of the random search.
    fit_intercept : bool, default=True
        Fit an intercept: ``X`` and ``Y`` are centred on the means of all samples
        for the refit and, in each inner fold, on the fold's training means (as himalaya).
    backend : {'auto', 'numpy', 'torch', 'torch_cuda'}, default='auto'
        himalaya backend (results are numpy arrays).
    n_targets_batch : int, optional
        Voxels fitted at once (does not change the result).
    solver_params : dict, optional
        Further parameters of himalaya's ``solve_group_ridge_random_search``
        (e.g. ``concentration``).
    scoring : {'r2', 'r'}, default='r2'
        What :meth:`score` returns per voxel.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_targets) or (n_features,)
    intercept_ : ndarray of shape (n_targets,) or float
    deltas_ : ndarray of shape (n_bands, n_targets)
        Log band weights chosen per voxel (himalaya's ``deltas_``).
    best_alphas_ : ndarray of shape (n_targets,)
        Overall regularisation per voxel, ``1 / sum(exp(deltas_))``.
    cv_scores_ : ndarray of shape (n_iter, n_targets)
        Validation score of every band-weight combination tried.
    band_names_ : list of str
        Bands in column order (the first axis of ``deltas_`` and of split outputs).

    Examples
    --------
    >>> import numpy as np
    >>> from bids_app.encoding import EncodingBandedRidgeCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((120, 6))
    >>> Y = X[:, :3] @ rng.standard_normal((3, 2)) + 0.5 * rng.standard_normal((120, 2))
    >>> model = EncodingBandedRidgeCV(bands={"useful": (0, 3), "noise": (3, 6)},
    ...                               alphas=[0.1, 1, 10], n_iter=5, backend="numpy")
    >>> split = model.fit(X[:90], Y[:90], groups=np.repeat([0, 1, 2], 30)).score(
    ...     X[90:], Y[90:], split=True)
    >>> model.band_names_, split.shape
    (['useful', 'noise'], (2, 2))
    >>> bool(np.all(split[0] > split[1]))
    True
    """

    def __init__(self, bands: dict | None = None, alphas=None, cv=5, *, n_iter: int = 20,
                 random_state: int = 0, fit_intercept: bool = True, backend: str = "auto",
                 n_targets_batch: int | None = None, solver_params: dict | None = None,
                 scoring: str = "r2"):
        self.bands = bands
        self.alphas = alphas
        self.cv = cv
        self.n_iter = n_iter
        self.random_state = random_state
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.n_targets_batch = n_targets_batch
        self.solver_params = solver_params
        self.scoring = scoring

    def _check_params(self) -> None:
        if not isinstance(self.n_iter, numbers.Integral) or self.n_iter < 1:
            raise ValueError(f"'n_iter' must be a positive integer; got {self.n_iter!r}")
        voxel_scores(np.zeros((2, 1)), np.zeros((2, 1)), self.scoring)  # checks 'scoring'

    def fit(self, X, y, groups=None) -> EncodingBandedRidgeCV:
        """Choose band weights per voxel on the inner folds and refit on all samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Design, bands side by side.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        groups : array-like of shape (n_samples,), optional
            Run of every sample: inner folds then hold out whole runs.

        Returns
        -------
        self
        """
        from himalaya.ridge import BandedRidgeCV

        X, Y, groups, splits, ravel = self._prepare(X, y, groups)
        bands = self.bands if self.bands is not None else {"all": (0, X.shape[1])}
        named = band_slices(bands, X.shape[1])
        self.x_mean_ = X.mean(0) if self.fit_intercept else np.zeros(X.shape[1])
        y_mean = Y.mean(0) if self.fit_intercept else np.zeros(Y.shape[1])
        Xc = (X - self.x_mean_).astype(np.float32)
        Yc = (Y - y_mean).astype(np.float32)
        column_band = np.zeros(X.shape[1], dtype=np.int64)
        for index, (_, columns) in enumerate(named):
            column_band[columns] = index
        params = {"alphas": check_alphas(self.alphas), "n_iter": int(self.n_iter),
                  "progress_bar": False, "warn": False,
                  "n_targets_batch": self.n_targets_batch,
                  "n_targets_batch_refit": self.n_targets_batch, **(self.solver_params or {})}
        with backend_scope(self.backend) as be:
            # centred on all samples already; himalaya centres each inner fold on its training rows
            model = BandedRidgeCV(groups=column_band, solver_params=params, cv=splits,
                                  random_state=self.random_state,
                                  fit_intercept=bool(self.fit_intercept)).fit(Xc, Yc)
            fitted = {k: np.asarray(be.to_numpy(getattr(model, k)), dtype=np.float32)
                      for k in ("coef_", "deltas_", "best_alphas_", "cv_scores_")}
        self.band_names_ = [name for name, _ in named]
        self.band_slices_ = [columns for _, columns in named]
        self.deltas_, self.best_alphas_ = fitted["deltas_"], fitted["best_alphas_"]
        self.cv_scores_ = fitted["cv_scores_"]
        coef = fitted["coef_"]
        intercept = (y_mean - self.x_mean_ @ coef).astype(np.float32)
        self.y_mean_ = y_mean
        self.coef_ = coef[:, 0] if ravel else coef
        self.intercept_ = float(intercept[0]) if ravel else intercept
        return self

    def fit_heldout(self, X, y, X_heldout, groups=None, split: bool = False) -> np.ndarray:
        """Fit without intercept on the inner folds and predict ``X_heldout``, band by band.

        What the outer cross-validation loop calls on each training split. With
        more samples than features it is himalaya's ``BandedRidgeCV`` on the bands'
        columns; otherwise ``MultipleKernelRidgeCV`` on the bands' linear kernels
        (the same model, solved in the dual). The band designs or kernels are kept,
        so that further calls with the same ``X`` and ``X_heldout`` (the next batch
        of voxels) do not recompute them. ``fit_intercept`` must be False (centre
        the data beforehand); ``coef_`` is not formed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_targets)
        X_heldout : array-like of shape (n_heldout, n_features)
        groups : array-like of shape (n_samples,), optional
        split : bool, default=False
            Return each band's part of the predictions.

        Returns
        -------
        ndarray of shape (n_heldout, n_targets), or (n_bands, n_heldout, n_targets) when split
            float32; ``best_alphas_``, ``deltas_`` and ``band_names_`` are set.
        """
        from himalaya.kernel_ridge import MultipleKernelRidgeCV
        from himalaya.ridge import BandedRidgeCV

        if self.fit_intercept:
            raise ValueError("'fit_intercept' must be False for fit_heldout; got True")
        X, Y, groups, splits, _ = self._prepare(X, y, groups)
        bands = self.bands if self.bands is not None else {"all": (0, X.shape[1])}
        named = band_slices(bands, X.shape[1])
        X_heldout = np.array(X_heldout, dtype=np.float32)
        params = {"alphas": check_alphas(self.alphas), "n_iter": int(self.n_iter),
                  "progress_bar": False, "n_targets_batch": self.n_targets_batch,
                  "n_targets_batch_refit": self.n_targets_batch, **(self.solver_params or {})}
        with backend_scope(self.backend) as be:
            kind, train, test = self._band_inputs(X.astype(np.float32), X_heldout,
                                                  [columns for _, columns in named])
            if kind == "primal":
                model = BandedRidgeCV(groups="input", solver_params={**params, "warn": False},
                                      cv=splits, random_state=self.random_state)
            else:
                model = MultipleKernelRidgeCV(kernels="precomputed", solver_params=params,
                                              cv=splits, random_state=self.random_state)
            model.fit(train, Y.astype(np.float32))
            parts = model.predict(test, split=True)
            total = None if split else be.sum(parts, 0)
            parts = np.asarray(be.to_numpy(parts if split else total), dtype=np.float32)
            self.deltas_ = np.asarray(be.to_numpy(model.deltas_), dtype=np.float32)
            self.best_alphas_ = np.asarray(be.to_numpy(model.best_alphas_), dtype=np.float32)
        for name in ("coef_", "intercept_"):
            self.__dict__.pop(name, None)
        self.band_names_ = [name for name, _ in named]
        self.band_slices_ = [columns for _, columns in named]
        return parts

    def _band_inputs(self, X, X_heldout, slices):
        """Band designs (primal) or linear kernels (dual) of ``X``, reused while it is unchanged."""
        cached = getattr(self, "_input_cache", None)
        if (cached is not None and cached[0] == slices and cached[1].shape == X.shape
                and cached[2].shape == X_heldout.shape and np.array_equal(cached[1], X)
                and np.array_equal(cached[2], X_heldout)):
            return cached[3]
        if X.shape[0] >= X.shape[1]:
            inputs = "primal", [X[:, s] for s in slices], [X_heldout[:, s] for s in slices]
        else:
            inputs = ("kernel", np.stack([X[:, s] @ X[:, s].T for s in slices]),
                      np.stack([X_heldout[:, s] @ X[:, s].T for s in slices]))
        self._input_cache = (slices, X, X_heldout, inputs)
        return inputs

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_input_cache", None)
        return state

    def predict(self, X, split: bool = False) -> np.ndarray:
        """Predictions of the refitted model, or each band's part of them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        split : bool, default=False
            Return one prediction per band (each band's columns, centred on the
            training means, times its weights); they sum to the full prediction
            minus the training mean of the targets.

        Returns
        -------
        ndarray of shape (n_samples, n_targets), or (n_bands, n_samples, n_targets) when split
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        coef = self.coef_.astype(X.dtype)
        if not split:
            return X @ coef + np.asarray(self.intercept_, dtype=X.dtype)
        Xc = X - self.x_mean_.astype(X.dtype)
        return np.stack([Xc[:, columns] @ coef[columns] for columns in self.band_slices_])

    def score(self, X, y, split: bool = False):
        """Per-voxel R² (or r, see ``scoring``), or R² split between bands.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_targets) or (n_samples,)
        split : bool, default=False
            Partition the R² between bands, counting the products of the bands'
            predictions (as himalaya's ``r2_score_split``, here with the sum of
            squares taken around the mean of ``y``). The parts sum to the R² of
            the full prediction minus that of the intercept alone,
            ``-n (mean(y) - training mean)² / SST``, which is 0 when ``y`` has the
            training mean.

        Returns
        -------
        ndarray of shape (n_targets,) or (n_bands, n_targets), or float for 1-D ``y``
        """
        y = np.asarray(y)
        Y = y[:, None] if y.ndim == 1 else y
        if not split:
            pred = np.reshape(self.predict(X), Y.shape)
            values = voxel_scores(Y, pred, self.scoring)
            return float(values[0]) if y.ndim == 1 else values
        parts = self.predict(X, split=True).reshape(len(self.band_slices_), *Y.shape)
        offset = Y - np.reshape(self.y_mean_, (1, -1))  # targets minus the intercept's share
        total = parts.sum(0)
        sst = ((Y - Y.mean(0)) ** 2).sum(0)
        values = np.stack([(2 * offset * part - part * total).sum(0) for part in parts])
        values = np.divide(values, sst, out=np.zeros_like(values), where=sst > 0)
        values = values.astype(np.float32)
        return values[:, 0] if y.ndim == 1 else values
