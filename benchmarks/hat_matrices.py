"""Hat matrices of every alpha: one eigendecomposition vs one Cholesky per alpha.

The ridge solver needs, per inner fold, the stacked (alphas × validation,
training) hat matrices of the kernel (``bids_app.encoding.solver``). Both ways
run here side by side in one process, alternating, on the same fold of the
encoding benchmark's data (``benchmarks/encoding.py --size full``: 1,280 inner
training volumes, 320 validation volumes, 1,536 columns, 13 alphas), for each
backend: ``RidgePlan._eigen_hats`` (one float64 ``eigh``, then one product per
alpha) and ``_cholesky_hats`` (one float64 Cholesky factorisation and solve per
alpha). Reported: median seconds of ``--repeats`` alternating runs, their ratio
and the largest difference between the two results.

Usage::

    python benchmarks/hat_matrices.py --size small                 # CI
    python benchmarks/hat_matrices.py --size full --out benchmarks/hat_matrices.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(size: str, backend: str, repeats: int) -> dict:
    """Seconds of both ways on one inner fold, alternating; their ratio and difference."""
    import encoding as bench
    from himalaya.backend import set_backend

    from bids_app.encoding.cv import inner_splits
    from bids_app.encoding.solver import RidgePlan, _cholesky_hats

    X, _, Xte, _, groups = bench.make_data(bench.SIZES[size], 16)
    train, val = inner_splits(groups, 5)[0]
    be = set_backend(backend)
    plan = RidgePlan(X[:64], Xte[:8], bench.ALPHAS, [(np.arange(48), np.arange(48, 64))], be)
    times = {"eigendecomposition": [], "cholesky": []}
    eigen = chol = None
    for _ in range(repeats + 1):  # the first round warms up
        start = time.perf_counter()
        eigen = plan._eigen_hats(X[train], X[val])
        times["eigendecomposition"].append(time.perf_counter() - start)
        start = time.perf_counter()
        chol = _cholesky_hats(be, X[train], X[val], bench.ALPHAS)
        times["cholesky"].append(time.perf_counter() - start)
    eigen, chol = np.asarray(be.to_numpy(eigen)), np.asarray(be.to_numpy(chol))
    seconds = {k: statistics.median(v[1:]) for k, v in times.items()}
    return {"backend": backend, "n_train": len(train), "n_val": len(val),
            "n_features": X.shape[1], "alphas": len(bench.ALPHAS), "seconds": seconds,
            "cholesky_over_eigendecomposition": seconds["cholesky"]
            / seconds["eigendecomposition"],
            "max_relative_difference": float(np.abs(eigen - chol).max() / np.abs(chol).max())}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--backends", nargs="*", default=["torch", "numpy"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report = {"size": args.size, "repeats": args.repeats,
              "rows": [measure(args.size, b, args.repeats) for b in args.backends]}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
