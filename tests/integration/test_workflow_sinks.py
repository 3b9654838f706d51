"""A real participant run: only sinks write derivatives, reruns rewrite nothing, Methods.

Every map, sidecar, table and report in OUTPUT_DIR is a file some ``ds_*`` sink
published, byte-identical to the copy its step rendered in its node folder; the
shared stores (tuned models, features) and the run's logs are the only other
files. A rerun of the same command reruns no step and touches no output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nipype.utils.filemanip import loadpkl

from bids_app.cli import main
from tests.helpers.demo import small_demo_dataset

SPEC = """
[[models]]
name = "tiny"
source = "{model}"

[[variants]]
model = "tiny"
method = "frozen"

[features]
layers = [1, 2]
context_words = 5

[encoding]
alphas = [1.0, 100.0, 10000.0]
inner_folds = 2

[statistics]
compare = [["tinyfrozenL1", "tinyfrozenL2"]]
n_bootstrap = 50
heldout_permutations = 20
"""
#: What OUTPUT_DIR holds besides published derivatives: the shared stores, the logs, and
#: the dataset-level files the run writes before and after the workflow.
NOT_SUNK = {"models", "stimuli", "logs", "dataset_description.json", "experiment_spec.toml",
            "README", "descriptions.tsv"}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_bert):
    root = tmp_path_factory.mktemp("sinks")
    bids = small_demo_dataset(root / "bids", n_subjects=1, words=60)
    spec = root / "spec.toml"
    spec.write_text(SPEC.format(model=tiny_bert), encoding="utf-8")
    argv = [str(bids), str(root / "out"), "participant", "-w", str(root / "work"),
            "--config-file", str(spec), "--nprocs", "1"]
    assert main(argv) == 0
    return root, argv


def _published(work: Path) -> dict[str, Path]:
    """Final path → the staged file a sink copied it from."""
    found = {}
    for result in work.glob("brainenc_wf/**/ds_*/result_ds_*.pklz"):
        node = loadpkl(result)
        if "store" in node.inputs:  # a store sink (see test_store_entries_come_from_store_sinks)
            continue
        staged = Path(node.inputs["staged_dir"])
        out = Path(node.inputs["output_dir"])
        for final in node.outputs.out_files:
            found[final] = staged / Path(final).relative_to(out)
    return found


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*")
                  if p.is_file() and p.relative_to(out).parts[0] not in NOT_SUNK
                  and not p.name.startswith("."))


def test_every_derivative_comes_from_a_sink_and_equals_its_rendered_copy(run):
    root, _ = run
    out, published = root / "out", _published(root / "work")
    files = _outputs(out)
    assert {str(p) for p in files} == set(published)
    names = {p.name for p in files}
    for label in ("tinyfrozenL1", "tinyfrozenL2"):
        assert any(f"_stat-r_desc-{label}_statmap.nii.gz" in n for n in names), label
    assert any("_stat-rdiff_desc-tinyfrozenL1vstinyfrozenL2_statmap" in n for n in names)
    assert "sub-01.html" in names and any("desc-brain_mask" in n for n in names)
    for final, staged in published.items():
        assert Path(final).read_bytes() == staged.read_bytes(), final
        assert staged.parent != Path(final).parent  # rendered in the node folder under -w
        assert str(root / "work") in str(staged)


def test_store_entries_come_from_store_sinks(run):
    """Tuned models and features: staged by their steps under -w, published by store sinks."""
    root, _ = run
    out, work = root / "out", root / "work"
    stored = sorted(p for part in ("models", "stimuli/features") for p in (out / part).rglob("*")
                    if p.is_file() and not p.name.endswith(".lock"))
    published = {}
    for result in work.glob("brainenc_wf/ds_*/result_ds_*.pklz"):
        node = loadpkl(result)
        assert node.inputs["store"] in ("models", "features")
        staged = Path(node.inputs["staged_dir"])
        for source in map(Path, node.inputs["in_files"]):
            published[out / source.relative_to(staged)] = source
        assert all(Path(f).is_file() for f in node.outputs.out_files)
    features = [p for p in published if p.suffix == ".npy"]
    assert len(features) == 3 and (out / "models" / "tinyfrozen" / "tuning.json") in published
    # every published .npy brings its sidecar; nothing else is in the stores
    assert set(stored) == set(published) | {p.with_suffix(".json") for p in features}
    for final, staged in published.items():
        assert final.read_bytes() == staged.read_bytes(), final
        assert str(work) in str(staged)
    assert not list(out.rglob(".claims"))  # every claim released


def test_the_report_methods_describe_the_steps_that_ran(run):
    root, _ = run
    html = (root / "out" / "sub-01.html").read_text(encoding="utf-8")
    methods = html[html.index("id='methods'"):]
    for sentence in ("was used without tuning", "context of 5 words",
                     "Ridge regression of &#x27;tinyfrozenL1&#x27;",
                     "Ridge regression of &#x27;tinyfrozenL2&#x27;",
                     "among 3 values (1 to 10000)", "2-fold inner cross-validation",
                     "against 50 paired mismatched-window null draws"):
        assert sentence in methods, sentence


def test_a_rerun_reruns_no_step_and_touches_no_output(run):
    root, argv = run
    out, work = root / "out", root / "work"
    before = {p: p.stat().st_mtime_ns for p in _outputs(out)}
    results = {p: p.stat().st_mtime_ns for p in work.glob("brainenc_wf/**/result_*.pklz")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in _outputs(out)} == before
    assert {p: p.stat().st_mtime_ns for p in work.glob("brainenc_wf/**/result_*.pklz")} \
        == results


def test_a_changed_setting_republishes_only_what_it_changes(run, tmp_path):
    """A new alpha grid refits; the sinks publish new maps, the mask is left as it was."""
    root, argv = run
    out = root / "out"
    mask = next(out.glob("sub-01/func/*desc-brain_mask.nii.gz"))
    r_map = next(out.glob("sub-01/func/*_stat-alpha_desc-tinyfrozenL1_statmap.nii.gz"))
    stamp, old = mask.stat().st_mtime_ns, r_map.read_bytes()
    spec = tmp_path / "spec.toml"
    spec.write_text(Path(argv[argv.index("--config-file") + 1]).read_text().replace(
        "alphas = [1.0, 100.0, 10000.0]", "alphas = [1e6, 1e7]"), encoding="utf-8")
    changed = [*argv]
    changed[changed.index("--config-file") + 1] = str(spec)
    assert main(changed) == 0
    assert mask.stat().st_mtime_ns == stamp
    assert r_map.read_bytes() != old
    html = (out / "sub-01.html").read_text(encoding="utf-8")
    assert "among 2 values (1e+06 to 1e+07)" in html
    assert not [p for p in out.rglob("*") if ".tmp" in p.name and not os.path.isdir(p)]


def test_deleted_outputs_are_published_again_without_recomputing(run):
    """Maps, tuned models and features deleted from OUTPUT_DIR come back on a rerun with -w."""
    import shutil

    root, argv = run
    out, work = root / "out", root / "work"
    assert main(argv) == 0  # the module's run as it was (an earlier test changed a setting)
    r_map = next(out.glob("sub-01/func/*_stat-r_desc-tinyfrozenL1_statmap.nii.gz"))
    kept = {p: p.read_bytes() for p in [r_map, *out.glob("models/tinyfrozen/*"),
                                        *out.glob("stimuli/features/*.npy")] if p.is_file()}
    computed = {p: p.stat().st_mtime_ns for p in work.glob("brainenc_wf/**/result_*.pklz")
                if not p.parent.name.startswith("ds_")}
    r_map.unlink()
    shutil.rmtree(out / "models")
    shutil.rmtree(out / "stimuli" / "features")
    assert main(argv) == 0
    assert {p: p.read_bytes() for p in kept} == kept  # the same bytes, back in place
    # only sinks ran: no step was recomputed
    assert {p: p.stat().st_mtime_ns for p in computed} == computed
