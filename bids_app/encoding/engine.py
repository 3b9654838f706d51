"""Cross-validated voxel-wise ridge regression with himalaya.

Outer folds hold out whole runs; within the training runs, inner folds of whole
runs choose one regularisation strength per voxel among ``alphas``. The model
refitted on all training runs predicts the held-out run, and Pearson r and R²
are computed per voxel. Scores are averaged over outer folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backend import use_backend
from .cv import inner_splits, outer_splits
from .scoring import pearson_r, r2_score


@dataclass
class EncodingResult:
    """Scores of a cross-validated encoding model.

    Attributes
    ----------
    r, r2 : ndarray of shape (n_voxels,)
        Held-out Pearson r and R², averaged over outer folds.
    alpha : ndarray of shape (n_voxels,)
        Geometric mean over outer folds of the chosen regularisation.
    r_folds, r2_folds, alpha_folds : ndarray of shape (n_folds, n_voxels)
        Per outer fold values.
    test_runs : list of list of int
        Runs held out in each outer fold.
    info : dict
        Solver, backend and sizes.
    """

    r: np.ndarray
    r2: np.ndarray
    alpha: np.ndarray
    r_folds: np.ndarray
    r2_folds: np.ndarray
    alpha_folds: np.ndarray
    test_runs: list
    info: dict = field(default_factory=dict)

    def save(self, path) -> None:
        """Save as ``.npz`` (atomically)."""
        from stimuli_models.cache import atomic_file

        with atomic_file(path) as handle:
            np.savez(handle, r=self.r, r2=self.r2, alpha=self.alpha, r_folds=self.r_folds,
                     r2_folds=self.r2_folds, alpha_folds=self.alpha_folds,
                     test_runs=np.array([",".join(map(str, t)) for t in self.test_runs]))

    @classmethod
    def load(cls, path) -> EncodingResult:
        """Read a result saved by :meth:`save`."""
        with np.load(path) as data:
            runs = [[int(x) for x in s.split(",")] for s in data["test_runs"]]
            return cls(r=data["r"], r2=data["r2"], alpha=data["alpha"], r_folds=data["r_folds"],
                       r2_folds=data["r2_folds"], alpha_folds=data["alpha_folds"],
                       test_runs=runs)


def fit_ridge_cv(X: np.ndarray, Y: np.ndarray, groups: np.ndarray, alphas, *,
                 inner_folds: int = 5, n_targets_batch: int | None = None):
    """Fit himalaya's ridge with per-voxel alphas chosen on inner folds of whole runs.

    Returns
    -------
    estimator
        Fitted ``RidgeCV`` (more samples than features) or ``KernelRidgeCV``.
    """
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    cv = inner_splits(groups, inner_folds)
    alphas = np.asarray(alphas, dtype=np.float32)
    params = {"n_targets_batch": n_targets_batch, "n_alphas_batch": min(len(alphas), 5)}
    if X.shape[1] <= X.shape[0]:
        model = RidgeCV(alphas=alphas, cv=cv, solver_params=params)
    else:
        model = KernelRidgeCV(alphas=alphas, cv=cv, solver_params=params)
    return model.fit(X, Y)


def cross_validate(Xs: list[np.ndarray], Ys: list[np.ndarray], alphas, *,
                   outer_cv: str = "leave-one-run-out", inner_folds: int = 5,
                   backend: str = "torch", n_targets_batch: int | None = None,
                   confounds: list[np.ndarray] | None = None) -> EncodingResult:
    """Outer cross-validation over runs of a voxel-wise ridge model.

    Parameters
    ----------
    Xs : list of ndarray of shape (n_volumes_i, n_features)
        Design matrix of each run.
    Ys : list of ndarray of shape (n_volumes_i, n_voxels)
        BOLD of each run.
    alphas : sequence of float
        Candidate regularisation strengths.
    outer_cv : str
        ``'leave-one-run-out'`` or ``'<K>-fold'``.
    inner_folds : int
        Folds (of whole training runs) for choosing alphas.
    backend : str
        himalaya backend.
    n_targets_batch : int, optional
        Voxels solved at once (bounds memory).
    confounds : list of ndarray of shape (n_volumes_i, n_confounds), optional
        Confounds of each run, regressed out of the BOLD with coefficients fitted
        on the training runs of each fold only (see :mod:`bids_app.encoding.confounds`).

    Returns
    -------
    EncodingResult
    """
    if len(Xs) != len(Ys):
        raise ValueError("one design matrix per BOLD run is needed")
    for i, (x, y) in enumerate(zip(Xs, Ys)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"run {i}: design has {x.shape[0]} rows, BOLD {y.shape[0]} volumes")
    be = use_backend(backend)
    X = np.concatenate(Xs).astype(np.float32)
    Y = np.concatenate(Ys).astype(np.float32)
    groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(Xs)])
    r_folds, r2_folds, alpha_folds, test_runs = [], [], [], []
    C = None
    if confounds is not None:
        from .confounds import stack_confounds

        C = stack_confounds(confounds, [len(x) for x in Xs])
    for train, test in outer_splits(groups, outer_cv):
        if C is not None:
            from .confounds import residualize_fold

            Y_train, Y_test, _ = residualize_fold(C, Y, train, test)
        else:
            Y_train, Y_test = Y[train], Y[test]
        model = fit_ridge_cv(X[train], Y_train, groups[train], alphas,
                             inner_folds=inner_folds, n_targets_batch=n_targets_batch or None)
        pred = np.asarray(be.to_numpy(model.predict(X[test])), dtype=np.float32)
        r_folds.append(pearson_r(Y_test, pred))
        r2_folds.append(r2_score(Y_test, pred))
        alpha_folds.append(np.asarray(be.to_numpy(model.best_alphas_), dtype=np.float32))
        test_runs.append(sorted(int(g) for g in np.unique(groups[test])))
    r_folds, r2_folds, alpha_folds = map(np.vstack, (r_folds, r2_folds, alpha_folds))
    return EncodingResult(
        r=r_folds.mean(axis=0), r2=r2_folds.mean(axis=0),
        alpha=np.exp(np.log(alpha_folds).mean(axis=0)).astype(np.float32),
        r_folds=r_folds, r2_folds=r2_folds, alpha_folds=alpha_folds, test_runs=test_runs,
        info={"backend": backend, "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
              "n_voxels": int(Y.shape[1]), "n_outer_folds": len(test_runs)},
    )
