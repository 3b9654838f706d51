"""Gentle forced-alignment output: ``align.json`` and ``align.csv``.

Gentle marks words it found in the audio with ``case == "success"`` and a
``start``/``end``; words of the transcript it could not find
(``"not-found-in-audio"``) have no times. Those get times interpolated between
their aligned neighbours (evenly sharing the gap) and are flagged as unaligned,
so the report can list them. Entries ``"not-found-in-transcript"`` are sounds
Gentle heard that are not part of the text and are skipped.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ._common import WordTimings, decode_text, read_bytes
from .phones import gentle_phone_onsets


def interpolate_missing(onsets: np.ndarray, offsets: np.ndarray,
                        aligned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill the times of unaligned words from their aligned neighbours.

    Parameters
    ----------
    onsets, offsets : ndarray of shape (n_words,)
        Times (ignored where ``aligned`` is False).
    aligned : ndarray of shape (n_words,), bool
        Words with reliable times (at least one).

    Returns
    -------
    onsets, offsets : ndarray of shape (n_words,)
        Unaligned words share the gap between the previous aligned word's end and
        the next one's start; leading/trailing ones take the mean aligned duration.
    """
    onsets, offsets = onsets.astype(float).copy(), offsets.astype(float).copy()
    good = np.flatnonzero(aligned)
    mean = float(np.mean(offsets[good] - onsets[good])) if good.size else 0.3
    mean = max(mean, 0.05)
    n, i = len(onsets), 0
    while i < n:
        if aligned[i]:
            i += 1
            continue
        j = i
        while j < n and not aligned[j]:
            j += 1
        count = j - i
        if i > 0 and j < n:
            start, stop = offsets[i - 1], max(onsets[j], offsets[i - 1])
        elif i == 0 and j < n:
            stop = onsets[j]
            start = max(0.0, stop - count * mean)
        else:
            start = offsets[i - 1]
            stop = start + count * mean
        edges = np.linspace(start, stop, count + 1)
        onsets[i:j], offsets[i:j] = edges[:-1], edges[1:]
        i = j
    return onsets, offsets


def _finish(words, onsets, offsets, aligned, index, path, interpolate: bool) -> WordTimings:
    if not words:
        raise DatasetError(f"'{path}' holds no words; give the Gentle output of the story.")
    aligned = np.asarray(aligned, bool)
    if not aligned.any():
        raise DatasetError(f"Gentle aligned none of the {len(words)} words of '{path}'; check "
                           "that the transcript matches the audio and re-run the alignment.")
    onsets, offsets = np.asarray(onsets, float), np.asarray(offsets, float)
    notes = []
    if not aligned.all():
        missing = int((~aligned).sum())
        if interpolate:
            onsets, offsets = interpolate_missing(onsets, offsets, aligned)
            notes.append(f"{missing} word(s) not aligned by Gentle; times interpolated")
        else:
            keep = aligned
            words = [w for w, k in zip(words, keep, strict=True) if k]
            onsets, offsets, index = onsets[keep], offsets[keep], np.asarray(index)[keep]
            aligned = aligned[keep]
            notes.append(f"{missing} word(s) not aligned by Gentle; dropped")
    return WordTimings.build(words, onsets, offsets, source=str(path), fmt="gentle",
                             aligned=aligned, source_index=index, notes=notes)


def read_gentle_json(path: Path, *, interpolate: bool = True) -> WordTimings:
    """Read Gentle's ``align.json`` (``words[].word/case/start/end``)."""
    path = Path(path)
    try:
        data = json.loads(decode_text(read_bytes(path), path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"'{path}' line {exc.lineno} is not valid JSON ({exc.msg} at column "
                           f"{exc.colno}); give Gentle's align.json as written.") from None
    except RecursionError:
        raise DatasetError(f"'{path}' is not valid JSON (nested too deeply); give Gentle's "
                           "align.json as written.") from None
    entries = data.get("words") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f"'{path}' has no 'words' list; it is not Gentle's align.json.")
    words, onsets, offsets, aligned, index = [], [], [], [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetError(f"'{path}' words[{i}] is not an object; fix the file.")
        case = entry.get("case", "success")
        if case == "not-found-in-transcript":
            continue
        word = entry.get("word", entry.get("alignedWord"))
        if not isinstance(word, str) or not word.strip():
            continue
        ok = case == "success"
        start, end = entry.get("start"), entry.get("end")
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in (start, end))
        if ok and not numeric:
            ok = False
        if ok and not (np.isfinite(start) and np.isfinite(end)):
            ok = False
        words.append(word.strip())
        onsets.append(float(start) if ok else np.nan)
        offsets.append(float(end) if ok else np.nan)
        aligned.append(ok)
        index.append(i)
    timings = _finish(words, onsets, offsets, aligned, index, path, interpolate)
    timings.phones = gentle_phone_onsets(entries)
    if timings.phones is not None:
        timings.notes.append(f"{len(timings.phones)} phones from the words' 'phones' lists")
    return timings


def _number(value: str):
    try:
        number = float(value)
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def read_gentle_csv(path: Path, *, interpolate: bool = True) -> WordTimings:
    """Read Gentle's ``align.csv`` (rows ``word,alignedWord,start,end``; no times = unaligned)."""
    path = Path(path)
    text = decode_text(read_bytes(path), path)
    reader = csv.reader(io.StringIO(text))
    rows, lines = [], []
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise DatasetError(f"'{path}' line {reader.line_num} is not valid CSV ({exc}); fix "
                           "that line.") from None
    if rows and len(rows[0]) >= 4 and _number(rows[0][2]) is None and rows[0][2].strip():
        rows, lines = rows[1:], lines[1:]  # a header row
    words, onsets, offsets, aligned, index = [], [], [], [], []
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        if len(row) < 2 or not row[0].strip():
            raise DatasetError(f"'{path}' line {line} is not 'word,alignedWord,start,end' "
                               f"(found {','.join(row)!r}); give Gentle's align.csv as written.")
        fields = (row + ["", "", ""])[:4]
        start, end = _number(fields[2]), _number(fields[3])
        ok = start is not None and end is not None
        if not ok and (fields[2].strip() or fields[3].strip()):
            raise DatasetError(f"'{path}' line {line} has a start/end that is not a number "
                               f"({fields[2]!r}, {fields[3]!r}); fix the value.")
        words.append(row[0].strip())
        onsets.append(start if ok else np.nan)
        offsets.append(end if ok else np.nan)
        aligned.append(ok)
        index.append(i)
    return _finish(words, onsets, offsets, aligned, index, path, interpolate)
