"""Cross-validated voxel-wise ridge regression.

Outer folds hold out whole runs (or stories); within the training runs, inner
folds of whole runs choose one regularisation strength per voxel among
``alphas``. The model refitted on all training runs predicts the held-out runs,
and Pearson r and R² are computed per voxel and averaged over outer folds. The
solver (:mod:`bids_app.encoding.solver`) returns what himalaya's ``RidgeCV``
returns on the same folds, with less arithmetic, one voxel batch at a time.

Optionally: several candidate designs (e.g. layers) with the best one chosen
per voxel on the inner folds (nested, so the choice never sees the test run);
confounds regressed out within each fold; a permutation test of the held-out
correlations (:mod:`bids_app.encoding.permutation`); the held-out predictions
written to an on-disk array for model comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from stimuli_models.cache import atomic_file

from ..alignment import edge_mask
from .backend import use_backend
from .confounds import FoldConfoundRegressor, centre_runs, residualize_design, stack_confounds
from .cv import inner_splits, outer_splits
from .heldout import HeldoutTest
from .scoring import check_alpha_edges, pearson_r, r2_score
from .solver import RidgePlan, batch_size_for

_OPTIONAL = ("p", "q", "layer_folds", "r2_split", "z")


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
        Solver, backend, sizes, timings and statistics settings.
    p, q : ndarray of shape (n_voxels,) or None
        Permutation p values of ``r`` and their Benjamini–Hochberg q values.
    layer_folds : ndarray of shape (n_folds, n_voxels) or None
        Index of the candidate design chosen per voxel and fold.
    r2_split : ndarray of shape (n_bands, n_voxels) or None
        Banded ridge: R² of the held-out prediction partitioned between bands
        (``info['bands']`` names them).
    z : ndarray of shape (n_voxels,) or None
        Held-out score of the test of ``p``: fold scores centred and scaled by each
        fold's own null, summed and scaled to unit variance under the null (NaN where
        nothing was tested). The group stage tests it across participants.
    """

    r: np.ndarray
    r2: np.ndarray
    alpha: np.ndarray
    r_folds: np.ndarray
    r2_folds: np.ndarray
    alpha_folds: np.ndarray
    test_runs: list
    info: dict = field(default_factory=dict)
    p: np.ndarray | None = None
    q: np.ndarray | None = None
    layer_folds: np.ndarray | None = None
    r2_split: np.ndarray | None = None
    z: np.ndarray | None = None

    def save(self, path) -> None:
        """Save as ``.npz`` (atomically)."""
        import json

        extra = {k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None}
        with atomic_file(path) as handle:
            np.savez(handle, r=self.r, r2=self.r2, alpha=self.alpha, r_folds=self.r_folds,
                     r2_folds=self.r2_folds, alpha_folds=self.alpha_folds,
                     test_runs=np.array([",".join(map(str, t)) for t in self.test_runs]),
                     info=np.array(json.dumps(self.info, default=str)), **extra)

    @classmethod
    def load(cls, path) -> EncodingResult:
        """Read a result saved by :meth:`save`."""
        import json

        with np.load(path) as data:
            runs = [[int(x) for x in s.split(",")] for s in data["test_runs"]]
            info = json.loads(str(data["info"])) if "info" in data else {}
            extra = {k: data[k] for k in _OPTIONAL if k in data}
            return cls(r=data["r"], r2=data["r2"], alpha=data["alpha"], r_folds=data["r_folds"],
                       r2_folds=data["r2_folds"], alpha_folds=data["alpha_folds"],
                       test_runs=runs, info=info, **extra)


