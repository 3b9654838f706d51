"""What the image build needs, checked without an engine: the test stage has what the
tests load, the compile step copes with torch's newer-syntax files, and the script that
builds and runs the image in CI refuses bad settings and skips cleanly without an engine.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.helpers.dockerfile import ROOT, get_stage, parse_dockerfile, run_commands


def test_test_stage_copies_what_the_tests_load():
    """The suite run at build time imports tests.helpers, benchmarks and examples."""
    test = get_stage(parse_dockerfile(), "test")
    copied = {text.split()[0] for keyword, text in test["instructions"]
              if keyword == "COPY" and not text.startswith("--from")}
    assert {"tests", "benchmarks", "examples", "scripts", "descriptor.json"} <= copied
    loaded = set()
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        loaded |= {name for name in ("benchmarks", "examples")
                   if re.search(rf"\b{name}\b[/.]|\"{name}\"", text)}
    assert loaded <= copied


def test_compileall_skips_torch_files_in_newer_syntax(tmp_path):
    """torch ships test helpers in Python 3.12 syntax; the image's compileall step must
    skip them (3.11 cannot compile them) and still compile everything else."""
    command = next(c for c in run_commands(get_stage(parse_dockerfile(), "builder"))
                   if "compileall" in c)
    words = shlex.split(command[command.index("compileall"):].split("&&")[0])
    exclude = words[words.index("-x") + 1]
    lib = tmp_path / "lib"
    newer = lib / "site-packages" / "torch" / "testing" / "_internal" / "py312_intrinsics.py"
    newer.parent.mkdir(parents=True)
    newer.write_text("type Alias[T] = list[T]\n", encoding="utf-8")
    plain = lib / "site-packages" / "bids_app" / "module.py"
    plain.parent.mkdir(parents=True)
    plain.write_text("VALUE = 1\n", encoding="utf-8")
    if sys.version_info < (3, 12):  # the failure the exclusion avoids
        bare = subprocess.run([sys.executable, "-m", "compileall", "-q", str(lib)],
                              capture_output=True, text=True, timeout=120)
        assert bare.returncode != 0
    proc = subprocess.run([sys.executable, "-m", "compileall", "-q", "-x", exclude, str(lib)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(plain.parent.glob("__pycache__/module.*.pyc"))
    assert not newer.parent.joinpath("__pycache__").exists()


SCRIPT = ROOT / "scripts" / "container-test.sh"


def _script(tmp_path, **env) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "docker").exists())  # no docker client either
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={"PATH": path, "STATE_DIR": str(tmp_path), **env})


def test_container_script_skips_without_an_engine(tmp_path):
    """No engine to use: exit 77 (CI reports the stage as skipped), one sentence saying why."""
    proc = _script(tmp_path, CONTAINER_ENGINE="docker")
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "container: skipped: CONTAINER_ENGINE=docker but no Docker daemon answers "
        "('docker info')")
    ci = ROOT / ".ci" / "run"  # not in the image (the build context leaves .ci out)
    if ci.exists():
        text = ci.read_text(encoding="utf-8")
        assert "scripts/container-test.sh" in text and '= 77 ]' in text


def test_container_script_rejects_an_unknown_torch_build(tmp_path):
    proc = _script(tmp_path, TORCH_BUILD="rocm")
    assert proc.returncode == 2
    assert "'TORCH_BUILD' must be one of {cpu, cuda}; got 'rocm'" in proc.stderr
