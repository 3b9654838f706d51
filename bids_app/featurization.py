"""Story features for the design matrices.

Model features: every story featurized once per extractor, cached under
``OUTPUT_DIR/stimuli/features`` by content hash. Nuisance features: low-level
word properties (rate, length, frequency, sentence boundaries) computed from the
story files, each a band of its own in every design.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stimuli_models.errors import StimuliModelsError
from stimuli_models.features import FeatureSettings, resolve_dtype
from stimuli_models.nuisance import (
    FrequencyTable,
    nuisance_features,
    read_frequency_file,
    unigram_counts,
)
from stimuli_models.story_features import Story, featurize_stories
from stimuli_models.tuning import get_method

from .config import FeatureConfig
from .errors import DatasetError, UsageError, from_library_error
from .variants import Extractor


def featurize_extractor(extractor_json: str, tuning_json: str, story_files: list[str],
                        output_dir: str, *, feature_settings: dict, device: str) -> list[str]:
    """Compute (or reuse) the features of all stories for one extractor.

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
    extractor = Extractor.from_json(extractor_json)
    tuning = json.loads(Path(tuning_json).read_text(encoding="utf-8"))
    config = FeatureConfig.from_dict(feature_settings)
    settings: FeatureSettings = config.settings()
    try:
        dtype = resolve_dtype(settings.dtype, device)
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    # the resolved dtype is part of the cache key: GPU (bf16) and CPU features differ
    settings = FeatureSettings(**{**settings.to_dict(), "layers": tuple(extractor.layers),
                                  "dtype": dtype})
    stories = [Story.from_json(path) for path in story_files]
    try:
        method = get_method(extractor.method, **extractor.settings)

        def load():
            return method.load_for_features(
                Path(extractor.model_dir),
                Path(tuning["variant_dir"]) if tuning.get("variant_dir") else None,
                device=device, dtype=dtype, allow_pickle=extractor.model.allow_pickle,
                trust_remote_code=extractor.model.trust_remote_code,
            )

        paths = featurize_stories(
            stories, load=load, model_fingerprint=tuning["fingerprint"], settings=settings,
            cache_dir=Path(output_dir) / "stimuli" / "features", device=device,
            metadata={"extractor": extractor.label, "method": extractor.method},
        )
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    return [str(p) for p in paths]


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
