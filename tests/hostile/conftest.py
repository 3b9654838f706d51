"""Broken datasets built from one small valid base, and a helper that runs the CLI.

The base (2 participants x 3 runs of the embedded demo, 60 words per story,
cropped to an 8-slice slab of the 4 mm grid, its planted signal driven by random
features instead of a language model's) is written once per session; every case
copies it and breaks one thing. A tiny 2-layer BERT stands in for the
language model so that a full participant run takes seconds.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

TASK = "listening"
SPEC = """\
[[models]]
name = "tiny"
source = "{model}"

[[variants]]
model = "tiny"
method = "frozen"

[features]
layers = [1]
context_words = 5

[encoding]
alphas = [1.0, 100.0, 10000.0]
inner_folds = 2
"""


def _crop_to_slab(bids: Path, z0: int = 15, z1: int = 23) -> None:
    """Keep 8 axial slices of every image (a small grid with brain and background)."""
    import nibabel as nib

    for path in sorted(bids.rglob("*.nii.gz")):
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)[:, :, z0:z1]
        affine = img.affine.copy()
        affine[:3, 3] = img.affine[:3, :3] @ [0, 0, z0] + img.affine[:3, 3]
        nib.save(nib.Nifti1Image(data, affine, img.header), path)


@dataclass
class Base:
    """The valid base dataset and what a run of it needs."""

    bids: Path
    model: Path


def _random_features(stories: dict, _work: Path) -> dict:
    """Stand-in word features: the planted signal does not matter for broken inputs."""
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal((len(words), 8)).astype(np.float32)
            for name, words in stories.items()}


@pytest.fixture(scope="session")
def hostile_base(tmp_path_factory, tiny_bert) -> Base:
    """A valid 2-participant dataset (written once per session)."""
    from bids_app import demo

    root = tmp_path_factory.mktemp("hostile_base")
    with pytest.MonkeyPatch.context() as patch:  # no language model needed to write it
        patch.setattr(demo, "_features", _random_features)
        bids = demo.make_demo_dataset(root / "bids", n_subjects=2, seed=7, words_per_story=60)
    _crop_to_slab(bids)
    return Base(bids=bids, model=Path(tiny_bert))


@dataclass
class Case:
    """One copy of the base dataset, to be broken by a builder."""

    root: Path
    bids: Path
    out: Path
    work: Path
    spec: Path
    model: Path

    def func(self, sub: str) -> Path:
        """The ``func`` folder of participant ``sub``."""
        return self.bids / f"sub-{sub}" / "func"

    def bold(self, sub: str, run: int) -> Path:
        """BOLD file of a participant's run."""
        return self.func(sub) / f"sub-{sub}_task-{TASK}_run-{run}_bold.nii.gz"

    def events(self, sub: str, run: int) -> Path:
        """Events file of a participant's run."""
        return self.func(sub) / f"sub-{sub}_task-{TASK}_run-{run}_events.tsv"

    def write_spec(self, text: str) -> Path:
        """Replace the experiment spec (``{model}`` is the tiny model's folder)."""
        self.spec.write_text(text.replace("{model}", str(self.model)), encoding="utf-8")
        return self.spec

    def argv(self, *extra: str, level: str = "participant") -> list[str]:
        """Command line of a participant run of this case."""
        return [str(self.bids), str(self.out), level, "-w", str(self.work), "--nprocs", "1",
                "--config-file", str(self.spec), *extra]

    def edit_image(self, path: Path, func) -> None:
        """Rewrite a NIfTI image with ``func(data, header) -> data``."""
        import nibabel as nib

        img = nib.load(path)
        data = func(np.asanyarray(img.dataobj), img.header)
        header = img.header.copy()
        header.set_data_dtype(data.dtype)
        nib.save(nib.Nifti1Image(data, img.affine, header), path)

    def statmaps(self, sub: str) -> list[Path]:
        """Stat maps written for participant ``sub``."""
        return sorted((self.out / f"sub-{sub}").rglob("*_statmap.nii.gz"))

    def leftovers(self) -> list[Path]:
        """Temporary files left under OUTPUT_DIR (nothing may remain after a run)."""
        if not self.out.exists():
            return []
        pattern = re.compile(r"(\.tmp|\.part|\.partial|~)(\.|$)")
        return [p for p in self.out.rglob("*")
                if any(pattern.search(part) for part in p.relative_to(self.out).parts)]


@pytest.fixture
def case(hostile_base, tmp_path) -> Case:
    """A fresh copy of the base dataset with the tiny-model spec."""
    bids = tmp_path / "bids"
    shutil.copytree(hostile_base.bids, bids, ignore=shutil.ignore_patterns("sourcedata"))
    spec = tmp_path / "spec.toml"
    made = Case(root=tmp_path, bids=bids, out=tmp_path / "out", work=tmp_path / "work",
                spec=spec, model=hostile_base.model)
    made.write_spec(SPEC)
    return made


@pytest.fixture
def run_cli(capfd, caplog):
    """Run ``brainenc`` in-process; return ``(code, what the user sees)``.

    Logged warnings reach the terminal through the root logger, which pytest
    captures itself; they are appended to the captured output.
    """
    from bids_app.cli import main

    def run(argv: list[str]) -> tuple[int, str]:
        caplog.clear()
        with caplog.at_level("WARNING"):
            code = main(argv)
        captured = capfd.readouterr()
        return code, caplog.text + captured.err + captured.out

    return run


@pytest.fixture(scope="session")
def group_outputs(hostile_base, tmp_path_factory) -> Path:
    """OUTPUT_DIR of a participant run of the base, with sub-01's outputs copied as sub-03.

    Three participants let the group level compute every map (the noise ceiling
    needs three); the copy has the same values as sub-01 under its own names.
    """
    from bids_app.cli import main

    root = tmp_path_factory.mktemp("group_outputs")
    spec = root / "spec.toml"
    spec.write_text(SPEC.replace("{model}", str(hostile_base.model)), encoding="utf-8")
    out = root / "out"
    code = main([str(hostile_base.bids), str(out), "participant", "-w", str(root / "work"),
                 "--nprocs", "1", "--config-file", str(spec)])
    assert code == 0
    for path in sorted((out / "sub-01").rglob("*")):
        target = out / str(path.relative_to(out)).replace("sub-01", "sub-03")
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    return out


@pytest.fixture
def group_case(case, group_outputs) -> Case:
    """A case whose OUTPUT_DIR holds the participant outputs of three participants."""
    shutil.copytree(group_outputs, case.out)
    return case
