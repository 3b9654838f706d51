"""Tokens to words (character offsets), sentence numbering and window planning."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stimuli_models.errors import SettingsError
from stimuli_models.features import FeatureSettings, resolve_layers
from stimuli_models.windows import (
    group_windows,
    plan_windows,
    sentence_ids,
    special_tokens,
    tokenize_words,
    word_token_bounds,
)


@pytest.fixture(scope="module")
def chinese_tokenizer(tmp_path_factory):
    from stimuli_models.models import load_tokenizer
    from tests.helpers.models import make_tiny_chinese_bert

    return load_tokenizer(make_tiny_chinese_bert(tmp_path_factory.mktemp("zh")))


@pytest.fixture(scope="module")
def bert_tokenizer(minilm):
    from stimuli_models.models import load_tokenizer

    return load_tokenizer(minilm)


def test_chinese_characters_map_to_multi_character_words(chinese_tokenizer):
    words = ["我们", "今天", "去", "公园", "看花", "。"]
    ids, token_word = tokenize_words(chinese_tokenizer, words, separator="")
    # one token per character, each given to the word that holds it
    assert token_word.tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 4, 5]
    chars = chinese_tokenizer.convert_ids_to_tokens(ids.tolist())
    assert "".join(chars) == "".join(words)
    for w, word in enumerate(words):
        assert "".join(c for c, tw in zip(chars, token_word, strict=False) if tw == w) == word


def test_wordpiece_subtokens_and_punctuation_stay_with_their_word(bert_tokenizer):
    words = ["Unbelievably,", "the", "lighthouse-keeper", "smiled."]
    ids, token_word = tokenize_words(bert_tokenizer, words)
    start, end = word_token_bounds(token_word, len(words))
    assert np.all(end - start >= 1)
    assert (end - start)[0] >= 3  # un ##believ ##ably ,
    assert np.all(np.diff(token_word) >= 0)
    for w, word in enumerate(words):
        text = bert_tokenizer.decode(ids[start[w]:end[w]].tolist()).replace(" ", "")
        assert text == word.lower()


def test_words_without_tokens_get_an_empty_range(bert_tokenizer):
    words = ["the", " ", "box"]
    _, token_word = tokenize_words(bert_tokenizer, words)
    start, end = word_token_bounds(token_word, len(words))
    assert (end - start).tolist() == [1, 0, 1]


def test_special_tokens_of_encoder_and_decoder(bert_tokenizer, tiny_gpt2):
    from stimuli_models.models import load_tokenizer

    prefix, suffix = special_tokens(bert_tokenizer)
    assert prefix == [bert_tokenizer.cls_token_id] and suffix == [bert_tokenizer.sep_token_id]
    assert special_tokens(load_tokenizer(tiny_gpt2)) == ([], [])


def test_sentence_ids_from_punctuation():
    words = ["He", "said", "\"stop!\"", "and", "left.", "她", "走了。", "End"]
    assert sentence_ids(words).tolist() == [0, 0, 0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("spec, expected", [
    ("all", (0, 1, 2, 3, 4, 5, 6)), ((0.5,), (3,)), ((1.0, 0), (0, 6)), ((-1, 2, 2), (2, 6)),
])
def test_resolve_layers(spec, expected):
    assert resolve_layers(spec, 6) == expected


@pytest.mark.parametrize("spec", [(7,), (-8,), (1.5,), (0.0,), ("3",)])
def test_resolve_layers_rejects_missing_layers(spec):
    with pytest.raises(SettingsError, match="layer"):
        resolve_layers(spec, 6)


def test_settings_reject_unknown_choices():
    with pytest.raises(SettingsError, match="'context_unit' must be one of"):
        FeatureSettings(context_unit="chars")
    with pytest.raises(SettingsError, match="'stride'"):
        FeatureSettings(stride=0)


@st.composite
def _stories(draw):
    lengths = draw(st.lists(st.integers(0, 4), min_size=1, max_size=60))
    token_word = np.repeat(np.arange(len(lengths)), lengths)
    return token_word, len(lengths)


@settings(max_examples=150, deadline=None)
@given(story=_stories(), context=st.integers(0, 12), stride=st.integers(1, 9),
       max_len=st.integers(4, 40), direction=st.sampled_from(["causal", "bidirectional"]),
       unit=st.sampled_from(["words", "tokens"]))
def test_plan_windows_invariants(story, context, stride, max_len, direction, unit):
    token_word, n_words = story
    fs = FeatureSettings(context_words=context, stride=stride, direction=direction,
                         context_unit=unit)
    windows = plan_windows(token_word, n_words, fs, max_len)
    start, end = word_token_bounds(token_word, n_words)
    # every word is a target exactly once, in order
    targets = np.concatenate([np.arange(w0, w1) for _, _, w0, w1 in windows])
    assert targets.tolist() == list(range(n_words))
    for t0, t1, w0, w1 in windows:
        assert 1 <= w1 - w0 <= stride
        assert 0 <= t0 <= t1 <= len(token_word)
        assert t1 - t0 <= max_len
        if end[w1 - 1] - start[w0] <= max_len:  # targets fit: they are all inside the window
            assert t0 <= start[w0] and end[w1 - 1] <= t1
            if direction == "causal":
                assert t1 == end[w1 - 1]
            # context: as much as asked for, unless trimmed to max_len or at the story start
            want = context if unit == "tokens" else start[w0] - start[max(0, w0 - context)]
            assert start[w0] - t0 == min(want, start[w0]) or t1 - t0 == max_len


def test_cost_grows_with_window_over_stride():
    token_word = np.arange(1000)  # one token per word
    for stride in (1, 4, 16):
        fs = FeatureSettings(context_words=32, stride=stride, direction="bidirectional")
        windows = plan_windows(token_word, 1000, fs, 512)
        processed = sum(t1 - t0 for t0, t1, _, _ in windows)
        assert processed <= 1000 * (2 * 32 + stride) / stride
        assert len(windows) == -(-1000 // stride)


def test_causal_windows_cost_one_context_per_word_whatever_the_stride():
    token_word = np.arange(1000)  # one token per word
    for stride in (1, 4, 16):
        fs = FeatureSettings(context_words=32, stride=stride, direction="causal")
        windows = plan_windows(token_word, 1000, fs, 512)
        assert len(windows) == 1000
        assert sum(t1 - t0 for t0, t1, _, _ in windows) == sum(min(w, 32) + 1
                                                               for w in range(1000))


def test_group_windows_merges_only_what_one_pass_can_serve():
    windows = [(0, 5, 0, 1), (0, 8, 1, 2), (2, 9, 2, 3), (2, 9, 3, 4), (4, 4, 4, 5)]
    encoder = group_windows(windows, causal_model=False)
    assert [(t0, t1, len(t)) for t0, t1, t in encoder] == [(0, 5, 1), (0, 8, 1), (2, 9, 2)]
    decoder = group_windows(windows, causal_model=True)
    assert [(t0, t1, len(t)) for t0, t1, t in decoder] == [(0, 8, 2), (2, 9, 2)]
    # each target keeps its own token range (used by sentence pooling)
    assert decoder[0][2][0] == (0, 1, 0, 5)
