"""Prompt-family variants come with an untrained control, compared beside them."""

from __future__ import annotations

from bids_app.config import ExperimentSpec, TaskEntry, VariantEntry
from bids_app.group.contrast_maps import resolve_pairs
from bids_app.variants import plan_variants


def _spec(*variants: VariantEntry) -> ExperimentSpec:
    return ExperimentSpec(tasks=[TaskEntry(name="sst", type="sequence-classification")],
                          variants=list(variants))


def test_prompt_family_variants_get_an_untrained_control_beside_them():
    spec = _spec(VariantEntry(), VariantEntry(method="prompt", task="sst"),
                 VariantEntry(method="lora", task="sst"),
                 VariantEntry(method="ptuning-v2", task="sst", settings={"projection": True}))
    extractors, variants = plan_variants(spec)
    labels = [v.label for v in variants]
    assert labels == ["minilmfrozenL3", "minilmpromptsstL3", "minilmpromptsstuntrainedL3",
                      "minilmlorasstL3", "minilmptuningv2projectionTruesstL3",
                      "minilmptuningv2projectionTruesstuntrainedL3"]
    controls = {e.label: e for e in extractors if e.label.endswith("untrained")}
    prompt = controls["minilmpromptsstuntrained"]
    assert prompt.method == "prompt" and prompt.settings == {"untrained": True}
    assert prompt.task.name == "sst"  # same virtual tokens, set up for the same task
    assert controls["minilmptuningv2projectionTruesstuntrained"].settings == {"projection": True,
                                                                     "untrained": True}
    described = variants[2].description()
    assert "untrained prompt control" in described and "not trained" in described


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
