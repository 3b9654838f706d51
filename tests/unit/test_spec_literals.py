"""The last plain-string settings are typed choices: method, task type, confounds, outer CV.

Each choice type comes from the module that implements the choices
(:mod:`bids_app.spec_choices`); the one generic validator checks it, with a message
naming the setting, the value and the choices, and exit code 2 from the command line.
"""

from __future__ import annotations

import json
import typing

import numpy as np
import pytest

from bids_app.config import EncodingConfig, TaskEntry, VariantEntry, default_spec, spec_from_dict
from bids_app.encoding.cv import outer_splits
from bids_app.errors import EXIT_USAGE, UsageError
from bids_app.io.confounds import STRATEGIES
from bids_app.spec_choices import (
    K_FOLD,
    ConfoundStrategy,
    OuterCV,
    TaskType,
    TuningMethodName,
)
from bids_app.spec_inputs import BoldConfig
from bids_app.spec_types import check_value, type_name
from bids_app.variants import Extractor, plan_variants
from stimuli_models.tasks import TASK_TYPES
from stimuli_models.tuning import METHODS, get_method

TASK = {"name": "sentiment", "type": "sequence-classification", "train": "train.tsv"}
METHOD_CHOICES = "{" + ", ".join(repr(m) for m in sorted(METHODS)) + "}"
TYPE_CHOICES = "{" + ", ".join(repr(t) for t in sorted(("", *TASK_TYPES))) + "}"
CONFOUND_CHOICES = "{" + ", ".join(repr(s) for s in sorted(("", *STRATEGIES))) + "}"
OUTER_CHOICES = "{'<K>-fold', 'leave-one-run-out', 'leave-one-story-out'} with K at least 2"


def _variant_spec(method) -> dict:
    return {"tasks": [TASK], "variants": [{"method": method, "task": "sentiment"}]}


def _task_spec(task_type) -> dict:
    return {"tasks": [{**TASK, "type": task_type}]}


# --- one source of truth ---------------------------------------------------------------------

def test_choices_are_the_names_their_modules_implement():
    hints = {cls: typing.get_type_hints(cls, include_extras=True)
             for cls in (VariantEntry, TaskEntry, BoldConfig, EncodingConfig, Extractor)}
    assert hints[VariantEntry]["method"] is TuningMethodName
    assert hints[Extractor]["method"] is TuningMethodName
    assert set(typing.get_args(TuningMethodName)) == set(METHODS)
    assert hints[TaskEntry]["type"] is TaskType
    assert set(typing.get_args(TaskType)) == {"", *TASK_TYPES}
    assert hints[BoldConfig]["confounds"] is ConfoundStrategy
    assert set(typing.get_args(ConfoundStrategy)) == {"", *STRATEGIES}
    assert hints[EncodingConfig]["outer_cv"] == OuterCV
    assert type_name(OuterCV) == ("'leave-one-run-out' or 'leave-one-story-out' or "
                                  "'<K>-fold' (K at least 2)")


# --- every choice loads, a wrong one is named -------------------------------------------------

@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_registered_method_is_accepted(method):
    spec = spec_from_dict(_variant_spec(method))
    assert spec.variants[0].method == method
    assert get_method(method).name == method


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_every_task_type_is_accepted(task_type):
    assert spec_from_dict(_task_spec(task_type)).tasks[0].type == task_type


def test_an_empty_task_type_is_the_hub_benchmark_s():
    spec = spec_from_dict({"tasks": [{"name": "sst", "hub": "glue", "config": "sst2"}]})
    assert spec.tasks[0].type == "sequence-classification"


@pytest.mark.parametrize("strategy", ["", *STRATEGIES])
def test_every_confound_strategy_is_accepted(strategy):
    options = {"strategy": ["motion"]} if strategy == "custom" else {}
    bold = spec_from_dict({"bold": {"confounds": strategy, "confound_options": options}}).bold
    assert bold.confounds == strategy


@pytest.mark.parametrize("data, message", [
    (_variant_spec("lorra"), f"'variants[0].method' must be one of {METHOD_CHOICES}; got 'lorra'."),
    (_variant_spec("LoRA"), f"'variants[0].method' must be one of {METHOD_CHOICES}; got 'LoRA'."),
    (_variant_spec(3), f"'variants[0].method' must be one of {METHOD_CHOICES}; got 3."),
    (_task_spec("classification"),
     f"'tasks[0].type' must be one of {TYPE_CHOICES}; got 'classification'."),
    (_task_spec(True), f"'tasks[0].type' must be one of {TYPE_CHOICES}; got True."),
    ({"bold": {"confounds": "aroma"}},
     f"'bold.confounds' must be one of {CONFOUND_CHOICES}; got 'aroma'."),
    ({"bold": {"confounds": "none"}},
     f"'bold.confounds' must be one of {CONFOUND_CHOICES}; got 'none'."),
    ({"encoding": {"outer_cv": "leave-one-subject-out"}},
     f"'encoding.outer_cv' must be one of {OUTER_CHOICES}; got 'leave-one-subject-out'."),
    ({"encoding": {"outer_cv": 5}}, f"'encoding.outer_cv' must be one of {OUTER_CHOICES}; got 5."),
])
def test_a_wrong_choice_names_the_setting_the_value_and_the_choices(data, message):
    with pytest.raises(UsageError) as info:
        spec_from_dict(data)
    assert str(info.value) == message


