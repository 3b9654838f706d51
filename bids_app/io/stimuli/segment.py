"""Words of languages written without spaces (Chinese, Japanese, Thai ...).

Aligners for such languages often time characters, not words. Characters are
pooled into words here: a word starts with its first character and ends with its
last. The segmentation is either *given* (a word list whose characters match the
timed characters, e.g. SMN4Lang's word-level file beside its character-level one),
*computed* by forward maximum matching against a user dictionary (one word per
line; unknown characters become one-character words), or per character.
No statistical segmenter is bundled: give a segmentation or a dictionary for
linguistically sensible words.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ._common import WordTimings, decode_text, read_bytes

#: Primary language subtags written without spaces between words.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "yue", "wuu"})


def is_no_space(language: str) -> bool:
    """Tell whether a language is written without spaces (``zh``, ``zh-Hans``, ``ja`` ...)."""
    return str(language).split("-")[0].split("_")[0].lower() in NO_SPACE_LANGUAGES


def _content(char: str) -> bool:
    return unicodedata.category(char)[0] not in ("P", "Z", "C", "S")


def split_characters(timings: WordTimings) -> WordTimings:
    """Split every unit into characters, sharing its interval evenly.

    Punctuation, spaces and symbols are dropped (they are not spoken).
    """
    words, onsets, offsets, aligned, index, raw = [], [], [], [], [], []
    for k, unit in enumerate(timings.words):
        chars = [c for c in unit if _content(c)]
        if not chars:
            continue
        edges = np.linspace(timings.onsets[k], timings.offsets[k], len(chars) + 1)
        for j, char in enumerate(chars):
            words.append(char)
            onsets.append(edges[j])
            offsets.append(edges[j + 1])
            aligned.append(bool(timings.aligned[k]))
            index.append(int(timings.source_index[k]))
            raw.append(timings.source_text[k])
    if not words:
        raise DatasetError(f"'{timings.source}' holds no characters once punctuation is removed; "
                           "give the timed text.")
    return WordTimings.build(words, onsets, offsets, source=timings.source, fmt=timings.fmt,
                             aligned=aligned, source_index=index, source_text=raw,
                             time_reference=timings.time_reference, notes=timings.notes)


def pool(chars: WordTimings, segmentation: list[str], *, origin: str) -> WordTimings:
    """Pool character timings into the words of ``segmentation``.

    Parameters
    ----------
    chars : WordTimings
        One entry per character (see :func:`split_characters`).
    segmentation : list of str
        Words whose content characters, concatenated, equal those of ``chars``.
    origin : str
        Where the segmentation comes from (for messages).

    Returns
    -------
    WordTimings
        One entry per word: onset of its first character, offset of its last.
    """
    stream = "".join(chars.words)
    words, onsets, offsets, aligned, index, raw = [], [], [], [], [], []
    position = 0
    for word in segmentation:
        content = "".join(c for c in word if _content(c))
        if not content:
            continue
        end = position + len(content)
        if stream[position:end] != content:
            raise DatasetError(
                f"the segmentation from {origin} does not match the characters of "
                f"'{chars.source}' at character {position + 1} (word {content!r}, timed text "
                f"{stream[position:end + 3]!r}); give a segmentation of the same text.")
        words.append(content)
        onsets.append(float(chars.onsets[position:end].min()))
        offsets.append(float(chars.offsets[position:end].max()))
        aligned.append(bool(chars.aligned[position:end].all()))
        index.append(int(chars.source_index[position]))
        raw.append("".join(chars.source_text[i] for i in range(position, end)
                           if i == position or chars.source_text[i] != chars.source_text[i - 1]))
        position = end
    if position != len(stream):
        raise DatasetError(
            f"the segmentation from {origin} covers {position} of the {len(stream)} characters "
            f"of '{chars.source}' (next: {stream[position:position + 5]!r}); give a segmentation "
            "of the whole text.")
    return WordTimings.build(words, onsets, offsets, source=chars.source, fmt=chars.fmt,
                             aligned=aligned, source_index=index, source_text=raw,
                             time_reference=chars.time_reference,
                             notes=chars.notes + [f"characters pooled into words ({origin})"])


def load_dictionary(path: Path) -> set[str]:
    """Words of a dictionary file (one per line; extra tab-separated columns ignored)."""
    path = Path(path)
    text = decode_text(read_bytes(path), path)
    words = {line.split("\t")[0].split(" ")[0].strip() for line in text.split("\n")}
    words.discard("")
    if not words:
        raise DatasetError(f"the dictionary '{path}' is empty; give one word per line.")
    return words


def max_match(text: str, dictionary: set[str], max_length: int | None = None) -> list[str]:
    """Forward maximum matching: the longest dictionary word at each position.

    Characters not starting any dictionary word become one-character words.
    """
    longest = max_length or max((len(w) for w in dictionary), default=1)
    out, i = [], 0
    while i < len(text):
        for size in range(min(longest, len(text) - i), 0, -1):
            if size == 1 or text[i:i + size] in dictionary:
                out.append(text[i:i + size])
                i += size
                break
    return out


def segment(timings: WordTimings, method: str, *, given: list[str] | None = None,
            dictionary: set[str] | None = None, origin: str = "") -> WordTimings:
    """Turn character (or mixed) timings into word timings.

    Parameters
    ----------
    timings : WordTimings
        Timed units (characters or words).
    method : str
        ``none`` (units are words), ``characters`` (every character a word),
        ``file`` (the ``given`` word list) or ``dictionary`` (maximum matching).
    given : list of str, optional
        Words for ``file``.
    dictionary : set of str, optional
        Words for ``dictionary``.
    origin : str
        Name of the segmentation source, for messages.

    Returns
    -------
    WordTimings
    """
    if method == "none":
        return timings
    chars = split_characters(timings)
    if method == "characters":
        chars.notes.append("one word per character")
        return chars
    if method == "file":
        return pool(chars, list(given or []), origin=origin)
    if method == "dictionary":
        words = max_match("".join(chars.words), dictionary or set())
        return pool(chars, words, origin=f"maximum matching with {origin}")
    raise DatasetError(f"unknown segmentation {method!r}.")
