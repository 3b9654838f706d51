"""Sample NLU sets written by the project, and the reduced paper design built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bids_app.config import tomllib
from bids_app.paper_demo import main as paper_demo
from stimuli_models.tasks import load_task
from stimuli_models.tasks.metrics import entity_spans
from stimuli_models.tasks.samples import SAMPLE_OPTIONS, write_sample_task

PAPER_SPEC = Path(__file__).resolve().parents[2] / "examples" / "paper_reproduction.toml"


@pytest.mark.parametrize("task_type", sorted(SAMPLE_OPTIONS))
def test_sample_sets_read_as_their_type_and_are_reproducible(tmp_path, task_type):
    options = write_sample_task(task_type, tmp_path / "a", n_train=80, n_dev=20, seed=1)
    again = write_sample_task(task_type, tmp_path / "b", n_train=80, n_dev=20, seed=1)
    other = write_sample_task(task_type, tmp_path / "c", n_train=80, n_dev=20, seed=2)
    read = Path(options["train"]).read_bytes
    assert read() == Path(again["train"]).read_bytes() != Path(other["train"]).read_bytes()
    task = load_task("t", options.pop("type"), options)
    assert (len(task.train), len(task.dev)) == (80, 20)
    if task_type == "token-classification":
        kinds = {k for ex in task.train for _, _, k in entity_spans(ex["tags"])}
        assert kinds == {"person", "location", "corporation", "product", "group"}
        assert all(t in ("O",) or t[:2] in ("B-", "I-") for t in task.labels)
    else:
        labels = [ex["label"] for ex in task.train]
        assert len(set(labels)) == 2
        assert min(labels.count(v) for v in set(labels)) > 0.3 * len(labels)  # balanced


def test_sentiment_label_follows_the_adjective(tmp_path):
    from stimuli_models.tasks import samples

    options = write_sample_task("sequence-classification", tmp_path, n_train=60, n_dev=5)
    for line in Path(options["train"]).read_text(encoding="utf-8").splitlines():
        text, label = line.split("\t")
        words = set(text.lower().split())
        assert bool(words & set(samples._POSITIVE)) == (label == "1")
        assert bool(words & set(samples._NEGATIVE)) == (label == "0")


def test_reduced_paper_spec_keeps_every_method_and_needs_no_download(tmp_path):
    assert paper_demo([str(PAPER_SPEC), str(tmp_path), "--steps", "7"]) == 0
    full = tomllib.loads(PAPER_SPEC.read_text(encoding="utf-8"))
    reduced = tomllib.loads((tmp_path / "spec.toml").read_text(encoding="utf-8"))
    assert all("hub" in t for t in full["tasks"])  # the full design names the benchmarks
    assert [t["name"] for t in reduced["tasks"]] == [t["name"] for t in full["tasks"]][:2]
    assert not any("hub" in t or "allow_download" in t for t in reduced["tasks"])
    for task in reduced["tasks"]:
        assert Path(task["train"]).is_file() and Path(task["dev"]).is_file()
        assert str(tmp_path) in task["train"]
    assert {v["method"] for v in reduced["variants"]} == {v["method"] for v in full["variants"]}
    assert len(reduced["variants"]) == len(full["variants"])
    assert reduced["training"]["max_steps"] == 7 and reduced["training"]["epochs"] == 0
    # the reduced version reads the last layer listed (one fit per tuned model); --all-layers all
    assert reduced["features"] == {**full["features"], "layers": full["features"]["layers"][-1:]}
    assert paper_demo([str(PAPER_SPEC), str(tmp_path / "all"), "--all-layers"]) == 0
    every = tomllib.loads((tmp_path / "all" / "spec.toml").read_text(encoding="utf-8"))
    assert every["features"] == full["features"]
    from bids_app.config import load_spec

    spec = load_spec(tmp_path / "spec.toml")  # a valid spec
    assert [t.type for t in spec.tasks] == ["token-classification", "sequence-classification"]


def test_paper_design_compares_every_tuned_variant(tmp_path):
    """No variant of the paper's design (full or reduced) equals frozen by construction."""
    from bids_app.config import load_spec
    from bids_app.encoding.design_checks import identical_by_construction
    from bids_app.variants import plan_variants

    assert paper_demo([str(PAPER_SPEC), str(tmp_path), "--all-layers"]) == 0
    _, variants = plan_variants(load_spec(tmp_path / "spec.toml"))
    partial = [v.label for v in variants if v.extractor.method == "partial"]
    assert len(partial) == 4  # two tasks, layers 3 and 6 of MiniLM's six
    assert identical_by_construction(variants) == {}
    # the check itself: the former k = 2 leaves layer 3 as pretrained
    text = (tmp_path / "spec.toml").read_text(encoding="utf-8").replace("k = 4", "k = 2")
    (tmp_path / "k2.toml").write_text(text, encoding="utf-8")
    _, variants = plan_variants(load_spec(tmp_path / "k2.toml"))
    assert len(identical_by_construction(variants)) == 2
    assert sorted(identical_by_construction(variants)) == sorted(
        label for label in (v.label for v in variants) if "partial" in label and
        label.endswith("L3"))


def test_reduced_spec_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[tasks]]\nname = "qa"\nhub = "squad"\n', encoding="utf-8")
    assert paper_demo([str(bad), str(tmp_path / "out")]) == 2
    assert "'task_type' must be one of" in capsys.readouterr().err
    assert paper_demo([str(tmp_path / "missing.toml"), str(tmp_path / "out")]) == 2
    assert "cannot read the spec" in capsys.readouterr().err
