"""Checks of a whole experiment spec that its field annotations cannot express.

Each field's type, choices and range are checked from its annotation
(:func:`bids_app.spec_types.check_fields`). This module adds what involves
several fields or other parts of the app: names and cross-references of models,
tasks and variants, the settings of tuning methods and task types, confound
options and path patterns. It does not import the spec's
module (:mod:`bids_app.config` imports it), so it reads the spec by attribute.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from stimuli_models.errors import SettingsError
from stimuli_models.tasks import check_task_options
from stimuli_models.tuning import get_method

from .errors import UsageError
from .io.confounds import check_confound_settings
from .io.hcp import check_pattern
from .spec_types import check_fields, check_range, check_value, section_fields
from .variant_labels import check_bands_with

#: Labels that become part of file names.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
#: Largest ridge penalty: beyond it float32 predictions (and their p values) vanish.
MAX_ALPHA = 1e12
#: Ranges of numeric tuning settings: (lowest, highest, whether the lowest is allowed).
_TUNING_RANGES = {"r": (1, None, True), "alpha": (0, None, False), "dropout": (0, 1, True),
                  "reduction_factor": (1, None, True), "bottleneck": (1, None, True),
                  "projection_size": (1, None, True)}


def validate_spec(spec: Any) -> None:
    """Check the values and cross-references of a spec.

    Parameters
    ----------
    spec : ExperimentSpec
        A spec loaded from TOML or built in Python.

    Raises
    ------
    UsageError
        Naming the first offending setting and the fix (exit code 2).
    """
    for item in dataclasses.fields(spec):
        value = getattr(spec, item.name)
        if dataclasses.is_dataclass(value):
            check_fields(value, item.name)
        elif isinstance(value, list):
            for index, entry in enumerate(value):
                if dataclasses.is_dataclass(entry):
                    check_fields(entry, f"{item.name}[{index}]")
    _check_names(spec)
    check_bands_with(spec.variants)
    _validate_tuning(spec)
    _check_annotations(spec.annotations)
    _check_encoding(spec)
    if spec.alignment.method in ("fir", "lanczos") and not spec.alignment.delays:
        raise UsageError(f"'alignment.delays' must name at least one delay (in volumes) for "
                         f"alignment.method = '{spec.alignment.method}', e.g. [1, 2, 3, 4].")
    if not 0.0 <= spec.bold.slice_time_ref <= 1.0:
        raise UsageError("'bold.slice_time_ref' must be in [0, 1]; "
                         f"got {spec.bold.slice_time_ref}.")
    _validate_inputs(spec)
    _check_statistics(spec.statistics)


def with_settings(spec: Any, overrides: dict[str, Any]) -> Any:
    """A new spec with some settings replaced; ``spec`` itself is left unchanged.

    Parameters
    ----------
    spec : ExperimentSpec
        The spec loaded from TOML (or built in Python).
    overrides : dict of str to object
        ``{"<section>.<key>": value}``, e.g. ``{"bold.dummy_scans": 2}`` (the
        ``--dummy-scans`` option), ``{"features.unit": "sentence"}``.

    Returns
    -------
    ExperimentSpec
        A copy sharing every untouched section with ``spec``, checked like a
        loaded spec.

    Raises
    ------
    UsageError
        When a name is not a setting of the spec, or its value is of the wrong
        type, not among the choices or out of range (exit code 2).

    Examples
    --------
    >>> from bids_app.config import default_spec
    >>> spec = default_spec()
    >>> changed = with_settings(spec, {"bold.dummy_scans": 2, "features.unit": "sentence"})
    >>> (spec.bold.dummy_scans, changed.bold.dummy_scans, changed.features.unit)
    (0, 2, 'sentence')
    """
    sections: dict[str, dict] = {}
    for name, value in overrides.items():
        section, _, key = name.partition(".")
        current = getattr(spec, section, None)
        fields_ = ({item.name: (item, hint) for item, hint in section_fields(type(current))}
                   if dataclasses.is_dataclass(current) else {})
        if key not in fields_:
            raise UsageError(f"'{name}' is not a setting of the experiment spec; name one as "
                             "'<section>.<key>' (see the README's tables of settings).")
        item, hint = fields_[key]
        check_value(name, value, hint)
        check_range(name, value, item.metadata)
        sections.setdefault(section, {})[key] = value
    replaced = {}
    for section, values in sections.items():
        current = getattr(spec, section)
        try:
            if hasattr(current, "from_flat"):  # a section nesting other settings
                replaced[section] = current.from_flat({**current.to_dict(), **values})
            else:
                replaced[section] = dataclasses.replace(current, **values)
        except SettingsError as exc:
            raise UsageError(f"[{section}]: {exc}") from None
    new = dataclasses.replace(spec, **replaced)
    validate_spec(new)
    return new


def _check_names(spec: Any) -> None:
    names = [m.name for m in spec.models]
    for name in names:
        if not LABEL_PATTERN.match(name):
            raise UsageError(f"model name '{name}' must be alphanumeric (it becomes part of "
                             "file names); rename it.")
    if len(set(names)) != len(names):
        raise UsageError(f"model names must be unique; got {names}.")
    for variant in spec.variants:
        spec.model(variant.model)
        if variant.task:
            spec.task(variant.task)
        if variant.label and not LABEL_PATTERN.match(variant.label):
            raise UsageError(f"variant label '{variant.label}' must be alphanumeric; rename it.")


def _check_encoding(spec: Any) -> None:
    """Check alphas, inner folds, trimming and banded ridge settings."""
    encoding = spec.encoding
    if not encoding.alphas or any(not 0 < a <= MAX_ALPHA for a in encoding.alphas):
        raise UsageError(f"'encoding.alphas' must be a list of positive numbers up to "
                         f"{MAX_ALPHA:g} (larger ones shrink float32 predictions to nothing); "
                         f"got {encoding.alphas!r}.")
    if encoding.inner_folds < 2:
        raise UsageError(f"'encoding.inner_folds' must be at least 2; got {encoding.inner_folds}.")
    trim = encoding.trim_edges
    if trim and (len(trim) != 2 or any(t < 0 for t in trim)):
        raise UsageError("'encoding.trim_edges' must be two non-negative integers (volumes at "
                         f"the start and end of each run) or empty; got {trim!r}.")
    seconds = encoding.trim_seconds
    if len(seconds) != 2 or any(not math.isfinite(t) or t < 0 for t in seconds):
        raise UsageError("'encoding.trim_seconds' must be two non-negative numbers (seconds at "
                         f"the start and end of each run); got {seconds!r}.")
    if encoding.banded_iterations < 1:
        raise UsageError("'encoding.banded_iterations' must be at least 1; got "
                         f"{encoding.banded_iterations}.")


def _check_annotations(ann: Any) -> None:
    if ann.segmentation == "file" and not ann.segmentation_file:
        raise UsageError("'annotations.segmentation' is 'file' but 'annotations.segmentation_file'"
                         " is empty; name the file holding the words (a pattern like mapping).")
    if ann.segmentation == "dictionary" and not ann.dictionary:
        raise UsageError("'annotations.segmentation' is 'dictionary' but 'annotations.dictionary'"
                         " is empty; name a word list (one word per line).")
    if ann.sentence_gap <= 0:
        raise UsageError(f"'annotations.sentence_gap' must be a positive number of seconds; "
                         f"got {ann.sentence_gap!r}.")
    if ann.sentence_chunk < 1:
        raise UsageError(f"'annotations.sentence_chunk' must be a positive number of words; "
                         f"got {ann.sentence_chunk!r}.")


def _validate_inputs(spec: Any) -> None:
    """Check ``[bold]`` confound settings and the ``[inputs]`` mapping."""
    bold = spec.bold
    check_confound_settings(bold.confounds, bold.confound_options, bold.confound_regression)
    if bold.high_pass < 0:
        raise UsageError(f"'bold.high_pass' must be >= 0 (Hz; 0 disables); got {bold.high_pass}.")
    if bold.voxel_batch < 1:
        raise UsageError(f"'bold.voxel_batch' must be >= 1; got {bold.voxel_batch}.")
    for name in ("volume", "cifti", "mask"):
        check_pattern(name, getattr(spec.inputs, name))
    if spec.inputs.layout == "hcp" and not (spec.inputs.volume or spec.inputs.cifti):
        raise UsageError("[inputs] layout = 'hcp' needs a 'volume' and/or 'cifti' path pattern, "
                         "e.g. volume = 'sub-{subject}/MNI/sub-{subject}_task-{task}_run-{run}"
                         "_bold.nii.gz'.")


def _check_statistics(stats: Any) -> None:
    if not 0.0 < stats.fdr_alpha < 1.0:
        raise UsageError(f"'statistics.fdr_alpha' must be in (0, 1); got {stats.fdr_alpha}.")
    if not 0.0 < stats.top_percent <= 100.0:
        raise UsageError(f"'statistics.top_percent' must be in (0, 100]; got {stats.top_percent}.")
    for pair in stats.compare:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(p, str) and LABEL_PATTERN.match(p) for p in pair)):
            raise UsageError("'statistics.compare' must be a list of pairs of variant labels, "
                             f"e.g. [[\"minilmloraL3\", \"minilmfrozenL3\"]]; got {pair!r}.")
    for name in ("heldout_permutations", "n_bootstrap"):
        if getattr(stats, name) < 0 or 0 < getattr(stats, name) < 20:
            raise UsageError(f"'statistics.{name}' must be 0 or at least 20; got "
                             f"{getattr(stats, name)}.")


def _validate_tuning(spec: Any) -> None:
    """Check tasks and tuning methods with their settings."""
    for task in spec.tasks:
        try:  # a known 'hub' benchmark gives the type when the entry has none
            task.type = check_task_options(task.type, task.options)["type"]
        except SettingsError as exc:
            raise UsageError(f"[[tasks]] '{task.name}': {exc}") from None
    for variant in spec.variants:
        try:
            method = get_method(variant.method, **variant.settings)
        except SettingsError as exc:
            raise UsageError(f"[[variants]] with method '{variant.method}': {exc}") from None
        _check_tuning_ranges(variant)
        if method.needs_task and not variant.task:
            raise UsageError(f"a variant with tuning method '{variant.method}' needs a 'task' "
                             "naming one of the spec's [[tasks]].")


def _check_tuning_ranges(variant: Any) -> None:
    for key, (low, high, closed) in _TUNING_RANGES.items():
        value = variant.settings.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value < low or (value == low and not closed) or (high is not None and value >= high):
            shown = (f"in {'[' if closed else '('}{low}, {high})" if high is not None
                     else f">= {low}" if closed else f"> {low}")
            raise UsageError(f"setting '{key}' of tuning method '{variant.method}' must be "
                             f"{shown}; got {value!r}.")
