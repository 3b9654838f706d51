"""stimuli_models.featurize_words: word features of any text, without BIDS."""

from __future__ import annotations

import numpy as np
import pytest


def test_featurize_words_layers_context_and_cache(tiny_bert, tmp_path):
    from stimuli_models import featurize_words

    words = "the cat sat on the mat and then it slept all day long .".split()
    onsets = np.arange(len(words)) * 0.3
    both = featurize_words(words, onsets, tiny_bert, layers=(1, 2), context_words=5)
    top = featurize_words(words, onsets, tiny_bert, layers=(2,), context_words=5)
    assert both.features.shape[:2] == (2, len(words)) and both.layers == (1, 2)
    np.testing.assert_allclose(both.layer(2), top.layer(2), atol=1e-6)  # a layer is that layer
    np.testing.assert_array_equal(both.onsets, onsets)
    # causal context: words after a word never change its features
    longer = featurize_words(words + ["again", "."], None, tiny_bert, layers=(2,),
                             context_words=5, stride=1)
    shorter = featurize_words(words, None, tiny_bert, layers=(2,), context_words=5, stride=1)
    np.testing.assert_allclose(longer.features[:, :len(words)], shorter.features, atol=1e-5)
    wider = featurize_words(words, None, tiny_bert, layers=(2,), context_words=10, stride=1)
    assert not np.allclose(wider.features[:, -1], shorter.features[:, -1], atol=1e-4)
    cached = featurize_words(words, onsets, tiny_bert, layers=(1, 2), context_words=5,
                             cache_dir=tmp_path)
    again = featurize_words(words, onsets, tiny_bert, layers=(1, 2), context_words=5,
                            cache_dir=tmp_path)
    np.testing.assert_allclose(cached.features, both.features, atol=1e-6)
    np.testing.assert_array_equal(again.features, cached.features)
    assert len(list(tmp_path.glob("*.npy"))) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"onsets": [0.0, 1.0]}, "'onsets' must give one finite time (seconds) per word (3)"),
    ({"context": 4}, "feature settings must be among"),
    ({"pooling": "max"}, "'pooling' must be one of"),
])
def test_featurize_words_names_bad_values(tiny_bert, kwargs, message):
    from stimuli_models import featurize_words
    from stimuli_models.errors import SettingsError

    with pytest.raises(SettingsError) as caught:
        featurize_words(["a", "b", "c"], model=tiny_bert, **kwargs)
    assert message in str(caught.value)
