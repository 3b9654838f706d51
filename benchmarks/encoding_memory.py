"""Peak memory of a whole-brain encoding fit: runs streamed from disk vs the BOLD in memory.

A participant at 2 mm has about 235k brain voxels (nilearn's MNI152 mask) and,
in a long naturalistic dataset, tens of thousands of volumes: the float32 BOLD
alone is then close to the 24 GB of a workstation. ``prepare_bold`` leaves one
float32 ``.npy`` per run on disk, and the encoding step
(``bids_app.encoding.engine.cross_validate``) reads them one voxel batch at a time.
This benchmark writes such runs and fits them, in one process:

(a) brainenc streaming, on the first ``--voxels`` columns of the same runs (e.g.
    20k and all 235k), with the same voxel batch, so that any growth of the peak
    with the number of voxels shows;
(b) the alternative of holding the whole BOLD in memory (the runs concatenated
    as float32, as an in-memory fit needs), with the same solver and batch, on
    the smallest voxel count; its peak at the full count is extrapolated from
    its per-voxel slope, since it does not fit in this machine's memory.

Each fit runs in a fresh process (so that no allocator keeps memory of an earlier
fit). Memory is that process's private resident memory (``RssAnon`` of
``/proc/self/status``, sampled every 20 ms) above its level before the fit:
the pages of the memory-mapped runs are file cache that the kernel reclaims,
and are reported apart (``RssFile``). ``--max-batches`` stops a fit after that
many voxel batches of the first outer fold (the plan and the working buffers are
then all allocated) and extrapolates its time; without it every fit runs to the
end.

Usage::

    python benchmarks/encoding_memory.py --size small          # < 1 min, CI
    python benchmarks/encoding_memory.py --size full --out benchmarks/encoding_memory_full.json
    python benchmarks/encoding_memory.py --size paper --max-batches 2 \\
        --out benchmarks/encoding_memory_paper.json           # 768 x 4 features
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sampling import PeakSampler  # noqa: E402

SIZES = {
    # runs, volumes per run, features, delays, voxel counts measured, outer CV, memory
    # budget that sizes the voxel batch (or the batch itself)
    "small": {"runs": 6, "run_length": 100, "n_features": 16, "n_delays": 4,
              "voxels": [2000, 32000], "outer_cv": "2-fold", "mem_gb": 0.05, "batch": 1000},
    "full": {"runs": 45, "run_length": 450, "n_features": 64, "n_delays": 4,
             "voxels": [20000, 235375], "outer_cv": "3-fold", "mem_gb": 4.0},
    "paper": {"runs": 45, "run_length": 450, "n_features": 768, "n_delays": 4,
              "voxels": [20000, 235375], "outer_cv": "3-fold", "mem_gb": 4.0},
}
ALPHAS = np.logspace(0, 6, 13).astype(np.float32)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Largest private (anonymous) and file-backed resident memory while the block runs."""

    def __enter__(self):
        self._anon = PeakSampler(lambda: _status_kib("RssAnon") * 1024, 0.02).__enter__()
        self._file = PeakSampler(lambda: _status_kib("RssFile") * 1024, 0.02).__enter__()
        return self

    def __exit__(self, *exc):
        self._anon.__exit__(*exc)
        self._file.__exit__(*exc)
        self.anon_mib = self._anon.mib
        self.file_mib = self._file.peak / 2 ** 20
        return False


def write_runs(folder: Path, cfg: dict, n_voxels: int, seed: int = 0):
    """Delayed smooth features and on-disk float32 runs (noise + signal in a tenth of voxels)."""
    from numpy.lib.format import open_memmap

    from bids_app.alignment import delay_stack, zscore_columns

    rng = np.random.default_rng(seed)
    p = cfg["n_features"] * cfg["n_delays"]
    driven = np.arange(0, n_voxels, 10)
    weights = rng.normal(size=(p, len(driven))).astype(np.float32) / np.sqrt(p)
    Xs, paths = [], []
    for r in range(cfg["runs"]):
        raw = rng.normal(size=(cfg["run_length"] + 8, cfg["n_features"]))
        smooth = np.cumsum(raw, axis=0)[8:] - np.cumsum(raw, axis=0)[:-8]
        X = zscore_columns(delay_stack(smooth, range(1, cfg["n_delays"] + 1))).astype(np.float32)
        Xs.append(X)
        path = folder / f"run{r:03d}_bold.npy"
        Y = open_memmap(path, mode="w+", dtype=np.float32, shape=(len(X), n_voxels))
        for start in range(0, len(X), 50):
            rows = slice(start, min(start + 50, len(X)))
            Y[rows] = rng.standard_normal((rows.stop - rows.start, n_voxels), dtype=np.float32)
            Y[rows, driven] += X[rows] @ weights
        Y.flush()
        del Y
        paths.append(path)
    return Xs, paths


class _Enough(Exception):
    """Raised by the progress callback after ``--max-batches`` batches."""


