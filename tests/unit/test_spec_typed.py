"""One typed configuration: settings defined once, choices from Literals, help beside fields."""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from pathlib import Path

import pytest

from bids_app.config import (
    ENTRIES,
    SECTIONS,
    ExperimentSpec,
    FeatureConfig,
    default_spec,
    load_spec,
    save_spec,
    spec_from_dict,
    with_settings,
)
from bids_app.errors import EXIT_USAGE, UsageError
from bids_app.spec_types import check_value, field_help, section_fields, setting
from stimuli_models.features import FeatureSettings
from stimuli_models.training import TrainingSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Every (section, field, annotation) of the spec as written in TOML.
ALL_FIELDS = [(name, item, hint) for name, cls in {**SECTIONS, **ENTRIES}.items()
              for item, hint in section_fields(cls)]
#: Literal fields of the tables ([[models]], [[tasks]] and [[variants]]: test_spec_literals.py).
CHOICE_FIELDS = [(section, item.name, typing.get_args(hint)) for section, item, hint in ALL_FIELDS
                 if typing.get_origin(hint) is typing.Literal and section in SECTIONS]


# --- each setting defined once -------------------------------------------------------------

def test_stimuli_models_settings_are_nested_not_repeated():
    spec = default_spec()
    assert isinstance(spec.training, TrainingSettings)
    assert isinstance(spec.features.computed, FeatureSettings)
    own = {f.name for f in dataclasses.fields(FeatureConfig)} - {"computed"}
    assert not own & {f.name for f in dataclasses.fields(FeatureSettings)}
    # the section reads its nested settings as its own, and hands the same object on
    assert spec.features.unit == spec.features.computed.unit == "word"
    assert spec.features.settings() is spec.features.computed


@pytest.mark.parametrize("section, item, hint", ALL_FIELDS,
                         ids=[f"{s}.{i.name}" for s, i, _ in ALL_FIELDS])
def test_every_setting_has_its_help_beside_it(section, item, hint):
    text = item.metadata.get("help", "")
    assert len(text) > 10 and text.endswith("."), text


def test_feature_and_training_tables_keep_the_toml_format(tmp_path):
    """[features] stays one flat table; a saved spec loads back the same."""
    spec = spec_from_dict({"features": {"layers": [1, 3], "unit": "sentence", "max_tokens": 0,
                                        "nuisance": []},
                           "training": {"max_steps": 7, "mixed_precision": "no"}})
    assert spec.features.computed.layers == (1, 3) and spec.features.max_tokens is None
    assert spec.training.max_steps == 7
    save_spec(spec, tmp_path / "s.toml")
    text = (tmp_path / "s.toml").read_text()
    assert "computed" not in text and "[features]\nlayers = [\n    1,\n    3,\n]" in text
    again = load_spec(tmp_path / "s.toml")
    assert again.to_dict() == spec.to_dict()
    assert again.features == spec.features and again.features.nuisance == []  # not the default


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_round_trip_through_the_typed_spec(path, tmp_path):
    spec = load_spec(path)
    save_spec(spec, tmp_path / "again.toml")
    assert load_spec(tmp_path / "again.toml").to_dict() == spec.to_dict()


def test_feature_section_survives_asdict_as_nipype_inputs_carry_it():
    spec = with_settings(default_spec(), {"features.unit": "sentence", "features.bands": True})
    again = FeatureConfig(**dataclasses.asdict(spec.features))
    assert again == spec.features and again.unit == "sentence"
    assert copy.deepcopy(spec.features) == spec.features


# --- typed choices ---------------------------------------------------------------------------

@pytest.mark.parametrize("section, key, choices", CHOICE_FIELDS,
                         ids=[f"{s}.{k}" for s, k, _ in CHOICE_FIELDS])
def test_choices_come_from_the_annotation(section, key, choices):
    """Every Literal field accepts exactly its choices, with nilearn's message otherwise."""
    for choice in choices:
        data = {section: {key: choice}}
        if (section, key, choice) == ("annotations", "segmentation", "file"):
            data[section]["segmentation_file"] = "words.tsv"
        if (section, key, choice) == ("annotations", "segmentation", "dictionary"):
            data[section]["dictionary"] = "words.txt"
        if (section, key, choice) == ("inputs", "layout", "hcp"):
            data[section]["volume"] = "sub-{subject}/x_run-{run}_bold.nii.gz"
        if (section, key, choice) == ("alignment", "method", "fir"):
            data[section]["delays"] = [1]
        if (section, key, choice) == ("bold", "confounds", "custom"):
            data[section]["confound_options"] = {"strategy": ["motion"]}
        assert getattr(getattr(spec_from_dict(data), section), key) == choice
    shown = "{" + ", ".join(repr(c) for c in sorted(choices)) + "}"
    with pytest.raises(UsageError) as info:
        spec_from_dict({section: {key: "nonsense"}})
    assert str(info.value) == f"'{section}.{key}' must be one of {shown}; got 'nonsense'."


