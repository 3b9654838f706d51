"""Banded ridge over several feature spaces, with per-band variance partitioning.

Each band (e.g. tuned features, pretrained features, word rate) gets its own
regularisation, chosen per voxel by himalaya's random search over the simplex
on inner folds of whole runs: ``BandedRidgeCV`` when there are more training
volumes than features, ``MultipleKernelRidgeCV`` on linear kernels otherwise.
The held-out prediction is split into one part per band and its R² is
partitioned between bands (himalaya's ``r2_score_split``: the parts sum to the
R² of the full prediction), giving one ``stat-r2split`` map per band.
"""

from __future__ import annotations

import time

import numpy as np

from .backend import use_backend
from .banded_estimator import EncodingBandedRidgeCV
from .cv import check_runs
from .engine import EncodingResult
from .estimator_base import band_slices
from .outer_loop import OuterLoop
from .scoring import check_alpha_edges


def banded_batch_size(n_voxels: int, n_train: int, n_test: int, n_bands: int, n_alphas: int,
                      n_val_max: int, mem_gb: float | None, *, reserve_gb: float = 0.5) -> int:
    """Voxels fitted at once by the banded model so that its buffers fit in ``mem_gb``.

    Per voxel: training and test BOLD, the split test predictions, himalaya's
    dual weights and one fold's validation predictions for every alpha (float32),
    counted twice for the copies made between backend and numpy.

    Returns
    -------
    int
        Between 64 and ``n_voxels``.
    """
    per_voxel = 2 * 4 * (2 * n_train + (n_bands + 2) * n_test + n_alphas * n_val_max)
    usable = max((mem_gb or 4.0) - reserve_gb, 0.25) * 1024 ** 3
    return int(min(max(64, usable // per_voxel), max(n_voxels, 1)))


def banded_cross_validate(Xs, Ys, bands: dict, alphas, *, outer_cv: str = "leave-one-run-out",
                          inner_folds: int = 5, backend: str = "torch", n_iter: int = 20,
                          random_state: int = 0, run_labels=None,
                          n_targets_batch: int | None = None, trim=(0, 0),
                          confounds=None, predictions=None, heldout=None,
                          mem_gb: float | None = None, progress=None, n_permutations: int = 0,
                          permutation: str = "mismatched", block_length: int = 10,
                          heldout_p: str = "permutation") -> EncodingResult:
    """Outer cross-validation of a banded ridge model.

    Parameters
    ----------
    Xs : list of ndarray of shape (n_volumes_i, n_features)
        Design of each run, bands side by side.
    Ys : list of ndarray of shape (n_volumes_i, n_voxels)
        BOLD of each run (memory-mapped arrays are read one voxel batch at a time).
    bands : dict of str -> (int, int)
        Column range ``[start, stop)`` of each band.
    alphas : sequence of float
        Candidate overall regularisation strengths.
    n_iter : int
        Band-weight combinations tried by the random search (the first is uniform).
    n_targets_batch : int, optional
        Voxels fitted at once; by default sized from ``mem_gb``. Voxels are fitted
        independently, so the batch does not change the result.
    trim : (int, int)
        Volumes left out at the start and end of every run.
    confounds : list of ndarray of shape (n_volumes_i, n_confounds_i), optional
        Regressed out of the BOLD within each outer fold (fitted on training runs).
    predictions, heldout : ndarray of shape (n_kept_volumes, n_voxels), optional
        Filled with the held-out predictions (sum over bands) and the held-out BOLD
        they predict (for paired comparisons of variants).
    mem_gb : float, optional
        Memory budget of the working buffers.
    progress : callable, optional
        Called as ``progress(fold, n_folds, voxels_done, n_voxels)`` after every batch.
    n_permutations, permutation, block_length, heldout_p
        The held-out permutation test of r, exactly as for plain ridge
        (:class:`~bids_app.encoding.heldout.HeldoutTest`; 0 permutations: none).
    Other parameters are those of :func:`bids_app.encoding.engine.cross_validate`.

    Returns
    -------
    EncodingResult
        With ``r2_split`` of shape (n_bands, n_voxels) (mean over outer folds) and
        ``info['bands']`` the band names in that order.
    """
    started = time.perf_counter()
    check_runs(Xs, Ys)
    use_backend(backend)
    estimator = EncodingBandedRidgeCV(
        bands=bands, alphas=alphas, n_iter=n_iter, random_state=random_state,
        fit_intercept=False, backend=backend, n_targets_batch=n_targets_batch)
    band_slices(bands, Xs[0].shape[1])  # checked before any fit
    loop = OuterLoop([Xs], Ys, estimator, outer_cv=outer_cv, inner_folds=inner_folds,
                     backend=backend, run_labels=run_labels, confounds=confounds, trim=trim,
                     mem_gb=mem_gb, n_permutations=n_permutations, permutation=permutation,
                     block_length=block_length, random_state=random_state,
                     heldout_p=heldout_p)

    def batch_size(v, n_train, n_test, n_val):
        return banded_batch_size(v, n_train, n_test, len(bands), len(alphas), n_val, mem_gb)

    folds = loop.run(n_targets_batch, batch_size=batch_size, predictions=predictions,
                     heldout=heldout, progress=progress)
    p = q = None
    stats_info = {"n_permutations": 0}
    if loop.significance is not None:
        p, q, stats_info = loop.significance.finish()
    X = loop.designs[0]
    r = folds["r"].mean(0)
    edges = check_alpha_edges(folds["alpha"], alphas, r, q, model="banded ridge: ")
    return EncodingResult(
        r=r, r2=folds["r2"].mean(0),
        alpha=np.exp(np.log(folds["alpha"]).mean(0)).astype(np.float32),
        r_folds=folds["r"], r2_folds=folds["r2"], alpha_folds=folds["alpha"],
        test_runs=loop.test_runs,
        info={"backend": backend, "solver": "himalaya banded ridge (random search)",
              "bands": loop.band_names, "n_iter": int(n_iter), "n_samples": int(X.shape[0]),
              "n_features": int(X.shape[1]), "n_voxels": int(loop.n_voxels),
              "n_outer_folds": len(loop.splits), "voxel_batch": int(loop.batch_used),
              "trim": [int(t) for t in (trim or (0, 0))], "alpha_grid_edges": edges,
              "run_lengths": np.bincount(loop.groups, minlength=len(Ys)).tolist(),
              "seconds": round(time.perf_counter() - started, 3), **stats_info},
        r2_split=folds["split"].mean(0), p=p, q=q,
        z=loop.significance.score if loop.significance is not None else None,
    )
