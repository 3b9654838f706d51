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

from .backend import use_backend
from .cv import check_runs, inner_splits
from .estimators import EncodingRidgeCV
from .outer_loop import OuterLoop, column_reader  # noqa: F401 - public here too
from .scoring import check_alpha_edges

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


def cross_validate(Xs, Ys, alphas, *, outer_cv: str = "leave-one-run-out",
                   inner_folds: int = 5, backend: str = "torch",
                   n_targets_batch: int | None = None, run_labels=None, confounds=None,
                   trim=(0, 0), mem_gb: float | None = None, n_permutations: int = 0,
                   permutation: str = "mismatched", block_length: int = 10, random_state=0,
                   predictions=None, heldout=None, progress=None,
                   heldout_p: str = "permutation", estimator=None) -> EncodingResult:
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
    estimator : estimator, optional
        The model fitted on each training split (its ``cv`` is set to the inner
        folds), e.g. :class:`~bids_app.encoding.EncodingJointRidgeCV`; by default
        :class:`~bids_app.encoding.EncodingRidgeCV` without intercept on ``alphas``
        (one per candidate design).

    Returns
    -------
    EncodingResult
    """
    started = time.perf_counter()
    candidates = [Xs] if not isinstance(Xs[0], (list, tuple)) else list(Xs)
    for cand in candidates:
        check_runs(cand, Ys)
    use_backend(backend)
    alphas_np = np.asarray(alphas, dtype=np.float32)
    if estimator is None:
        estimator = EncodingRidgeCV(alphas=alphas_np, fit_intercept=False, backend=backend)
    elif len(candidates) > 1:
        raise ValueError("candidate designs are chosen among by the plain ridge only; "
                         "pass one design with 'estimator'")
    loop = OuterLoop(candidates, Ys, estimator, outer_cv=outer_cv, inner_folds=inner_folds,
                     backend=backend, run_labels=run_labels, confounds=confounds, trim=trim,
                     mem_gb=mem_gb, n_permutations=n_permutations, permutation=permutation,
                     block_length=block_length, random_state=random_state,
                     heldout_p=heldout_p)
    folds = loop.run(n_targets_batch, predictions=predictions, heldout=heldout,
                     progress=progress)
    r = folds["r"].mean(axis=0)
    p = q = None
    stats_info = {"n_permutations": 0}
    if loop.significance is not None:
        p, q, stats_info = loop.significance.finish()
    edges = check_alpha_edges(folds["alpha"], alphas_np, r, q)
    elapsed = time.perf_counter() - started
    n, v = len(loop.groups), loop.n_voxels
    return EncodingResult(
        r=r, r2=folds["r2"].mean(axis=0),
        alpha=np.exp(np.log(folds["alpha"]).mean(axis=0)).astype(np.float32),
        r_folds=folds["r"], r2_folds=folds["r2"], alpha_folds=folds["alpha"],
        test_runs=loop.test_runs,
        info={"backend": backend, "solver": "eigendecomposition ridge, per-voxel alpha",
              "n_samples": int(n), "n_features": [int(x.shape[1]) for x in loop.designs],
              "n_voxels": int(v), "n_outer_folds": len(loop.splits),
              "voxel_batch": int(loop.batch_used),
              "seconds": round(elapsed, 3), "gflop": round(loop.flops / 1e9, 3),
              **stats_info,
              "trim": [int(t) for t in (trim or (0, 0))],
              "alpha_grid_edges": edges,
              "run_lengths": np.bincount(loop.groups, minlength=len(Ys)).tolist()},
        p=p, q=q, layer_folds=folds.get("layer"),
        z=loop.significance.score if loop.significance is not None else None,
    )


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
