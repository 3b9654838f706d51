"""Word and sentence features: exactness against full-context and naive references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stimuli_models.errors import SettingsError
from stimuli_models.features import FeatureSettings, compute_features, resolve_dtype
from stimuli_models.windows import tokenize_words

STORY = ("The keeper walked to the harbour and found a wooden box. She opened the letter "
         "unbelievably slowly. A small boy ran towards the library, where the baker sold "
         "bread! It was raining.").split()
ZH_WORDS = ["我们", "今天", "去", "公园", "看花", "。", "小狗", "在", "草地", "上", "跑", "。",
            "她", "很", "开心", "！"]


def _load(path):
    from stimuli_models.models import load_model

    return load_model(path)


@pytest.fixture(scope="module")
def bert(tiny_bert):
    return _load(tiny_bert)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2):
    return _load(tiny_gpt2)


@pytest.fixture(scope="module")
def zh_bert(tmp_path_factory):
    from tests.helpers.models import make_tiny_chinese_bert

    return _load(make_tiny_chinese_bert(tmp_path_factory.mktemp("zhbert")))


@pytest.fixture(scope="module")
def zh_roberta(tmp_path_factory):
    from tests.helpers.models import make_tiny_chinese_bert

    return _load(make_tiny_chinese_bert(tmp_path_factory.mktemp("zhrob"), model_type="roberta"))


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    from tests.helpers.models import make_tiny_roberta

    return _load(make_tiny_roberta(tmp_path_factory.mktemp("roberta")))


def _features(loaded, words=STORY, separator=" ", **kw):
    model, tokenizer = loaded
    kw.setdefault("layers", "all")
    return compute_features(words, model, tokenizer, FeatureSettings(**kw), n_layers=2,
                            separator=separator)


def _hidden(model, ids):
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].numpy()  # (L, T, H)


def _naive_word(loaded, context_words, w, words=STORY, separator=" ", pool="mean"):
    """The feature of word ``w``: its own forward pass over its text, tokenized on its own."""
    model, tokenizer = loaded
    c0 = max(0, w - context_words)
    # a word inside the story follows a separator (byte-level BPE encodes it with the word)
    before = (separator if c0 else "") + separator.join(words[c0:w])
    text = before + (separator if c0 < w else "") + words[w]
    enc = tokenizer(text, return_offsets_mapping=True)
    start = len(text) - len(words[w]) - (len(separator) if c0 < w or c0 else 0)
    pos = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > start]
    states = _hidden(model, enc["input_ids"])[:, pos]
    return {"mean": states.mean(1), "first": states[:, 0], "last": states[:, -1]}[pool]


@pytest.mark.parametrize("name, direction", [("bert", "bidirectional"), ("gpt2", "causal"),
                                             ("roberta", "bidirectional"),
                                             ("gpt2", "bidirectional")])
def test_stride_one_whole_story_window_equals_full_context_exactly(name, direction, request):
    loaded = request.getfixturevalue(name)
    full = _features(loaded, stride=10_000, context_words=10_000, direction=direction)
    assert full.info["n_forward_windows"] == 1
    strided = _features(loaded, stride=1, context_words=10_000, direction=direction)
    assert strided.info["n_windows"] == len(STORY)
    np.testing.assert_array_equal(strided.features, full.features)
    assert strided.info["n_forward_windows"] == 1  # the pass is shared, not repeated


def test_decoder_windows_from_the_story_start_are_exact(gpt2):
    full = _features(gpt2, stride=10_000, context_words=10_000)
    for stride in (3, 7):
        part = _features(gpt2, stride=stride, context_words=10_000)
        assert part.info["causal_model"]
        np.testing.assert_array_equal(part.features, full.features)


@pytest.mark.parametrize("name, pool", [("bert", "mean"), ("bert", "first"), ("bert", "last"),
                                        ("gpt2", "mean"), ("gpt2", "last"), ("roberta", "mean")])
def test_causal_context_matches_one_forward_per_word(name, pool, request):
    loaded = request.getfixturevalue(name)
    words = STORY[:20]  # 'unbelievably' has many sub-tokens in every tokenizer
    result = _features(loaded, words=words, stride=1, context_words=3, pooling=pool,
                       batch_size=5)
    assert result.features.shape == (3, len(words), 32)
    assert result.features.dtype == np.float32
    for w in range(len(words)):
        expected = _naive_word(loaded, 3, w, words=words, pool=pool)
        np.testing.assert_allclose(result.features[:, w], expected, rtol=1e-4, atol=1e-5)


def test_bidirectional_context_sees_following_words(bert):
    causal = _features(bert, stride=1, context_words=4)
    both = _features(bert, stride=1, context_words=4, direction="bidirectional")
    last = len(STORY) - 1  # nothing follows the last word: same window either way
    np.testing.assert_allclose(both.features[:, last], causal.features[:, last], atol=1e-5)
    assert not np.allclose(both.features[1:, 0], causal.features[1:, 0], atol=1e-3)


def test_token_context_and_batching_do_not_change_results(bert):
    a = _features(bert, stride=2, context_words=6, context_unit="tokens", batch_size=1)
    b = _features(bert, stride=2, context_words=6, context_unit="tokens", batch_size=64)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
    c = _features(bert, stride=2, context_words=6, context_unit="tokens", batch_size=64)
    np.testing.assert_array_equal(b.features, c.features)  # deterministic


@pytest.mark.parametrize("name", ["zh_bert", "zh_roberta"])
def test_chinese_character_tokens_pool_into_words(name, request):
    model, tokenizer = loaded = request.getfixturevalue(name)
    result = _features(loaded, words=ZH_WORDS, separator="", stride=100, context_words=100,
                       direction="bidirectional")
    assert result.info["n_tokens"] == len("".join(ZH_WORDS))
    states = _hidden(model, tokenizer("".join(ZH_WORDS))["input_ids"])
    chars = np.cumsum([0] + [len(w) for w in ZH_WORDS]) + 1  # after [CLS]
    for w in range(len(ZH_WORDS)):
        expected = states[:, chars[w]:chars[w + 1]].mean(axis=1)
        np.testing.assert_allclose(result.features[:, w], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sentence_features_embed_each_sentence_alone(bert, pooling):
    model, tokenizer = bert
    result = _features(bert, unit="sentence", sentence_pooling=pooling)
    bounds = [0, 11, 17, 29, len(STORY)]  # sentences end at '.', '.', '!', '.'
    assert result.info["n_windows"] == 4
    for s0, s1 in zip(bounds[:-1], bounds[1:], strict=False):
        states = _hidden(model, tokenizer(" ".join(STORY[s0:s1]))["input_ids"])
        expected = states[:, 0] if pooling == "cls" else states[:, 1:-1].mean(axis=1)
        for w in range(s0, s1):
            np.testing.assert_allclose(result.features[:, w], expected, rtol=1e-5, atol=1e-5)


def test_sentence_boundaries_from_the_annotation(bert):
    model, tokenizer = bert
    sentences = np.repeat([0, 1], [5, len(STORY) - 5])
    result = compute_features(STORY, model, tokenizer, FeatureSettings(unit="sentence"),
                              n_layers=2, sentences=sentences)
    assert result.info["n_windows"] == 2
    assert np.array_equal(result.features[:, 0], result.features[:, 4])
    assert not np.array_equal(result.features[:, 4], result.features[:, 5])
    with pytest.raises(SettingsError, match="one sentence index per word"):
        compute_features(STORY, model, tokenizer, FeatureSettings(unit="sentence"),
                         n_layers=2, sentences=sentences[:3])


def test_cls_pooling_needs_a_cls_token(gpt2):
    with pytest.raises(SettingsError, match="sentence_pooling = 'mean'"):
        _features(gpt2, unit="sentence", sentence_pooling="cls")


def test_words_without_tokens_take_the_preceding_words_features(bert):
    words = ["the", "keeper", " ", "walked"]
    result = _features(bert, words=words, stride=1, context_words=2)
    assert result.info["words_without_tokens"] == 1
    np.testing.assert_array_equal(result.features[:, 2], result.features[:, 1])


def test_selected_layers_are_slices_of_all_layers(bert):
    every = _features(bert, stride=4, context_words=8)
    some = _features(bert, stride=4, context_words=8, layers=(0, -1))
    assert some.layers == (0, 2)
    np.testing.assert_array_equal(some.features, every.features[[0, 2]])


def test_virtual_tokens_are_skipped(bert):
    model, tokenizer = bert

    class Prompted(torch.nn.Module):
        """Prepends ``k`` trained vectors to the input embeddings (soft prompt)."""

        def __init__(self, base, k):
            super().__init__()
            self.base, self.k, self.config = base, k, base.config
            self.prompt = torch.nn.Parameter(torch.randn(k, base.config.hidden_size))

        def forward(self, input_ids, attention_mask, output_hidden_states=True):
            embeds = self.base.get_input_embeddings()(input_ids)
            prompt = self.prompt.expand(len(input_ids), -1, -1)
            mask = torch.cat([torch.ones(len(input_ids), self.k, dtype=attention_mask.dtype),
                              attention_mask], dim=1)
            return self.base(inputs_embeds=torch.cat([prompt, embeds], dim=1),
                             attention_mask=mask, output_hidden_states=True)

    torch.manual_seed(0)
    wrapped = Prompted(model, 3).eval()
    settings = FeatureSettings(layers="all", stride=100, context_words=100,
                               direction="bidirectional")
    result = compute_features(STORY[:6], wrapped, tokenizer, settings, n_layers=2,
                              n_virtual_tokens=3)
    ids = tokenizer(" ".join(STORY[:6]))["input_ids"]
    with torch.inference_mode():
        out = wrapped(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    states = torch.stack(out.hidden_states)[:, 0].numpy()
    np.testing.assert_allclose(result.features[:, 0], states[:, 3 + 1], rtol=1e-5, atol=1e-5)


def test_dtype_is_float32_on_cpu():
    assert resolve_dtype("auto", "cpu") == "float32"
    with pytest.raises(SettingsError, match="only used on a GPU"):
        resolve_dtype("bfloat16", "cpu")


@pytest.mark.gpu
def test_gpu_half_precision_agrees_with_cpu(minilm):
    from stimuli_models.models import load_model

    settings = FeatureSettings(layers=(3,), stride=4, context_words=16)
    cpu = compute_features(STORY, *load_model(minilm), settings, n_layers=6)
    dtype = resolve_dtype("auto", "cuda")
    model, tokenizer = load_model(minilm, device="cuda", dtype=dtype)
    gpu = compute_features(STORY, model, tokenizer, settings, n_layers=6, device="cuda")
    assert gpu.features.dtype == np.float32
    r = np.corrcoef(cpu.features.ravel(), gpu.features.ravel())[0, 1]
    assert r > 0.99


@pytest.mark.parametrize("name, causal", [("gpt2", True), ("bert", False)])
def test_causality_of_an_unknown_model_type_is_probed(name, causal, request):
    import copy

    from stimuli_models._forward import causal_probe

    model, tokenizer = request.getfixturevalue(name)

    class Unknown(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            self.config = copy.deepcopy(base.config)
            self.config.model_type = "custom"

        def forward(self, **kwargs):
            return self.base(**kwargs)

    wrapped = Unknown(model)
    ids, _ = tokenize_words(tokenizer, STORY)
    prefix = [tokenizer.cls_token_id] if name == "bert" else []
    assert causal_probe(wrapped, ids, prefix, 0, "cpu") is causal
    # and the merged passes it allows give the same features as the known type
    settings = FeatureSettings(layers="all", stride=3, context_words=10_000)
    ours = compute_features(STORY, wrapped, tokenizer, settings, n_layers=2)
    known = compute_features(STORY, model, tokenizer, settings, n_layers=2)
    assert ours.info["causal_model"] is causal
    np.testing.assert_array_equal(ours.features, known.features)
