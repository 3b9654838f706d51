"""Contextual word and sentence features from any layer of a Hugging Face model.

The story is tokenized once and tokens are mapped back to words through character
offsets (see :mod:`stimuli_models.windows`). Word-level features are computed in
windows. In ``causal`` mode each word has a window of its own, ending with it and
holding exactly ``context_words`` words (or tokens) before it, so no feature sees
a later word and every word sees the same context, whether the model is an
encoder or a decoder. In ``bidirectional`` mode a window holds up to ``stride``
*target* words surrounded by ``context_words`` words (or tokens) of context, so
that cost grows with ``n_words * (2 context + stride) / stride``. Windows that
one forward pass can serve are merged (identical ranges; for causal models,
ranges that start at the same token), so a context covering the whole story
costs one pass of a decoder and gives exactly the full-context features. All
hidden layers come out of one forward pass; the requested ones are kept.
Sub-tokens are pooled into words (``mean``, ``first``, ``last``). Sentence-level
features embed each sentence alone (mean of its tokens or the ``[CLS]`` state)
and give that vector to every word of the sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np

from ._forward import causal_probe, run_groups
from .errors import SettingsError, check_choice
from .windows import (  # noqa: F401  (re-exported: part of this module's API)
    group_windows,
    plan_windows,
    sentence_ids,
    sentence_windows,
    special_tokens,
    tokenize_words,
)

Unit = Literal["word", "sentence"]
Pooling = Literal["mean", "first", "last"]
SentencePooling = Literal["mean", "cls"]
Direction = Literal["causal", "bidirectional"]
ContextUnit = Literal["words", "tokens"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
UNITS = get_args(Unit)
POOLINGS = get_args(Pooling)
SENTENCE_POOLINGS = get_args(SentencePooling)
DIRECTIONS = get_args(Direction)
CONTEXT_UNITS = get_args(ContextUnit)
DTYPES = get_args(Dtype)
_PADDED_POSITIONS = {"camembert", "longformer", "data2vec-text", "mpnet", "ibert", "luke"}


def _help(default, text: str, **kwargs):
    """A field with its help text beside it (``metadata['help']``)."""
    return field(default=default, metadata={"help": text, **kwargs})


@dataclass(frozen=True)
class FeatureSettings:
    """How features are computed from a model.

    Each field's meaning is its ``help`` (``dataclasses.fields(FeatureSettings)``),
    which also feeds the README's table of ``[features]`` settings.
    """

    layers: tuple[float, ...] | Literal["all"] = _help(
        (0.5,), "Hidden-state indices (0 = embeddings, negative from the top), relative depths "
        "in (0, 1] (0.5 = middle layer) or 'all' (every layer).")
    unit: Unit = _help("word", "'word': one vector per word given its context; 'sentence': one "
                       "per sentence, given to each of its words.")
    pooling: Pooling = _help("mean", "How a word's sub-tokens are pooled.")
    sentence_pooling: SentencePooling = _help(
        "mean", "How a sentence's tokens are pooled (unit = 'sentence').")
    context_words: int = _help(
        20, "Size of the context before each word (and after it when direction = "
        "'bidirectional'), counted in context_unit.", minimum=0)
    stride: int = _help(
        8, "Target words per window in 'bidirectional' mode (1: every word gets exactly its "
        "context; larger: faster); not used in 'causal' mode.", minimum=1)
    direction: Direction = _help(
        "causal", "'causal': a word's feature depends on it and the context_words before it "
        "only (one window per word, encoders and decoders alike); 'bidirectional': context on "
        "both sides.")
    batch_size: int = _help(16, "Windows per forward pass.", minimum=1)
    max_tokens: int | None = _help(
        None, "Cap on window length in tokens (0 or unset: what the model accepts).", minimum=0)
    dtype: Dtype = _help(
        "auto", "Compute dtype; 'auto' is float32 on CPU and bfloat16 (float16 where bfloat16 "
        "is not supported) on GPU; half precision is refused on CPU.")
    context_unit: ContextUnit = _help("words", "Unit of context_words.")

    def __post_init__(self):
        check_choice("unit", self.unit, UNITS)
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("sentence_pooling", self.sentence_pooling, SENTENCE_POOLINGS)
        check_choice("direction", self.direction, DIRECTIONS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("context_unit", self.context_unit, CONTEXT_UNITS)
        for name in ("context_words", "stride", "batch_size"):
            value = getattr(self, name)
            minimum = 0 if name == "context_words" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
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
        """Return the settings as a JSON-serialisable dictionary."""
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
        Counts: tokens, windows, forward passes, tokens processed, words without tokens.
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
                f"layer {layer!r} does not exist: the model has layers 0 (embeddings) to "
                f"{n_layers}."
            )
        out.add(index)
    return tuple(sorted(out))


def resolve_dtype(dtype: str, device: str) -> str:
    """Choose the compute dtype to load a model with on ``device``.

    Parameters
    ----------
    dtype : {'auto', 'float32', 'bfloat16', 'float16'}
        Requested dtype.
    device : str
        Torch device ('cpu', 'cuda', 'cuda:1', ...).

    Returns
    -------
    str
        ``'float32'`` on CPU; on GPU the requested dtype, ``auto`` giving
        bfloat16 where supported and float16 otherwise.
    """
    check_choice("dtype", dtype, DTYPES)
    if not str(device).startswith("cuda"):
        if dtype in ("bfloat16", "float16"):
            raise SettingsError(
                f"'dtype' {dtype!r} is only used on a GPU (on CPU it is slower and less exact); "
                "use 'float32' or 'auto'."
            )
        return "float32"
    if dtype != "auto":
        return dtype
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def _model_max_len(model, tokenizer, n_special: int, cap: int | None) -> int:
    limits = []
    config = model.config
    # RoBERTa-style position ids start after the padding index
    offset = 0
    if "roberta" in str(getattr(config, "model_type", "")) or getattr(
            config, "model_type", "") in _PADDED_POSITIONS:
        offset = int(getattr(config, "pad_token_id", 1) or 0) + 1
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            limits.append(value - offset)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        limits.append(model_max)
    if cap:
        limits.append(int(cap) + n_special)
    return (min(limits) if limits else 512) - n_special


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
        ``features`` of shape (n_layers_kept, n_words, hidden_size), float32.
    """
    if not words:
        raise SettingsError("a story must contain at least one word.")
    layers = resolve_layers(settings.layers, n_layers)
    token_ids, token_word = tokenize_words(tokenizer, list(words), separator)
    n_words = len(words)
    prefix, suffix = special_tokens(tokenizer)
    max_len = _model_max_len(model, tokenizer, len(prefix) + len(suffix) + n_virtual_tokens,
                             settings.max_tokens)
    if settings.unit == "word":
        windows = plan_windows(token_word, n_words, settings, max_len)
        pool = settings.pooling
    else:
        if sentences is None:
            sent = sentence_ids(words)
        else:
            sent = np.asarray(sentences)
            if sent.shape != (n_words,):
                raise SettingsError(f"'sentences' must give one sentence index per word "
                                    f"({n_words}); got shape {sent.shape}.")
        windows = sentence_windows(token_word, sent, max_len)
        pool = "cls" if settings.sentence_pooling == "cls" else "sentence-mean"
        if pool == "cls" and not prefix:
            raise SettingsError(
                "sentence_pooling 'cls' needs a model that adds a [CLS]-like first token; "
                "use sentence_pooling = 'mean' for this model."
            )
    starts = [w[0] for w in windows if w[1] > w[0]]
    mergeable = len(set(starts)) < len(starts) and pool not in ("cls",)
    causal = mergeable and causal_probe(model, token_ids, prefix, n_virtual_tokens, device)
    groups = group_windows(windows, causal_model=causal)
    features, done = run_groups(
        model, tokenizer, token_ids, token_word, groups, layers, pool,
        batch_size=settings.batch_size, specials=(prefix, suffix),
        n_virtual=n_virtual_tokens, device=device, n_words=n_words,
    )
    if features is None:
        raise SettingsError("no word of the story gives any token with this tokenizer; check "
                            "the story's words and the 'separator'.")
    missing = _fill_missing(features, done)
    info = {
        "n_words": n_words,
        "n_tokens": int(len(token_ids)),
        "n_windows": len(windows),
        "n_forward_windows": len(groups),
        "tokens_processed": int(sum(t1 - t0 for t0, t1, _ in groups)),
        "words_without_tokens": int(missing),
        "max_window_tokens": int(max_len),
        "causal_model": bool(causal),
    }
    return StoryFeatures(features=features, layers=layers, info=info)


def _fill_missing(out: np.ndarray, done: np.ndarray) -> int:
    """Give words without features those of the nearest preceding word (else following).

    Returns
    -------
    int
        Number of words filled.
    """
    n_words = len(done)
    missing = int(n_words - done.sum())
    if missing == 0 or missing == n_words:
        return missing
    index = np.where(done, np.arange(n_words), -1)
    index = np.maximum.accumulate(index)
    index[index < 0] = int(np.flatnonzero(done)[0])
    out[:] = out[:, index]
    return missing
