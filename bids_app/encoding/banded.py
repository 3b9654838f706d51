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
from .confounds import FoldConfoundRegressor, centre_runs, residualize_design, stack_confounds
from .cv import check_runs, inner_splits, outer_splits, trim_mask
from .engine import EncodingResult, column_reader
from .heldout import HeldoutTest
from .scoring import check_alpha_edges, pearson_r, r2_score


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


def _fold_inputs(Xtr, Xte, slices):
    """What every voxel batch of one outer fold shares: band designs or linear kernels."""
    if Xtr.shape[0] >= Xtr.shape[1]:
        return "primal", [Xtr[:, s] for s in slices], [Xte[:, s] for s in slices]
    Ks = np.stack([Xtr[:, s] @ Xtr[:, s].T for s in slices])
    Ks_test = np.stack([Xte[:, s] @ Xtr[:, s].T for s in slices])
    return "kernel", Ks, Ks_test


def _fit_fold(inputs, Ytr, alphas, cv, n_iter, random_state, batch):
    """Fit one voxel batch of one outer fold; split predictions (n_bands, n_test, v), alphas."""
    from himalaya.kernel_ridge import MultipleKernelRidgeCV
    from himalaya.ridge import BandedRidgeCV

    params = {"alphas": np.asarray(alphas, dtype=np.float32), "n_iter": n_iter,
              "progress_bar": False, "n_targets_batch": batch, "n_targets_batch_refit": batch}
    kind, train, test = inputs
    if kind == "primal":
        model = BandedRidgeCV(groups="input", solver_params={**params, "warn": False}, cv=cv,
                              random_state=random_state)
    else:
        model = MultipleKernelRidgeCV(kernels="precomputed", solver_params=params, cv=cv,
                                      random_state=random_state)
    model.fit(train, Ytr)
    return model.predict(test, split=True), model.best_alphas_


def _rows_after(pred: np.ndarray, n_test: int):
    """Predictions of the training rows that follow the held-out ones (None when absent)."""
    return pred[n_test:] if len(pred) > n_test else None


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
    from himalaya.scoring import r2_score_split

    started = time.perf_counter()
    check_runs(Xs, Ys)
    be = use_backend(backend)
    keep = trim_mask([len(y) for y in Ys], trim)
    groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(Xs)])[keep]
    # every run's kept volumes are centred (BOLD, design, confounds), as in the plain fit
    X = centre_runs(np.concatenate(Xs)[keep], groups)
    y_cols = column_reader(Ys, keep, mem_gb)
    C = None
    if confounds is not None:
        C = centre_runs(stack_confounds(confounds, [len(y) for y in Ys])[keep], groups)
    names_slices = band_slices(bands, X.shape[1])
    names = [n for n, _ in names_slices]
    slices = [s for _, s in names_slices]
    splits = outer_splits(groups, outer_cv, labels=run_labels)
    n_folds, v = len(splits), Ys[0].shape[1]
    r_folds = np.zeros((n_folds, v), np.float32)
    r2_folds = np.zeros_like(r_folds)
    alpha_folds = np.zeros_like(r_folds)
    split_folds = np.zeros((n_folds, len(slices), v), np.float32)
    test_runs, batch = [], 0
    significance = (HeldoutTest(n_folds, v, n_permutations, method=permutation,
                                block_length=block_length, p_value=heldout_p,
                                random_state=random_state) if n_permutations else None)
    Y_null = significance.pseudo_null(y_cols, groups) if significance is not None else None
    for k, (train, test) in enumerate(splits):
        cv = inner_splits(groups[train], inner_folds, labels=run_labels)
        # the mismatched null also needs the refitted model's predictions of its training rows
        rows = (np.concatenate([test, train]) if significance is not None
                and significance.needs_training_predictions else test)
        # the design gets the shared-confound regression the BOLD gets in this fold
        inputs = _fold_inputs(*(residualize_design(C, X, train, rows) if C is not None
                                else (X[train], X[rows])), slices)
        batch = n_targets_batch or banded_batch_size(
            v, len(train), len(test), len(slices), len(alphas),
            max(len(c[1]) for c in cv), mem_gb)
        for begin in range(0, v, batch):
            cols = slice(begin, min(begin + batch, v))
            Yb = y_cols(cols)
            Ytr, Yte = Yb[train], Yb[test]
            if C is not None:
                regressor = FoldConfoundRegressor().fit(C[train], Ytr)
                Ytr, Yte = regressor.transform(C[train], Ytr), regressor.transform(C[test], Yte)
            split, best_alphas = _fit_fold(inputs, Ytr, alphas, cv, n_iter, random_state,
                                           n_targets_batch)
            pred_all = np.asarray(be.to_numpy(be.sum(split, 0)), dtype=np.float32)
            split, pred = split[:, :len(test)], pred_all[:len(test)]
            if significance is not None:
                significance.add(k, cols, Yte, pred, _rows_after(pred_all, len(test)))
            if predictions is not None:
                predictions[test, cols] = pred
            if heldout is not None:
                heldout[test, cols] = Yte
            r_folds[k, cols] = pearson_r(Yte, pred)
            r2_folds[k, cols] = r2_score(Yte, pred)
            split_folds[k, :, cols] = np.asarray(be.to_numpy(r2_score_split(
                be.asarray(Yte), be.asarray(split))), dtype=np.float32)
            alpha_folds[k, cols] = np.asarray(be.to_numpy(best_alphas), dtype=np.float32)
            if progress is not None:
                progress(k, n_folds, cols.stop, v)
        if significance is not None:
            Ytr, Yte = Y_null[train], Y_null[test]
            if C is not None:
                regressor = FoldConfoundRegressor().fit(C[train], Ytr)
                Ytr, Yte = regressor.transform(C[train], Ytr), regressor.transform(C[test], Yte)
            split_null, _ = _fit_fold(inputs, Ytr, alphas, cv, n_iter, random_state,
                                      n_targets_batch)
            pred_null = np.asarray(be.to_numpy(be.sum(split_null, 0)), dtype=np.float32)
            significance.add_null(k, Yte, pred_null[:len(test)], _rows_after(pred_null, len(test)))
        test_runs.append(sorted(int(g) for g in np.unique(groups[test])))
    p = q = None
    stats_info = {"n_permutations": 0}
    if significance is not None:
        p, q, stats_info = significance.finish()
    r = r_folds.mean(0)
    edges = check_alpha_edges(alpha_folds, alphas, r, q, model="banded ridge: ")
    return EncodingResult(
        r=r, r2=r2_folds.mean(0),
        alpha=np.exp(np.log(alpha_folds).mean(0)).astype(np.float32),
        r_folds=r_folds, r2_folds=r2_folds, alpha_folds=alpha_folds, test_runs=test_runs,
        info={"backend": backend, "solver": "himalaya banded ridge (random search)",
              "bands": names, "n_iter": int(n_iter), "n_samples": int(X.shape[0]),
              "n_features": int(X.shape[1]), "n_voxels": int(v), "n_outer_folds": n_folds,
              "voxel_batch": int(batch),
              "trim": [int(t) for t in (trim or (0, 0))], "alpha_grid_edges": edges,
              "run_lengths": np.bincount(groups, minlength=len(Ys)).tolist(),
              "seconds": round(time.perf_counter() - started, 3), **stats_info},
        r2_split=split_folds.mean(0), p=p, q=q,
        z=significance.score if significance is not None else None,
    )
