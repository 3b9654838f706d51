"""The one outer cross-validation loop over runs, fitting an estimator per training split.

:class:`OuterLoop` holds out whole runs (or stories), regresses confounds within
each fold, and on every batch of voxels fits the estimator on the training runs
and predicts the held-out runs with its ``fit_heldout`` (the decomposition of the
fold's design is kept by the estimator between batches). Plain ridge
(:class:`~bids_app.encoding.EncodingRidgeCV`, one per candidate design), the
joint fit with nuisance bands (:class:`~bids_app.encoding.EncodingJointRidgeCV`)
and banded ridge (:class:`~bids_app.encoding.EncodingBandedRidgeCV`, whose
predictions are split between bands) all go through it, and so all get the
held-out test of r (:class:`~bids_app.encoding.heldout.HeldoutTest`).
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import clone

from .confounds import FoldConfoundRegressor, centre_runs, residualize_design, stack_confounds
from .cv import inner_splits, outer_splits, trim_mask
from .heldout import HeldoutTest
from .joint_estimator import choose_candidates
from .scoring import pearson_r, r2_score
from .solver import batch_size_for


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


class OuterLoop:
    """Outer folds of whole runs, each training split fitted by a clone of ``estimator``.

    Parameters
    ----------
    designs : list of list of ndarray of shape (n_volumes_i, n_features)
        Run designs of each candidate design (one list for a single design).
    Ys : list of ndarray of shape (n_volumes_i, n_voxels)
        BOLD of each run.
    estimator : estimator with ``fit_heldout``
        Cloned per fold and candidate, its ``cv`` set to the fold's inner folds.
    Other parameters are those of :func:`bids_app.encoding.engine.cross_validate`.
    """

    def __init__(self, designs, Ys, estimator, *, outer_cv="leave-one-run-out", inner_folds=5,
                 backend="torch", run_labels=None, confounds=None, trim=(0, 0), mem_gb=None,
                 n_permutations=0, permutation="mismatched", block_length=10, random_state=0,
                 heldout_p="permutation"):
        self.estimator, self.inner_folds, self.run_labels = estimator, inner_folds, run_labels
        self.mem_gb = mem_gb
        keep = trim_mask([len(y) for y in Ys], trim)
        self.groups = np.concatenate([np.full(len(y), i) for i, y in enumerate(Ys)])[keep]
        # every run's kept volumes are centred (BOLD, designs, confounds): the ridge has no
        # intercept
        self.designs = [centre_runs(np.concatenate(c)[keep], self.groups) for c in designs]
        self.C = (centre_runs(stack_confounds(confounds, [len(y) for y in Ys])[keep],
                              self.groups) if confounds is not None else None)
        self.n_voxels = Ys[0].shape[1]
        self.y_cols = column_reader(Ys, keep, mem_gb)
        self.splits = outer_splits(self.groups, outer_cv, labels=run_labels)
        self.significance = (HeldoutTest(len(self.splits), self.n_voxels, n_permutations,
                                         method=permutation, block_length=block_length,
                                         p_value=heldout_p, random_state=random_state)
                             if n_permutations else None)
        self.test_runs, self.flops, self.batch_used = [], 0.0, 0
        self.band_names = None

    def _fit(self, models, parts, Yb, train, rows, n_test, split: bool):
        """Confounds out (fitted on training rows), fit each candidate, keep each voxel's best.

        ``parts`` holds each candidate design's (training rows, ``rows``), with the
        fold's shared confounds regressed out as from the BOLD. Returns held-out BOLD,
        predictions of ``rows``, split predictions (or None), alphas and candidate index
        per voxel (or None).
        """
        Ytr, Yte = Yb[train], Yb[rows[:n_test]]
        if self.C is not None:
            regressor = FoldConfoundRegressor().fit(self.C[train], Ytr)
            Ytr = regressor.transform(self.C[train], Ytr)
            Yte = regressor.transform(self.C[rows[:n_test]], Yte)
        Ytr = Ytr.astype(np.float32)
        if split:
            band_preds = models[0].fit_heldout(parts[0][0], Ytr, parts[0][1], split=True)
            pred = band_preds.sum(0, dtype=np.float32)
            return Yte, pred, band_preds, models[0].best_alphas_, None
        preds = [model.fit_heldout(Xtr, Ytr, Xrows)
                 for model, (Xtr, Xrows) in zip(models, parts, strict=True)]
        if len(models) == 1:
            return Yte, preds[0], None, models[0].best_alphas_, None
        best = choose_candidates([m.cv_scores_float64_ for m in models])
        pred = preds[0]
        for index in range(1, len(preds)):
            pred[:, best == index] = preds[index][:, best == index]
        alphas = np.stack([m.best_alphas_ for m in models])[best, np.arange(len(best))]
        return Yte, pred, None, alphas, best

    def run(self, n_targets_batch=None, *, batch_size=None, predictions=None, heldout=None,
            progress=None) -> dict:
        """Fit every fold; per-fold maps ``r``, ``r2``, ``alpha`` (and ``layer``, ``split``).

        ``batch_size(n_voxels, n_train, n_test, n_val_max)`` sizes the voxel batches
        when ``n_targets_batch`` is not given (by default the plain solver's budget).
        """
        v, n_folds = self.n_voxels, len(self.splits)
        # banded ridge: predictions split between bands
        split = "split" in inspect.signature(self.estimator.fit_heldout).parameters
        folds = {k: np.zeros((n_folds, v), np.float32) for k in ("r", "r2", "alpha")}
        if len(self.designs) > 1:
            folds["layer"] = np.zeros((n_folds, v), np.int16)
        sig = self.significance
        Y_null = sig.pseudo_null(self.y_cols, self.groups) if sig is not None else None
        for k, (train, test) in enumerate(self.splits):
            cv = inner_splits(self.groups[train], self.inner_folds, labels=self.run_labels)
            # the mismatched null also needs the refitted model's predictions of its training rows
            rows = (np.concatenate([test, train]) if sig is not None
                    and sig.needs_training_predictions else test)
            models = [clone(self.estimator).set_params(cv=cv) for _ in self.designs]
            # the design gets the shared-confound regression the BOLD gets in this fold
            parts = ([residualize_design(self.C, X, train, rows) for X in self.designs]
                     if self.C is not None else [(X[train], X[rows]) for X in self.designs])
            n_val = max(len(c[1]) for c in cv)
            batch = n_targets_batch or (batch_size or self._plain_batch)(
                v, len(train), len(test), n_val)
            self.batch_used = batch
            for start in range(0, v, batch):
                cols = slice(start, min(start + batch, v))
                Yte, pred_all, band_preds, alphas, best = self._fit(
                    models, parts, self.y_cols(cols), train, rows, len(test), split)
                pred = pred_all[:len(test)]
                folds["r"][k, cols] = pearson_r(Yte, pred)
                folds["r2"][k, cols] = r2_score(Yte, pred)
                folds["alpha"][k, cols] = alphas
                if best is not None:
                    folds["layer"][k, cols] = best
                if band_preds is not None:
                    folds.setdefault("split", np.zeros((n_folds, len(band_preds), v),
                                                       np.float32))
                    folds["split"][k, :, cols] = self._split_r2(Yte, band_preds[:, :len(test)])
                if sig is not None:
                    sig.add(k, cols, Yte, pred, pred_all[len(test):] if len(rows) > len(test)
                            else None)
                if predictions is not None:
                    predictions[test, cols] = pred
                if heldout is not None:
                    heldout[test, cols] = Yte
                if progress is not None:
                    progress(k, n_folds, cols.stop, v)
            self.flops += sum(getattr(m, "n_flops_per_target_", 0.0) for m in models) * v
            if sig is not None:
                Yte, pred_all, _, _, _ = self._fit(models, parts, Y_null, train, rows, len(test),
                                                   split)
                sig.add_null(k, Yte, pred_all[:len(test)],
                             pred_all[len(test):] if len(rows) > len(test) else None)
            self.test_runs.append(sorted(int(g) for g in np.unique(self.groups[test])))
        if split:
            self.band_names = list(models[0].band_names_)
        return folds

    def _plain_batch(self, v, n_train, n_test, n_val):
        alphas = getattr(self.estimator, "alphas", None)
        n_alphas = len(alphas) if alphas is not None else 13
        return batch_size_for(v, n_train, n_test, n_val, n_alphas, self.mem_gb)

    @staticmethod
    def _split_r2(Yte, parts):
        """R² of the held-out BOLD split between the bands' predictions (himalaya)."""
        from himalaya.backend import get_backend
        from himalaya.scoring import r2_score_split

        be = get_backend()
        return np.asarray(be.to_numpy(r2_score_split(be.asarray(Yte), be.asarray(parts))),
                          dtype=np.float32)
