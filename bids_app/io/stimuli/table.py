"""Plain word-timing tables (TSV, CSV or TXT) with onset, offset or duration and word columns."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ._common import WordTimings, decode_text, read_bytes

ONSET_NAMES = ("onset", "start", "begin", "xmin", "tmin", "start_time", "onset_time")
OFFSET_NAMES = ("offset", "end", "stop", "xmax", "tmax", "end_time", "offset_time")
WORD_NAMES = ("word", "words", "text", "token", "label", "char", "character")


def read_rows(path: Path) -> list[list[str]]:
    """Rows of a delimited text file (tab for .tsv, comma for .csv, sniffed otherwise)."""
    return [row for _, row in read_numbered_rows(path)]


def read_numbered_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty rows of a delimited text file with the file line each starts on."""
    text = decode_text(read_bytes(path), path)
    suffix = path.suffix.lower()
    first = text.split("\n", 1)[0]
    delimiter = "\t" if suffix == ".tsv" or (suffix != ".csv" and "\t" in first) else ","
    # tab-separated files are not quoted (BIDS); quotes in CSV follow RFC 4180
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
    rows, start = [], 1
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DatasetError(f"'{path}' line {reader.line_num} is not a valid delimited table "
                           f"row ({exc}); fix that line.") from None
    return rows


def has_onset_header(rows: list[list[str]]) -> bool:
    """Tell whether the first row names an onset column (a table, not Gentle's CSV)."""
    return bool(rows) and any(c.strip().lower() in ONSET_NAMES for c in rows[0])


def _column(header: list[str], names, preferred: str = "") -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in ((preferred.lower(),) if preferred else ()) + tuple(names):
        if name and name in lowered:
            return lowered.index(name)
    return None


def _float(value: str, path: Path, line: int, column: str) -> float:
    value = value.strip()
    if value in ("", "n/a", "nan", "NaN"):
        return np.nan
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"'{path}' line {line} column '{column}' is not a number ({value!r}); "
                           "fix the value.") from None


def _selected(row: list[str], header: list[str], rows: dict) -> bool:
    for column, wanted in rows.items():
        value = row[header.index(column)].strip()
        try:
            if float(value) != float(wanted):
                return False
        except ValueError:
            if value != str(wanted).strip():
                return False
    return True


def read_table(path: Path, *, text_column: str = "word", time_reference: str = "story",
               fmt: str = "table", rows: dict | None = None) -> WordTimings:
    """Read a table of word timings.

    Parameters
    ----------
    path : Path
        TSV/CSV/TXT with a header: an onset column (``onset``, ``start`` ...), an
        offset (``offset``, ``end`` ...) or ``duration`` column, and a word column
        (``text_column``, else ``word``, ``text``, ``token`` ...).
    text_column : str
        Preferred name of the word column.
    time_reference : str
        Clock of the times (``story`` or ``run``).
    fmt : str
        Format name recorded with the timings.
    rows : dict, optional
        Keep only the rows whose columns have these values (numbers compare as
        numbers), e.g. ``{'section': 3}`` for one section of Le Petit Prince's
        ``lppEN_word_information.csv``.

    Returns
    -------
    WordTimings
        Rows without a word (empty or ``n/a``) are skipped.
    """
    path = Path(path)
    numbered = read_numbered_rows(path)
    if not numbered:
        raise DatasetError(f"the annotation '{path}' is empty; it needs a header row and one row "
                           "per word.")
    header = numbered[0][1]
    onset = _column(header, ONSET_NAMES)
    offset = _column(header, OFFSET_NAMES)
    duration = _column(header, ("duration", "dur"))
    word = _column(header, WORD_NAMES, text_column)
    if onset is None or word is None or (offset is None and duration is None):
        raise DatasetError(
            f"'{path}' needs an onset column ({'/'.join(ONSET_NAMES[:3])}), an offset or duration "
            f"column and a word column ('{text_column}'); its header is {header}.")
    missing = [c for c in (rows or {}) if c not in header]
    if missing:
        raise DatasetError(f"'{path}' has no column {missing[0]!r} to select rows by (the "
                           f"annotations.mapping entry's rows); its header is {header}.")
    words, onsets, offsets, index = [], [], [], []
    for position, (number, row) in enumerate(numbered[1:]):
        if len(row) != len(header):
            raise DatasetError(f"'{path}' line {number} has {len(row)} fields but the header has "
                               f"{len(header)}; fix the row.")
        text = row[word].strip()
        if text in ("", "n/a") or (rows and not _selected(row, header, rows)):
            continue
        start = _float(row[onset], path, number, header[onset])
        if offset is not None:
            end = _float(row[offset], path, number, header[offset])
        else:
            end = start + _float(row[duration], path, number, header[duration])
        if not np.isfinite(start):
            raise DatasetError(f"'{path}' line {number} ({text!r}) has no onset; every word needs "
                               "a numeric onset.")
        words.append(text)
        onsets.append(start)
        offsets.append(end if np.isfinite(end) else start)
        index.append(position)
    if not words:
        chosen = f" in the rows where {rows}" if rows else ""
        raise DatasetError(f"'{path}' lists no words in column '{header[word]}'{chosen}; fix the "
                           "file or the selection.")
    return WordTimings.build(words, onsets, offsets, source=str(path), fmt=fmt,
                             source_index=index, time_reference=time_reference)
