"""Faults while running: full or read-only disk, no network, and determinism under a seed.

Every run here uses ``--nprocs 1`` (nipype's Linear plugin), so the whole
pipeline runs in this process and the monkeypatched faults reach every step.
"""

from __future__ import annotations

import errno
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from bids_app.errors import EXIT_OK, EXIT_RESOURCE

from .conftest import SPEC, Case


def _final_maps_load(case: Case, sub: str) -> None:
    """Every stat map at a final name is a complete, finite image."""
    import nibabel as nib

    maps = case.statmaps(sub)
    assert len(maps) >= 3
    for path in maps:
        data = np.asanyarray(nib.load(path).dataobj)
        assert np.isfinite(data).all(), path


def _fail_writes(monkeypatch, out: Path, error: int, *, when: str) -> list[str]:
    """Make writes of files under ``out`` whose name contains ``when`` fail with ``error``.

    The failing write leaves half of the file behind first, as a full disk does.
    """
    import nibabel as nib

    failed: list[str] = []
    real_save = nib.save

    def save(img, filename, *args, **kwargs):
        name = str(filename)
        if name.startswith(str(out)) and when in Path(name).name:
            Path(name).write_bytes(b"\x1f\x8b partial")
            failed.append(name)
            raise OSError(error, errno.errorcode[error] and __import__("os").strerror(error))
        return real_save(img, filename, *args, **kwargs)

    monkeypatch.setattr(nib, "save", save)
    return failed


@pytest.mark.parametrize("error", [errno.ENOSPC, pytest.param(errno.EROFS, marks=pytest.mark.slow)],
                         ids=["disk-full", "read-only"])
def test_write_failure_stops_cleanly_and_rerun_completes(case, run_cli, monkeypatch, error):
    argv = case.argv("--participant-label", "01")
    with monkeypatch.context() as patch:
        failed = _fail_writes(patch, case.out, error, when="stat-r2_")
        code, err = run_cli(argv)
    assert failed, "the simulated fault was never reached"
    assert code == EXIT_RESOURCE, err
    assert "Traceback" not in err
    assert "cannot write '" in err and "_stat-r2_" in err and "rerun" in err, err
    assert ("No space left" in err) if error == errno.ENOSPC else ("Read-only" in err), err
    assert not case.leftovers(), case.leftovers()
    assert not list(case.out.rglob("*_stat-r2_*_statmap.nii.gz"))  # nothing half-written
    for path in case.statmaps("01"):  # what was written before the fault is complete
        import nibabel as nib

        assert np.isfinite(np.asanyarray(nib.load(path).dataobj)).all()

    code, err = run_cli(argv)  # the disk is fixed: the same command completes
    assert code == EXIT_OK, err
    _final_maps_load(case, "01")
    assert list(case.out.rglob("*_stat-r2_*_statmap.nii.gz"))
    assert not case.leftovers()