# --- the parametrised outer CV ---------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["leave-one-run-out", "leave-one-story-out", "2-fold",
                                    "3-fold", "02-fold", "10-fold", "1-fold", "0-fold", "fold",
                                    "K-fold", "3-folds", "-3-fold", " 3-fold", "3-Fold"])
def test_outer_cv_accepts_exactly_the_schemes_cross_validation_runs(scheme):
    """The spec's type and the folds of ``encoding.cv`` agree on every scheme, K included."""
    groups = np.repeat(np.arange(6), 4)
    labels = ["a", "b", "c", "d", "e", "f"]
    try:
        splits = outer_splits(groups, scheme, labels=labels)
    except ValueError:
        splits = None
    try:
        spec = spec_from_dict({"encoding": {"outer_cv": scheme}})
    except UsageError as exc:
        assert splits is None, scheme
        assert str(exc) == f"'encoding.outer_cv' must be one of {OUTER_CHOICES}; got {scheme!r}."
        return
    assert splits is not None and spec.encoding.outer_cv == scheme
    k = K_FOLD.parameter(scheme)
    assert len(splits) == (min(k, 6) if k is not None else 6)  # K at most one block per run


def test_k_fold_is_checked_from_the_pattern_alone():
    assert [K_FOLD.parameter(v) for v in ("5-fold", "2-fold", "1-fold", "5", 5)] == [
        5, 2, None, None, None]
    with pytest.raises(UsageError, match=r"^'x' must be '<K>-fold' \(K at least 2\); got '1-fold'"):
        check_value("x", "1-fold", typing.Annotated[str, K_FOLD])
    check_value("x", "4-fold", typing.Annotated[str, K_FOLD])


# --- the same checks for overrides, specs built in Python, and the command line ---------------

@pytest.mark.parametrize("name, value, message", [
    ("encoding.outer_cv", "1-fold",
     f"'encoding.outer_cv' must be one of {OUTER_CHOICES}; got '1-fold'."),
    ("bold.confounds", "aroma",
     f"'bold.confounds' must be one of {CONFOUND_CHOICES}; got 'aroma'."),
])
def test_overrides_are_checked_by_the_same_choices(name, value, message):
    from bids_app.config import with_settings

    with pytest.raises(UsageError) as info:
        with_settings(default_spec(), {name: value})
    assert str(info.value) == message
    assert with_settings(default_spec(), {"encoding.outer_cv": "4-fold"}).encoding.outer_cv == (
        "4-fold")


def test_a_spec_built_in_python_is_checked_before_variants_are_planned():
    from bids_app.config import validate_spec

    spec = default_spec()
    spec.variants[0].method = "frozn"
    with pytest.raises(UsageError, match=r"^'variants\[0\].method' must be one of \{'adapter'"):
        validate_spec(spec)
    spec.variants[0].method = "frozen"
    assert [e.method for e in plan_variants(spec)[0]] == ["frozen"]


@pytest.mark.parametrize("text, message", [
    ('[[variants]]\nmethod = "lorra"\n', f"'variants[0].method' must be one of {METHOD_CHOICES}"),
    ('[[tasks]]\nname = "t"\ntype = "ner"\ntrain = "x.tsv"\n',
     f"'tasks[0].type' must be one of {TYPE_CHOICES}; got 'ner'."),
    ('[bold]\nconfounds = "aroma"\n', f"'bold.confounds' must be one of {CONFOUND_CHOICES}"),
    ('[encoding]\nouter_cv = "1-fold"\n', f"'encoding.outer_cv' must be one of {OUTER_CHOICES}"),
])
def test_a_wrong_choice_in_a_spec_file_exits_2_with_one_sentence(tmp_path, capsys, text, message):
    from bids_app.cli import main

    bids = tmp_path / "ds"
    bids.mkdir()
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "x",
                                                               "BIDSVersion": "1.9.0"}))
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    code = main([str(bids), str(tmp_path / "out"), "participant", "--config-file", str(spec)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*_statmap.*"))
