"""Representation similarity: linear CKA between the layers of two models.

Linear centred kernel alignment (Kornblith et al., 2019) compares two sets of
representations of the same items independently of rotations and isotropic
scaling. :func:`representation_drift` applies it layer by layer to a tuned model
and the pretrained model it came from, on the words of the stories, to measure
how far tuning moved each layer (1 = unchanged up to rotation and scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import SettingsError
from .features import compute_features


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two representations of the same items.

    Parameters
    ----------
    x : ndarray of shape (n_items, n_features_x)
    y : ndarray of shape (n_items, n_features_y)

    Returns
    -------
    float
        In [0, 1]; 1 when ``y`` is a rotation and scaling of ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise SettingsError(f"linear_cka needs two 2-D arrays with the same number of rows; "
                            f"got shapes {x.shape} and {y.shape}.")
    if x.shape[0] < 2:
        raise SettingsError("linear_cka needs at least 2 items.")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    if max(x.shape[1], y.shape[1]) <= x.shape[0]:
        cross = np.linalg.norm(x.T @ y) ** 2
        norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    else:  # fewer items than features: kernel form
        kx, ky = x @ x.T, y @ y.T
        cross = float(np.sum(kx * ky))
        norm = np.linalg.norm(kx) * np.linalg.norm(ky)
    return float(cross / norm) if norm > 0 else 0.0


def layerwise_cka(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CKA between matching layers of two feature stacks.

    Parameters
    ----------
    a, b : ndarray of shape (n_layers, n_items, n_features)

    Returns
    -------
    ndarray of shape (n_layers,)
    """
    if a.shape[:2] != b.shape[:2]:
        raise SettingsError(f"feature stacks differ in layers or items: {a.shape} vs {b.shape}.")
    return np.array([linear_cka(a[i], b[i]) for i in range(a.shape[0])])


def representation_drift(tuned, pretrained, stories: Sequence, settings, *, device: str = "cpu",
                         max_words: int = 2000) -> dict[int, float]:
    """Linear CKA per layer between a tuned model and its pretrained model on story words.

    Parameters
    ----------
    tuned, pretrained : LoadedModel
        The two models (see :class:`stimuli_models.story_features.LoadedModel`).
    stories : sequence of Story
        The stories; at most ``max_words`` words are used in total, the first
        words of each story in equal parts.
    settings : FeatureSettings
        Feature settings (context, pooling, unit); every layer is computed.
    device : str
        Torch device of both models.
    max_words : int
        Cap on the number of words compared.

    Returns
    -------
    dict
        Hidden-state index (0 = embeddings) -> CKA.
    """
    from dataclasses import replace

    if not stories:
        raise SettingsError("representation_drift needs at least one story.")
    settings = replace(settings, layers="all")
    per_story = max(2, max_words // len(stories))
    stacks = {"tuned": [], "pretrained": []}
    layers = None
    for story in stories:
        words = list(story.words)[:per_story]
        sentences = None if story.sentences is None else np.asarray(story.sentences)[:per_story]
        for key, loaded in (("tuned", tuned), ("pretrained", pretrained)):
            result = compute_features(words, loaded.model, loaded.tokenizer, settings,
                                      n_layers=loaded.n_layers, separator=story.separator,
                                      sentences=sentences,
                                      n_virtual_tokens=loaded.n_virtual_tokens, device=device)
            stacks[key].append(result.features)
            layers = result.layers
    a = np.concatenate(stacks["tuned"], axis=1)
    b = np.concatenate(stacks["pretrained"], axis=1)
    values = layerwise_cka(a, b)
    return {int(layer): float(v) for layer, v in zip(layers, values, strict=False)}
