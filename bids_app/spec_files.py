"""Saving a resolved experiment spec, with the files it names as absolute paths.

A participant run saves the spec it ran as ``OUTPUT_DIR/experiment_spec.toml``,
which the group level (and a later ``--config-file``) reads from another folder
than the spec's own. This module reads the spec by attribute only, so that
:mod:`bids_app.config` can import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from stimuli_models.cache import atomic_file


def _absolute(value, base: Path, *, must_exist: bool):
    """``value`` (a path relative to ``base``, or a list of them) made absolute."""
    if isinstance(value, list):
        return [_absolute(v, base, must_exist=must_exist) for v in value]
    if not isinstance(value, str) or not value.strip():
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return value
    candidate = base / path
    if must_exist and not candidate.exists():
        return value  # not a file of the spec (an installed model package, a hub id)
    return str(candidate.resolve())


def spec_with_absolute_paths(spec: Any) -> dict:
    """The spec as data, with the files it names relative to its folder made absolute.

    A saved spec is read from another folder (``OUTPUT_DIR``) than the one it was
    written in, so relative model directories, task data, word-frequency lists and
    atlases would otherwise point elsewhere.
    """
    data = spec.to_dict()
    if not spec.source_file:
        return data
    base = Path(spec.source_file).parent
    for model in data.get("models", []):
        if "source" in model:
            model["source"] = _absolute(model["source"], base, must_exist=True)
    for task in data.get("tasks", []):
        for key in ("train", "dev", "test", "path", "cache_dir"):
            if key in task:
                task[key] = _absolute(task[key], base, must_exist=False)
    features = data.get("features", {})
    if "frequency_file" in features:
        features["frequency_file"] = _absolute(features["frequency_file"], base,
                                               must_exist=False)
    statistics = data.get("statistics", {})
    if "atlas" in statistics:
        statistics["atlas"] = _absolute(statistics["atlas"], base, must_exist=True)
    return data


def save_spec(spec: Any, path: str | Path) -> None:
    """Write the resolved spec as TOML (atomically), its files as absolute paths."""
    with atomic_file(path, "w") as handle:
        handle.write("# Resolved brainenc experiment spec (reusable with --config-file)\n")
        handle.write(tomli_w.dumps(spec_with_absolute_paths(spec)))
