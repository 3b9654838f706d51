"""Representation drift of a tuned model: linear CKA per layer against the pretrained model.

Measured on the words of the stories the participants heard (:func:`layer_drift`)
and kept in the model's record (``tuning.json``: ``cka``, ``cka_stories``) and in
``cka.tsv`` beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

from stimuli_models.cache import atomic_write_json, file_hash, locked, stable_hash
from stimuli_models.features import resolve_layers
from stimuli_models.models import check_model_dir, model_n_layers
from stimuli_models.similarity import representation_drift
from stimuli_models.story_features import Story
from stimuli_models.tuning import get_method

from .config import FeatureConfig
from .variants import Extractor

#: The record of a tuned model, in its folder.
RECORD = "tuning.json"


def stories_hash(story_files: list[str]) -> str:
    """Content hash of a set of story files (what a record's CKA was measured on)."""
    return stable_hash(sorted(file_hash(p) for p in story_files))


def layer_drift(record: dict, tensors: Path | None, extractor: Extractor, story_files: list[str],
                feature_settings: dict | None, device: str) -> dict[str, float]:
    """Linear CKA per layer between the tuned and the pretrained model on the story words.

    Parameters
    ----------
    record : dict
        The tuning record.
    tensors : Path or None
        Folder of the tuned tensors (None for a model used as pretrained).
    extractor : Extractor
        The extractor.
    story_files : list of str
        Story JSON files.
    feature_settings : dict or None
        ``[features]`` of the spec (context and pooling used for the CKA).
    device : str
        Torch device.

    Returns
    -------
    dict
        Layer (str) -> CKA, rounded to 6 decimals (1.0 for every layer of an untuned model).
    """
    settings = FeatureConfig.from_dict(feature_settings).settings()
    settings = settings.__class__(**{**settings.to_dict(), "layers": "all", "dtype": "float32"})
    if record["variant_dir"] is None or tensors is None:  # frozen: the pretrained model itself
        n = model_n_layers(check_model_dir(extractor.model_dir,
                                           allow_pickle=extractor.model.allow_pickle,
                                           trust_remote_code=extractor.model.trust_remote_code))
        cka = {layer: 1.0 for layer in resolve_layers("all", n)}
    else:
        opts = {"device": device, "dtype": "float32",
                "allow_pickle": extractor.model.allow_pickle,
                "trust_remote_code": extractor.model.trust_remote_code}
        tuned = get_method(extractor.method, **extractor.settings).load_for_features(
            Path(extractor.model_dir), Path(tensors), **opts)
        pretrained = get_method("frozen").load_for_features(Path(extractor.model_dir), None,
                                                            **opts)
        stories = [Story.from_json(p) for p in story_files]
        cka = representation_drift(tuned, pretrained, stories, settings, device=device)
    return {str(k): round(float(v), 6) for k, v in cka.items()}


def write_drift(folder: Path, record: dict, cka: dict[str, float], stories: str) -> None:
    """Write the record with its CKA, and ``cka.tsv``, into ``folder``."""
    record = {**record, "cka": cka, "cka_stories": stories}
    atomic_write_json(folder / RECORD, record)
    lines = ["layer\tcka"] + [f"{k}\t{v:.6f}" for k, v in sorted(cka.items())]
    (folder / "cka.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def record_drift(record_path: Path, extractor: Extractor, story_files: list[str],
                 feature_settings: dict | None, device: str) -> None:
    """Add linear CKA per layer (tuned vs pretrained, on the story words) to a store entry."""
    record = json.loads(record_path.read_text(encoding="utf-8"))
    wanted = stories_hash(story_files)
    if record.get("cka_stories") == wanted:
        return
    with locked(record_path):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("cka_stories") == wanted:
            return
        cka = layer_drift(record, record_path.parent, extractor, story_files, feature_settings,
                          device)
        write_drift(record_path.parent, record, cka, wanted)
