"""Featurize every story with one extractor (cached under ``OUTPUT_DIR/stimuli``)."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import from_library_error
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
        Story JSON files (see :class:`stimuli_models.featurize.Story`).
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
    from stimuli_models.errors import StimuliModelsError
    from stimuli_models.features import FeatureSettings
    from stimuli_models.featurize import Story, featurize_stories
    from stimuli_models.tuning import get_method

    from .config import FeatureConfig

    extractor = Extractor.from_json(extractor_json)
    tuning = json.loads(Path(tuning_json).read_text(encoding="utf-8"))
    config = FeatureConfig(**feature_settings)
    settings: FeatureSettings = config.settings()
    dtype = settings.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
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
