"""Praat TextGrid files (long and short text formats, UTF-8 or UTF-16).

Both text formats carry the same sequence of values; the long format only adds
names (``xmin =``), bracketed indices (``intervals [3]:``) and comments (``!``).
The reader turns a file into that value sequence (numbers, quoted strings with
``""`` escapes, ``<exists>`` flags), each with its line number, and walks the
tiers, so both formats, and files mixing their styles, are read by one parser.

Defects common in published alignments are repaired with a message naming the
file, the line and what was done (:class:`~._common.Repairs`; refused instead
with ``strict``): a doubled closing quote at a line end (``text = "WORD""``),
word intervals out of order (sorted) or overlapping the next one (trimmed),
intervals ending before they start, a tier ending after the file's ``xmax``, a
UTF-8 byte-order mark, CR/CRLF line ends and indentation mixing tabs and spaces.
Anything else that is not a TextGrid is an error naming the line and what was
found there.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path
from typing import NamedTuple

from ...errors import DatasetError
from ._common import (
    DEFAULT_DROP_LABELS,
    Repairs,
    WordTimings,
    clean_label,
    decode_text,
    drop_set,
    read_bytes,
    text_defects,
)
from .phones import find_phone_tier, phone_onsets

_TOKEN = re.compile(
    r'"((?:[^"]|"")*)"'                            # 1 string
    r"|<(exists|absent)>"                          # 2 flag
    r"|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"  # 3 number
    r"|\[[^\]\n]*\]|![^\n]*|[A-Za-z_][A-Za-z0-9_?]*|\s+|[=:?]"  # ignored
    r'|(")'                                         # 4 unterminated string
    r"|(.)", re.S)                                   # 5 anything else
# a line of TextGrid structure ('xmin = ...', 'intervals [2]:', a bare number)
_STRUCTURE = re.compile(r"\n[ \t]*(?:[A-Za-z][A-Za-z ]*(?:\[[ \t]*\d*[ \t]*\])?[ \t]*[=:?]"
                        r"|[-+]?\.?\d)")
_WORD_TIER_NAMES = ("words", "word", "wordtier", "word tier", "mots", "mot", "wort", "wörter",
                    "ortho", "orthography", "transcription")


class Token(NamedTuple):
    """One value of a TextGrid: kind ``s`` (string), ``n`` (number) or ``f`` (flag)."""

    kind: str
    value: str
    line: int


class _Lines:
    """Line number (1-based) of a character offset."""

    def __init__(self, text: str):
        self.ends = [i for i, c in enumerate(text) if c == "\n"]
        self.text = text

    def __call__(self, offset: int) -> int:
        return bisect.bisect_left(self.ends, offset) + 1

    def show(self, line: int) -> str:
        """The text of a line, shortened for messages."""
        start = self.ends[line - 2] + 1 if line > 1 else 0
        stop = self.ends[line - 1] if line - 1 < len(self.ends) else len(self.text)
        shown = self.text[start:stop].strip()
        return shown if len(shown) <= 60 else shown[:57] + "..."


def _doubled_quote(content: str) -> str | None:
    """The first line of a string that ends with a stray doubled quote, else None.

    ``"WORD""`` at a line end reads (with ``""`` as an escaped quote) as a string
    running on over the next lines; when those lines are TextGrid structure, the
    label is ``WORD`` and the last quote is a stray.
    """
    if "\n" not in content:
        return None
    first, rest = content.split("\n", 1)
    stripped = first.rstrip(" \t")
    if not stripped.endswith('""') or not _STRUCTURE.search("\n" + rest):
        return None
    return stripped[:-2]


def tokenize(text: str, path: Path, repairs: Repairs | None = None) -> list[Token]:
    """Values of a TextGrid with their line numbers.

    Parameters
    ----------
    text : str
        The file's text (line ends normalised).
    path : Path
        The file (for messages).
    repairs : Repairs, optional
        Receives the doubled closing quotes repaired (strict by default).

    Returns
    -------
    list of Token
    """
    repairs = repairs if repairs is not None else Repairs(path, strict=True)
    lines, tokens, pos = _Lines(text), [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        line = lines(match.start())
        if match.group(1) is not None:
            content, pos = match.group(1), match.end()
            fixed = _doubled_quote(content)
            if fixed is not None:
                repairs.add(line, f"the label {lines.show(line)!r} ends with a doubled closing "
                                  "quote", "the stray quote was ignored")
                pos = match.start(1) + content.index("\n")  # go on after that line
                content = fixed
            tokens.append(Token("s", content.replace('""', '"'), line))
            continue
        pos = match.end()
        if match.group(2) is not None:
            tokens.append(Token("f", match.group(2), line))
        elif match.group(3) is not None:
            tokens.append(Token("n", match.group(3), line))
        elif match.group(4) is not None:
            raise DatasetError(f"'{path}' line {line}: a text label is never closed (a \" "
                               f"without its closing \" in {lines.show(line)!r}); add the "
                               "closing quote or re-save the TextGrid from Praat.")
        elif match.group(5) is not None:
            opened = tokens[-1].line if tokens and tokens[-1].kind == "s" else line
            if opened < line and "\n" in tokens[-1].value:
                raise DatasetError(
                    f"'{path}' line {opened}: the label in {lines.show(opened)!r} is never "
                    f"closed (a \" without its closing \"), so the text up to line {line} was "
                    "read as one label; add the closing quote on that line.")
            raise DatasetError(f"'{path}' line {line}: unexpected {match.group(5)!r} in "
                               f"{lines.show(line)!r}; a text TextGrid holds only numbers, "
                               "quoted labels and 'name =' keys there, fix that line.")
    return tokens


class _Stream:
    def __init__(self, tokens: list[Token], path: Path):
        self.tokens, self.i, self.path = tokens, 0, path
        self.line = tokens[0].line if tokens else 1

    def take(self, kind: str, what: str):
        if self.i >= len(self.tokens):
            raise DatasetError(f"'{self.path}' ends (line {self.line}) before {what}; the "
                               "TextGrid is truncated, re-save it from Praat.")
        token = self.tokens[self.i]
        self.i += 1
        self.line = token.line
        if token.kind != kind:
            raise DatasetError(f"'{self.path}' line {token.line}: found {token.value!r} where "
                               f"{what} was expected; the file is not a valid TextGrid there, "
                               "fix the line or re-save it from Praat.")
        if kind == "n":
            number = float(token.value)
            if number != number or abs(number) == float("inf"):
                raise DatasetError(f"'{self.path}' line {token.line}: {what} is not a finite "
                                   f"time ({token.value!r}); fix the value.")
            return number
        return token.value

    def count(self, what: str) -> int:
        value = self.take("n", what)
        if value < 0 or value != int(value) or value > len(self.tokens):
            raise DatasetError(f"'{self.path}' line {self.line}: {what} is {value:g}, which "
                               "does not match the file's content; fix the count or re-save the "
                               "TextGrid from Praat.")
        return int(value)


def parse_textgrid(text: str, path: Path, repairs: Repairs | None = None) -> list[dict]:
    """Tiers of a TextGrid.

    Parameters
    ----------
    text : str
        The file's text (line ends normalised).
    path : Path
        The file (for messages).
    repairs : Repairs, optional
        Receives the repairs made (strict when omitted).

    Returns
    -------
    list of dict
        ``{'name', 'class', 'xmin', 'xmax', 'line', 'items': [(xmin, xmax, text)],
        'lines': [line of each item]}``; the file's ``xmax`` is in ``'file_xmax'``.
    """
    stream = _Stream(tokenize(text, path, repairs), path)
    if stream.take("s", "the file type") != "ooTextFile":
        raise DatasetError(f"'{path}' is not a Praat text file (File type must be \"ooTextFile\"; "
                           "binary TextGrids are not read); save it from Praat as a text file.")
    if stream.take("s", "the object class") != "TextGrid":
        raise DatasetError(f"'{path}' is a Praat file but not a TextGrid; give the TextGrid.")
    stream.take("n", "xmin")
    file_xmax = stream.take("n", "xmax")
    if stream.take("f", "the <exists> flag") == "absent":
        return []
    tiers = []
    for _ in range(stream.count("the number of tiers")):
        tier_class = stream.take("s", "a tier class")
        line = stream.line
        name = stream.take("s", "a tier name")
        xmin = stream.take("n", "the tier xmin")
        xmax = stream.take("n", "the tier xmax")
        xmax_line = stream.line
        items, item_lines = [], []
        n_items = stream.count(f"the number of items of tier '{name}'")
        for _ in range(n_items):
            if tier_class == "IntervalTier":
                start = stream.take("n", "an interval xmin")
                item_lines.append(stream.line)
                end = stream.take("n", "an interval xmax")
            elif tier_class == "TextTier":
                start = end = stream.take("n", "a point time")
                item_lines.append(stream.line)
            else:
                raise DatasetError(f"'{path}' line {line}: tier '{name}' is of unknown class "
                                   f"{tier_class!r}; only IntervalTier and TextTier are read.")
            items.append((start, end, stream.take("s", "a label")))
        tiers.append({"name": name, "class": tier_class, "xmin": xmin, "xmax": xmax,
                      "line": line, "xmax_line": xmax_line, "items": items,
                      "lines": item_lines, "file_xmax": file_xmax})
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


def _repair_items(tier: dict, items: list[tuple], repairs: Repairs) -> list[tuple]:
    """Word intervals ``(xmin, xmax, word, label, line, position)`` in time order.

    Intervals out of order are sorted (stable) and an interval ending before it
    starts ends at its start; each is recorded in ``repairs``. Overlaps are trimmed
    afterwards (:func:`_trim_overlaps`).
    """
    name = tier["name"]
    if tier["xmax"] > tier["file_xmax"] + 1e-9:
        repairs.add(tier["xmax_line"], f"tier '{name}' ends at {tier['xmax']:g} s, after the "
                                       f"file's xmax of {tier['file_xmax']:g} s",
                    "the tier's times were kept as written")
    backwards = [i for i in range(1, len(items)) if items[i][0] < items[i - 1][0] - 1e-9]
    if backwards:
        first = items[backwards[0]]
        repairs.add(first[4], f"{len(backwards)} word interval(s) of tier '{name}' start before "
                              f"the previous word (first: {first[2]!r} at {first[0]:g} s)",
                    "the words were sorted by start time")
        items = sorted(items, key=lambda item: item[0])
    inverted = [i for i, item in enumerate(items) if item[1] < item[0]]
    if inverted:
        first = items[inverted[0]]
        repairs.add(first[4], f"{len(inverted)} word interval(s) of tier '{name}' end before "
                              f"they start (first: {first[2]!r}, {first[0]:g} s to "
                              f"{first[1]:g} s)", "each was given zero duration")
        items = [(s, max(s, e), *rest) for s, e, *rest in items]
    return items


def _trim_overlaps(onsets: list, offsets: list, lines: list, name: str,
                   repairs: Repairs) -> None:
    """End each word no later than the next word's start (in place), recording it."""
    overlaps = [i for i in range(len(onsets) - 1) if offsets[i] > onsets[i + 1] + 1e-9]
    if not overlaps:
        return
    largest = max(offsets[i] - onsets[i + 1] for i in overlaps)
    shown = ", ".join(str(lines[i]) for i in overlaps[:5]) + (", ..." if len(overlaps) > 5
                                                               else "")
    repairs.add(lines[overlaps[0]], f"{len(overlaps)} word interval(s) of tier '{name}' overlap "
                                    f"the next word (by up to {largest * 1000:.0f} ms; lines "
                                    f"{shown})",
                "each was trimmed to end where the next word starts")
    for i in overlaps:
        offsets[i] = onsets[i + 1]


