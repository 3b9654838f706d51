"""Contextual word and sentence features from any layer of a Hugging Face model.

The story is tokenized once; tokens are mapped back to words through character
offsets (which also works for scripts written without spaces and for
character-level tokenizers). Word-level features are computed in windows: each
window holds up to ``stride`` *target* words preceded (``causal``) or surrounded
(``bidirectional``) by ``context_words`` words of context, so that cost grows with
``n_words * (context_words + stride) / stride`` rather than with
``n_words * context_words``. All hidden layers come out of one forward pass; the
requested ones are kept. Sub-tokens are pooled into words (``mean``, ``first``,
``last``). Sentence-level features embed each sentence alone (mean of its tokens
or the ``[CLS]`` state) and give that vector to every word of the sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import SettingsError, check_choice

UNITS = ("word", "sentence")
POOLINGS = ("mean", "first", "last")
SENTENCE_POOLINGS = ("mean", "cls")
DIRECTIONS = ("causal", "bidirectional")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_SENTENCE_END = tuple(".!?。！？…") + ("...",)
_CLOSERS = "\"'”’)]」』"


@dataclass(frozen=True)
class FeatureSettings:
    """How features are computed from a model.

    Parameters
    ----------
    layers : tuple of int or float, or 'all'
        Hidden-state indices (0 = embeddings, negative from the top) or relative
        depths in (0, 1] (0.5 = middle layer); ``'all'`` keeps every layer.
    unit : {'word', 'sentence'}
        One vector per word given its context, or one per sentence.
    pooling : {'mean', 'first', 'last'}
        How a word's sub-tokens are pooled.
    sentence_pooling : {'mean', 'cls'}
        How a sentence's tokens are pooled (sentence unit).
    context_words : int
        Words of context on the preceding side (and the following side when
        ``direction='bidirectional'``).
    stride : int
        Target words per window; 1 gives every word exactly ``context_words`` of
        context, larger values trade exactness for speed.
    direction : {'causal', 'bidirectional'}
        Context before the word only, or on both sides.
    batch_size : int
        Windows per forward pass.
    max_tokens : int, optional
        Cap on window length in tokens (default: what the model accepts).
    dtype : {'auto', 'float32', 'bfloat16', 'float16'}
        Compute dtype; ``auto`` is float32 on CPU and bfloat16 on GPU.
    """

    layers: tuple | str = (0.5,)
    unit: str = "word"
    pooling: str = "mean"
    sentence_pooling: str = "mean"
    context_words: int = 20
    stride: int = 8
    direction: str = "causal"
    batch_size: int = 16
    max_tokens: int | None = None
    dtype: str = "auto"

    def __post_init__(self):
        check_choice("unit", self.unit, UNITS)
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("sentence_pooling", self.sentence_pooling, SENTENCE_POOLINGS)
        check_choice("direction", self.direction, DIRECTIONS)
        check_choice("dtype", self.dtype, DTYPES)
        for name in ("context_words", "stride", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (name != "context_words"):
                raise SettingsError(f"'{name}' must be a non-negative integer (stride, batch_size "
                                    f"at least 1); got {value!r}.")
        if isinstance(self.layers, str):
            if self.layers != "all":
                raise SettingsError(f"'layers' must be a list or 'all'; got {self.layers!r}.")
        else:
            object.__setattr__(self, "layers", tuple(self.layers))
            if not self.layers:
                raise SettingsError("'layers' must name at least one layer.")

    def to_dict(self) -> dict:
        """Settings as a JSON-serialisable dictionary."""
        out = asdict(self)
        out["layers"] = list(self.layers) if not isinstance(self.layers, str) else self.layers
        return out


@dataclass
class StoryFeatures:
    """Features of one story.

    Attributes
    ----------
    features : ndarray of shape (n_layers, n_words, n_features)
        float32 features, in the order of ``layers``.
    layers : tuple of int
        Hidden-state index of each slice (0 = embeddings).
    info : dict
        Counts: tokens, windows, tokens processed, words without tokens.
    """

    features: np.ndarray
    layers: tuple
    info: dict = field(default_factory=dict)


def resolve_layers(layers: tuple | str, n_layers: int) -> tuple[int, ...]:
    """Turn a layer specification into hidden-state indices ``0..n_layers``.

    Parameters
    ----------
    layers : tuple of int or float, or 'all'
        See :class:`FeatureSettings`.
    n_layers : int
        Number of transformer layers of the model.

    Returns
    -------
    tuple of int
        Sorted, unique indices.
    """
    if layers == "all":
        return tuple(range(n_layers + 1))
    out = set()
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, float)):
            raise SettingsError(f"'layers' entries must be integers or fractions; got {layer!r}.")
        if isinstance(layer, float):
            if not 0.0 < layer <= 1.0:
                raise SettingsError(
                    f"a relative layer depth must be in (0, 1]; got {layer!r} (use an integer "
                    "for an absolute layer index)."
                )
            index = int(round(layer * n_layers))
        else:
            index = layer if layer >= 0 else n_layers + 1 + layer
        if not 0 <= index <= n_layers:
            raise SettingsError(
                f"layer {layer!r} does not exist: the model has layers 0 (embeddings) to {n_layers}."
            )
        out.add(index)
    return tuple(sorted(out))


def sentence_ids(words: list[str]) -> np.ndarray:
    """Number sentences from punctuation at word ends.

    Parameters
    ----------
    words : list of str
        Words of a story.

    Returns
    -------
    ndarray of shape (n_words,)
        Sentence index of every word (starting at 0).
    """
    ids = np.zeros(len(words), dtype=np.int64)
    current = 0
    for i, word in enumerate(words):
        ids[i] = current
        if word.rstrip(_CLOSERS).endswith(_SENTENCE_END):
            current += 1
    return ids


def tokenize_words(tokenizer, words: list[str], separator: str = " "):
    """Tokenize a word sequence once and map every token to its word.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        A fast tokenizer (character offsets are needed).
    words : list of str
        The words, in order.
    separator : str
        Joins words into the text given to the tokenizer (``''`` for scripts
        written without spaces).

    Returns
    -------
    token_ids : ndarray of shape (n_tokens,)
    token_word : ndarray of shape (n_tokens,)
        Index of the word each token belongs to (non-decreasing).
    """
    starts = np.empty(len(words), dtype=np.int64)
    pieces, position = [], 0
    for i, word in enumerate(words):
        if i:
            pieces.append(separator)
            position += len(separator)
        starts[i] = position
        pieces.append(word)
        position += len(word)
    text = "".join(pieces)
    encoding = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )
    ids = np.asarray(encoding["input_ids"], dtype=np.int64)
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    last_char = np.maximum(offsets[:, 1] - 1, offsets[:, 0])
    token_word = np.searchsorted(starts, last_char, side="right") - 1
    token_word = np.clip(np.maximum.accumulate(token_word) if len(token_word) else token_word,
                         0, max(len(words) - 1, 0))
    return ids, token_word


def _word_token_bounds(token_word: np.ndarray, n_words: int):
    """First and one-past-last token of each word (empty range for words without tokens)."""
    start = np.searchsorted(token_word, np.arange(n_words), side="left")
    end = np.searchsorted(token_word, np.arange(n_words), side="right")
    return start, end


def plan_windows(token_word: np.ndarray, n_words: int, settings: FeatureSettings,
                 max_len: int) -> list[tuple[int, int, int, int]]:
    """Split a story into model windows.

    Parameters
    ----------
    token_word : ndarray of shape (n_tokens,)
        Word index of each token.
    n_words : int
        Number of words.
    settings : FeatureSettings
        Context, stride and direction.
    max_len : int
        Maximum number of (non-special) tokens in a window.

    Returns
    -------
    list of (token_start, token_end, word_start, word_end)
        Token range fed to the model and the target words whose features it gives.
    """
    tok_start, tok_end = _word_token_bounds(token_word, n_words)
    windows = []
    s = 0
    while s < n_words:
        e = min(s + settings.stride, n_words)
        while e > s + 1 and tok_end[e - 1] - tok_start[s] > max_len:
            e -= 1
        c0 = max(0, s - settings.context_words)
        c1 = e if settings.direction == "causal" else min(n_words, e + settings.context_words)
        t0, t1 = int(tok_start[c0]), int(tok_end[c1 - 1])
        target0, target1 = int(tok_start[s]), int(tok_end[e - 1])
        if t1 - t0 > max_len:  # trim context, never targets
            excess = t1 - t0 - max_len
            if settings.direction == "causal":
                t0 = min(t0 + excess, target0)
            else:
                right = min(excess // 2, t1 - target1)
                t1 -= right
                t0 = min(t0 + (excess - right), target0)
            if t1 - t0 > max_len:  # a single word longer than the window
                t1 = t0 + max_len
        windows.append((t0, t1, s, e))
        s = e
    return windows


def _model_max_len(model, tokenizer, n_special: int, cap: int | None) -> int:
    limits = []
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        limits.append(model_max)
    if cap:
        limits.append(int(cap) + n_special)
    return (min(limits) if limits else 512) - n_special


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """Special token ids the tokenizer puts before and after a single sequence.

    Found by encoding a probe with and without special tokens, which works for
    every fast tokenizer (BERT: ``[CLS] ... [SEP]``, RoBERTa: ``<s> ... </s>``,
    GPT-2: nothing).
    """
    probe = "a"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain):])
    return [], []


def compute_features(
    words: list[str],
    model,
    tokenizer,
    settings: FeatureSettings,
    *,
    n_layers: int,
    separator: str = " ",
    sentences: np.ndarray | None = None,
    n_virtual_tokens: int = 0,
    device: str = "cpu",
) -> StoryFeatures:
    """Compute features of one story with a loaded model.

    Parameters
    ----------
    words : list of str
        Words of the story, in order.
    model : transformers.PreTrainedModel
        Model in evaluation mode (any encoder or decoder returning hidden states).
    tokenizer : PreTrainedTokenizerFast
        Its tokenizer.
    settings : FeatureSettings
        What to compute.
    n_layers : int
        Number of transformer layers of the model.
    separator : str
        Joins words into text (``''`` for scripts without spaces).
    sentences : ndarray of shape (n_words,), optional
        Sentence index per word (from the annotation); punctuation otherwise.
    n_virtual_tokens : int
        Hidden-state positions a soft-prompt model prepends to the input; they
        are skipped before pooling.
    device : str
        Torch device of the model.

    Returns
    -------
    StoryFeatures
        ``features`` of shape (n_layers_kept, n_words, hidden_size).
    """
    if not words:
        raise SettingsError("a story must contain at least one word.")
    layers = resolve_layers(settings.layers, n_layers)
    token_ids, token_word = tokenize_words(tokenizer, list(words), separator)
    n_words = len(words)
    prefix, suffix = special_tokens(tokenizer)
    before = len(prefix)
    max_len = _model_max_len(model, tokenizer, len(prefix) + len(suffix) + n_virtual_tokens,
                             settings.max_tokens)
    if settings.unit == "word":
        windows = plan_windows(token_word, n_words, settings, max_len)
        pool = settings.pooling
    else:
        sent = sentence_ids(words) if sentences is None else np.asarray(sentences)
        windows = _sentence_windows(token_word, sent, max_len)
        pool = "cls" if settings.sentence_pooling == "cls" else "sentence-mean"
        if pool == "cls" and before == 0:
            raise SettingsError(
                "sentence_pooling 'cls' needs a model that adds a [CLS]-like first token; "
                "use sentence_pooling = 'mean' for this model."
            )
    hidden = _run_windows(model, tokenizer, token_ids, token_word, windows, layers, pool,
                          settings, (prefix, suffix), n_virtual_tokens, device, n_words)
    empty = int(np.sum(~_has_tokens(token_word, n_words)))
    info = {
        "n_words": n_words,
        "n_tokens": int(len(token_ids)),
        "n_windows": len(windows),
        "tokens_processed": int(sum(t1 - t0 for t0, t1, _, _ in windows)),
        "words_without_tokens": empty,
        "max_window_tokens": int(max_len),
    }
    return StoryFeatures(features=hidden, layers=layers, info=info)


def _has_tokens(token_word: np.ndarray, n_words: int) -> np.ndarray:
    mask = np.zeros(n_words, dtype=bool)
    mask[np.unique(token_word)] = True
    return mask


def _sentence_windows(token_word, sent, max_len):
    n_words = len(sent)
    tok_start, tok_end = _word_token_bounds(token_word, n_words)
    windows = []
    bounds = np.flatnonzero(np.diff(sent)) + 1
    for w0, w1 in zip(np.r_[0, bounds], np.r_[bounds, n_words]):
        t0, t1 = int(tok_start[w0]), int(tok_end[w1 - 1])
        windows.append((t0, min(t1, t0 + max_len), int(w0), int(w1)))
    return windows


def _run_windows(model, tokenizer, token_ids, token_word, windows, layers, pool, settings,
                 specials, n_virtual, device, n_words):
    import torch

    prefix, suffix = specials
    before = len(prefix)
    out = None
    order = sorted(range(len(windows)), key=lambda i: windows[i][1] - windows[i][0])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for b0 in range(0, len(order), settings.batch_size):
            batch = [windows[i] for i in order[b0:b0 + settings.batch_size]]
            seqs = [prefix + token_ids[t0:t1].tolist() + suffix for t0, t1, _, _ in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
            result = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           output_hidden_states=True)
            states = torch.stack([result.hidden_states[k] for k in layers])  # (L, B, T, H)
            states = states[:, :, n_virtual:].float()
            if out is None:
                out = np.zeros((len(layers), n_words, states.shape[-1]), dtype=np.float32)
            for row, (t0, t1, w0, w1) in enumerate(batch):
                _pool_window(out, states[:, row], token_word[t0:t1], t0, w0, w1, before, pool)
    _fill_missing(out, token_word, n_words)
    return out


def _pool_window(out, states, window_words, t0, w0, w1, before, pool):
    """Pool the states of one window (L, T, H) into ``out[:, w0:w1]``."""
    if pool == "cls":
        out[:, w0:w1] = states[:, 0].cpu().numpy()[:, None, :]
        return
    positions = np.arange(len(window_words)) + before
    if pool == "sentence-mean":
        out[:, w0:w1] = states[:, positions].mean(dim=1).cpu().numpy()[:, None, :]
        return
    keep = (window_words >= w0) & (window_words < w1)
    if not keep.any():
        return
    words = window_words[keep]
    pos = positions[keep]
    uniq, first = np.unique(words, return_index=True)
    if pool == "first":
        out[:, uniq] = states[:, pos[first]].cpu().numpy()
    elif pool == "last":
        last = np.r_[first[1:], len(words)] - 1
        out[:, uniq] = states[:, pos[last]].cpu().numpy()
    else:
        selected = states[:, pos].cpu().numpy()
        sums = np.add.reduceat(selected, first, axis=1)
        counts = np.diff(np.r_[first, len(words)])
        out[:, uniq] = sums / counts[None, :, None]


def _fill_missing(out, token_word, n_words):
    """Give words the tokenizer dropped the features of the preceding word (or the next)."""
    missing = np.flatnonzero(~_has_tokens(token_word, n_words))
    for w in missing:
        source = w - 1 if w > 0 else None
        while source is not None and source in set(missing) and source > 0:
            source -= 1
        if source is None or source in set(missing):
            later = np.setdiff1d(np.arange(w + 1, n_words), missing)
            if not len(later):
                continue
            source = int(later[0])
        out[:, w] = out[:, source]