def fit(Xs, Ys, cfg, batch: int, mem_gb: float, max_batches: int | None) -> dict:
    """One encoding fit under the memory sampler; seconds (extrapolated when cut short)."""
    from bids_app.encoding.engine import cross_validate

    seen = []

    def progress(fold, n_folds, done, n_voxels):
        seen.append((time.perf_counter(), fold, n_folds, done, n_voxels))
        if max_batches and len(seen) >= max_batches:
            raise _Enough

    started = time.perf_counter()
    complete = True
    with PeakMemory() as memory:
        try:
            result = cross_validate(Xs, Ys, ALPHAS, outer_cv=cfg["outer_cv"], inner_folds=5,
                                    backend="torch", n_targets_batch=batch, mem_gb=mem_gb,
                                    progress=progress)
        except _Enough:
            complete, result = False, None
    seconds = time.perf_counter() - started
    row = {"voxels": int(Ys[0].shape[1]), "peak_private_mib": round(memory.anon_mib, 1),
           "peak_file_cache_mib": round(memory.file_mib, 1), "complete": complete,
           "batches_run": len(seen), "seconds": round(seconds, 1)}
    if complete:
        row["mean_r"] = float(np.mean(result.r))
        row["gflop"] = result.info["gflop"]
    else:  # first batch carries the plan; later batches give the rate per voxel
        _, _, n_folds, _, n_voxels = seen[0]
        first = seen[0][0] - started
        per_batch = (seen[-1][0] - seen[0][0]) / max(len(seen) - 1, 1)
        n_batches = n_folds * -(-n_voxels // batch)
        row["seconds_first_batch_with_plan"] = round(first, 1)
        row["seconds_per_batch"] = round(per_batch, 1)
        row["seconds_extrapolated"] = round(n_folds * first + (n_batches - n_folds) * per_batch,
                                            0)
    return row


def _child(spec: str) -> int:
    """Fit the runs named in ``spec`` (JSON) in this process and print the row."""
    import torch

    job = json.loads(spec)
    cfg = job["config"]
    Xs = [np.load(p) for p in job["designs"]]
    Ys = [np.load(p, mmap_mode="r")[:, :job["voxels"]] for p in job["runs"]]
    torch.set_num_threads(job["threads"])
    row = fit(Xs, Ys, cfg, job["batch"], job["mem_gb"], job["max_batches"])
    row["method"] = job["method"]
    print("ROW " + json.dumps(row), flush=True)
    return 0


def _run_child(job: dict) -> dict:
    import subprocess

    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)],
                          capture_output=True, text=True, check=False)
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode or not rows:
        raise RuntimeError(f"fit of {job['voxels']} voxels failed:\n{done.stderr[-3000:]}")
    row = json.loads(rows[-1])
    print(json.dumps(row), flush=True)
    return row


def summarize(report: dict, rows: list[dict]) -> dict:
    """Add the growth of each method's peak with the voxel count to ``report``.

    The in-memory alternative is measured at the smallest count only; at the full
    count its peak is that measurement plus the float32 BOLD of the other voxels
    (4 bytes per volume and voxel), which it holds and streaming does not.
    """
    n_total = report["volumes"]
    stream = [r for r in rows if r["method"] == "brainenc streaming"]
    low, high = stream[0], stream[-1]
    growth = (high["peak_private_mib"] - low["peak_private_mib"]) / (high["voxels"] - low["voxels"])
    report.update({
        "bold_on_disk_gib": round(4 * n_total * high["voxels"] / 1024 ** 3, 2), "rows": rows,
        "streaming_private_mib_per_1k_voxels": round(growth * 1000, 2),
    })
    alternative = [r for r in rows if r["method"] != "brainenc streaming"]
    if alternative:
        alt = alternative[0]
        extra_bold_mib = 4 * n_total * (high["voxels"] - alt["voxels"]) / 2 ** 20
        report["in_memory_estimated_peak_gib_at_full_count"] = round(
            (alt["peak_private_mib"] + extra_bold_mib) / 1024, 2)
        report["in_memory_estimate"] = (
            f"measured peak at {alt['voxels']} voxels plus the float32 BOLD of the other "
            f"{high['voxels'] - alt['voxels']} voxels")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="stop each fit after this many voxel batches (time extrapolated)")
    parser.add_argument("--no-alternative", action="store_true",
                        help="skip (b), the BOLD held in memory")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the runs are written (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)

    import os

    from bids_app.encoding.solver import batch_size_for

    cfg = SIZES[args.size]
    n_total = cfg["runs"] * cfg["run_length"]
    n_test = n_total // int(cfg["outer_cv"].split("-")[0])
    n_train = n_total - n_test
    batch = cfg.get("batch") or batch_size_for(max(cfg["voxels"]), n_train, n_test,
                                               n_train // 5, len(ALPHAS), cfg["mem_gb"])
    threads = args.threads or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        started = time.perf_counter()
        Xs, paths = write_runs(Path(tmp), cfg, max(cfg["voxels"]))
        write_seconds = time.perf_counter() - started
        designs = []
        for i, X in enumerate(Xs):
            designs.append(str(Path(tmp) / f"design{i:03d}.npy"))
            np.save(designs[-1], X)
        job = {"config": cfg, "designs": designs, "runs": [str(p) for p in paths],
               "batch": batch, "mem_gb": cfg["mem_gb"], "max_batches": args.max_batches,
               "threads": threads}
        rows = [_run_child({**job, "voxels": v, "method": "brainenc streaming"})
                for v in cfg["voxels"]]
        if not args.no_alternative:
            v = min(cfg["voxels"])
            # a budget large enough that the runs are concatenated in memory; same batch
            rows.append(_run_child({**job, "voxels": v, "method": "BOLD in memory (float32)",
                                    "mem_gb": 4 * n_total * v * 3.2 / 1024 ** 3}))
    report = summarize({"size": args.size, "config": cfg, "volumes": n_total,
                        "voxel_batch": batch, "alphas": len(ALPHAS), "inner_folds": 5,
                        "threads": threads, "write_seconds": round(write_seconds, 1)}, rows)
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
