"""Joint ridge over language and nuisance bands, with the nuisance penalty chosen per voxel.

:class:`EncodingJointRidgeCV` is the model the CLI fits when the design holds
nuisance bands (word rate ...): the nuisance columns are multiplied by each of
``weights`` in turn (a weight w divides that band's ridge penalty by w²), each
weighted design is fitted by :class:`~bids_app.encoding.EncodingRidgeCV`, and
each voxel keeps the weight and alpha with the best inner-fold score. It is a
banded ridge whose band-weight search is a grid over the nuisance weight, run on
the exact per-voxel solver. :func:`choose_candidates` is the per-voxel choice
among several fitted designs, shared with the outer loop's candidate designs.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from .estimator_base import RunFoldsRegressor, band_slices, voxel_scores
from .estimators import EncodingRidgeCV

__all__ = ["EncodingJointRidgeCV"]

#: Weights of the nuisance columns tried per voxel (relative penalties 1, 1e-2, 1e-4): one
#: word-rate column beside hundreds of language columns needs a far smaller penalty.
NUISANCE_WEIGHTS = (1.0, 10.0, 100.0)


def choose_candidates(scores: list[np.ndarray]) -> np.ndarray:
    """Index of the best candidate per voxel; a later one must score strictly higher.

    Parameters
    ----------
    scores : list of ndarray of shape (n_targets,)
        Inner-fold score of each candidate's chosen alpha.

    Returns
    -------
    ndarray of shape (n_targets,), int16
    """
    best = np.zeros(len(scores[0]), dtype=np.int16)
    best_score = np.asarray(scores[0])
    for index, score in enumerate(scores[1:], start=1):
        better = score > best_score
        best[better] = index
        best_score = np.where(better, score, best_score)
    return best


class EncodingJointRidgeCV(RunFoldsRegressor):
    """Ridge over language and nuisance bands, the nuisance band's penalty chosen per voxel.

    Parameters
    ----------
    bands : dict of str -> (int, int), optional
        Column range ``[start, stop)`` of each band; the bands tile the design.
        None: the last column is the ``'word_rate'`` band and the others the
        ``'language'`` band (the layout of the app's designs with the default
        word-rate control).
    nuisance : sequence of str, default=('word_rate',)
        Names of the nuisance bands, weighted together.
    weights : sequence of float, default=(1, 10, 100)
        Weights of the nuisance columns tried per voxel.
    alphas : sequence of float, optional
        Candidate overall regularisation strengths (13 values from 1 to 1e6 by default).
    cv : int, scikit-learn splitter or iterable of (train, validation), default=5
        Inner folds, as in :class:`~bids_app.encoding.EncodingRidgeCV`.
    fit_intercept : bool, default=True
        As in :class:`~bids_app.encoding.EncodingRidgeCV`.
    backend : {'auto', 'numpy', 'torch', 'torch_cuda'}, default='auto'
    n_targets_batch : int, optional
    solver_params : dict, optional
        As in :class:`~bids_app.encoding.EncodingRidgeCV`.
    scoring : {'r2', 'r'}, default='r2'
        What :meth:`score` returns per voxel.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_targets) or (n_features,)
        Weights on the design's own columns (the nuisance rows include the weight).
    intercept_ : ndarray of shape (n_targets,) or float
    best_alphas_ : ndarray of shape (n_targets,)
        Overall regularisation chosen per voxel.
    best_weights_ : ndarray of shape (n_targets,)
        Nuisance weight chosen per voxel.
    best_candidate_ : ndarray of shape (n_targets,)
        Index of that weight in ``weights``.
    cv_scores_ : ndarray of shape (n_targets,)
        Inner-fold score (negative mean squared error) of the chosen weight and alpha.

    Examples
    --------
    >>> import numpy as np
    >>> from bids_app.encoding import EncodingJointRidgeCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((120, 9))
    >>> Y = 5 * X[:, 8:] + 0.3 * X[:, :2].sum(1, keepdims=True) + rng.standard_normal((120, 1))
    >>> model = EncodingJointRidgeCV(bands={"language": (0, 8), "word_rate": (8, 9)},
    ...                              alphas=[10, 100, 1000], backend="numpy")
    >>> model.fit(X[:90], Y[:90], groups=np.repeat([0, 1, 2], 30)).best_weights_
    array([10.], dtype=float32)
    >>> bool(model.score(X[90:], Y[90:])[0] > 0.8)
    True
    """

    def __init__(self, bands: dict | None = None, nuisance=("word_rate",),
                 weights=NUISANCE_WEIGHTS, alphas=None, cv=5, *, fit_intercept: bool = True,
                 backend: str = "auto", n_targets_batch: int | None = None,
                 solver_params: dict | None = None, scoring: str = "r2"):
        self.bands = bands
        self.nuisance = nuisance
        self.weights = weights
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.n_targets_batch = n_targets_batch
        self.solver_params = solver_params
        self.scoring = scoring

    def _check_params(self) -> None:
        weights = np.asarray(self.weights, dtype=np.float64).ravel()
        if weights.size == 0 or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError("'weights' must be a non-empty list of positive numbers; "
                             f"got {self.weights!r}")
        voxel_scores(np.zeros((2, 1)), np.zeros((2, 1)), self.scoring)  # checks 'scoring'

    def _columns(self, n_features: int) -> np.ndarray:
        """Indices of the nuisance columns (checked against the bands)."""
        bands = self.bands
        if bands is None:
            if n_features < 2:
                raise ValueError("a joint fit needs a language and a nuisance column: at least "
                                 f"2 columns; got {n_features} feature(s)")
            bands = {"language": (0, n_features - 1), "word_rate": (n_features - 1, n_features)}
        named = dict(band_slices(bands, n_features))
        nuisance = [self.nuisance] if isinstance(self.nuisance, str) else list(self.nuisance)
        missing = sorted(set(nuisance) - set(named))
        if missing or len(nuisance) == len(named):
            raise ValueError(f"'nuisance' must name some but not all of the bands "
                             f"{sorted(named)}; got {nuisance!r}")
        return np.concatenate([np.arange(named[n].start, named[n].stop) for n in nuisance])

    def _weighted(self, X: np.ndarray, columns: np.ndarray) -> list[np.ndarray]:
        """The design with its nuisance columns multiplied by each weight (float32)."""
        designs = []
        for weight in self.weights:
            Xw = np.array(X, dtype=np.float32)
            Xw[:, columns] *= np.float32(weight)
            designs.append(Xw)
        return designs

    def _models(self) -> list[EncodingRidgeCV]:
        """One plain estimator per weight, kept between fits (their decompositions too)."""
        params = {"alphas": self.alphas, "cv": self.cv, "fit_intercept": self.fit_intercept,
                  "backend": self.backend, "n_targets_batch": self.n_targets_batch,
                  "solver_params": self.solver_params}
        models = getattr(self, "_model_cache", None)
        if models is None or len(models) != len(self.weights) or any(
                m.get_params() != {**m.get_params(), **params} for m in models):
            models = [EncodingRidgeCV(**params) for _ in self.weights]
            self._model_cache = models
        return models

    def _choose(self, models: list[EncodingRidgeCV]) -> np.ndarray:
        best = choose_candidates([m.cv_scores_float64_ for m in models])
        pick = np.arange(len(best))
        self.best_candidate_ = best
        self.best_weights_ = np.asarray(self.weights, dtype=np.float32)[best]
        self.best_alphas_ = np.stack([m.best_alphas_ for m in models])[best, pick]
        self.cv_scores_ = np.stack([m.cv_scores_ for m in models])[best, pick]
        return best

    def fit(self, X, y, groups=None) -> EncodingJointRidgeCV:
        """Fit every weighted design and keep each voxel's best weight and alpha.

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
        X, Y, groups, _, ravel = self._prepare(X, y, groups)
        columns = self._columns(X.shape[1])
        models = self._models()
        for model, Xw in zip(models, self._weighted(X, columns), strict=True):
            model.fit(Xw, Y, groups=groups)
        best = self._choose(models)
        pick = np.arange(len(best))
        coef = np.stack([m.coef_ for m in models])[best, :, pick].T
        coef[columns] *= self.best_weights_[None, :]
        intercept = np.stack([m.intercept_ for m in models])[best, pick]
        self.coef_ = coef[:, 0] if ravel else coef
        self.intercept_ = float(intercept[0]) if ravel else intercept
        return self

    def fit_heldout(self, X, y, X_heldout, groups=None) -> np.ndarray:
        """Fit as :meth:`fit` and predict ``X_heldout`` without forming the weights.

        Each weighted design goes through
        :meth:`bids_app.encoding.EncodingRidgeCV.fit_heldout` (its decomposition
        is kept for the next batch of voxels); the choice per voxel compares the
        float64 inner-fold scores.

        Returns
        -------
        ndarray of shape (n_heldout, n_targets)
            float32; ``best_alphas_``, ``best_weights_`` and ``cv_scores_`` are set.
        """
        X, Y, groups, _, _ = self._prepare(X, y, groups)
        columns = self._columns(X.shape[1])
        models = self._models()
        heldout = self._weighted(np.asarray(X_heldout), columns)
        preds = [model.fit_heldout(Xw, Y, Xh, groups=groups) for model, Xw, Xh in zip(
            models, self._weighted(X, columns), heldout, strict=True)]
        best = self._choose(models)
        pred = preds[0]
        for index in range(1, len(preds)):
            chosen = best == index
            pred[:, chosen] = preds[index][:, chosen]
        for name in ("coef_", "intercept_"):
            self.__dict__.pop(name, None)
        return pred

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_model_cache", None)
        return state

    def predict(self, X) -> np.ndarray:
        """Predictions of the refitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_targets) or (n_samples,)
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return X @ self.coef_.astype(X.dtype) + np.asarray(self.intercept_, dtype=X.dtype)

    def score(self, X, y) -> np.ndarray | float:
        """Per-voxel R² (or Pearson r, see ``scoring``) of the predictions of ``X``."""
        pred = self.predict(X)
        y = np.asarray(y)
        if y.ndim == 1:
            return float(voxel_scores(y[:, None], np.reshape(pred, (-1, 1)), self.scoring)[0])
        return voxel_scores(y, pred, self.scoring)
