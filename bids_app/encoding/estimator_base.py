"""What the encoding estimators share: parameter and input checks, run-wise inner folds.

:class:`RunFoldsRegressor` is the base of :class:`~bids_app.encoding.EncodingRidgeCV`,
:class:`~bids_app.encoding.EncodingBandedRidgeCV` and
:class:`~bids_app.encoding.EncodingJointRidgeCV`; :func:`band_slices` checks bands
of design columns; :func:`backend_scope` activates a himalaya backend for one fit.
"""

from __future__ import annotations

import contextlib
import numbers

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import validate_data

from ..config import DEFAULT_ALPHAS
from .backend import BACKENDS, choose_backend
from .cv import inner_splits
from .scoring import pearson_r, r2_score

SCORINGS = ("r2", "r")


def band_slices(bands: dict, n_features: int) -> list[tuple[str, slice]]:
    """Check ``{name: [start, stop]}`` column ranges and return them in column order.

    Raises
    ------
    ValueError
        When bands overlap, leave columns out or exceed the design.
    """
    if not bands:
        raise ValueError("banded ridge needs at least one band")
    items = sorted(((str(k), slice(int(v[0]), int(v[1]))) for k, v in bands.items()),
                   key=lambda kv: kv[1].start)
    position = 0
    for name, sl in items:
        if sl.start != position or sl.stop <= sl.start:
            raise ValueError(f"band '{name}' covers columns [{sl.start}, {sl.stop}); bands must "
                             f"tile the {n_features} design columns in order without gaps")
        position = sl.stop
    if position != n_features:
        raise ValueError(f"bands cover {position} columns but the design has {n_features}")
    return items


def check_alphas(alphas) -> np.ndarray:
    """Candidate regularisation strengths as a float32 vector (the default when None).

    Raises
    ------
    ValueError
        When ``alphas`` is empty or holds a value that is not a positive number.
    """
    values = np.asarray(DEFAULT_ALPHAS if alphas is None else alphas, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"'alphas' must be a non-empty list of positive numbers; got {alphas!r}")
    return values.astype(np.float32)


def run_splits(cv, X, Y, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner folds as ``(train, validation)`` index arrays.

    Parameters
    ----------
    cv : int, scikit-learn splitter or iterable of (train, validation)
        An int K gives at most K folds of whole runs when ``groups`` is given
        (:func:`bids_app.encoding.cv.inner_splits`), and K contiguous blocks of
        samples otherwise (scikit-learn's ``KFold`` without shuffling, as himalaya).
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_targets)
    groups : ndarray of shape (n_samples,), optional
        Run of every sample.

    Returns
    -------
    list of (ndarray, ndarray)
    """
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"'cv' must be at least 2 folds; got {cv}")
        if groups is not None:
            return inner_splits(groups, int(cv))
        from sklearn.model_selection import KFold

        return list(KFold(int(cv)).split(X))
    if hasattr(cv, "split"):
        return [(np.asarray(a), np.asarray(b)) for a, b in cv.split(X, Y, groups)]
    try:
        folds = [(np.asarray(a), np.asarray(b)) for a, b in cv]
    except (TypeError, ValueError):
        raise ValueError("'cv' must be an int, a scikit-learn splitter or a list of "
                         f"(train, validation) index arrays; got {cv!r}") from None
    if not folds:
        raise ValueError("'cv' must give at least one (train, validation) split; got none")
    return folds


def check_groups(groups, n_samples: int) -> np.ndarray | None:
    """``groups`` as an array of one run label per sample (or None)."""
    if groups is None:
        return None
    groups = np.asarray(groups).ravel()
    if len(groups) != n_samples:
        raise ValueError(f"'groups' must give the run of each of the {n_samples} samples; "
                         f"got {len(groups)} values")
    return np.unique(groups, return_inverse=True)[1]


@contextlib.contextmanager
def backend_scope(name: str):
    """Activate himalaya's backend ``name`` (or the one ``'auto'`` picks) for a block.

    The backend that was active before is restored afterwards, so that fitting an
    estimator does not change the backend of other himalaya code in the session.

    Yields
    ------
    module
        The active himalaya backend.
    """
    from himalaya.backend import get_backend, set_backend

    if name not in BACKENDS:
        raise ValueError(f"'backend' must be one of {set(BACKENDS)}; got {name!r}")
    previous = get_backend().name
    backend = set_backend(choose_backend(name), on_error="raise")
    try:
        yield backend
    finally:
        set_backend(previous, on_error="raise")


def voxel_scores(y_true: np.ndarray, y_pred: np.ndarray, scoring: str) -> np.ndarray:
    """Per-column ``'r2'`` (coefficient of determination) or ``'r'`` (Pearson r), float32."""
    if scoring not in SCORINGS:
        raise ValueError(f"'scoring' must be one of {set(SCORINGS)}; got {scoring!r}")
    return (r2_score if scoring == "r2" else pearson_r)(y_true, y_pred)


class RunFoldsRegressor(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """What the encoding estimators share: input checks and inner folds of whole runs.

    Subclasses define ``cv`` and may override :meth:`_check_params`.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def _check_params(self) -> None:
        """Check the estimator's own parameters (after the data, before the folds)."""

    def _prepare(self, X, y, groups):
        """Validated design, 2-D targets, run labels, inner folds and whether y was 1-D."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=[np.float64, np.float32])
        self._check_params()
        groups = check_groups(groups, X.shape[0])
        ravel = y.ndim == 1
        Y = y[:, None] if ravel else y
        return X, Y, groups, run_splits(self.cv, X, Y, groups), ravel
