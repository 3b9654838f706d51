"""Killed runs resume, reruns are idempotent, parallel jobs share one OUTPUT_DIR.

``brainenc`` runs as a subprocess on a small demo dataset; the test watches the
working directory to kill it while a given step runs (SIGTERM to the main process,
as ``docker stop`` does; SIGKILL to the whole process group, as a scheduler or
``docker kill`` does), then reruns the same command.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bids_app.errors import EXIT_INTERRUPTED, EXIT_OK

#: Temporary names written by stimuli_models.cache / bids_app.io.derivatives.
TEMP = re.compile(r"^\..+\.\d+@[A-Za-z0-9_-]+\.[A-Za-z0-9_]+\.tmp(\.\S*)?$")
STEPS = {"featurize": "brainenc_wf/featurize_*", "encoding": "brainenc_wf/sub_*_wf/fit_*"}
SITE_HOOK = '''
import os
from pathlib import Path


def _record(kind, what):
    fd = os.open(os.environ["BRAINENC_BUILD_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{kind} {what} {os.getpid()}\\n".encode())
    os.close(fd)


import stimuli_models.story_features as _featurize
import stimuli_models.tuning as _tuning

_compute = _featurize.compute_features


def compute_features(words, *args, **kwargs):
    _record("features", "-".join(words[:3]).replace(" ", "_"))
    return _compute(words, *args, **kwargs)


_featurize.compute_features = compute_features
_get_method = _tuning.get_method


def get_method(*args, **kwargs):
    method = _get_method(*args, **kwargs)
    tune = method.tune

    def recorded(*a, **k):
        _record("tune", method.name if hasattr(method, "name") else args[0])
        return tune(*a, **k)

    method.tune = recorded
    return method


_tuning.get_method = get_method
'''


#: Makes the step to interrupt last long enough to be caught running, whatever the
#: machine's speed: the fit sleeps before computing; each story after the first sleeps
#: before its featurization. Results are unchanged (only time is added).
DELAY_HOOK = '''
import os
import time

_DELAY = float(os.environ.get("BRAINENC_TEST_DELAY", "0"))
_STEP = os.environ.get("BRAINENC_TEST_DELAY_STEP", "")

if _DELAY and _STEP == "encoding":
    import bids_app.participant as _participant

    _fit = _participant.fit_encoding

    def fit_encoding(*args, **kwargs):
        time.sleep(_DELAY)
        return _fit(*args, **kwargs)

    _participant.fit_encoding = fit_encoding
elif _DELAY and _STEP == "featurize":
    import stimuli_models.story_features as _featurize

    _compute, _calls = _featurize.compute_features, []

    def compute_features(*args, **kwargs):
        if _calls:
            time.sleep(_DELAY)
        _calls.append(1)
        return _compute(*args, **kwargs)

    _featurize.compute_features = compute_features
'''


def _delayed_env(root: Path, step: str, seconds: float = 30.0) -> dict:
    """Environment whose Python processes run ``step`` ``seconds`` later than usual."""
    hook = root / "delay-hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(DELAY_HOOK)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "BRAINENC_TEST_DELAY": str(seconds),
            "BRAINENC_TEST_DELAY_STEP": step}


def _dataset(root: Path, n_subjects: int = 1) -> Path:
    from bids_app.demo import make_demo_dataset

    bids = root / "bids"
    make_demo_dataset(bids, n_subjects=n_subjects, seed=5, words_per_story=80)
    return bids


def _command(bids: Path, out: Path, work: Path, *extra: str, nprocs: int = 2) -> list[str]:
    return [sys.executable, "-m", "bids_app", str(bids), str(out), "participant", "-w", str(work),
            "--nprocs", str(nprocs), *extra]


def _start(command, env=None) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _node_results(work: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in work.glob("brainenc_wf/**/result_*.pklz")}


def _kill_during(proc: subprocess.Popen, work: Path, out: Path, step: str, sig: int,
                 timeout: float = 400) -> dict:
    """Send ``sig`` once ``step`` has started (and not finished); return what existed then."""
    started, deadline = None, time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        nodes = [n for n in work.glob(STEPS[step]) if not list(n.glob("result_*.pklz"))]
        if nodes and started is None:
            started = time.monotonic()
        features = list((out / "stimuli" / "features").glob("*.npy"))
        ready = step == "encoding" or bool(features)
        if nodes and (ready or time.monotonic() - started > 8.0):
            time.sleep(0.5 if step == "featurize" else 1.5)
            if list(nodes[0].glob("result_*.pklz")):  # finished meanwhile: try again
                continue
            before = {"results": _node_results(work),
                      "features": {p: p.stat().st_mtime_ns
                                   for p in (out / "stimuli" / "features").glob("*.npy")}}
            if sig == signal.SIGKILL:  # the whole job, like a scheduler or `docker kill`
                os.killpg(proc.pid, signal.SIGKILL)
            else:  # the main process only, like `docker stop`
                os.kill(proc.pid, sig)
            return before
        time.sleep(0.1)
    raise AssertionError(f"the run ended before or never reached {step} (code {proc.poll()})")


def _wait_group_gone(pgid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {pgid} still run {timeout} s after the kill")


def _check_complete(path: Path) -> None:
    """Raise if the file at a final name is truncated or unreadable."""
    name = path.name
    if name.endswith(".json"):
        json.loads(path.read_text(encoding="utf-8"))
    elif name.endswith(".nii.gz"):
        import nibabel as nib

        with gzip.open(path) as handle:  # CRC and length of the gzip stream
            handle.read()
        np.asarray(nib.load(path).dataobj)
    elif name.endswith(".npy"):
        np.load(path)
    elif name.endswith(".tsv"):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines and len({len(line.split("\t")) for line in lines}) == 1, path
    elif name.endswith(".html"):
        assert path.read_text(encoding="utf-8").rstrip().endswith("</html>"), path


def _scan_outputs(out: Path) -> list[Path]:
    """Check every file at a final name; return the temporaries found."""
    temporaries = []
    for path in sorted(out.rglob("*")):
        if path.is_dir():
            continue
        if TEMP.match(path.name):
            temporaries.append(path)
        else:
            _check_complete(path)
    return temporaries


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every output file's bytes, except per-invocation logs."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.relative_to(out).parts[0] != "logs"}


def _reference(root: Path, bids: Path, nprocs: int) -> dict[str, bytes]:
    """Outputs of an uninterrupted run of the command (the folders are then removed)."""
    code, err = _finish(_start(_command(bids, root / "out", root / "work", nprocs=nprocs)))
    assert code == EXIT_OK, err[-3000:]
    snapshot = _snapshot(root / "out")
    shutil.rmtree(root / "out")
    shutil.rmtree(root / "work")
    return snapshot


def _assert_identical(resumed: dict, expected: dict) -> None:
    assert sorted(resumed) == sorted(expected)
    different = [name for name in expected if resumed[name] != expected[name]]
    details = {}
    for name in different:
        if name.endswith(".json"):
            a, b = json.loads(resumed[name]), json.loads(expected[name])
            details[name] = {k: (a.get(k), b.get(k)) for k in set(a) | set(b)
                             if a.get(k) != b.get(k)}
    assert different == [], details


def _interrupt_and_resume(root: Path, bids: Path, step: str, sig: int, nprocs: int):
    out, work = root / "out", root / "work"
    command = _command(bids, out, work, nprocs=nprocs)
    proc = _start(command, env=_delayed_env(root, step))
    before = _kill_during(proc, work, out, step, sig)
    code, err = _finish(proc, timeout=120)
    _wait_group_gone(proc.pid)
    if sig == signal.SIGTERM:
        assert code == EXIT_INTERRUPTED, err[-3000:]
        assert "interrupted; rerun the same command to resume" in err
        assert "Traceback" not in err
        assert _scan_outputs(out) == []  # the run cleaned up after itself
    else:
        assert code == -signal.SIGKILL
        _scan_outputs(out)  # temporaries may remain; every final name is complete
    code, err = _finish(_start(command))
    assert code == EXIT_OK, err[-3000:]
    assert _scan_outputs(out) == []  # temporaries of the killed run are gone
    # what had finished before the kill was reused, not recomputed
    for path, mtime in {**before["results"], **before["features"]}.items():
        assert path.stat().st_mtime_ns == mtime, path
    return before, out, work


LINEAR_SCRIPT = """
import sys, time
from nipype.interfaces.utility import Function
from nipype.pipeline import engine as pe
from bids_app.interrupt import sigterm_as_interrupt, stop_if_interrupted


