"""Causal features depend on the word and the words before it only, with the same context."""

from __future__ import annotations

import numpy as np
import pytest

from stimuli_models.features import FeatureSettings, compute_features
from stimuli_models.windows import plan_windows, tokenize_words

WORDS = ("the keeper walked slowly to the old harbour and found a wooden box that nobody "
         "had opened since the storm of the winter before").split()
DEFAULT_STRIDE = FeatureSettings().stride


def _load(path):
    from stimuli_models.models import load_model

    return load_model(path)


@pytest.fixture(scope="module")
def bert(tiny_bert):
    return _load(tiny_bert)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2):
    return _load(tiny_gpt2)


def _features(loaded, words, **kw):
    model, tokenizer = loaded
    settings = FeatureSettings(layers="all", direction="causal", **kw)
    return compute_features(list(words), model, tokenizer, settings, n_layers=2).features


@pytest.mark.parametrize("name", ["bert", "gpt2"])
@pytest.mark.parametrize("stride", [1, DEFAULT_STRIDE])
@pytest.mark.parametrize("context", [3, 6])
def test_changing_a_word_leaves_earlier_words_unchanged(name, stride, context, request):
    loaded = request.getfixturevalue(name)
    base = _features(loaded, WORDS, stride=stride, context_words=context)
    for i in (3, 9, 14):
        changed = list(WORDS)
        changed[i] = "lighthouse"
        other = _features(loaded, changed, stride=stride, context_words=context)
        np.testing.assert_allclose(other[:, :i], base[:, :i], rtol=1e-5, atol=1e-6)
        # the changed word and (within the context) the words after it do change
        assert not np.allclose(other[1:, i], base[1:, i], atol=1e-4)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_stride_does_not_change_causal_features(name, request):
    loaded = request.getfixturevalue(name)
    one = _features(loaded, WORDS, stride=1, context_words=4)
    many = _features(loaded, WORDS, stride=DEFAULT_STRIDE, context_words=4)
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_every_word_sees_exactly_the_named_context(name, request):
    model, tokenizer = request.getfixturevalue(name)
    _, token_word = tokenize_words(tokenizer, WORDS)
    for context, unit in ((5, "words"), (7, "tokens")):
        settings = FeatureSettings(direction="causal", stride=DEFAULT_STRIDE,
                                   context_words=context, context_unit=unit)
        windows = plan_windows(token_word, len(WORDS), settings, max_len=512)
        assert [(w0, w1) for _, _, w0, w1 in windows] == [(w, w + 1) for w in range(len(WORDS))]
        for t0, t1, w0, _ in windows:
            assert token_word[t1 - 1] == w0  # the window ends with its word
            seen = token_word[t0:t1]
            if unit == "words":
                assert seen[0] == max(0, w0 - context)
            else:
                first = int(np.searchsorted(token_word, w0))
                assert first - t0 == min(context, first)


def test_a_later_word_in_context_does_not_leak_into_features(bert):
    # the word's features equal those of the story cut right after it
    full = _features(bert, WORDS, stride=DEFAULT_STRIDE, context_words=5)
    for i in (4, 10, len(WORDS) - 2):
        cut = _features(bert, WORDS[:i + 1], stride=DEFAULT_STRIDE, context_words=5)
        np.testing.assert_allclose(full[:, i], cut[:, i], rtol=1e-5, atol=1e-6)
