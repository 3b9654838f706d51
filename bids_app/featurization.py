"""Story features for the design matrices.

Model features: every story featurized once per extractor, cached under
``OUTPUT_DIR/stimuli/features`` by content hash. Nuisance features: low-level
word properties (rate, length, frequency, sentence boundaries) computed from the
story files, each a band of its own in every design.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stimuli_models.cache import locked
from stimuli_models.errors import StimuliModelsError
from stimuli_models.features import FeatureSettings, resolve_dtype
from stimuli_models.nuisance import (
    FrequencyTable,
    nuisance_features,
    read_frequency_file,
    unigram_counts,
)
from stimuli_models.story_features import (
    Story,
    feature_file_name,
    feature_key,
    featurize_stories,
)
from stimuli_models.tuning import get_method

from .config import FeatureConfig
from .errors import DatasetError, UsageError, from_library_error
from .io.store import claim, claimed_copy, copy_staged, publish_files, release
from .variants import Extractor

#: The features store, relative to OUTPUT_DIR.
FEATURES = Path("stimuli") / "features"


def _feature_job(extractor_json: str, tuning_json: str, *, feature_settings: dict,
                 device: str) -> tuple[FeatureSettings, str, Callable, dict]:
    """Settings, model fingerprint, lazy model loader and provenance of one extractor's features."""
    extractor = Extractor.from_json(extractor_json)
    tuning = json.loads(Path(tuning_json).read_text(encoding="utf-8"))
    settings: FeatureSettings = FeatureConfig.from_dict(feature_settings).settings()
    try:
        dtype = resolve_dtype(settings.dtype, device)
        method = get_method(extractor.method, **extractor.settings)
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    # the resolved dtype is part of the cache key: GPU (bf16) and CPU features differ
    settings = FeatureSettings(**{**settings.to_dict(), "layers": tuple(extractor.layers),
                                  "dtype": dtype})
    loaded = []

    def load():  # at most once per step, and only on a miss
        if not loaded:
            loaded.append(method.load_for_features(
                Path(extractor.model_dir),
                Path(tuning["variant_dir"]) if tuning.get("variant_dir") else None,
                device=device, dtype=dtype, allow_pickle=extractor.model.allow_pickle,
                trust_remote_code=extractor.model.trust_remote_code))
        return loaded[0]

    metadata = {"extractor": extractor.label, "method": extractor.method}
    return settings, tuning["fingerprint"], load, metadata


def featurize_extractor(extractor_json: str, tuning_json: str, story_files: list[str],
                        output_dir: str, *, feature_settings: dict, device: str) -> list[str]:
    """Compute (or reuse) the features of all stories for one extractor, in the store.

    This is the path of :mod:`bids_app.api` (a notebook's cache folder); the
    workflow stages features in its node folder instead (:func:`stage_features`).

    Parameters
    ----------
    extractor_json : str
        Serialised :class:`~bids_app.variants.Extractor`.
    tuning_json : str
        Record written by :func:`bids_app.tuning.tune_extractor`.
    story_files : list of str
        Story JSON files (see :class:`stimuli_models.story_features.Story`).
    output_dir : str
        The BIDS-App's OUTPUT_DIR; features go to ``stimuli/features``.
    feature_settings : dict
        ``[features]`` of the spec.
    device : str
        Torch device ('cpu' or 'cuda').

    Returns
    -------
    list of str
        One ``.npy`` per story, shape (n_layers, n_words, n_features).
    """
    settings, fingerprint, load, metadata = _feature_job(
        extractor_json, tuning_json, feature_settings=feature_settings, device=device)
    try:
        paths = featurize_stories(
            [Story.from_json(path) for path in story_files], load=load,
            model_fingerprint=fingerprint, settings=settings,
            cache_dir=Path(output_dir) / FEATURES, device=device, metadata=metadata)
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    return [str(p) for p in paths]


def stage_features(extractor_json: str, tuning_json: str, story_files: list[str],
                   output_dir: str, stage_root: str | os.PathLike, *, feature_settings: dict,
                   device: str) -> tuple[list[str], list[str]]:
    """Stage in a node folder the story features the store lacks.

    The store (``OUTPUT_DIR/stimuli/features``) is only read. A story whose
    features it lacks is featurized into ``<stage_root>/stimuli/features`` (or
    copied from a concurrent job's finished staged copy, see
    :mod:`bids_app.io.store`); :func:`publish_features` publishes them.

    Parameters
    ----------
    extractor_json, tuning_json, story_files, feature_settings, device
        As for :func:`featurize_extractor`.
    output_dir : str
        The BIDS-App's OUTPUT_DIR (holding the store).
    stage_root : path
        The node's staging folder (shaped like OUTPUT_DIR).

    Returns
    -------
    feature_files : list of str
        One store path per story (``.npy`` of shape (n_layers, n_words, n_features)),
        as published.
    staged : list of str
        The staged ``.npy`` files (their ``.json`` sidecars beside them).
    """
    settings, fingerprint, load, metadata = _feature_job(
        extractor_json, tuning_json, feature_settings=feature_settings, device=device)
    store, stage = Path(output_dir) / FEATURES, Path(stage_root) / FEATURES
    finals, staged = [], []
    try:
        for path in story_files:
            story = Story.from_json(path)
            key = feature_key(fingerprint, settings, story)
            final = store / feature_file_name(key)
            finals.append(str(final))
            with locked(final):
                if final.exists():
                    continue
                other = claimed_copy(final, key)
                if other is not None:  # finished by a concurrent job, not yet published
                    copy_staged(other.with_suffix(".json"), stage / f"{final.stem}.json")
                    target = copy_staged(other, stage / final.name)
                else:
                    [target] = featurize_stories([story], load=load,
                                                 model_fingerprint=fingerprint,
                                                 settings=settings, cache_dir=stage,
                                                 device=device, metadata=metadata)
                claim(final, target, key)
                staged.append(str(target))
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    return finals, staged