def fit_ridge_cv(X: np.ndarray, Y: np.ndarray, groups: np.ndarray, alphas, *,
                 inner_folds: int = 5, n_targets_batch: int | None = None):
    """Fit himalaya's own ``RidgeCV``/``KernelRidgeCV`` on inner folds of whole runs.

    Kept as the reference the fast solver is tested against.

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


def _trim_mask(lengths: list[int], trim) -> np.ndarray:
    start, end = (int(t) for t in (trim or (0, 0)))
    return np.concatenate([edge_mask(n, start, end) for n in lengths])


def _check_inputs(Xs, Ys):
    if len(Xs) != len(Ys):
        raise ValueError("one design matrix per BOLD run is needed")
    for i, (x, y) in enumerate(zip(Xs, Ys, strict=True)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"run {i}: design has {x.shape[0]} rows, BOLD {y.shape[0]} volumes")


def cross_validate(Xs, Ys, alphas, *, outer_cv: str = "leave-one-run-out",
                   inner_folds: int = 5, backend: str = "torch",
                   n_targets_batch: int | None = None, run_labels=None, confounds=None,
                   trim=(0, 0), mem_gb: float | None = None, n_permutations: int = 0,
                   permutation: str = "mismatched", block_length: int = 10, random_state=0,
                   predictions=None, heldout=None, progress=None,
                   heldout_p: str = "permutation") -> EncodingResult:
    """Outer cross-validation over runs of a voxel-wise ridge model.

    Parameters
    ----------
    Xs : list of ndarray of shape (n_volumes_i, n_features), or list of such lists
        Design matrix of each run; a list of several such lists gives candidate
        designs (e.g. layers), one chosen per voxel on the inner folds.
    Ys : list of ndarray of shape (n_volumes_i, n_voxels)
        BOLD of each run (memory-mapped arrays are read one voxel batch at a time).
    alphas : sequence of float
        Candidate regularisation strengths.
    outer_cv : str
        ``'leave-one-run-out'``, ``'leave-one-story-out'`` or ``'<K>-fold'``.
    inner_folds : int
        Folds (of whole training runs) for choosing alphas.
    backend : str
        himalaya backend.
    n_targets_batch : int, optional
        Voxels solved at once; by default sized from ``mem_gb``.
    run_labels : sequence of str, optional
        Story of each run: runs of a story never straddle training and test.
    confounds : list of ndarray of shape (n_volumes_i, n_confounds_i), optional
        Regressed out of the BOLD and of the design within each outer fold, with
        coefficients fitted on the training runs only
        (:mod:`bids_app.encoding.confounds`).
    trim : (int, int)
        Volumes left out at the start and end of every run (after alignment).
    mem_gb : float, optional
        Memory budget of the working buffers.
    n_permutations : int
        Permutations of each fold's held-out predictions for the test of r (0: none);
        see :mod:`bids_app.encoding.permutation` for how folds are combined.
    permutation : {'mismatched', 'circular', 'block'}
        Null of each fold's held-out r (:mod:`bids_app.encoding.permutation`);
        ``block_length`` in volumes (for ``'circular'``: the smallest shift).
    random_state : int
        Seed of the permutations.
    heldout_p : {'permutation', 'normal'}
        Rank p value among the permutations (+1 corrected; default) or the normal
        approximation of the combined fold score.
    predictions : ndarray of shape (n_kept_volumes, n_voxels), optional
        Writable (e.g. memory-mapped) array receiving the held-out predictions.
    heldout : ndarray of shape (n_kept_volumes, n_voxels), optional
        Writable array receiving the held-out BOLD as scored (after confound removal).
    progress : callable, optional
        Called as ``progress(fold, n_folds, voxels_done, n_voxels)`` after every voxel
        batch (e.g. :class:`ProgressLog`).

    Returns
    -------
    EncodingResult
    """
    started = time.perf_counter()
    candidates = [Xs] if not isinstance(Xs[0], (list, tuple)) else list(Xs)
    for cand in candidates:
        _check_inputs(cand, Ys)
    be = use_backend(backend)
    keep = _trim_mask([len(y) for y in Ys], trim)
    groups = np.concatenate([np.full(len(y), i) for i, y in enumerate(Ys)])[keep]
    # every run's kept volumes are centred (BOLD, designs, confounds): the ridge has no intercept
    designs = [centre_runs(np.concatenate(c)[keep], groups) for c in candidates]
    C = None
    if confounds is not None:
        C = centre_runs(stack_confounds(confounds, [len(y) for y in Ys])[keep], groups)
    n, v = len(groups), Ys[0].shape[1]
    alphas_np = np.asarray(alphas, dtype=np.float32)
    y_cols = column_reader(Ys, keep, mem_gb)

    splits = outer_splits(groups, outer_cv, labels=run_labels)
    n_folds = len(splits)
    r_folds = np.zeros((n_folds, v), np.float32)
    r2_folds = np.zeros_like(r_folds)
    alpha_folds = np.zeros_like(r_folds)
    layer_folds = np.zeros((n_folds, v), np.int16) if len(designs) > 1 else None
    significance = (HeldoutTest(n_folds, v, n_permutations, method=permutation,
                         block_length=block_length, p_value=heldout_p,
                         random_state=random_state) if n_permutations else None)
    Y_null = significance.pseudo_null(y_cols, groups) if significance is not None else None
    test_runs, flops, batch_used = [], 0.0, 0
    for k, (train, test) in enumerate(splits):
        cv = inner_splits(groups[train], inner_folds, labels=run_labels)
        # the mismatched null also needs the refitted model's predictions of its training rows
        rows = (np.concatenate([test, train]) if significance is not None
                and significance.needs_training_predictions else test)
        # the design gets the shared-confound regression the BOLD gets in this fold
        parts = ([residualize_design(C, X, train, rows) for X in designs] if C is not None
                 else [(X[train], X[rows]) for X in designs])
        plans = [RidgePlan(Xtr, Xrows, alphas_np, cv, be) for Xtr, Xrows in parts]
        del parts
        flops += sum(p.n_flops for p in plans) * v
        batch = n_targets_batch or batch_size_for(
            v, len(train), len(test), max(len(c[1]) for c in cv), len(alphas_np), mem_gb)
        batch_used = batch

        for start in range(0, v, batch):
            cols = slice(start, min(start + batch, v))
            Yte, pred, alpha_idx, layer = _fit_fold_batch(y_cols(cols), train, test, C, plans, be)
            pred, pred_train = pred[:len(test)], pred[len(test):]
            r_folds[k, cols] = pearson_r(Yte, pred)
            r2_folds[k, cols] = r2_score(Yte, pred)
            alpha_folds[k, cols] = alphas_np[alpha_idx]
            if layer_folds is not None:
                layer_folds[k, cols] = layer
            if significance is not None:
                significance.add(k, cols, Yte, pred, pred_train if len(pred_train) else None)
            if predictions is not None:
                predictions[test, cols] = pred
            if heldout is not None:
                heldout[test, cols] = Yte
            if progress is not None:
                progress(k, n_folds, cols.stop, v)
        if significance is not None:
            Yte, pred, _, _ = _fit_fold_batch(Y_null, train, test, C, plans, be)
            train_pred = pred[len(test):]
            significance.add_null(k, Yte, pred[:len(test)], train_pred if len(train_pred) else None)
        test_runs.append(sorted(int(g) for g in np.unique(groups[test])))
    r = r_folds.mean(axis=0)
    p = q = None
    stats_info = {"n_permutations": 0}
    if significance is not None:
        p, q, stats_info = significance.finish()
    edges = check_alpha_edges(alpha_folds, alphas_np, r, q)
    elapsed = time.perf_counter() - started
    return EncodingResult(
        r=r, r2=r2_folds.mean(axis=0),
        alpha=np.exp(np.log(alpha_folds).mean(axis=0)).astype(np.float32),
        r_folds=r_folds, r2_folds=r2_folds, alpha_folds=alpha_folds, test_runs=test_runs,
        info={"backend": backend, "solver": "eigendecomposition ridge, per-voxel alpha",
              "n_samples": int(n), "n_features": [int(x.shape[1]) for x in designs],
              "n_voxels": int(v), "n_outer_folds": n_folds, "voxel_batch": int(batch_used),
              "seconds": round(elapsed, 3), "gflop": round(flops / 1e9, 3),
              **stats_info,
              "trim": [int(t) for t in (trim or (0, 0))],
              "alpha_grid_edges": edges,
              "run_lengths": np.bincount(groups, minlength=len(Ys)).tolist()},
        p=p, q=q, layer_folds=layer_folds,
        z=significance.score if significance is not None else None,
    )


def column_reader(Ys, keep, mem_gb: float | None):
    """``read(cols)``: the kept volumes of all runs for voxel columns ``cols`` (float32).

    The runs are concatenated in memory once when they take at most a third of
    ``mem_gb`` (4 GB by default); otherwise every call reads only its columns from
    the (memory-mapped) runs, so memory grows with the voxel batch. Every run's
    kept volumes are centred (volumes removed by trimming, scrubbing or dummy scans
    leave the rest of a z-scored run off zero mean, and the ridge has no intercept).
    """
    n, v = int(np.sum(keep)), Ys[0].shape[1]
    if n * v * 4 <= (mem_gb or 4.0) * 1024 ** 3 / 3:
        Y_all = np.empty((n, v), dtype=np.float32)  # filled run by run: no second copy
        row = start = 0
        for y in Ys:
            kept = keep[start:start + len(y)]
            start += len(y)
            block = Y_all[row:row + int(kept.sum())]
            block[:] = np.asarray(y, dtype=np.float32)[kept]
            block -= block.mean(axis=0, dtype=np.float64).astype(np.float32)
            row += int(kept.sum())
        return lambda cols: Y_all[:, cols]
    groups = np.concatenate([np.full(len(y), i) for i, y in enumerate(Ys)])[keep]
    return lambda cols: centre_runs(np.concatenate([np.asarray(y[:, cols], dtype=np.float32)
                                                    for y in Ys])[keep], groups)


class ProgressLog:
    """Logs the progress of a long fit (fold, voxels done, time left) at most every ``every`` s.

    Called as ``progress(fold, n_folds, done, n_voxels)`` after every voxel batch.
    """

    def __init__(self, label: str, every: float = 60.0, logger=None):
        import logging

        self.label, self.every = label, float(every)
        self.logger = logger or logging.getLogger("brainenc.encoding")
        self.started = self.last = time.perf_counter()

    def __call__(self, fold: int, n_folds: int, done: int, n_voxels: int) -> None:
        """Log when ``every`` seconds have passed since the last message."""
        now = time.perf_counter()
        finished = fold * n_voxels + done
        if now - self.last < self.every or finished >= n_folds * n_voxels:
            return
        self.last = now
        left = (now - self.started) * (n_folds * n_voxels - finished) / max(finished, 1)
        self.logger.info("%s: outer fold %d/%d, %d of %d voxels, about %.0f s left",
                         self.label, fold + 1, n_folds, done, n_voxels, left)


def _fit_fold_batch(Yb, train, test, C, plans, be):
    """Confound removal (fitted on training rows), fit, and held-out prediction."""
    Ytr, Yte = Yb[train], Yb[test]
    if C is not None:
        regressor = FoldConfoundRegressor().fit(C[train], Ytr)
        Ytr, Yte = regressor.transform(C[train], Ytr), regressor.transform(C[test], Yte)
    pred, alpha_idx, layer = _fit_batch(plans, be, Ytr.astype(np.float32))
    return Yte, pred, alpha_idx, layer


def _fit_batch(plans, be, Ytr):
    """Choose alpha (and design) per voxel and predict the held-out volumes."""
    Yb = be.asarray(Ytr)
    best, best_score, best_pred, best_alpha = None, None, None, None
    for index, plan in enumerate(plans):
        scores = plan.cv_scores(Yb)
        alpha_idx = plan.select(scores)
        score = np.asarray(be.to_numpy(be.max(scores, 0)))
        pred = np.asarray(be.to_numpy(plan.predict(Yb, alpha_idx)), dtype=np.float32)
        alpha_idx = np.asarray(be.to_numpy(alpha_idx))
        if best is None:
            best = np.zeros(len(score), dtype=np.int16)
            best_score, best_pred, best_alpha = score, pred, alpha_idx
            continue
        better = score > best_score
        best[better] = index
        best_score = np.where(better, score, best_score)
        best_pred[:, better] = pred[:, better]
        best_alpha[better] = alpha_idx[better]
    return best_pred, best_alpha, best
