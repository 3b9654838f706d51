"""nipype at the edges: typed inputs, sinks, failure records, Methods from the workflow."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from nipype.interfaces.base import BaseInterfaceInputSpec, TraitedSpec, traits
from nipype.pipeline import engine as pe

from bids_app import interfaces
from bids_app.errors import DatasetError, ProcessingError, ResourceError
from bids_app.interfaces.base import FAILURE_RECORD, BrainencInterface
from bids_app.interfaces.sinks import sink_tree
from bids_app.run import run_workflow
from bids_app.workflows.failures import subject_of, takes_callback

ALLOWED = {"File", "Directory", "Str", "String", "Int", "Float", "Bool", "Enum", "List",
           "InputMultiObject", "MultiObject"}


def _interfaces():
    return [getattr(interfaces, name) for name in interfaces.__all__
            if isinstance(getattr(interfaces, name), type)
            and issubclass(getattr(interfaces, name), BrainencInterface)
            and getattr(interfaces, name) is not BrainencInterface]


@pytest.mark.parametrize("cls", _interfaces(), ids=lambda c: c.__name__)
def test_interface_inputs_are_typed(cls):
    spec = cls.input_spec()
    own = set(spec.copyable_trait_names()) - set(BaseInterfaceInputSpec().copyable_trait_names())
    assert own
    for name in own:
        kind = type(spec.trait(name).trait_type).__name__
        assert kind in ALLOWED, (cls.__name__, name, kind)
        assert not name.endswith("_json") or kind == "File", (cls.__name__, name)
        assert spec.trait(name).desc, f"{cls.__name__}.{name} has no description"


def test_interface_modules_are_split_by_stage():
    folder = Path(interfaces.__file__).parent
    stages = {p.stem: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert {"stimuli", "encoding", "derivatives", "reports", "sinks", "base"} <= set(stages)
    assert all(n <= 400 for n in stages.values()), stages
    owner = {cls.__name__: cls.__module__.rsplit(".", 1)[-1] for cls in _interfaces()}
    assert owner["TuneModel"] == owner["FeaturizeStories"] == "stimuli"
    assert owner["FitEncoding"] == owner["BuildDesigns"] == "encoding"
    assert owner["DerivativesSink"] == "sinks" and owner["ParticipantReport"] == "reports"


# ---- sinks -----------------------------------------------------------------------------


def _staged(tmp_path: Path) -> Path:
    staged = tmp_path / "node" / "derivatives"
    (staged / "sub-01" / "func").mkdir(parents=True)
    (staged / "sub-01" / "func" / "sub-01_desc-a_statmap.json").write_text('{"a": 1}\n')
    (staged / "sub-01.html").write_text("<html></html>")
    return staged


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_sink_publishes_atomically_with_the_umask_and_skips_identical_files(tmp_path, umask):
    staged, out = _staged(tmp_path), tmp_path / "out"
    old = os.umask(umask)
    try:
        files, n_written = sink_tree(staged, out)
    finally:
        os.umask(old)
    assert n_written == 2
    assert sorted(Path(f).relative_to(out).as_posix() for f in files) == [
        "sub-01.html", "sub-01/func/sub-01_desc-a_statmap.json"]
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    mtime = os.stat(files[0]).st_mtime_ns
    assert sink_tree(staged, out)[1] == 0  # a rerun rewrites nothing
    assert os.stat(files[0]).st_mtime_ns == mtime
    (out / "sub-01" / "func" / "sub-01_desc-a_statmap.json").unlink()  # restored
    # and a changed one is replaced
    (staged / "sub-01.html").write_text("<html>new</html>")
    assert sink_tree(staged, out)[1] == 2
    assert (out / "sub-01.html").read_text() == "<html>new</html>"


def test_sink_node_reruns_exactly_when_a_rendered_file_changed(tmp_path):
    staged, out = _staged(tmp_path), tmp_path / "out"
    files = [str(p) for p in sorted(staged.rglob("*")) if p.is_file()]

    def run() -> int:
        workflow = pe.Workflow(name="wf", base_dir=str(tmp_path / "work"))
        sink = pe.Node(interfaces.DerivativesSink(staged_dir=str(staged), in_files=files,
                                                  output_dir=str(out)), name="ds")
        workflow.add_nodes([sink])
        result = list(workflow.run().nodes())[0].result
        return result.outputs.n_written

    assert run() == 2
    results = list((tmp_path / "work").rglob("result_ds.pklz"))
    stamp = results[0].stat().st_mtime_ns
    assert run() == 2 and results[0].stat().st_mtime_ns == stamp  # reused, not rerun
    (staged / "sub-01.html").write_text("<html>v2</html>")  # same path, new content
    assert run() == 1  # reran; only the changed file was written
    assert (out / "sub-01.html").read_text() == "<html>v2</html>"


def test_a_sink_refuses_files_outside_its_folder(tmp_path):
    staged, stray = _staged(tmp_path), tmp_path / "stray.txt"
    stray.write_text("x")
    with pytest.raises(ProcessingError, match="is not inside the rendered folder"):
        sink_tree(staged, tmp_path / "out", [str(stray)])


def test_only_sinks_write_to_output_dir(tmp_path):
    """The rendering steps write nothing to OUTPUT_DIR; their sinks do."""
    workflow = _build(tmp_path, {})
    graph = workflow._create_flat_graph()
    writers = {type(n.interface).__name__ for n in graph.nodes()
               if "output_dir" in n.inputs.copyable_trait_names()}
    # the sinks, and the report, which only reads logs
    assert writers == {"DerivativesSink", "StoreSink", "ParticipantReport"}
    sink_of = {"WriteVariant": "DerivativesSink", "WriteCleanBold": "DerivativesSink",
               "ParticipantReport": "DerivativesSink", "TuneModel": "StoreSink",
               "FeaturizeStories": "StoreSink"}
    seen = set()
    for node in graph.nodes():
        kind = type(node.interface).__name__
        if kind in sink_of:
            seen.add(kind)
            sinks = [s for s in graph.successors(node)
                     if type(s.interface).__name__ == sink_of[kind]]
            assert len(sinks) == 1, node.fullname
            fed = graph.get_edge_data(node, sinks[0])["connect"]
            assert ("out_files", "in_files") in fed, node.fullname
            assert ("staged_dir", "staged_dir") in fed, node.fullname
    assert seen >= {"WriteVariant", "ParticipantReport", "TuneModel", "FeaturizeStories"}
    # what reads a store entry reads it once published
    for node in graph.nodes():
        if type(node.interface).__name__ in ("FeaturizeStories", "BuildDesigns", "WriteVariant"):
            feeders = {type(p.interface).__name__ for p in graph.predecessors(node)}
            assert "TuneModel" not in feeders and "FeaturizeStories" not in feeders, feeders


# ---- failures --------------------------------------------------------------------------


class _FailInput(BaseInterfaceInputSpec):
    kind = traits.Enum("dataset", "value", "disk", "none", desc="what to raise")


class _FailOutput(TraitedSpec):
    done = traits.Bool(desc="ran")


class FailingStep(BrainencInterface):
    """Raises what ``kind`` names (a stand-in for a step meeting bad data)."""

    input_spec = _FailInput
    output_spec = _FailOutput

    def _compute(self, runtime) -> None:
        if self.inputs.kind == "dataset":
            raise DatasetError("'sub-07_task-x_events.tsv' has no 'onset' column; add it.")
        if self.inputs.kind == "value":
            raise ValueError("shapes (3,) and (4,) differ")
        if self.inputs.kind == "disk":
            raise OSError(errno.ENOSPC, "No space left on device", "/data/out/x.nii.gz")
        self._results["done"] = True


def _failing_workflow(tmp_path: Path, kinds: dict[str, str]) -> pe.Workflow:
    top = pe.Workflow(name="brainenc_wf", base_dir=str(tmp_path / "work"))
    for subject, kind in kinds.items():
        sub = pe.Workflow(name=f"sub_{subject}_wf")
        sub.add_nodes([pe.Node(FailingStep(kind=kind), name="step")])
        top.add_nodes([sub])
    return top


def _options(tmp_path: Path):
    return SimpleNamespace(stop_on_first_crash=False, verbose=0, use_plugin=None, mem_mb=None,
                           output_dir=tmp_path / "out")


@pytest.mark.parametrize("nprocs", [1, 2], ids=["Linear", "MultiProc"])
def test_failures_reach_the_run_as_project_errors_without_crash_files(tmp_path, monkeypatch,
                                                                      nprocs):
    workflow = _failing_workflow(tmp_path, {"07": "dataset", "08": "value", "09": "disk",
                                            "10": "none"})
    # crash files must play no part: make reading any of them fail the test
    original = Path.read_text

    def guarded(self, *args, **kwargs):
        assert not self.name.startswith("crash-"), f"read a crash file: {self}"
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", guarded)
    failures = run_workflow(workflow, _options(tmp_path), tmp_path / "work", nprocs)
    assert set(failures) == {"07", "08", "09"}
    assert isinstance(failures["07"], DatasetError) and failures["07"].exit_code == 3
    assert str(failures["07"]) == "'sub-07_task-x_events.tsv' has no 'onset' column; add it."
    assert isinstance(failures["08"], ProcessingError) and failures["08"].exit_code == 1
    assert "ValueError: shapes (3,) and (4,) differ" in str(failures["08"])
    assert isinstance(failures["09"], ResourceError) and failures["09"].exit_code == 5
    assert "'/data/out'" in str(failures["09"])
    record = json.loads((tmp_path / "work" / "brainenc_wf" / "sub_07_wf" / "step"
                         / FAILURE_RECORD).read_text())
    assert record == {"error": "DatasetError", "exit_code": 3, "step": "FailingStep",
                      "message": str(failures["07"])}


def test_a_step_that_succeeds_on_rerun_leaves_no_record(tmp_path):
    workflow = _failing_workflow(tmp_path, {"07": "dataset"})
    assert set(run_workflow(workflow, _options(tmp_path), tmp_path / "work", 1)) == {"07"}
    workflow = _failing_workflow(tmp_path, {"07": "none"})
    assert run_workflow(workflow, _options(tmp_path), tmp_path / "work", 1) == {}
    assert not list((tmp_path / "work").rglob(FAILURE_RECORD))


def test_failure_helpers():
    assert subject_of("brainenc_wf.sub_01_wf.fit_minilm") == "01"
    assert subject_of("brainenc_wf.tune_minilm") == ""
    assert takes_callback("MultiProc") and takes_callback("SLURM")
    assert not takes_callback("SLURMGraph")


# ---- Methods text ----------------------------------------------------------------------


def _build(tmp_path: Path, changes: dict):
    from bids_app.config import ModelEntry, default_spec
    from bids_app.plan import Plan, SubjectPlan
    from bids_app.spec_checks import with_settings
    from bids_app.variants import Extractor, Variant
    from bids_app.workflows.base import init_brainenc_wf

    stories = []
    for name in ("lighthouse", "market"):
        path = tmp_path / "stories" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": name, "words": ["a", "b"]}))
        stories.append(str(path))
    folder = tmp_path / "sub-01"
    folder.mkdir(exist_ok=True)
    (folder / "runs.json").write_text("[]")
    tables = []
    for run in (1, 2):
        table = folder / f"run-{run}_words.tsv"
        table.write_text("onset\tduration\tword\n")
        tables.append(str(table))
    plan = Plan([SubjectPlan("01", [], str(folder / "runs.json"), tables)],
                ["lighthouse", "market"], stories)
    extractor = Extractor(label="minilm", model=ModelEntry(), model_dir=str(tmp_path),
                          method="frozen", layers=[3])
    variants = [Variant(label="minilmL3", extractor=extractor, layer=3, layer_position=0)]
    spec = with_settings(default_spec(), {f"{section}.{key}": value
                                          for section, values in changes.items()
                                          for key, value in values.items()})
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text("")
    return init_brainenc_wf(
        plan=plan, extractors=[extractor], variants=variants, spec=spec,
        spec_file=str(spec_file), output_dir=str(tmp_path / "out"),
        bids_dir=str(tmp_path / "bids"), work_dir=str(tmp_path / "work"), seed=0,
        device="cpu", backend="torch")


def _methods(tmp_path: Path, changes: dict) -> list[str]:
    workflow = _build(tmp_path, changes)
    report = workflow.get_node("sub_01_wf").get_node("report")
    return report.inputs.methods.split(". ")


@pytest.mark.parametrize(("changes", "before", "after"), [
    ({"alignment": {"hrf_model": "spm"}}, "glover haemodynamic", "spm haemodynamic"),
    ({"encoding": {"outer_cv": "leave-one-story-out"}}, "with leave-one-run-out outer",
     "with leave-one-story-out outer"),
    ({"encoding": {"alphas": [1.0, 10.0]}}, "among 13 values", "among 2 values (1 to 10)"),
    ({"bold": {"detrend": False}}, "linearly detrended", None),
    ({"features": {"context_words": 7}}, "context of 20 words", "context of 7 words"),
])
def test_methods_text_follows_exactly_the_changed_setting(tmp_path, changes, before, after):
    default = _methods(tmp_path / "a", {})
    changed = _methods(tmp_path / "b", changes)
    text_default, text_changed = ". ".join(default), ". ".join(changed)
    assert before in text_default and before not in text_changed
    if after:
        assert after in text_changed
    # exactly one sentence differs: the step that reads the setting
    assert len(default) == len(changed)
    assert sum(a != b for a, b in zip(default, changed, strict=True)) == 1


def test_methods_text_is_in_execution_order(tmp_path):
    text = _build(tmp_path, {}).get_node("sub_01_wf").get_node("report").inputs.methods
    order = ["used without tuning", "Features of 'minilm'", "BOLD time series were",
             "Word features were", "Ridge regression of 'minilmL3'", "cleaned held-out BOLD"]
    positions = [text.index(part) for part in order[:5]]
    assert positions == sorted(positions)
    assert order[5] in text
