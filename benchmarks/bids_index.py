"""Indexing a dataset shaped like SMN4Lang (ds004078): fresh pybids index vs a saved one.

The dataset has ``--subjects`` participants x ``--runs`` runs of one task, each
run with a BOLD placeholder (an empty ``.nii.gz``: pybids reads names, not
voxels), a JSON sidecar copied from the real ds004078 metadata when
``../shared/data`` is present (else a small one), an ``events.tsv``, plus the
HCP-pipeline outputs under ``derivatives/preprocessed_data`` (ignored by the
raw index) as in the real dataset. Side by side in one process:

(a) ``make_layout(BIDS_DIR)``: a fresh index (every run of brainenc without
    ``--bids-database-dir``);
(b) ``make_layout(BIDS_DIR, database_dir=DB)`` on a new folder: the first run with
    ``--bids-database-dir`` (indexes and saves);
(c) the same again: every later run, which reads the saved index.

Each timing includes what a participant job then asks of the index (the
subjects, one subject's BOLD runs and their sidecar metadata). Each is the median
of ``--repeats`` after one warm-up; the report gives seconds and the ratio
(a)/(c), and checks that the saved index lists the same files.

Usage::

    python benchmarks/bids_index.py                      # 12 x 60, as ds004078
    python benchmarks/bids_index.py --subjects 2 --runs 10 --repeats 1   # CI
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "openneuro-ds004078-smn4lang"


def make_dataset(root: Path, n_subjects: int, n_runs: int) -> int:
    """Write the placeholder dataset; return the number of files."""
    real_sidecar = REAL / "sub-01" / "func" / "sub-01_task-RDR_run-1_bold.json"
    sidecar = (real_sidecar.read_text(encoding="utf-8") if real_sidecar.is_file()
               else json.dumps({"RepetitionTime": 0.71, "TaskName": "RDR"}))
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "ds004078-shaped placeholder", "BIDSVersion": "1.6.0"}), encoding="utf-8")
    count = 1
    for s in range(1, n_subjects + 1):
        func = root / f"sub-{s:02d}" / "func"
        func.mkdir(parents=True)
        prep = root / "derivatives" / "preprocessed_data" / f"sub-{s:02d}"
        (prep / "MNI").mkdir(parents=True)
        (prep / "CIFTI").mkdir(parents=True)
        for r in range(1, n_runs + 1):
            stem = f"sub-{s:02d}_task-RDR_run-{r}"
            (func / f"{stem}_bold.nii.gz").touch()
            (func / f"{stem}_bold.json").write_text(sidecar, encoding="utf-8")
            (func / f"{stem}_events.tsv").write_text(
                "onset\tduration\tstim_file\n10.65\t240.0\taudio/story.wav\n", encoding="utf-8")
            (prep / "MNI" / f"{stem}_bold.nii.gz").touch()
            (prep / "CIFTI" / f"{stem}_bold.dtseries.nii").touch()
            count += 5
    return count


def use(layout):
    """What a participant job asks of the index: subjects, one subject's runs, sidecars, events."""
    from bids_app.io.bids import find_events, select_subjects

    subjects = select_subjects(layout, None)
    runs = layout.get(subject=subjects[0], suffix="bold", extension=[".nii", ".nii.gz"])
    assert all(r.get_metadata().get("RepetitionTime") for r in runs)
    assert all(find_events(layout, Path(r.path), r.get_entities()) for r in runs)
    return layout


def timed(func):
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from bids_app.io.bids import make_layout

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        root.mkdir()
        n_files = make_dataset(root, args.subjects, args.runs)
        fresh, first, reuse = [], [], []
        expected = None
        for k in range(args.repeats + 1):
            seconds, layout = timed(lambda: use(make_layout(root)))
            fresh.append(seconds)
            files = sorted(layout.get(return_type="filename"))
            db = Path(tmp) / f"db{k}"
            seconds, _ = timed(lambda db=db: use(make_layout(root, database_dir=db)))
            first.append(seconds)
            seconds, saved = timed(lambda db=db: use(make_layout(root, database_dir=db)))
            reuse.append(seconds)
            same = sorted(saved.get(return_type="filename")) == files
            expected = same if expected is None else expected and same
            shutil.rmtree(db)
        fresh, first, reuse = fresh[1:], first[1:], reuse[1:]  # one warm-up
    report = {
        "subjects": args.subjects, "runs": args.runs, "files": n_files,
        "indexed_files": len(files), "real_sidecars": REAL.is_dir(),
        "fresh_seconds": statistics.median(fresh),
        "first_with_database_seconds": statistics.median(first),
        "reuse_database_seconds": statistics.median(reuse),
        "same_files": bool(expected), "repeats": args.repeats,
    }
    report["speedup_reuse_vs_fresh"] = report["fresh_seconds"] / report["reuse_database_seconds"]
    print(f"{args.subjects} subjects x {args.runs} runs, {len(files)} files indexed "
          f"(same with the saved index: {report['same_files']})")
    print(f"fresh index              {report['fresh_seconds']:8.2f} s")
    print(f"first, saving the index  {report['first_with_database_seconds']:8.2f} s")
    print(f"second, reusing it       {report['reuse_database_seconds']:8.2f} s   "
          f"({report['speedup_reuse_vs_fresh']:.0f}x faster than fresh)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
