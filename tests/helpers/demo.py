"""Run the embedded demo once per test session (participant + group)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DemoRun:
    bids: Path
    out: Path
    work: Path
    participant_code: int
    group_code: int


def run_demo(root: Path, *, subjects: int = 3, words: int = 600, nprocs: int = 2) -> DemoRun:
    from bids_app.cli import main
    from bids_app.demo import make_demo_dataset

    bids, out, work = root / "bids", root / "out", root / "work"
    make_demo_dataset(bids, n_subjects=subjects, seed=42, words_per_story=words)
    code_p = main([str(bids), str(out), "participant", "-w", str(work), "--nprocs", str(nprocs)])
    code_g = main([str(bids), str(out), "group", "-w", str(work)])
    return DemoRun(bids, out, work, code_p, code_g)


def planted_and_r(run: DemoRun, subject: str, variant: str = "minilmfrozenL3"):
    import nibabel as nib

    planted = np.asanyarray(nib.load(run.bids / "sourcedata" / "planted" /
                                     "planted_mask.nii.gz").dataobj) > 0
    func = run.out / f"sub-{subject}" / "func"
    mask = np.asanyarray(nib.load(next(func.glob("*_desc-brain_mask.nii.gz"))).dataobj) > 0
    r = np.asanyarray(nib.load(next(func.glob(f"*_stat-r_desc-{variant}_statmap.nii.gz"))).dataobj)
    return planted[mask], r[mask]
