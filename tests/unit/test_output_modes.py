"""Files and folders published by the atomic writers get the mode the umask gives.

``tempfile.mkstemp``/``mkdtemp`` create 0600/0700 paths whatever the umask; every
writer that renames one into OUTPUT_DIR must hand it the mode a plain ``open`` or
``mkdir`` would have given it (0644/0755 under umask 022, 0664/0775 under 002).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

UMASKS = [0o022, 0o002, 0o077]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _plain_modes(tmp_path: Path) -> tuple[int, int]:
    """Modes that open() and mkdir() give under the current umask, for comparison."""
    plain_file, plain_dir = tmp_path / "plain.txt", tmp_path / "plain"
    plain_file.write_text("x")
    plain_dir.mkdir()
    return _mode(plain_file), _mode(plain_dir)


def test_current_umask_reads_without_changing(umask):
    from stimuli_models.cache import current_umask, umask_mode

    assert current_umask() == umask
    assert current_umask() == umask  # reading twice: it was not changed by the first read
    assert umask_mode() == 0o666 & ~umask
    assert umask_mode(directory=True) == 0o777 & ~umask


def test_current_umask_without_proc(umask, monkeypatch):
    from stimuli_models import cache

    def no_proc(*_args, **_kwargs):
        raise FileNotFoundError("/proc/self/status")

    monkeypatch.setattr(cache, "open", no_proc, raising=False)
    assert cache.current_umask() == umask
    assert cache.current_umask() == umask


def test_cache_writers_follow_umask(umask, tmp_path):
    from stimuli_models.cache import atomic_dir, atomic_file, atomic_save_npy, atomic_write_json

    file_mode, dir_mode = _plain_modes(tmp_path)
    assert (file_mode, dir_mode) == (0o666 & ~umask, 0o777 & ~umask)
    atomic_save_npy(tmp_path / "a.npy", np.zeros(3))
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    with atomic_file(tmp_path / "a.bin") as handle:
        handle.write(b"1")
    with atomic_dir(tmp_path / "folder") as folder:
        (folder / "inside.txt").write_text("x")
    for name in ("a.npy", "a.json", "a.bin", "folder/inside.txt"):
        assert _mode(tmp_path / name) == file_mode, name
    assert _mode(tmp_path / "folder") == dir_mode
    # replacing a file gives the new file the mode too (not the old file's)
    os.chmod(tmp_path / "a.json", 0o600)
    atomic_write_json(tmp_path / "a.json", {"a": 2})
    assert _mode(tmp_path / "a.json") == file_mode
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_derivative_writers_follow_umask(umask, tmp_path):
    import nibabel as nib

    from bids_app.io.derivatives import write_json, write_nifti, write_text

    file_mode, _ = _plain_modes(tmp_path)
    write_text(tmp_path / "sub-01" / "a.tsv", "a\tb\n")
    write_json(tmp_path / "a.json", {"a": 1})
    write_nifti(tmp_path / "a_statmap.nii.gz", nib.Nifti1Image(np.zeros((2, 2, 2)), np.eye(4)))
    for name in ("sub-01/a.tsv", "a.json", "a_statmap.nii.gz"):
        assert _mode(tmp_path / name) == file_mode, name
    assert _mode(tmp_path / "sub-01") == 0o777 & ~umask


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("mask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_tuned_model_folder_follows_umask(mask, tmp_path, tiny_bert):
    from bids_app.config import ModelEntry, TaskEntry
    from bids_app.tuning import ensure_tuned
    from bids_app.variants import Extractor
    from tests.helpers.nlu import make_examples

    task_file = tmp_path / "sent.tsv"
    rows = make_examples("sequence-classification", 32, seed=0)
    task_file.write_text("".join(f"{r['text']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    task = TaskEntry(name="sent", type="sequence-classification",
                     options={"train": str(task_file), "format": "tsv",
                              "columns": ["text", "label"]})
    model = ModelEntry(name="tiny", source=str(tiny_bert))
    extractor = Extractor(label="tinylorasent", model=model,
                          model_dir=str(tiny_bert), method="lora", settings={"r": 4}, task=task,
                          layers=[1]).to_json()
    training = {"max_steps": 2, "epochs": 100.0, "learning_rate": 1e-2, "eval_every": 2,
                "max_length": 16}
    out = tmp_path / "out"
    old = os.umask(mask)
    try:
        record, trained = ensure_tuned(extractor, str(out), seed=0, device="cpu",
                                       training=training)
    finally:
        os.umask(old)
    assert trained
    folder = record.parent
    assert folder == out / "models" / "tinylorasent" and _mode(folder) == 0o777 & ~mask
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {"tuning.json", "resolved_config.json", "tuned.safetensors"} <= {p.name for p in files}
    for path in folder.rglob("*"):
        expected = 0o777 & ~mask if path.is_dir() else 0o666 & ~mask
        assert _mode(path) == expected, path
