"""A scikit-learn estimator over the exact per-voxel ridge solver.

:class:`EncodingRidgeCV` chooses one regularisation strength per target (voxel)
on inner folds of whole runs and keeps the weights of the chosen strengths only.
It calls :class:`bids_app.encoding.solver.RidgePlan`, so it returns what
himalaya's ``RidgeCV`` returns on the same folds (negative mean squared error
averaged over folds, ties toward larger alphas), with less arithmetic. It
follows scikit-learn's estimator API (``clone``, ``cross_val_score``,
pipelines) and always returns numpy arrays, whatever the compute backend.

The helpers the encoding estimators share (input checks, run-wise inner folds,
the scoped backend) are in :mod:`bids_app.encoding.estimator_base`.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from .estimator_base import (  # noqa: F401 - shared helpers, public here as before
    SCORINGS,
    RunFoldsRegressor,
    backend_scope,
    check_alphas,
    check_groups,
    run_splits,
    voxel_scores,
)
from .solver import RidgePlan, batch_size_for

#: The exported estimator.
__all__ = ["EncodingRidgeCV"]

SOLVERS = ("eigen", "himalaya")


class EncodingRidgeCV(RunFoldsRegressor):
    """Ridge regression with one cross-validated regularisation per voxel.

    Parameters
    ----------
    alphas : sequence of float, optional
        Candidate regularisation strengths; by default 13 values from 1 to 1e6.
    cv : int, scikit-learn splitter or iterable of (train, validation), default=5
        Inner folds choosing the alphas. An int K gives at most K folds of whole
        runs when ``fit`` gets ``groups``, otherwise K contiguous blocks of samples.
    fit_intercept : bool, default=True
        Fit an intercept: ``X`` and ``Y`` are centred on the means of all samples
        for the refit and, in each inner fold, on the means of the fold's training
        samples (as himalaya). With False, ``X`` and ``Y`` are used as given (e.g.
        BOLD and designs already centred per run).
    backend : {'auto', 'numpy', 'torch', 'torch_cuda'}, default='auto'
        himalaya backend of the solver (``'auto'``: ``torch_cuda`` when a GPU is
        visible, else ``torch``). Results are numpy arrays whatever the backend.
    n_targets_batch : int, optional
        Voxels solved at once; by default sized to a 4 GB working budget (see
        ``solver_params['mem_gb']``). The batch does not change the result.
    solver : {'eigen', 'himalaya'}, default='eigen'
        ``'eigen'``: this project's solver (:class:`bids_app.encoding.solver.RidgePlan`),
        all alphas from one decomposition per fold. ``'himalaya'``: himalaya's
        ``RidgeCV`` on the same folds (a reference).
    solver_params : dict, optional
        ``'eigen'``: ``mem_gb`` (working memory budget) and ``hat_budget_bytes``
        (largest stacked hat matrix). ``'himalaya'``: passed to ``RidgeCV``'s
        ``solver_params``.
    scoring : {'r2', 'r'}, default='r2'
        What :meth:`score` returns per voxel: R² or Pearson r of the predictions.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_targets) or (n_features,)
        Weights of the model refitted on all samples with each target's alpha
        (himalaya's orientation: one column per voxel).
    intercept_ : ndarray of shape (n_targets,) or float
        Zero when ``fit_intercept`` is False.
    best_alphas_ : ndarray of shape (n_targets,)
        Regularisation chosen per target.
    cv_scores_ : ndarray of shape (n_targets,)
        Negative mean squared validation error of the chosen alpha, averaged over folds.
    cv_scores_float64_ : ndarray of shape (n_targets,)
        The same in float64 (how :class:`~bids_app.encoding.EncodingJointRidgeCV` and
        the outer loop compare candidate designs).
    n_features_in_ : int
        Number of columns of ``X`` seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from bids_app.encoding import EncodingRidgeCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((120, 10))
    >>> Y = X @ rng.standard_normal((10, 4)) + rng.standard_normal((120, 4))
    >>> runs = np.repeat([0, 1, 2, 3], 30)
    >>> model = EncodingRidgeCV(alphas=[0.1, 1, 10, 100], backend="numpy")
    >>> model.fit(X[:90], Y[:90], groups=runs[:90]).coef_.shape
    (10, 4)
    >>> model.best_alphas_.shape
    (4,)
    >>> bool(np.all(model.score(X[90:], Y[90:]) > 0.5))
    True
    """

    def __init__(self, alphas=None, cv=5, *, fit_intercept: bool = True, backend: str = "auto",
                 n_targets_batch: int | None = None, solver: str = "eigen",
                 solver_params: dict | None = None, scoring: str = "r2"):
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.n_targets_batch = n_targets_batch
        self.solver = solver
        self.solver_params = solver_params
        self.scoring = scoring

    def fit(self, X, y, groups=None) -> EncodingRidgeCV:
        """Choose each target's alpha on the inner folds and refit on all samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Design.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets (e.g. BOLD, one column per voxel).
        groups : array-like of shape (n_samples,), optional
            Run of every sample: inner folds then hold out whole runs.

        Returns
        -------
        self
        """
        X, Y, groups, splits, ravel = self._prepare(X, y, groups)
        alphas = check_alphas(self.alphas)
        X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
        x_mean = np.zeros(X.shape[1])
        y_mean = np.zeros(Y.shape[1])
        if self.fit_intercept:
            x_mean, y_mean = X.mean(0), Y.mean(0)
            X32, Y32 = (X - x_mean).astype(np.float32), (Y - y_mean).astype(np.float32)
        with backend_scope(self.backend) as be:
            fit = self._fit_himalaya if self.solver == "himalaya" else self._fit_eigen
            coef, best, cv_scores = fit(X32, Y32, alphas, splits, be)
        self.best_alphas_ = best.astype(np.float32)
        self.cv_scores_ = cv_scores.astype(np.float32)
        self.cv_scores_float64_ = cv_scores.astype(np.float64)
        intercept = (y_mean - x_mean @ coef).astype(np.float32)
        self.coef_ = coef[:, 0] if ravel else coef
        self.intercept_ = float(intercept[0]) if ravel else intercept
        return self

    def fit_heldout(self, X, y, X_heldout, groups=None) -> np.ndarray:
        """Fit as :meth:`fit` and predict ``X_heldout``, without forming the weights.

        What the outer cross-validation loop calls on each training split: with the
        ``'eigen'`` solver, no intercept and inner folds that partition the samples,
        the predictions come from the decomposition of ``X`` (hat matrices of the
        held-out rows, or the training eigenbasis), which costs less than weights
        when there are more features than held-out volumes. The decomposition is
        kept, so that further calls with the same ``X``, ``X_heldout`` and folds
        (e.g. the next batch of voxels) only do the per-voxel products. Otherwise
        it is ``fit(X, y, groups).predict(X_heldout)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_targets)
        X_heldout : array-like of shape (n_heldout, n_features)
        groups : array-like of shape (n_samples,), optional

        Returns
        -------
        ndarray of shape (n_heldout, n_targets)
            float32. ``best_alphas_`` and ``cv_scores_`` are set; ``coef_`` is set
            only on the fallback path.
        """
        X, Y, groups, splits, _ = self._prepare(X, y, groups)
        n = X.shape[0]
        shared = self.solver == "eigen" and not self.fit_intercept and all(
            len(tr) + len(va) == n and len(np.union1d(tr, va)) == n for tr, va in splits)
        if not shared:
            pred = self.fit(X, y, groups).predict(X_heldout)
            return np.asarray(pred, dtype=np.float32).reshape(len(pred), -1)
        X_heldout = np.array(X_heldout, dtype=np.float32)  # a copy: the cache key
        alphas = check_alphas(self.alphas)
        params = dict(self.solver_params or {})
        with backend_scope(self.backend) as be:
            plan = self._heldout_plan(X.astype(np.float32), X_heldout, alphas, splits, be,
                                      params.get("hat_budget_bytes", 2e9))
            Yb = be.asarray(np.ascontiguousarray(Y, dtype=np.float32))
            scores = plan.cv_scores(Yb)
            index = plan.select(scores)
            pred = np.asarray(be.to_numpy(plan.predict(Yb, index)), dtype=np.float32)
            best_scores = np.asarray(be.to_numpy(be.max(scores, 0)))
            index = np.asarray(be.to_numpy(index))
        for name in ("coef_", "intercept_"):
            self.__dict__.pop(name, None)
        self.best_alphas_ = alphas[index]
        self.best_alpha_index_ = index
        self.cv_scores_ = best_scores.astype(np.float32)
        self.cv_scores_float64_ = best_scores.astype(np.float64)
        self.n_flops_per_target_ = float(plan.n_flops)
        return pred

    def _heldout_plan(self, X, X_heldout, alphas, splits, be, budget) -> RidgePlan:
        """The decomposition of ``X`` for ``X_heldout``, reused while its inputs are unchanged."""
        cached = getattr(self, "_plan_cache", None)
        if cached is not None:
            keys, plan = cached
            same = (keys[0] == be.name and np.array_equal(keys[1], alphas)
                    and keys[2].shape == X.shape and keys[3].shape == X_heldout.shape
                    and len(keys[4]) == len(splits)
                    and all(np.array_equal(a, c) and np.array_equal(b, d)
                            for (a, b), (c, d) in zip(keys[4], splits, strict=True))
                    and np.array_equal(keys[2], X) and np.array_equal(keys[3], X_heldout))
            if same:
                return plan
        plan = RidgePlan(X, X_heldout, alphas, splits, be, hat_budget_bytes=budget)
        self._plan_cache = ((be.name, alphas, X, X_heldout, splits), plan)
        return plan

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_plan_cache", None)  # backend arrays: rebuilt on the next call
        return state

    def _check_params(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"'solver' must be one of {set(SOLVERS)}; got {self.solver!r}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"'scoring' must be one of {set(SCORINGS)}; got {self.scoring!r}")
        batch = self.n_targets_batch
        if batch is not None and (not isinstance(batch, numbers.Integral) or batch < 1):
            raise ValueError(f"'n_targets_batch' must be a positive integer or None; got {batch!r}")
        allowed = {"mem_gb", "hat_budget_bytes"}
        extra = set(self.solver_params or {}) - allowed
        if self.solver == "eigen" and extra:
            raise ValueError(f"'solver_params' of the 'eigen' solver must be among {allowed}; "
                             f"got {sorted(extra)}")

    def _fit_eigen(self, X, Y, alphas, splits, be):
        """Fit with the project's solver, one batch of targets at a time.

        ``X`` and ``Y`` are centred on all samples when ``fit_intercept``. The inner
        folds share one plan when they partition the samples and no intercept is
        fitted; otherwise each fold gets its own plan on its rows, centred on its
        training rows' means (as himalaya does).
        """
        params = dict(self.solver_params or {})
        budget = params.get("hat_budget_bytes", 2e9)
        n, v = Y.shape
        shared = not self.fit_intercept and all(
            len(tr) + len(va) == n and len(np.union1d(tr, va)) == n for tr, va in splits)
        if shared:
            folds = [(None, None, RidgePlan(X, X[:0], alphas, splits, be,
                                            hat_budget_bytes=budget))]
        else:
            folds = []
            for tr, va in splits:
                rows = np.concatenate([tr, va])
                shift = X[tr].mean(0) if self.fit_intercept else 0.0
                cv = [(np.arange(len(tr)), np.arange(len(tr), len(rows)))]
                folds.append((rows, tr, RidgePlan(X[rows] - shift, X[:0], alphas, cv, be,
                                                  hat_budget_bytes=budget)))
        refit = folds[0][2] if shared else RidgePlan(X, X[:0], alphas, [], be)
        batch = self.n_targets_batch or batch_size_for(
            v, n, 0, max(len(val) for _, val in splits), len(alphas), params.get("mem_gb"))
        coef = np.zeros((X.shape[1], v), np.float32)
        best = np.zeros(v, np.float32)
        cv_scores = np.zeros(v, np.float64)  # float64: candidate designs are compared on it
        for start in range(0, v, batch):
            cols = slice(start, min(start + batch, v))
            Yn = np.ascontiguousarray(Y[:, cols])
            scores = None
            for rows, tr, plan in folds:
                Yk = Yn if rows is None else Yn[rows] - (
                    Yn[tr].mean(0) if self.fit_intercept else 0.0)
                fold_scores = plan.cv_scores(be.asarray(np.ascontiguousarray(Yk)))
                scores = fold_scores if scores is None else scores + fold_scores
            scores = scores / len(folds)
            index = refit.select(scores)
            coef[:, cols] = be.to_numpy(refit.weights(X, be.asarray(Yn), index))
            best[cols] = alphas[be.to_numpy(index)]
            cv_scores[cols] = be.to_numpy(be.max(scores, 0))
        return coef, best, cv_scores

    def _fit_himalaya(self, X, Y, alphas, splits, be):
        """Fit himalaya's ``RidgeCV`` on the same folds (the reference)."""
        from himalaya.ridge import RidgeCV

        params = dict(self.solver_params or {})
        if self.n_targets_batch:
            params.setdefault("n_targets_batch", self.n_targets_batch)
        model = RidgeCV(alphas=alphas, cv=splits, solver_params=params or None,
                        fit_intercept=self.fit_intercept).fit(X, Y)
        return tuple(np.asarray(be.to_numpy(a), dtype=np.float32)
                     for a in (model.coef_, model.best_alphas_, model.cv_scores_))

    def predict(self, X) -> np.ndarray:
        """Predictions of the refitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_targets) or (n_samples,)
            In the dtype of ``X`` when it is float64, float32 otherwise.
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return X @ self.coef_.astype(X.dtype) + np.asarray(self.intercept_, dtype=X.dtype)

    def score(self, X, y) -> np.ndarray | float:
        """Per-target R² (or Pearson r, see ``scoring``) of the predictions of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_targets) or (n_samples,)

        Returns
        -------
        ndarray of shape (n_targets,), or float when ``y`` is one-dimensional
        """
        pred = self.predict(X)
        y = np.asarray(y)
        if y.ndim == 1:
            return float(voxel_scores(y[:, None], np.reshape(pred, (-1, 1)), self.scoring)[0])
        return voxel_scores(y, pred, self.scoring)
