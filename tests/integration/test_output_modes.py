"""Every output of a real participant + group run gets the mode the umask gives.

A lab shares OUTPUT_DIR through the umask (022: everyone reads; 002: the group
writes too). The command runs in a fresh process with the umask set, a tuned
variant included, and every file and folder it leaves in OUTPUT_DIR (maps,
sidecars, tables, reports, figures, logs, the experiment spec, cached word
features and stories, tuned models, locks) is checked.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.demo import small_demo_dataset
from tests.helpers.tuned_spec import tiny_tuned_spec, write_sentiment_task

SECTIONS = """
[features]
layers = [1]
context_words = 5

[training]
max_steps = 2
epochs = 100.0
learning_rate = 0.01
eval_every = 2
max_length = 16

[encoding]
alphas = [1.0, 100.0, 10000.0]
inner_folds = 2
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_bert):
    root = tmp_path_factory.mktemp("modes")
    bids = small_demo_dataset(root / "bids", n_subjects=2, words=60)
    task = write_sentiment_task(root / "sent.tsv", 32)
    spec = root / "spec.toml"
    spec.write_text(tiny_tuned_spec(tiny_bert, task, SECTIONS), encoding="utf-8")
    return bids, spec


def _brainenc(mask: int, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "brainenc"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=900,
                          preexec_fn=lambda: os.umask(mask))  # noqa: PLW1509 (no threads here)


@pytest.mark.parametrize("mask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_every_output_follows_the_umask(inputs, tmp_path, mask):
    bids, spec = inputs
    out, work = tmp_path / "out", tmp_path / "work"
    common = ["-w", str(work), "--config-file", str(spec), "--nprocs", "1"]
    proc = _brainenc(mask, str(bids), str(out), "participant", *common)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    proc = _brainenc(mask, str(bids), str(out), "group", *common)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    wrong, kinds = [], set()
    for folder, dirs, files in os.walk(out):
        for name in dirs:
            path = Path(folder) / name
            if stat.S_IMODE(path.stat().st_mode) != dir_mode:
                wrong.append(f"{stat.S_IMODE(path.stat().st_mode):o} {path}")
        for name in files:
            path = Path(folder) / name
            kinds.add(path.relative_to(out).parts[0] if len(path.relative_to(out).parts) > 1
                      else path.suffix)
            if stat.S_IMODE(path.stat().st_mode) != file_mode:
                wrong.append(f"{stat.S_IMODE(path.stat().st_mode):o} {path}")
    assert wrong == [], f"expected {file_mode:o}/{dir_mode:o}: " + "\n".join(wrong[:30])
    # every kind of output was there to be checked
    assert {"sub-01", "sub-02", "group", "models", "stimuli", "logs", ".html", ".json"} <= kinds
    assert list((out / "sub-01" / "func").glob("*_stat-r_desc-*_statmap.nii.gz"))
    assert list((out / "models").rglob("*.safetensors"))
    assert (out / "group" / "group.html").is_file()
