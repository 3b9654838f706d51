"""Featurize many stories with one model, through a content-addressed cache.

A story's features depend only on the model's files (including tuning), the
feature settings and the story's words; their hash names the cached file, so
every participant, every job and every rerun shares one copy. The model is
loaded only when at least one story is missing from the cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import atomic_save_npy, atomic_write_json, locked, stable_hash
from .features import FeatureSettings, StoryFeatures, compute_features

#: Bump when the featurization code changes in a way that alters numbers.
FEATURES_VERSION = 3


@dataclass
class Story:
    """The text of one story.

    Parameters
    ----------
    name : str
        Short label (used in messages and metadata only).
    words : list of str
        Words in order.
    sentences : list of int, optional
        Sentence index of each word; from punctuation when omitted.
    separator : str
        Joins words into text (``''`` for scripts without spaces).
    """

    name: str
    words: list
    sentences: list | None = None
    separator: str = " "

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Story:
        """Read a story written by :meth:`to_json`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(name=data["name"], words=list(data["words"]),
                   sentences=data.get("sentences"), separator=data.get("separator", " "))

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the story as JSON (atomically)."""
        atomic_write_json(path, {"name": self.name, "words": self.words,
                                 "sentences": self.sentences, "separator": self.separator})


@dataclass
class LoadedModel:
    """A model ready for featurization (what a model loader returns)."""

    model: object
    tokenizer: object
    n_layers: int
    n_virtual_tokens: int = 0


def feature_key(model_fingerprint: str, settings: FeatureSettings, story: Story) -> str:
    """Content hash of everything a story's features depend on.

    Sentence boundaries count only for sentence units (word features do not use them).
    """
    sentences = story.sentences if settings.unit == "sentence" else None
    return stable_hash(
        {"version": FEATURES_VERSION, "model": model_fingerprint,
         "settings": settings.to_dict(), "words": story.words,
         "sentences": sentences, "separator": story.separator}
    )


def feature_file_name(key: str) -> str:
    """Name of the features file of a :func:`feature_key` in a cache folder.

    Examples
    --------
    >>> feature_file_name("0123456789abcdef0123456789abcdef")
    '0123456789abcdef01234567.npy'
    """
    return f"{key[:24]}.npy"


def featurize_stories(
    stories: Sequence[Story],
    *,
    load: Callable[[], LoadedModel],
    model_fingerprint: str,
    settings: FeatureSettings,
    cache_dir: str | os.PathLike,
    device: str = "cpu",
    metadata: dict | None = None,
) -> list[Path]:
    """Compute (or reuse) the features of several stories.

    Parameters
    ----------
    stories : sequence of Story
        The stories.
    load : callable
        Returns a :class:`LoadedModel`; called at most once, and only on a cache miss.
    model_fingerprint : str
        Hash of the model's files and tuning (see ``models.hash_model_dir``).
    settings : FeatureSettings
        Feature settings.
    cache_dir : path-like
        Cache folder, shared by concurrent jobs.
    device : str
        Torch device.
    metadata : dict, optional
        Extra provenance written next to each feature file.

    Returns
    -------
    list of Path
        One ``.npy`` file per story, of shape (n_layers, n_words, n_features).
    """
    cache_dir = Path(cache_dir)
    loaded: list[LoadedModel] = []
    paths = []
    for story in stories:
        key = feature_key(model_fingerprint, settings, story)
        target = cache_dir / feature_file_name(key)
        paths.append(target)
        if target.exists():
            continue
        with locked(target):
            if target.exists():  # built by a concurrent job while we waited
                continue
            if not loaded:
                loaded.append(load())
            lm = loaded[0]
            result: StoryFeatures = compute_features(
                story.words, lm.model, lm.tokenizer, settings, n_layers=lm.n_layers,
                separator=story.separator,
                sentences=None if story.sentences is None else np.asarray(story.sentences),
                n_virtual_tokens=lm.n_virtual_tokens, device=device,
            )
            meta = {
                "story": story.name,
                "key": key,
                "model_fingerprint": model_fingerprint,
                "settings": settings.to_dict(),
                "layers": list(result.layers),
                "shape": list(result.features.shape),
                **result.info,
                **(metadata or {}),
            }
            atomic_write_json(target.with_suffix(".json"), meta)
            atomic_save_npy(target, result.features)
    return paths


def load_feature_layers(path: str | os.PathLike) -> tuple[np.ndarray, list[int]]:
    """Read a cached feature file and the hidden-state index of each slice.

    Returns
    -------
    features : ndarray of shape (n_layers, n_words, n_features)
    layers : list of int
    """
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return np.load(path, mmap_mode="r"), list(meta["layers"])