def test_hrf_model_choices_are_those_alignment_computes():
    from bids_app.alignment import HRF_MODELS
    from bids_app.spec_choices import HrfModel

    assert set(typing.get_args(HrfModel)) == set(HRF_MODELS)


def test_a_new_literal_field_is_checked_without_code_of_its_own():
    @dataclasses.dataclass
    class Section:
        mode: typing.Literal["a", "b"] = setting("a", help="Mode.")
        sizes: list[int] = setting(default_factory=list, help="Sizes.", minimum=1)

    from bids_app.spec_types import build_section

    assert build_section(Section, {"mode": "b", "sizes": [1, 2]}, "x").mode == "b"
    with pytest.raises(UsageError, match=r"^'x.mode' must be one of \{'a', 'b'\}; got 'c'.$"):
        build_section(Section, {"mode": "c"}, "x")
    with pytest.raises(UsageError, match=r"^'x.sizes\[1\]' must be >= 1; got 0.$"):
        build_section(Section, {"sizes": [3, 0]}, "x")


@pytest.mark.parametrize("data, message", [
    ({"features": {"nuisance": ["word_rate", "pitch"]}},
     "'features.nuisance' must be one of {'phoneme_rate', 'sentence_boundary', "
     "'word_frequency', 'word_length', 'word_onset', 'word_rate'}; got 'pitch'."),
    ({"alignment": {"delays": [1, "2"]}}, "'alignment.delays[1]' must be of type int; got '2'."),
    ({"alignment": {"delays": [1, 2.5]}}, "'alignment.delays[1]' must be of type int; got 2.5."),
    ({"alignment": {"delays": [1, -1]}}, "'alignment.delays[1]' must be >= 0; got -1."),
    ({"encoding": {"trim_edges": [0, True]}},
     "'encoding.trim_edges[1]' must be of type int; got True."),
    ({"encoding": {"alphas": [1.0, "10"]}},
     "'encoding.alphas[1]' must be of type float; got '10'."),
    ({"annotations": {"drop_labels": ["sp", 3]}},
     "'annotations.drop_labels[1]' must be of type str; got 3."),
    ({"statistics": {"atlas": ["a.nii.gz", 1]}}, "'statistics.atlas[1]' must be of type str"),
    ({"features": {"layers": [0.5, "top"]}}, "'features.layers[1]' must be of type float"),
    ({"features": {"layers": "middle"}}, "'features.layers' must be one of {'all'}; got 'middle'."),
])
def test_list_contents_are_checked(data, message):
    with pytest.raises(UsageError) as info:
        spec_from_dict(data)
    assert message in str(info.value)


@pytest.mark.parametrize("name, value, message", [
    ("training.batch_size", 0, "'training.batch_size' must be >= 1; got 0."),
    ("training.max_steps", -1, "'training.max_steps' must be >= 0; got -1."),
    ("features.context_words", -2, "'features.context_words' must be >= 0; got -2."),
    ("features.stride", 0, "'features.stride' must be >= 1; got 0."),
    ("bold.dummy_scans", -3, "'bold.dummy_scans' must be >= 0; got -3."),
    ("statistics.block_length", 0, "'statistics.block_length' must be >= 1; got 0."),
    ("annotations.end_tolerance", -1.0, "'annotations.end_tolerance' must be >= 0; got -1.0."),
])
def test_numbers_are_range_checked(name, value, message):
    section, key = name.split(".")
    with pytest.raises(UsageError) as info:
        spec_from_dict({section: {key: value}})
    assert str(info.value) == message
    with pytest.raises(UsageError) as info:
        with_settings(default_spec(), {name: value})
    assert str(info.value) == message


def test_specs_built_in_python_are_checked_from_the_annotations():
    from bids_app.config import validate_spec

    spec = ExperimentSpec()
    spec.alignment.word_duration = "pulse"
    with pytest.raises(UsageError, match=r"'alignment.word_duration' must be one of "
                                         r"\{'boxcar', 'impulse'\}; got 'pulse'"):
        validate_spec(spec)


