"""Praat TextGrid files (long and short text formats, UTF-8 or UTF-16).

Both text formats carry the same sequence of values; the long format only adds
names (``xmin =``), bracketed indices (``intervals [3]:``) and comments (``!``).
The reader turns a file into that value sequence (numbers, quoted strings with
``""`` escapes, ``<exists>`` flags) and walks the tiers, so both formats, and files
mixing their styles, are read by one parser.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DatasetError
from ._common import WordTimings, clean_label, decode_text, drop_set, read_bytes

_TOKEN = re.compile(
    r'"((?:[^"]|"")*)"'                            # 1 string
    r"|<(exists|absent)>"                          # 2 flag
    r"|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"  # 3 number
    r"|\[[^\]\n]*\]|![^\n]*|[A-Za-z_][A-Za-z0-9_?]*|\s+|[=:?]"  # ignored
    r'|(")'                                         # 4 unterminated string
    r"|(.)", re.S)                                   # 5 anything else
_WORD_TIER_NAMES = ("words", "word", "wordtier", "word tier", "mots", "mot", "wort", "wörter",
                    "ortho", "orthography", "transcription")


def tokenize(text: str, path: Path) -> list:
    """Values of a TextGrid as ``(kind, value)`` with kind ``s`` (string), ``n``, ``f``."""
    tokens = []
    for match in _TOKEN.finditer(text):
        if match.group(1) is not None:
            tokens.append(("s", match.group(1).replace('""', '"')))
        elif match.group(2) is not None:
            tokens.append(("f", match.group(2)))
        elif match.group(3) is not None:
            tokens.append(("n", match.group(3)))
        elif match.group(4) is not None:
            raise DatasetError(f"'{path}' has a text label that is never closed (a \" without its "
                               "closing \"); fix the TextGrid, e.g. re-save it from Praat.")
        elif match.group(5) is not None:
            raise DatasetError(f"'{path}' is not a Praat TextGrid (unexpected "
                               f"{match.group(5)!r}); give a TextGrid saved as text.")
    return tokens


class _Stream:
    def __init__(self, tokens, path):
        self.tokens, self.i, self.path = tokens, 0, path

    def take(self, kind: str, what: str):
        if self.i >= len(self.tokens):
            raise DatasetError(f"'{self.path}' ends before {what}; the TextGrid is truncated, "
                               "re-save it from Praat.")
        got_kind, value = self.tokens[self.i]
        self.i += 1
        if got_kind != kind:
            raise DatasetError(f"'{self.path}' has {value!r} where {what} was expected; the file "
                               "is not a valid TextGrid, re-save it from Praat.")
        if kind == "n":
            number = float(value)
            if number != number or abs(number) == float("inf"):
                raise DatasetError(f"'{self.path}' holds a non-finite time; fix the TextGrid.")
            return number
        return value

    def count(self, what: str) -> int:
        value = self.take("n", what)
        if value < 0 or value != int(value) or value > len(self.tokens):
            raise DatasetError(f"'{self.path}' gives {value:g} as {what}, which does not match "
                               "the file's content; re-save the TextGrid from Praat.")
        return int(value)


def parse_textgrid(text: str, path: Path) -> list[dict]:
    """Tiers of a TextGrid: ``{'name', 'class', 'items': [(xmin, xmax, text)]}``."""
    stream = _Stream(tokenize(text, path), path)
    if stream.take("s", "the file type") != "ooTextFile":
        raise DatasetError(f"'{path}' is not a Praat text file (File type must be \"ooTextFile\"; "
                           "binary TextGrids are not read); save it from Praat as a text file.")
    if stream.take("s", "the object class") != "TextGrid":
        raise DatasetError(f"'{path}' is a Praat file but not a TextGrid; give the TextGrid.")
    stream.take("n", "xmin")
    stream.take("n", "xmax")
    if stream.take("f", "the <exists> flag") == "absent":
        return []
    tiers = []
    for _ in range(stream.count("the number of tiers")):
        tier_class = stream.take("s", "a tier class")
        name = stream.take("s", "a tier name")
        stream.take("n", "the tier xmin")
        stream.take("n", "the tier xmax")
        items = []
        n_items = stream.count(f"the number of items of tier '{name}'")
        for _ in range(n_items):
            if tier_class == "IntervalTier":
                start = stream.take("n", "an interval xmin")
                end = stream.take("n", "an interval xmax")
            elif tier_class == "TextTier":
                start = end = stream.take("n", "a point time")
            else:
                raise DatasetError(f"'{path}' has a tier of unknown class {tier_class!r}; only "
                                   "IntervalTier and TextTier are read.")
            items.append((start, end, stream.take("s", "a label")))
        tiers.append({"name": name, "class": tier_class, "items": items})
    return tiers


def choose_tier(tiers: list[dict], tier, path: Path) -> dict:
    """Choose the word tier: by name, by 1-based index, or the tier named like 'words'."""
    names = [t["name"] for t in tiers]
    shown = ", ".join(repr(n) for n in names) or "none"
    if isinstance(tier, int) and not isinstance(tier, bool):
        if not 1 <= tier <= len(tiers):
            raise DatasetError(f"'{path}' has {len(tiers)} tier(s) ({shown}) but "
                               f"annotations.tier is {tier}; give a 1-based index or a name.")
        return tiers[tier - 1]
    if tier:
        for candidate in tiers:
            if candidate["name"] == tier:
                return candidate
        for candidate in tiers:
            if candidate["name"].strip().lower() == str(tier).strip().lower():
                return candidate
        raise DatasetError(f"'{path}' has no tier named {tier!r} (tiers: {shown}); set "
                           "annotations.tier to one of them.")
    for wanted in _WORD_TIER_NAMES:
        for candidate in tiers:
            if candidate["name"].strip().lower() == wanted:
                return candidate
    for candidate in tiers:
        if "word" in candidate["name"].lower():
            return candidate
    intervals = [t for t in tiers if t["class"] == "IntervalTier"]
    if len(intervals) == 1:
        return intervals[0]
    raise DatasetError(f"'{path}' has no word tier (tiers: {shown}); set annotations.tier to the "
                       "name or 1-based index of the tier holding the words.")


def read_textgrid(path: Path, *, tier=None, drop_labels=None,
                  label_separator: str = " / ") -> WordTimings:
    """Read the words of a TextGrid tier.

    Parameters
    ----------
    path : Path
        The TextGrid (long or short text format; UTF-8 or UTF-16).
    tier : str or int, optional
        Tier name, or its 1-based position; by default the tier named like 'words'.
    drop_labels : sequence of str, optional
        Labels that are not words (default: silences and markers).
    label_separator : str
        Labels like ``"YOU / 1.2"`` keep the part before it.

    Returns
    -------
    WordTimings
        One entry per word interval, times from the start of the recording.
    """
    from ._common import DEFAULT_DROP_LABELS

    path = Path(path)
    tiers = parse_textgrid(decode_text(read_bytes(path), path), path)
    chosen = choose_tier(tiers, tier, path)
    drop = drop_set(DEFAULT_DROP_LABELS if drop_labels is None else drop_labels)
    words, onsets, offsets, index, raw = [], [], [], [], []
    for i, (start, end, label) in enumerate(chosen["items"]):
        word = clean_label(label, drop, label_separator)
        if word is None:
            continue
        words.append(word)
        onsets.append(start)
        offsets.append(end)
        index.append(i)
        raw.append(label)
    if not words:
        raise DatasetError(f"the tier '{chosen['name']}' of '{path}' holds no words (only "
                           "silences/markers or nothing); choose the word tier with "
                           "annotations.tier or fix the file.")
    return WordTimings.build(words, onsets, offsets, source=str(path), fmt="textgrid",
                             source_index=index, source_text=raw,
                             notes=[f"tier '{chosen['name']}'"])
