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


def small_demo_dataset(root: Path, *, n_subjects: int = 1, words: int = 60) -> Path:
    """The demo (3 runs per participant) on an 8-slice slab, with random word features.

    The planted signal does not matter to the tests using it (they check files, modes
    and exit codes), so the demo's language model is not run.
    """
    import shutil

    import nibabel as nib
    import pytest

    from bids_app import demo

    def random_features(stories, _work):
        rng = np.random.default_rng(0)
        return {name: rng.standard_normal((len(story), 8)).astype(np.float32)
                for name, story in stories.items()}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "_features", random_features)
        bids = demo.make_demo_dataset(root, n_subjects=n_subjects, seed=7, words_per_story=words)
    shutil.rmtree(bids / "sourcedata", ignore_errors=True)
    for path in sorted(bids.rglob("*.nii.gz")):
        img = nib.load(path)
        affine = img.affine.copy()
        affine[:3, 3] = img.affine[:3, :3] @ [0, 0, 15] + img.affine[:3, 3]
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:, :, 15:23], affine, img.header),
                 path)
    return bids
