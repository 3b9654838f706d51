"""EncodingRidgeCV vs himalaya's RidgeCV as scikit-learn estimators: fit time and agreement.

Both estimators fit the same design and BOLD-like targets with the same 13
alphas and the same inner folds of whole runs, and keep the weights of each
voxel's chosen alpha (``fit`` then ``predict`` on a held-out run). Reported:
median wall and process CPU time of ``fit`` over ``--repeats`` runs (after one
warm-up), the share of voxels given the same alpha and the largest difference
between the two models' held-out predictions.

Then the outer cross-validation loop of the participant stage
(:func:`bids_app.encoding.engine.cross_validate`, leave one run out) is timed on
the same data, plain and with the last column as a word-rate band fitted
jointly (the CLI's default design): one timed run each after a warm-up on 64
voxels. Run the same script against another checkout (``PYTHONPATH=<checkout>``)
to compare the loop before and after a change.

Usage::

    python benchmarks/estimator.py --size small               # seconds
    python benchmarks/estimator.py --size full --out benchmarks/estimator_full.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SIZES = {"small": {"n_runs": 6, "n_per_run": 100, "n_features": 384, "n_voxels": 2000},
         "full": {"n_runs": 8, "n_per_run": 300, "n_features": 1536, "n_voxels": 20000}}
ALPHAS = tuple(float(a) for a in np.logspace(0, 6, 13))


def make_data(n_runs: int, n_per_run: int, n_features: int, n_voxels: int, seed: int = 0):
    """Design, targets with a planted low-rank signal plus noise, and run labels."""
    rng = np.random.default_rng(seed)
    n = n_runs * n_per_run
    X = rng.standard_normal((n, n_features)).astype(np.float32)
    W = rng.standard_normal((n_features, 8)) @ rng.standard_normal((8, n_voxels))
    Y = X @ W / np.sqrt(n_features * 8) + rng.uniform(0.5, 4, n_voxels) * rng.standard_normal(
        (n, n_voxels))
    return X, Y.astype(np.float32), np.repeat(np.arange(n_runs), n_per_run)


def timed(fit, repeats: int) -> tuple[float, float]:
    """Median wall and process CPU seconds of ``fit()`` after one warm-up."""
    fit()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fit()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def outer_loop_seconds(X, Y, groups, backend: str) -> dict:
    """Wall and CPU seconds of the participant stage's outer loop, plain and joint."""
    from bids_app import unique_variance
    from bids_app.encoding.engine import cross_validate

    runs = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    bands = {"language": [0, X.shape[1] - 1], "word_rate": [X.shape[1] - 1, X.shape[1]]}

    def run(voxels, joint):
        Xs, Ys = [X[r] for r in runs], [Y[r][:, voxels] for r in runs]
        if not joint:
            return cross_validate(Xs, Ys, ALPHAS, backend=backend)
        if hasattr(unique_variance, "joint_estimator"):  # fitted by the joint estimator
            model = unique_variance.joint_estimator(bands, ["word_rate"], ALPHAS, backend)
            return cross_validate(Xs, Ys, ALPHAS, backend=backend, estimator=model)
        candidates = unique_variance.nuisance_candidates(Xs, bands, ["word_rate"])
        return cross_validate(candidates, Ys, ALPHAS, backend=backend)

    out = {}
    for name, joint in (("plain", False), ("joint", True)):
        run(slice(0, 64), joint)
        wall, cpu = time.perf_counter(), time.process_time()
        run(slice(None), joint)
        out[name] = {"wall": round(time.perf_counter() - wall, 3),
                     "cpu": round(time.process_time() - cpu, 3)}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison and print (and optionally save) the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    from bids_app.encoding import EncodingRidgeCV
    from bids_app.encoding.cv import inner_splits

    X, Y, groups = make_data(**SIZES[args.size])
    train, test = groups < groups.max(), groups == groups.max()
    folds = inner_splits(groups[train], 5)
    ours = EncodingRidgeCV(alphas=ALPHAS, cv=folds, backend=args.backend, fit_intercept=False)
    be = set_backend(args.backend)
    reference = RidgeCV(alphas=np.asarray(ALPHAS, np.float32), cv=folds)

    def fit_ours():
        ours.fit(X[train], Y[train])

    def fit_reference():
        set_backend(args.backend)
        reference.fit(X[train], Y[train])

    wall_ours, cpu_ours = timed(fit_ours, args.repeats)
    wall_ref, cpu_ref = timed(fit_reference, args.repeats)
    same = np.isclose(ours.best_alphas_, be.to_numpy(reference.best_alphas_), rtol=1e-5)
    gap = np.abs(ours.predict(X[test]) - be.to_numpy(reference.predict(X[test])))
    result = {"size": args.size, **SIZES[args.size], "backend": args.backend,
              "repeats": args.repeats,
              "fit_seconds": {"EncodingRidgeCV": round(wall_ours, 3),
                              "himalaya_RidgeCV": round(wall_ref, 3)},
              "fit_cpu_seconds": {"EncodingRidgeCV": round(cpu_ours, 3),
                                  "himalaya_RidgeCV": round(cpu_ref, 3)},
              "speedup_wall": round(wall_ref / wall_ours, 2),
              "speedup_cpu": round(cpu_ref / cpu_ours, 2),
              "same_alpha_share": float(same.mean()),
              "max_prediction_difference_same_alpha": float(gap[:, same].max()),
              "outer_loop_seconds": outer_loop_seconds(X, Y, groups, args.backend)}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
