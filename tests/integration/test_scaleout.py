"""Scale-out: shared work once per dataset, nipype plugins from files, GPU slots, --device."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bids_app.cli import main
from bids_app.errors import EXIT_RESOURCE, UsageError

ROOT = Path(__file__).resolve().parents[2]
N_SUBJECTS, N_EXTRACTORS = 12, 8


def _fabricated_inputs(tmp_path: Path):
    """A plan of 12 participants and 8 extractors (one layer each): 8 variants."""
    from bids_app.config import ModelEntry, TaskEntry, default_spec
    from bids_app.plan import Plan, SubjectPlan
    from bids_app.variants import Extractor, Variant

    stories = []
    for name in ("lighthouse", "market"):
        path = tmp_path / "stories" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": name, "words": ["a", "b"]}))
        stories.append(str(path))
    subjects = []
    for index in range(1, N_SUBJECTS + 1):
        folder = tmp_path / f"sub-{index:02d}"
        folder.mkdir()
        (folder / "runs.json").write_text("[]")
        tables = []
        for run in (1, 2):
            table = folder / f"run-{run}_words.tsv"
            table.write_text("onset\tduration\tword\n")
            tables.append(str(table))
        subjects.append(SubjectPlan(f"{index:02d}", [], str(folder / "runs.json"), tables))
    plan = Plan(subjects, ["lighthouse", "market"], stories)
    methods = ("frozen", "full", "lora", "prompt")
    extractors, variants = [], []
    for index in range(N_EXTRACTORS):
        method = methods[index % len(methods)]
        task = TaskEntry(name=f"task{index // len(methods)}", type="classification")
        label = f"minilm{method}{task.name}"
        extractor = Extractor(label=label, model=ModelEntry(), model_dir=str(tmp_path),
                              method=method, task=task, layers=[3])
        extractors.append(extractor)
        variants.append(Variant(label=f"{label}L3", extractor=extractor, layer=3,
                                layer_position=0))
    return plan, extractors, variants, default_spec()


def _build(tmp_path: Path, device: str = "cpu", backend: str = "torch"):
    from bids_app.workflows.base import init_brainenc_wf

    plan, extractors, variants, spec = _fabricated_inputs(tmp_path)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text("")
    workflow = init_brainenc_wf(
        plan=plan, extractors=extractors, variants=variants, spec=spec, spec_file=str(spec_file),
        output_dir=str(tmp_path / "out"), bids_dir=str(tmp_path / "bids"),
        work_dir=str(tmp_path / "work"), seed=0, device=device, backend=backend, omp_nthreads=2)
    return workflow._create_flat_graph(), extractors


def _kind(node) -> str:
    return node.name.split("_", 1)[0]


def _subject(node) -> str | None:
    parts = node.fullname.split(".")
    return next((p[4:-3] for p in parts if p.startswith("sub_") and p.endswith("_wf")), None)


def _readers(graph, node) -> list:
    """Nodes that read ``node``'s outputs, looking through identity (input) nodes and
    through the store sinks that publish them."""
    from nipype.interfaces.utility import IdentityInterface

    from bids_app.interfaces import StoreSink

    found, todo = [], list(graph.successors(node))
    while todo:
        successor = todo.pop()
        if isinstance(successor.interface, IdentityInterface | StoreSink):
            todo.extend(graph.successors(successor))
        else:
            found.append(successor)
    return found


def test_subject_independent_work_runs_once_per_dataset(tmp_path):
    graph, extractors = _build(tmp_path)
    nodes = list(graph.nodes())
    count = {kind: sum(_kind(n) == kind for n in nodes if n.name != "write_clean_bold")
             for kind in ("tune", "featurize", "fit", "design", "write", "prepare")}
    assert count["tune"] == N_EXTRACTORS  # not 12 x 8 = 96
    assert count["featurize"] == N_EXTRACTORS
    assert count["fit"] == count["design"] == count["write"] == N_SUBJECTS * N_EXTRACTORS
    assert count["prepare"] == N_SUBJECTS
    # the held-out BOLD for the noise ceiling is written once per participant, not per variant
    assert sum(n.name == "write_clean_bold" for n in nodes) == N_SUBJECTS
    for node in nodes:
        if _kind(node) == "featurize":  # every participant reads the one featurization
            readers = {_subject(s) for s in _readers(graph, node) if _kind(s) == "design"}
            assert readers == {f"{i:02d}" for i in range(1, N_SUBJECTS + 1)}
        if _kind(node) == "tune":
            successors = _readers(graph, node)
            assert sum(_kind(s) == "featurize" for s in successors) == 1
            assert len({_subject(s) for s in successors if _kind(s) == "write"}) == N_SUBJECTS
        if _kind(node) in ("tune", "featurize"):
            assert _subject(node) is None  # in the top workflow, not in a participant's


@pytest.mark.parametrize(("device", "backend"), [("cuda", "torch_cuda"), ("cpu", "torch")])
def test_gpu_nodes_declare_the_gpu(tmp_path, device, backend):
    graph, _ = _build(tmp_path, device=device, backend=backend)
    on_gpu = {_kind(n) for n in graph.nodes() if n.is_gpu_node()}
    if device == "cuda":
        assert on_gpu == {"tune", "featurize", "fit"}
    else:
        assert on_gpu == set()


def _options(plugin_file: Path | None, mem_mb=None):
    return SimpleNamespace(use_plugin=plugin_file, mem_mb=mem_mb)


def test_plugin_files(tmp_path):
    from bids_app.run import _plugin

    linear = tmp_path / "linear.yml"
    linear.write_text("plugin: Linear\n")
    assert _plugin(_options(linear), 4) == ("Linear", {})
    multiproc = tmp_path / "multiproc.yml"
    multiproc.write_text("plugin: MultiProc\nplugin_args:\n  n_procs: 3\n  memory_gb: 5\n")
    name, args = _plugin(_options(multiproc), 8)
    assert name == "MultiProc"
    assert args["n_procs"] == 3 and args["memory_gb"] == 5  # the file wins
    assert args["n_gpu_procs"] == 1 and args["mp_context"] == "forkserver"  # defaults kept
    name, args = _plugin(_options(ROOT / "examples" / "slurm" / "slurm_plugin.yml"), 8)
    assert name == "SLURM" and "--mem=" in args["sbatch_args"]
    name, args = _plugin(_options(ROOT / "examples" / "slurm" / "multiproc.yml"), 2)
    assert name == "MultiProc" and args["n_procs"] == 8 and args["n_gpu_procs"] == 1
    # without a file: MultiProc from --nprocs/--mem, Linear for one process
    name, args = _plugin(_options(None, mem_mb=2048), 3)
    assert name == "MultiProc" and args["n_procs"] == 3 and args["memory_gb"] == 2.0
    assert _plugin(_options(None), 1) == ("Linear", {})


@pytest.mark.parametrize(("text", "needle"), [
    ("plugin: Slurmm\n", "'plugin' must be one of {"),
    ("plugin_args: {}\n", "must hold 'plugin:'"),
    ("plugin: MultiProc\nplugin_args: [1, 2]\n", "must be a mapping"),
    ("plugin: [unclosed\n", "cannot read the plugin file"),
])
def test_bad_plugin_files(tmp_path, text, needle):
    from bids_app.run import _plugin

    path = tmp_path / "plugin.yml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        _plugin(_options(path), 2)
    assert needle in info.value.message and str(path) in info.value.message


def _record(use_gpu, tag, log, seconds):
    import os
    import time

    start = time.monotonic()
    time.sleep(seconds)
    with open(log, "a") as handle:
        handle.write(f"{tag} {int(bool(use_gpu))} {start} {time.monotonic()} {os.getpid()}\n")
    return tag


def _intervals(log: Path):
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(tag, gpu == "1", float(a), float(b)) for tag, gpu, a, b, _ in rows]


@pytest.mark.parametrize("plugin_text", [
    "plugin: MultiProc\nplugin_args:\n  n_procs: 4\n",
    "plugin: Linear\n",
])
def test_plugin_from_file_runs_and_gpu_nodes_never_share_a_device(tmp_path, plugin_text):
    """Nodes declaring ``use_gpu`` get one GPU slot each: never two at a time."""
    from nipype.interfaces.utility import Function
    from nipype.pipeline import engine as pe

    from bids_app.run import _plugin

    plugin_file = tmp_path / "plugin.yml"
    plugin_file.write_text(plugin_text)
    name, args = _plugin(_options(plugin_file), 4)
    log = tmp_path / "intervals.txt"
    workflow = pe.Workflow(name="slots", base_dir=str(tmp_path / "work"))
    for index in range(3):
        for gpu in (True, False):
            node = pe.Node(Function(input_names=["use_gpu", "tag", "log", "seconds"],
                                    output_names=["tag"], function=_record),
                           name=f"{'gpu' if gpu else 'cpu'}{index}")
            node.inputs.use_gpu, node.inputs.tag = gpu, node.name
            node.inputs.log, node.inputs.seconds = str(log), 1.0
            workflow.add_nodes([node])
    workflow.run(plugin=name, plugin_args=args)
    intervals = _intervals(log)
    assert len(intervals) == 6
    gpu = sorted((a, b) for _, is_gpu, a, b in intervals if is_gpu)
    for (_, end), (start, _) in zip(gpu, gpu[1:], strict=False):
        assert start >= end - 0.05, gpu  # one GPU job at a time
    if name == "MultiProc":  # CPU jobs did run alongside a GPU job
        cpu = [(a, b) for _, is_gpu, a, b in intervals if not is_gpu]
        assert any(a < gb and ga < b for a, b in cpu for ga, gb in gpu)


def _no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible")


def test_device_cuda_without_gpu_is_a_clear_resource_error(tmp_path, capsys):
    _no_gpu()
    bids = tmp_path / "bids"
    bids.mkdir()
    started = time.monotonic()
    code = main([str(bids), str(tmp_path / "out"), "participant", "--device", "cuda",
                 "--skip-bids-validation"])
    err = capsys.readouterr().err
    assert code == EXIT_RESOURCE == 5
    assert "--device cuda" in err and "no CUDA GPU" in err
    assert "docker run --gpus all" in err and "apptainer run --nv" in err
    assert "Traceback" not in err
    assert time.monotonic() - started < 30  # checked before the dataset is indexed


def test_device_auto_uses_a_gpu_only_when_present(monkeypatch):
    import torch

    from bids_app.encoding.backend import choose_backend
    from stimuli_models.models import resolve_torch_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_torch_device("auto") == "cpu"
    assert choose_backend("auto", "auto") == "torch"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_torch_device("auto") == "cuda"
    assert choose_backend("auto", "auto") == "torch_cuda"
    assert resolve_torch_device("cpu") == "cpu"  # --device cpu keeps a visible GPU idle
    assert choose_backend("auto", "cpu") == "torch"


@pytest.mark.gpu
def test_device_auto_picks_the_visible_gpu():
    import torch

    from bids_app.encoding.backend import choose_backend, use_backend
    from stimuli_models.models import resolve_torch_device

    assert torch.cuda.is_available()
    assert resolve_torch_device("auto") == "cuda"
    backend = use_backend(choose_backend("auto", "auto"))
    x = backend.asarray([[1.0, 2.0]])
    assert "cuda" in str(x.device)


def test_runoptions_fields_cover_plugin_inputs():
    """The options read by the plugin set-up exist on the parsed command line."""
    from bids_app.cli.options import RunOptions

    names = {f.name for f in dataclasses.fields(RunOptions)}
    assert {"use_plugin", "mem_mb", "nprocs", "device", "omp_nthreads"} <= names
