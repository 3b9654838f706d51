"""Tokens, words, sentences and the model windows that cover a story.

A story is tokenized once; every token is mapped back to its word through the
tokenizer's character offsets, which works for text written with or without
spaces and for character-level tokenizers (Chinese BERT/RoBERTa), where one
word spans several tokens. The story is then cut into *windows*: token ranges
fed to the model, each giving the features of a run of *target* words.
"""

from __future__ import annotations

import numpy as np

_SENTENCE_END = tuple(".!?。！？…") + ("...",)
_CLOSERS = "\"'”’)]」』"


def sentence_ids(words: list[str]) -> np.ndarray:
    """Give every word the index of its sentence, from punctuation at word ends.

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
        Index of the word each token belongs to (non-decreasing). A token is
        given to the word that holds its last non-separator character; a token
        of separators only (a lone space) is given to the word that follows.
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
    encoding = tokenizer("".join(pieces), add_special_tokens=False,
                         return_offsets_mapping=True, verbose=False)
    ids = np.asarray(encoding["input_ids"], dtype=np.int64)
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    # word of every character (-1 for separators), and the last word character so far
    char_word = np.full(position + 1, -1, dtype=np.int64)
    for i, word in enumerate(words):
        char_word[starts[i]:starts[i] + len(word)] = i
    is_word = char_word >= 0
    last_word_char = np.maximum.accumulate(np.where(is_word, np.arange(len(char_word)), -1))
    a, b = offsets[:, 0], np.maximum(offsets[:, 1], offsets[:, 0] + 1)
    last = last_word_char[np.minimum(b, position) - 1] if len(b) else b
    inside = last >= a  # the token holds characters of a word: it belongs to the last one
    # a token made of separators only (a lone space in byte-level BPE) opens the next word
    following = np.searchsorted(starts, np.minimum(b, position), side="left")
    token_word = np.where(inside, char_word[np.maximum(last, 0)], following)
    if len(token_word):
        token_word = np.maximum.accumulate(token_word)
    return ids, np.clip(token_word, 0, max(len(words) - 1, 0))


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """Find the special token ids a tokenizer puts before and after a single sequence.

    Found by encoding a probe with and without special tokens, which works for
    every fast tokenizer (BERT: ``[CLS] ... [SEP]``, RoBERTa: ``<s> ... </s>``,
    GPT-2: nothing).

    Returns
    -------
    prefix, suffix : list of int
    """
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain):])
    return [], []


def word_token_bounds(token_word: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last token of each word (an empty range for words without tokens).

    Returns
    -------
    start, end : ndarray of shape (n_words,)
    """
    words = np.arange(n_words)
    return (np.searchsorted(token_word, words, side="left"),
            np.searchsorted(token_word, words, side="right"))


def plan_windows(token_word: np.ndarray, n_words: int, settings, max_len: int
                 ) -> list[tuple[int, int, int, int]]:
    """Split a story into model windows.

    ``direction == 'causal'``: every word gets a window of its own that ends
    with it and holds exactly ``settings.context_words`` words (or tokens, when
    ``settings.context_unit == 'tokens'``) before it, fewer only at the story
    start or where the model's length limit trims them. No word is ever in the
    window of an earlier word, for encoders and decoders alike, and every word
    sees the same amount of context; ``stride`` is not used. The cost is about
    ``n_tokens * (context + 1)`` tokens (decoder windows that start at the same
    token are merged later, see :func:`group_windows`).

    ``direction == 'bidirectional'``: each window gives the features of up to
    ``settings.stride`` consecutive target words, with the context before them
    and after them. The cost is about ``n_tokens * (2 context + stride) / stride``
    tokens.

    Parameters
    ----------
    token_word : ndarray of shape (n_tokens,)
        Word index of each token.
    n_words : int
        Number of words.
    settings : FeatureSettings
        Context, its unit, stride and direction.
    max_len : int
        Maximum number of (non-special) tokens in a window; context is trimmed
        (never the target words) to fit.

    Returns
    -------
    list of (token_start, token_end, word_start, word_end)
        Token range fed to the model and the target words whose features it gives.
    """
    tok_start, tok_end = word_token_bounds(token_word, n_words)
    n_tokens = len(token_word)
    causal = settings.direction == "causal"
    in_tokens = settings.context_unit == "tokens"
    context = settings.context_words
    windows = []
    s = 0
    step = 1 if causal else settings.stride
    while s < n_words:
        e = min(s + step, n_words)
        while e > s + 1 and tok_end[e - 1] - tok_start[s] > max_len:
            e -= 1
        target0, target1 = int(tok_start[s]), int(tok_end[e - 1])
        if in_tokens:
            t0 = max(0, target0 - context)
            t1 = target1 if causal else min(n_tokens, target1 + context)
        else:
            c0 = max(0, s - context)
            c1 = e if causal else min(n_words, e + context)
            t0, t1 = int(tok_start[c0]), int(tok_end[c1 - 1])
        if t1 - t0 > max_len:  # trim context, never targets
            excess = t1 - t0 - max_len
            if causal:
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


def sentence_windows(token_word: np.ndarray, sentences: np.ndarray, max_len: int
                     ) -> list[tuple[int, int, int, int]]:
    """One window per sentence (truncated to ``max_len`` tokens).

    Parameters
    ----------
    token_word : ndarray of shape (n_tokens,)
        Word index of each token.
    sentences : ndarray of shape (n_words,)
        Sentence index of each word; a new sentence starts where it changes.
    max_len : int
        Maximum number of tokens in a window.

    Returns
    -------
    list of (token_start, token_end, word_start, word_end)
    """
    n_words = len(sentences)
    tok_start, tok_end = word_token_bounds(token_word, n_words)
    bounds = np.flatnonzero(np.diff(sentences)) + 1
    windows = []
    for w0, w1 in zip(np.r_[0, bounds], np.r_[bounds, n_words], strict=False):
        t0, t1 = int(tok_start[w0]), int(tok_end[w1 - 1])
        windows.append((t0, min(t1, t0 + max_len), int(w0), int(w1)))
    return windows


def group_windows(windows: list[tuple[int, int, int, int]], *, causal_model: bool
                  ) -> list[tuple[int, int, list]]:
    """Merge windows that one forward pass can serve.

    Identical token ranges are computed once. For a causal (decoder) model a
    token's state depends only on the tokens before it, so windows that start
    at the same token are served by one pass over the longest of them: the
    results are exactly those of the separate passes.

    Parameters
    ----------
    windows : list of (token_start, token_end, word_start, word_end)
        From :func:`plan_windows` or :func:`sentence_windows`.
    causal_model : bool
        Whether the model is causal.

    Returns
    -------
    list of (token_start, token_end, targets)
        ``targets`` lists the ``(word_start, word_end, token_start, token_end)``
        of the windows served by the pass. Windows without tokens are dropped.
    """
    groups: dict = {}
    for t0, t1, w0, w1 in windows:
        if t1 <= t0:
            continue
        key = t0 if causal_model else (t0, t1)
        group = groups.setdefault(key, [t0, t1, []])
        group[1] = max(group[1], t1)
        group[2].append((w0, w1, t0, t1))
    return [(t0, t1, targets) for t0, t1, targets in groups.values()]