def publish_features(staged: list[str], stage_root: str | os.PathLike,
                     output_dir: str | os.PathLike) -> int:
    """Publish features staged by :func:`stage_features` (an entry present is kept).

    Parameters
    ----------
    staged : list of str
        Staged ``.npy`` files under ``<stage_root>/stimuli/features``.
    stage_root : path
        The staging folder of the step that staged them.
    output_dir : path
        OUTPUT_DIR.

    Returns
    -------
    int
        Features written (an entry already in the store is kept: first wins).
    """
    written = 0
    for path in map(Path, staged):
        final = Path(output_dir) / path.relative_to(stage_root)
        with locked(final):
            # the sidecar first: a present .npy means a complete entry
            written += publish_files([path.with_suffix(".json"), path],
                                     [final.with_suffix(".json"), final]) > 0
            release(final)
    return written


def nuisance_settings(spec) -> dict:
    """Return the nuisance bands of a spec, with the frequency file resolved and checked.

    Parameters
    ----------
    spec : ExperimentSpec
        The experiment spec (``[features] nuisance`` and ``frequency_file``).

    Returns
    -------
    dict
        ``{'bands': [...], 'frequency_file': absolute path or ''}``;
        ``bands`` is empty when no nuisance band is asked for.
    """
    features = spec.features
    path = ""
    if features.frequency_file and "word_frequency" in features.nuisance:
        file = Path(features.frequency_file).expanduser()
        if not file.is_absolute() and spec.source_file:
            file = Path(spec.source_file).parent / file
        if not file.is_file():
            raise UsageError(f"the word frequency file '{file}' ('features.frequency_file') "
                             "does not exist; fix the path (relative to the spec's folder).")
        path = str(file.resolve())
    return {"bands": list(features.nuisance), "frequency_file": path}


def story_nuisance(story_files: list[str], nuisance: dict) -> dict[str, dict[str, np.ndarray]]:
    """Compute the nuisance features of every story.

    Parameters
    ----------
    story_files : list of str
        Story JSON files (see :class:`stimuli_models.story_features.Story`); word
        frequencies come from unigram counts over all of them unless a frequency
        file is given.
    nuisance : dict
        From :func:`nuisance_settings`.

    Returns
    -------
    dict
        Story name -> band name -> float32 array of shape (n_words, 1), and
        ``'phones'`` -> phone onsets of each word relative to it (None when the
        ``phoneme_rate`` band is not asked for).
    """
    bands = list(nuisance.get("bands") or [])
    stories = [Story.from_json(path) for path in story_files]
    try:
        table = None
        if "word_frequency" in bands:
            if nuisance.get("frequency_file"):
                table = read_frequency_file(nuisance["frequency_file"])
            else:
                table = FrequencyTable(unigram_counts(s.words for s in stories))
        phones = {story.name: story_phones(path, story.name, "phoneme_rate" in bands)
                  for story, path in zip(stories, story_files, strict=True)}
        out = {story.name: nuisance_features(
                   story.words, bands, frequencies=table, phones=phones[story.name],
                   sentences=None if story.sentences is None else np.asarray(story.sentences))
               for story in stories}
        for name, values in out.items():
            values["phones"] = phones[name]
        return out
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None


def story_phones(story_file: str, name: str, needed: bool) -> list | None:
    """Phone onsets of each word of a story JSON, relative to the word (``phones``).

    Parameters
    ----------
    story_file : str
        Story JSON written by the planning step.
    name : str
        Story name (for messages).
    needed : bool
        Whether the ``phoneme_rate`` band is asked for (None is returned otherwise).

    Returns
    -------
    list of list of float or None

    Raises
    ------
    DatasetError
        When needed and the story has no phone timings.
    """
    if not needed:
        return None
    phones = json.loads(Path(story_file).read_text(encoding="utf-8")).get("phones")
    if phones is None:
        raise DatasetError(f"the 'phoneme_rate' nuisance band needs phone timings, but story "
                           f"'{name}' ('{story_file}') has none; give its annotation a phone tier "
                           "(a TextGrid IntervalTier named 'phones') or remove 'phoneme_rate' "
                           "from [features] nuisance.")
    return phones
