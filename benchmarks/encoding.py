"""Voxel-wise ridge with per-voxel alpha: brainenc vs himalaya vs scikit-learn vs a naive loop.

All alternatives run in one process on the same data, the same 13 alphas and the
same 5 inner folds of whole runs, and predict the same held-out runs:

(a) brainenc's solver (``bids_app.encoding.solver``, torch backend on CPU);
(b) himalaya ``RidgeCV`` with default solver settings (numpy backend);
(c) himalaya with the best settings found (``RidgeCV`` and ``KernelRidgeCV`` on
    the torch backend; the faster one is reported; the kernel form is not tried
    when there are more than twice as many training volumes as features);
(d) scikit-learn ``RidgeCV(alpha_per_target=True)`` (leave-one-out/GCV: the only
    mode with per-target alphas);
(e) a naive per-voxel loop (scikit-learn ``Ridge`` per voxel, alpha and fold) on
    a voxel subset, extrapolated.

Each timing of (a) and (b) is the median of ``--repeats`` runs (3 by default), the
others of ``--other-repeats`` runs (3 at the small size, 1 at the full size: they
are the slow ones), after one warm-up (on 1,000 voxels at the full size); a
float32 GEMM probe at the start and at the end gives the machine's throughput in
this run.
Peak memory is the largest resident-set increase while a method runs. Process
CPU time is reported beside wall time: on a shared machine it is the steadier
measure of the work done.

Usage::

    python benchmarks/encoding.py --size small            # < 1 min, CI
    python benchmarks/encoding.py --size full --out benchmarks/encoding_full.json
    python benchmarks/encoding.py --size long --methods brainenc himalaya_default \
        himalaya_best --out benchmarks/encoding_long.json   # 9,000 volumes, 768 columns
    python benchmarks/encoding.py --size paper --backend torch_cuda \
        --methods brainenc himalaya_best                # GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sampling import PeakSampler  # noqa: E402

SIZES = {
    # runs of training volumes, held-out runs, volumes per run, features, delays, voxels
    "small": {"train_runs": 10, "test_runs": 2, "run_length": 40, "n_features": 48,
              "n_delays": 4, "voxels": [2000], "naive_voxels": 2},
    "full": {"train_runs": 10, "test_runs": 2, "run_length": 160, "n_features": 384,
             "n_delays": 4, "voxels": [20000, 50000], "naive_voxels": 2},
    # more volumes than features, as in long naturalistic datasets, at a size a CPU runs
    "long": {"train_runs": 20, "test_runs": 2, "run_length": 450, "n_features": 192,
             "n_delays": 4, "voxels": [20000], "naive_voxels": 1},
    # the original study's scale (27k volumes, 768 columns, 90k voxels): GPU only
    "paper": {"train_runs": 48, "test_runs": 6, "run_length": 500, "n_features": 192,
              "n_delays": 4, "voxels": [90000], "naive_voxels": 1},
}
ALPHAS = np.logspace(0, 6, 13).astype(np.float32)


def PeakRSS():  # noqa: N802 - used like the class it was
    """Largest resident-set increase (MiB, ``.mib``) while the block runs (every 10 ms)."""
    return PeakSampler(_rss, 0.01)


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def gemm_probe(size: int = 2048) -> float:
    """float32 GEMM throughput (GFLOP/s) of torch on this machine right now."""
    import torch

    a = torch.randn(size, size)
    a @ a
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def make_data(cfg: dict, n_voxels: int, seed: int = 0):
    """Delayed smooth features, planted sparse weights, noise of varied level."""
    from bids_app.alignment import delay_stack, zscore_columns

    rng = np.random.default_rng(seed)
    n_runs = cfg["train_runs"] + cfg["test_runs"]
    Xs = []
    for _ in range(n_runs):
        raw = rng.normal(size=(cfg["run_length"] + 8, cfg["n_features"]))
        smooth = np.cumsum(raw, axis=0)[8:] - np.cumsum(raw, axis=0)[:-8]  # 8-volume moving sum
        Xs.append(zscore_columns(delay_stack(smooth, range(1, cfg["n_delays"] + 1))))
    X = np.concatenate(Xs)
    p = X.shape[1]
    W = (rng.normal(size=(p, n_voxels)) * (rng.random(n_voxels) < 0.5)).astype(np.float32)
    # filled in blocks of rows (the same random stream as one draw): at the paper's scale
    # float64 temporaries of the whole (volumes, voxels) array would not fit in memory
    Y = np.empty((len(X), n_voxels), dtype=np.float32)
    block = max(1, int(2e8 // max(n_voxels, 1)))
    for start in range(0, len(X), block):
        Y[start:start + block] = rng.normal(size=(min(block, len(X) - start), n_voxels))
    scale = rng.uniform(0.5, 4.0, n_voxels).astype(np.float32)
    for start in range(0, len(X), block):
        rows = slice(start, start + block)
        Y[rows] = X[rows] @ W / np.sqrt(p) + scale * Y[rows]
    groups = np.repeat(np.arange(n_runs), cfg["run_length"])
    n_train = cfg["train_runs"] * cfg["run_length"]  # training runs come first: views, no copies
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:], groups[:n_train]


def run_brainenc(X, Y, Xte, cv, backend="torch", mem_gb=2.0):
    from himalaya.backend import set_backend

    from bids_app.encoding.solver import RidgePlan, batch_size_for

    be = set_backend(backend)
    plan = RidgePlan(X, Xte, ALPHAS, cv, be)
    batch = batch_size_for(Y.shape[1], len(X), len(Xte), max(len(v) for _, v in cv),
                           len(ALPHAS), mem_gb=mem_gb)
    preds, alphas = [], []
    for start in range(0, Y.shape[1], batch):
        Yb = be.asarray(Y[:, start:start + batch])
        idx = plan.select(plan.cv_scores(Yb))
        preds.append(np.asarray(be.to_numpy(plan.predict(Yb, idx))))
        alphas.append(ALPHAS[np.asarray(be.to_numpy(idx))])
    return np.hstack(preds), np.concatenate(alphas), plan.n_flops * Y.shape[1]


def run_himalaya(X, Y, Xte, cv, backend="numpy", kernel=False, solver_params=None):
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    be = set_backend(backend)
    cls = KernelRidgeCV if kernel else RidgeCV
    kwargs = {"solver_params": solver_params} if solver_params else {}
    model = cls(alphas=ALPHAS, cv=cv, **kwargs).fit(X, Y)
    return (np.asarray(be.to_numpy(model.predict(Xte))),
            np.asarray(be.to_numpy(model.best_alphas_)), None)


def run_sklearn(X, Y, Xte, cv):
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=ALPHAS.astype(float), alpha_per_target=True,
                    fit_intercept=False).fit(X, Y)
    return model.predict(Xte).astype(np.float32), np.asarray(model.alpha_), None


def run_naive(X, Y, Xte, cv):
    """Per voxel, per alpha, per fold: a scikit-learn Ridge fit."""
    from sklearn.linear_model import Ridge

    preds, chosen = [], []
    for j in range(Y.shape[1]):
        y = Y[:, j]
        scores = []
        for alpha in ALPHAS:
            err = 0.0
            for tr, va in cv:
                model = Ridge(alpha=float(alpha), fit_intercept=False).fit(X[tr], y[tr])
                err += np.mean((model.predict(X[va]) - y[va]) ** 2)
            scores.append(-err / len(cv))
        best = ALPHAS[int(np.argmax(scores))]
        preds.append(Ridge(alpha=float(best), fit_intercept=False).fit(X, y).predict(Xte))
        chosen.append(best)
    return np.column_stack(preds).astype(np.float32), np.asarray(chosen), None


def timed(fn, repeats: int, X, Y, Xte, cv, warm_voxels: int | None = None, **kwargs):
    """Median seconds over ``repeats`` runs after one warm-up, peak memory, last output.

    The warm-up runs on the first ``warm_voxels`` voxels (all when None): it loads
    the code paths and thread pools without doubling the time of large runs.
    """
    fn(X, Y[:, :warm_voxels] if warm_voxels else Y, Xte, cv, **kwargs)
    args = (X, Y, Xte, cv)
    import torch

    times, cpu, peak = [], [], 0.0
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        with PeakRSS() as mem:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = fn(*args, **kwargs)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        peak = max(peak, mem.mib)
    if torch.cuda.is_available():  # GPU runs: device memory is what bounds the batch
        peak = max(peak, torch.cuda.max_memory_allocated() / 2 ** 20)
    timed.cpu_seconds = float(np.median(cpu))  # CPU time: less sensitive to other jobs
    return float(np.median(times)), peak, out


def benchmark(size: str = "small", repeats: int | None = None, voxels=None,
              threads: int = 0, methods=None, out: str | None = None,
              backend: str = "torch", other_repeats: int | None = None) -> dict:
    """Run every method at every voxel count; return the results as a dict.

    With ``out``, the results so far are written there after every method. scikit-learn's
    finiteness checks are skipped while it runs (the data are finite by construction) and
    restored afterwards.
    """
    import sklearn

    with sklearn.config_context(assume_finite=True):
        return _benchmark(size, repeats, voxels, threads, methods, out, backend, other_repeats)


def _benchmark(size, repeats, voxels, threads, methods, out, backend, other_repeats) -> dict:
    import torch

    from bids_app.encoding.cv import inner_splits
    from bids_app.encoding.scoring import pearson_r

    if threads:
        torch.set_num_threads(threads)
    cfg = SIZES[size]
    repeats = repeats or 3
    other_repeats = other_repeats or (3 if size == "small" else 1)
    warm = None if size == "small" else 1000
    methods = methods or ["brainenc", "himalaya_default", "himalaya_best", "sklearn", "naive"]
    report = {"size": size, "config": cfg, "alphas": ALPHAS.tolist(),
              "repeats": {"brainenc": repeats, "himalaya_default": repeats,
                          "others": other_repeats},
              "torch_threads": torch.get_num_threads(), "gemm_gflops_start": gemm_probe(),
              "results": []}
    for n_voxels in voxels or cfg["voxels"]:
        X, Y, Xte, Yte, groups = make_data(cfg, n_voxels)
        cv = inner_splits(groups, 5)
        row = {"n_train": len(X), "n_test": len(Xte), "n_features": X.shape[1],
               "n_voxels": n_voxels, "methods": {}}
        ref_r = None
        for name in methods:
            if name == "brainenc":
                sec, mem, (pred, alpha, flops) = timed(run_brainenc, repeats, X, Y, Xte, cv, warm,
                                                   backend=backend,
                                                   mem_gb=16.0 if "cuda" in backend else 2.0)
            elif name == "himalaya_default":
                sec, mem, (pred, alpha, flops) = timed(run_himalaya, repeats, X, Y, Xte, cv, warm)
            elif name == "himalaya_best":
                best = None
                # the kernel form only when the kernel is not much larger than the Gram matrix
                for kernel in (False, True) if len(X) <= 2 * X.shape[1] else (False,):
                    trial = timed(run_himalaya, other_repeats, X, Y, Xte, cv, warm,
                                  backend=backend,
                                  kernel=kernel, solver_params={"n_targets_batch": 4096})
                    if best is None or trial[0] < best[0]:
                        best, setting = trial, "KernelRidgeCV" if kernel else "RidgeCV"
                        best_cpu = timed.cpu_seconds
                sec, mem, (pred, alpha, flops) = best
                timed.cpu_seconds = best_cpu
                row["himalaya_best_setting"] = (f"{setting}, {backend} backend, "
                                                "n_targets_batch=4096")
            elif name == "sklearn":
                sec, mem, (pred, alpha, flops) = timed(run_sklearn, other_repeats, X, Y, Xte, cv,
                                                       warm)
            elif name == "naive":
                k = cfg["naive_voxels"]
                sec, mem, (pred, alpha, flops) = timed(run_naive, 1, X, Y[:, :k], Xte, cv, 1)
                sec *= n_voxels / k
                pred = None
            entry = {"seconds": sec, "cpu_seconds": timed.cpu_seconds,
                     "peak_rss_mib": round(mem, 1)}
            if name == "naive":
                entry["extrapolated_from_voxels"] = cfg["naive_voxels"]
                entry["cpu_seconds"] *= n_voxels / cfg["naive_voxels"]
            if pred is not None:
                r = pearson_r(Yte, pred)
                entry["mean_r"] = float(np.mean(r))
                if name == "himalaya_default":
                    ref_r, ref_alpha = r, alpha
                entry["alpha_values"] = alpha
            if flops:
                entry["gflop"] = flops / 1e9
                entry["gflops_per_s"] = flops / 1e9 / sec
            row["methods"][name] = entry
            print(f"[{time.strftime('%H:%M:%S')}] v={n_voxels} {name}: {sec:.1f} s", flush=True)
            if out:
                Path(out).write_text(json.dumps({**report, "partial": row}, indent=2,
                                                default=_jsonable), encoding="utf-8")
        if ref_r is not None:
            for name, entry in row["methods"].items():
                alpha = entry.pop("alpha_values", None)
                if name != "himalaya_default" and "mean_r" in entry:
                    r_m = entry["mean_r"]
                    entry["mean_r_diff_vs_himalaya"] = abs(r_m - float(np.mean(ref_r)))
                    if name != "sklearn":
                        entry["alpha_agreement"] = float(np.mean(np.isclose(alpha, ref_alpha,
                                                                            rtol=1e-4)))
        for entry in row["methods"].values():
            entry.pop("alpha_values", None)
        base = row["methods"].get("brainenc", {}).get("seconds")
        if base:
            row["speedup_of_brainenc"] = {n: e["seconds"] / base for n, e in
                                          row["methods"].items() if n != "brainenc"}
        report["results"].append(row)
    report["gemm_gflops_end"] = gemm_probe()
    gemm = max(report["gemm_gflops_start"], report["gemm_gflops_end"])
    for row in report["results"]:
        entry = row["methods"].get("brainenc", {})
        if "gflops_per_s" in entry:
            entry["fraction_of_gemm"] = entry["gflops_per_s"] / gemm
    return report


def _jsonable(value):
    return value.tolist() if isinstance(value, np.ndarray) else str(value)


def print_table(report: dict) -> None:
    print(f"GEMM probe: {report['gemm_gflops_start']:.0f} / {report['gemm_gflops_end']:.0f} "
          "GFLOP/s (start / end)")
    for row in report["results"]:
        print(f"n={row['n_train']} p={row['n_features']} v={row['n_voxels']}")
        for name, e in row["methods"].items():
            ratio = row.get("speedup_of_brainenc", {}).get(name)
            print(f"  {name:17s} {e['seconds']:9.2f} s  peak {e['peak_rss_mib']:8.0f} MiB  "
                  f"mean r {e.get('mean_r', float('nan')):.4f}  "
                  + (f"brainenc {ratio:6.1f}x faster" if ratio else "")
                  + (f"  {e['gflops_per_s']:.0f} GFLOP/s ({e['fraction_of_gemm']:.0%} of GEMM)"
                     if "fraction_of_gemm" in e else ""))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs of brainenc and himalaya's defaults (default 3)")
    parser.add_argument("--other-repeats", type=int, default=None,
                        help="timed runs of the other methods (default 3 small, 1 full)")
    parser.add_argument("--voxels", type=int, nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--backend", default="torch", choices=["torch", "torch_cuda"],
                        help="backend of brainenc and of himalaya's best settings")
    args = parser.parse_args(argv)
    report = benchmark(args.size, args.repeats, args.voxels, args.threads, args.methods,
                       out=args.out, backend=args.backend, other_repeats=args.other_repeats)
    print_table(report)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