def step(seconds, log):
    import time
    open(log, "a").write("start\\n")
    time.sleep(seconds)
    open(log, "a").write("end\\n")
    return seconds


wf = pe.Workflow(name="wf", base_dir=sys.argv[1])
first = pe.Node(Function(input_names=["seconds", "log"], output_names=["out"], function=step),
                name="first")
second = first.clone("second")
for node in (first, second):
    node.inputs.seconds, node.inputs.log = 30, sys.argv[2]
wf.connect(first, "out", second, "seconds")
try:
    with sigterm_as_interrupt():
        wf.run(plugin="Linear", plugin_args={"status_callback": stop_if_interrupted})
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(0)
"""


def test_signal_inside_a_linear_step_stops_the_workflow(tmp_path):
    """nipype turns an exception inside a step into a failure and goes on; the status
    callback stops the workflow instead."""
    log, script = tmp_path / "log.txt", tmp_path / "linear.py"
    script.write_text(LINEAR_SCRIPT)  # nipype's Function interface reads the source
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(log)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (log.exists() and "start" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 20
    assert log.read_text().split() == ["start"]  # the second step never started


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from stimuli_models.cache import atomic_file, remove_stale_temporaries, temp_prefix

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "sub-01" / "func"
    folder.mkdir(parents=True)
    mine = temp_prefix(folder / "a.nii.gz").replace(f".{os.getpid()}@", f".{dead.pid}@")
    stale = folder / f"{mine}abc_12.tmp.nii.gz"
    stale.write_bytes(b"half")
    stale_dir = tmp_path / f"{temp_prefix(tmp_path / 'm')}x1.tmp".replace(
        f".{os.getpid()}@", f".{dead.pid}@")
    stale_dir.mkdir()
    live = folder / f"{temp_prefix(folder / 'b.json')}zz.tmp"  # a running job's
    live.write_text("{")
    other_host = folder / f".c.json.{dead.pid}@otherhost.q1.tmp"
    other_host.write_text("{")
    assert all(TEMP.match(p.name) for p in (stale, stale_dir, live, other_host))
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir])
    assert live.exists() and other_host.exists() and not stale.exists()
    with atomic_file(folder / "d.json", "w") as handle:  # what the writers name their files
        handle.write("{}")
        names = {p.name for p in folder.iterdir()} - {live.name, other_host.name}
        assert len(names) == 1 and TEMP.match(names.pop())
    assert (folder / "d.json").read_text() == "{}"


def test_sigterm_during_encoding_stops_cleanly_and_resumes(tmp_path):
    """One process (nipype's Linear plugin): the signal lands inside the running step."""
    bids = _dataset(tmp_path)
    expected = _reference(tmp_path, bids, nprocs=1)
    before, out, work = _interrupt_and_resume(tmp_path, bids, "encoding", signal.SIGTERM,
                                              nprocs=1)
    assert before["features"]  # featurization had finished, and was reused
    assert any("featurize" in str(p) for p in before["results"])
    _assert_identical(_snapshot(out), expected)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run (MultiProc) of the same command, in the same folders."""
    root = tmp_path_factory.mktemp("resume")
    bids = _dataset(root)
    return root, bids, _reference(root, bids, nprocs=2)


@pytest.mark.parametrize(("step", "sig"), [
    pytest.param("featurize", signal.SIGTERM, id="featurize-SIGTERM", marks=pytest.mark.slow),
    pytest.param("featurize", signal.SIGKILL, id="featurize-SIGKILL", marks=pytest.mark.slow),
    pytest.param("encoding", signal.SIGTERM, id="encoding-SIGTERM", marks=pytest.mark.slow),
    # the whole job killed mid-fit, two processes: in the default suite
    pytest.param("encoding", signal.SIGKILL, id="encoding-SIGKILL"),
])
def test_resumed_outputs_are_byte_identical(reference, step, sig):
    root, bids, expected = reference
    try:
        _, out, work = _interrupt_and_resume(root, bids, step, sig, nprocs=2)
        _assert_identical(_snapshot(out), expected)
        if step == "encoding" and sig == signal.SIGKILL:  # a further rerun changes nothing
            results = _node_results(work)
            code, err = _finish(_start(_command(bids, out, work, nprocs=2)))
            assert code == EXIT_OK, err[-3000:]
            _assert_identical(_snapshot(out), expected)
            assert _node_results(work) == results
    finally:
        shutil.rmtree(root / "out", ignore_errors=True)
        shutil.rmtree(root / "work", ignore_errors=True)


def test_parallel_participant_jobs_share_one_output_dir(tmp_path):
    """Two participant jobs at once (a SLURM array): both succeed, shared work built once."""
    bids = _dataset(tmp_path, n_subjects=2)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITE_HOOK)
    record = tmp_path / "builds.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get(
        "PYTHONPATH", "")]), "BRAINENC_BUILD_RECORD": str(record)}
    out = tmp_path / "out"
    jobs = [_start(_command(bids, out, tmp_path / f"work-{s}", "--participant-label", s,
                            nprocs=1), env=env)
            for s in ("01", "02")]
    results = [_finish(job) for job in jobs]
    for code, err in results:
        assert code == EXIT_OK, err[-3000:]
    builds = [line.split() for line in record.read_text().splitlines()]
    features = [b[1] for b in builds if b[0] == "features"]
    tunes = [b for b in builds if b[0] == "tune"]
    assert len(features) == len(set(features)) == 3, builds  # each story featurized once
    assert len(tunes) == 1, builds  # the model prepared once
    assert len(list((out / "stimuli" / "features").glob("*.npy"))) == 3
    for subject in ("01", "02"):
        assert list(out.glob(f"sub-{subject}/func/*_stat-r_desc-*_statmap.nii.gz"))
        assert (out / f"sub-{subject}.html").exists()
    assert _scan_outputs(out) == []  # every file complete, no temporaries
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