def test_unwritable_temporary_folder_is_a_resource_error(case, run_cli, monkeypatch):
    """Failing to create the temporary file itself (read-only folder) is reported too."""
    import tempfile

    real = tempfile.mkstemp
    out = str(case.out / "sub-01")

    def mkstemp(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(out):
            raise PermissionError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    code, err = run_cli(case.argv("--participant-label", "01"))
    assert code == EXIT_RESOURCE, err
    assert "Read-only file system" in err and "sub-01" in err
    assert "Traceback" not in err
    assert not case.statmaps("01")


# --------------------------------------------------------------------------- no network
class _Recorder:
    def __init__(self):
        self.attempts: list[str] = []

    def connect(self, sock, address, *args):
        self.attempts.append(f"connect {address}")
        raise OSError(errno.ENETUNREACH, "network blocked by the test")

    def getaddrinfo(self, host, *args, **kwargs):
        self.attempts.append(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, "network blocked by the test")


def _copy_base(base, root: Path) -> Case:
    bids = root / "bids"
    shutil.copytree(base.bids, bids, ignore=shutil.ignore_patterns("sourcedata"))
    made = Case(root=root, bids=bids, out=root / "out", work=root / "work",
                spec=root / "spec.toml", model=base.model)
    made.write_spec(SPEC)
    return made


@pytest.fixture(scope="module")
def seeded_runs(hostile_base, tmp_path_factory):
    """Three full participant runs with sockets blocked: seeds 0, 0 and 1."""
    from bids_app.cli import main

    recorder = _Recorder()
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", recorder.connect)
        patch.setattr(socket.socket, "connect_ex", recorder.connect)
        patch.setattr(socket, "getaddrinfo", recorder.getaddrinfo)
        patch.setattr(socket, "create_connection",
                      lambda address, *a, **k: recorder.connect(None, address))
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NIPYPE_NO_ET", "NO_ET",
                     "HF_HUB_DISABLE_TELEMETRY"):  # brainenc must set these itself
            patch.delenv(name, raising=False)
        for key, seed in (("a", 0), ("b", 0), ("c", 1)):
            made = _copy_base(hostile_base, tmp_path_factory.mktemp(f"seed{key}"))
            code = main(made.argv("--participant-label", "01", "--random-seed", str(seed)))
            runs[key] = (made, code)
    return runs, recorder.attempts


def test_no_network_during_a_full_participant_run(seeded_runs):
    runs, attempts = seeded_runs
    for made, code in runs.values():
        assert code == EXIT_OK
        _final_maps_load(made, "01")
        assert (made.out / "sub-01.html").exists()
    assert attempts == [], attempts


def _outputs(case: Case) -> dict[str, Path]:
    func = case.out / "sub-01" / "func"
    return {p.name: p for p in sorted(func.iterdir()) if p.suffix in (".gz", ".tsv", ".json")}


def test_same_seed_gives_byte_identical_maps_and_tables(seeded_runs):
    runs, _ = seeded_runs
    first, second = _outputs(runs["a"][0]), _outputs(runs["b"][0])
    assert first.keys() == second.keys()
    assert any(name.endswith("_statmap.nii.gz") for name in first)
    assert any(name.endswith("_scores.tsv") for name in first)
    for name in first:
        if name.endswith((".nii.gz", ".tsv")):
            assert first[name].read_bytes() == second[name].read_bytes(), name


def _flat(data, prefix=""):
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def test_other_seed_changes_only_what_is_random(seeded_runs):
    import nibabel as nib

    runs, _ = seeded_runs
    first, other = _outputs(runs["a"][0]), _outputs(runs["c"][0])
    assert first.keys() == other.keys()
    compared, changed = [], []
    for name, path in first.items():
        if not name.endswith("_statmap.json"):
            continue
        top = json.loads(path.read_text())
        meta_a, meta_c = _flat(top), _flat(json.loads(other[name].read_text()))
        differing = {k for k in meta_a.keys() | meta_c.keys() if meta_a.get(k) != meta_c.get(k)}
        # the seed, the hash of the seeded tuning step it enters, and (for permutation
        # tests) the null distribution's summary are all that differ
        allowed = {"RandomSeed", "TuningHash"}
        if "NPermutations" in top:
            allowed |= {"NullFoldCorrelation"}
        assert "RandomSeed" in differing and differing <= allowed, (name, differing)
        assert (meta_a["RandomSeed"], meta_c["RandomSeed"]) == (0, 1)
        image = name.replace(".json", ".nii.gz")
        a = np.asanyarray(nib.load(first[image]).dataobj)
        c = np.asanyarray(nib.load(other[image]).dataobj)
        if "NPermutations" in top:  # seeded resampling: p (and q from it) may change
            changed.append(not np.array_equal(a, c))
        elif top.get("Statistic") != "q":  # ridge fits under leave-one-run-out use no RNG
            assert np.array_equal(a, c), image
            compared.append(image)
    assert any("_stat-r_" in name for name in compared)
    assert not changed or any(changed), "permutation maps ignore the seed"
