"""Maps say what produced them; the group stage never mixes settings under one label."""

from __future__ import annotations

import copy
import json

import pytest

from bids_app.config import default_spec, with_settings
from bids_app.errors import DatasetError, NoMatchError
from bids_app.group.provenance import check_provenance
from bids_app.group.run import find_inputs, run_group
from bids_app.provenance import settings_differences, settings_hash, variant_sidecar_metadata
from tests.helpers.fake_outputs import VARIANTS, make_fake_outputs

SECTIONS = {"features": "Features", "encoding": "Encoding", "bold": "BoldPreparation",
            "alignment": "Alignment", "annotations": "Annotations", "statistics": "Statistics"}
TWO = {k: VARIANTS[k] for k in ("minilmfrozenL3", "minilmlorasstL3")}


@pytest.fixture(scope="module")
def planned():
    from bids_app.variants import plan_variants

    spec = default_spec()
    return spec, plan_variants(spec)[1][0]


def _hash(spec, variant, seed=0, backend="numpy"):
    return variant_sidecar_metadata(variant, spec, seed, backend)["SettingsHash"]


@pytest.mark.parametrize("section, key, value", [
    ("features", "context_words", 7), ("features", "unit", "sentence"),
    ("features", "nuisance", ["word_rate", "word_length"]), ("encoding", "alphas", [1.0, 10.0]),
    ("encoding", "outer_cv", "2-fold"), ("bold", "high_pass", 0.01),
    ("alignment", "method", "fir"), ("annotations", "lowercase", True),
    ("statistics", "heldout_permutations", 50)])
def test_hash_changes_with_every_map_setting(planned, section, key, value):
    spec, variant = planned
    changed = with_settings(spec, {f"{section}.{key}": value})
    before = variant_sidecar_metadata(variant, spec, 0, "numpy")
    after = variant_sidecar_metadata(variant, changed, 0, "numpy")
    assert before["SettingsHash"] != after["SettingsHash"]
    assert settings_differences(before, after) == [f"{SECTIONS[section]}.{key}"]


@pytest.mark.parametrize("section, key, value", [
    ("features", "batch_size", 3), ("encoding", "backend", "torch"),
    ("encoding", "n_targets_batch", 128), ("bold", "voxel_batch", 77),
    ("statistics", "compare", [["a", "b"]]), ("statistics", "top_percent", 5.0),
    ("statistics", "fdr_alpha", 0.01), ("training", "max_steps", 3)])
def test_hash_ignores_settings_that_do_not_change_the_maps(planned, section, key, value):
    spec, variant = planned  # frozen: training settings do not apply
    changed = with_settings(spec, {f"{section}.{key}": value})
    assert _hash(spec, variant) == _hash(changed, variant)
    assert _hash(spec, variant, seed=0, backend="numpy") == _hash(spec, variant, seed=5,
                                                                  backend="torch_cuda")


def test_hash_of_a_tuned_variant_follows_its_training(planned):
    import dataclasses

    spec, variant = planned
    tuned = dataclasses.replace(variant, extractor=dataclasses.replace(variant.extractor,
                                                                       method="lora"))
    changed = copy.deepcopy(spec)
    changed.training = dataclasses.replace(changed.training, max_steps=3)
    assert _hash(spec, tuned) != _hash(changed, tuned)


def test_hash_survives_the_saved_spec(planned, tmp_path):
    """The group stage recomputes the hash from OUTPUT_DIR/experiment_spec.toml."""
    from bids_app.config import load_spec, save_spec

    spec, variant = planned
    save_spec(spec, tmp_path / "experiment_spec.toml")
    assert _hash(load_spec(tmp_path / "experiment_spec.toml"), variant) == _hash(spec, variant)


def _edit_sidecars(out, sub, label, **changes):
    for path in (out / f"sub-{sub}" / "func").glob(f"*_desc-{label}_statmap.json"):
        meta = json.loads(path.read_text())
        for key, value in changes.items():
            section, _, field = key.partition("__")
            meta.setdefault(section, {})[field] = value
        path.write_text(json.dumps(meta))


def _sidecar_hash(path: str) -> str:
    with open(path.replace(".nii.gz", ".json"), encoding="utf-8") as handle:
        return settings_hash(json.load(handle))


def test_group_refuses_one_label_made_under_two_settings(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=3, variants=TWO, with_alpha=False)
    _edit_sidecars(out, "02", "minilmlorasstL3", Features__context_words=5)
    with pytest.raises(DatasetError, match=r"maps labelled 'minilmlorasstL3' were made under "
                                           r"different settings \(.*sub-02: .*Features\."
                                           r"context_words\); rerun"):
        run_group(str(out))
    assert not (out / "group").exists()


def test_group_leaves_out_and_lists_stale_maps(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=3, variants=TWO, with_alpha=False)
    maps = find_inputs(out).maps
    frozen = maps[(maps["desc"] == "minilmfrozenL3") & (maps["stat"] == "r")]["path"].iloc[0]
    current = _sidecar_hash(frozen)
    found = check_provenance(maps, {"minilmfrozenL3": current, "minilmloranerL6": "0" * 12})
    assert set(found.maps["desc"]) == {"minilmfrozenL3"}
    assert [s["variant"] for s in found.stale] == ["minilmlorasstL3"]
    assert found.stale[0]["subjects"] == ["01", "02", "03"]
    assert found.missing == ["minilmloranerL6"]
    assert found.methods().endswith("maps of 1 variant (minilmlorasstL3) were left out as "
                                    "stale.")
    assert "current experiment spec" not in check_provenance(maps, None).methods()
    # same label, all participants made under other settings than the current spec: stale
    found = check_provenance(maps, {"minilmfrozenL3": "f" * 12, "minilmlorasstL3": current})
    assert {s["variant"] for s in found.stale} == {"minilmfrozenL3", "minilmlorasstL3"}
    assert "other settings" in found.stale[0]["reason"]


def test_mixed_maps_name_the_participants_to_rerun(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=3, variants=TWO, with_alpha=False)
    _edit_sidecars(out, "01", "minilmfrozenL3", Encoding__alphas=[1.0, 10.0])
    maps = find_inputs(out).maps
    path = maps[(maps["desc"] == "minilmfrozenL3") & (maps["sub"] == "01")
                & (maps["stat"] == "r")]["path"].iloc[0]
    new = _sidecar_hash(path)
    with pytest.raises(DatasetError, match=r"the current spec made those of sub-01 only: rerun "
                                           r"sub-02, sub-03 with it, or restrict the group "
                                           r"stage with --participant-label 01\."):
        check_provenance(maps, {"minilmfrozenL3": new, "minilmlorasstL3": "x"})
    kept = check_provenance(maps[maps["sub"] == "01"], {"minilmfrozenL3": new})
    assert set(kept.maps["desc"]) == {"minilmfrozenL3"}


def test_group_stops_when_every_map_is_stale(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=2, variants=TWO, with_alpha=False)
    spec = default_spec()  # names minilmfrozenL3 of the packaged model, made otherwise here
    with pytest.raises(NoMatchError, match="every participant map in .* is stale"):
        run_group(str(out), spec=spec)