def test_a_bad_choice_in_a_spec_file_exits_2_with_one_sentence(tmp_path, capsys):
    from bids_app.cli import main

    bids = tmp_path / "ds"
    bids.mkdir()
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "x",
                                                               "BIDSVersion": "1.9.0"}))
    spec = tmp_path / "spec.toml"
    spec.write_text('[features]\npooling = "max"\n')
    code = main([str(bids), str(tmp_path / "out"), "participant", "--config-file", str(spec)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert ("'features.pooling' must be one of {'first', 'last', 'mean'}; got 'max'." in err)
    assert "Traceback" not in err


def test_check_value_names_unions_by_the_member_of_the_value_kind():
    with pytest.raises(UsageError, match=r"^'t' must be of type int; got 1.5.$"):
        check_value("t", 1.5, str | int)  # a number: the numeric member decides
    with pytest.raises(UsageError, match=r"^'t' must be of type str or int; got \[1\].$"):
        check_value("t", [1], str | int)
    check_value("t", 2, str | int)
    check_value("t", None, int | None)


# --- CLI overrides give a new spec ------------------------------------------------------------

def test_with_settings_returns_a_new_spec_and_leaves_the_loaded_one_unchanged():
    spec = load_spec(EXAMPLES / "default.toml")
    before = copy.deepcopy(spec)
    changed = with_settings(spec, {"bold.dummy_scans": 4, "features.context_words": 5,
                                   "training.max_steps": 3})
    assert changed is not spec and spec == before
    assert (changed.bold.dummy_scans, changed.features.context_words,
            changed.training.max_steps) == (4, 5, 3)
    assert changed.encoding is spec.encoding  # untouched sections are shared, not copied
    with pytest.raises(UsageError, match="'bold.dumy_scans' is not a setting"):
        with_settings(spec, {"bold.dumy_scans": 1})
    with pytest.raises(UsageError, match="'features.unit' must be one of"):
        with_settings(spec, {"features.unit": "phrase"})


def test_a_run_with_overrides_leaves_the_loaded_spec_unchanged(tmp_path, monkeypatch):
    """``--dummy-scans`` reaches the run through a new spec; the loaded object is untouched."""
    import bids_app.run as run
    import bids_app.run_inputs as run_inputs
    from bids_app.cli import main

    bids = tmp_path / "ds"
    bids.mkdir()
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "x",
                                                               "BIDSVersion": "1.9.0"}))
    loaded, received = [], []

    def load(path):
        spec = load_spec(path)
        loaded.append((spec, copy.deepcopy(spec)))
        return spec

    def participant_level(options, spec):
        received.append(spec)
        return 0

    monkeypatch.setattr(run_inputs, "load_spec", load)
    monkeypatch.setattr(run, "run_participant_level", participant_level)
    code = main([str(bids), str(tmp_path / "out"), "participant", "--dummy-scans", "3",
                 "--config-file", str(EXAMPLES / "default.toml")])
    assert code == 0
    (spec, snapshot), = loaded
    assert spec == snapshot and spec.bold.dummy_scans == 0
    assert received[0] is not spec and received[0].bold.dummy_scans == 3
    assert dataclasses.replace(received[0].bold, dummy_scans=0) == spec.bold


# --- help feeds the docs ----------------------------------------------------------------------

def test_readme_tables_and_option_help_are_generated_from_the_field_help():
    from bids_app import spec_docs

    assert spec_docs.main(["--check"]) == 0, "run 'python -m bids_app.spec_docs'"
    readme = spec_docs.README.read_text(encoding="utf-8")
    for section, item, _ in ALL_FIELDS:
        if item.name != "options":
            assert item.metadata["help"].replace("|", "\\|") in readme, (section, item.name)


def test_table_rows_follow_the_fields():
    from bids_app.spec_docs import settings_table

    @dataclasses.dataclass
    class Section:
        mode: typing.Literal["a", "b"] = setting("a", help="How it goes | or not.")

    assert settings_table(Section).splitlines()[-1] == (
        "| `mode` | 'a' or 'b' | `\"a\"` | How it goes \\| or not. |")


def test_help_of_an_option_that_sets_a_setting_is_the_field_help():
    from click.testing import CliRunner

    from bids_app.cli import command
    from bids_app.spec_inputs import BoldConfig

    result = CliRunner().invoke(command, ["--help"], terminal_width=200)
    text = " ".join(result.output.split())
    assert field_help(BoldConfig, "dummy_scans") in text
    assert "Replaces [bold] dummy_scans of the spec." in text


def test_every_section_has_a_generated_table_in_the_readme():
    from bids_app.spec_docs import render_readme

    text = ("<!-- spec-settings: features -->\nold\n<!-- /spec-settings -->\n")
    with pytest.raises(ValueError, match="no generated table of section"):
        render_readme(text)
    with pytest.raises(ValueError, match="unknown spec section"):
        render_readme("<!-- spec-settings: feature -->\n<!-- /spec-settings -->")


def test_feature_section_is_built_from_the_flat_table_or_from_asdict():
    spec = with_settings(default_spec(), {"features.context_words": 5})
    flat = FeatureConfig.from_dict({"context_words": 5, "nuisance": ["word_rate"]})
    nested = FeatureConfig.from_dict(dataclasses.asdict(spec.features))
    assert flat == nested == spec.features
    with pytest.raises(UsageError, match=r"^\[features\]: 'stride' must be .* got 0.$"):
        FeatureConfig.from_dict({"stride": 0})