def read_textgrid(path: Path, *, tier=None, drop_labels=None,
                  label_separator: str = " / ", strict: bool = False) -> WordTimings:
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
    strict : bool
        Refuse the file at its first defect instead of repairing it.

    Returns
    -------
    WordTimings
        One entry per word interval in time order, times from the start of the
        recording; ``repairs`` lists what was repaired.
    """
    path = Path(path)
    repairs = Repairs(path, strict)
    raw = read_bytes(path)
    text = decode_text(raw, path, keep_line_ends=True)
    text_defects(raw, text, repairs)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    tiers = parse_textgrid(text, path, repairs)
    chosen = choose_tier(tiers, tier, path)
    drop = drop_set(DEFAULT_DROP_LABELS if drop_labels is None else drop_labels)
    items = []
    for position, ((start, end, label), line) in enumerate(zip(chosen["items"], chosen["lines"],
                                                               strict=True)):
        word = clean_label(label, drop, label_separator)
        if word is not None:
            items.append((start, end, word, label, line, position))
    items = _repair_items(chosen, items, repairs)
    words = [item[2] for item in items]
    onsets, offsets = [item[0] for item in items], [item[1] for item in items]
    lines = [item[4] for item in items]
    if not words:
        raise DatasetError(f"the tier '{chosen['name']}' of '{path}' holds no words (only "
                           "silences/markers or nothing); choose the word tier with "
                           "annotations.tier or fix the file.")
    _trim_overlaps(onsets, offsets, lines, chosen["name"], repairs)
    notes = [f"tier '{chosen['name']}'"]
    phone_tier = find_phone_tier(tiers, chosen)
    phones = None
    if phone_tier is not None:
        phones = phone_onsets(phone_tier, drop, label_separator)
        notes.append(f"{len(phones)} phones from tier '{phone_tier['name']}'")
    timings = WordTimings.build(words, onsets, offsets, source=str(path), fmt="textgrid",
                                source_index=[item[5] for item in items],
                                source_text=[item[3] for item in items],
                                notes=notes, repairs=repairs.messages)
    timings.phones = phones
    return timings

