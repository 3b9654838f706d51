"""Strict reading of BIDS TSV files and of word-per-row ``events.tsv``.

A leaf of :mod:`bids_app.io`: the annotation readers (:mod:`bids_app.io.annotations`,
:mod:`bids_app.io.stimuli.sources`, :mod:`bids_app.io.stimuli.sentences`) share these
helpers, so none of them needs another to read a table.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError

__all__ = ["WORD_COLUMNS", "numeric_column", "read_tsv", "read_word_events", "story_label"]

#: Columns of a word table, in order.
WORD_COLUMNS = ["onset", "duration", "word", "story", "word_index"]


def _decode(raw: bytes, path: Path) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-16" and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        return text
    raise DatasetError(
        f"'{path}' is not UTF-8 text (BIDS requires UTF-8); re-save it as UTF-8 "
        "(e.g. iconv -f latin1 -t utf-8)."
    )


def read_tsv(path: Path) -> pd.DataFrame:
    """Read a BIDS TSV strictly (UTF-8, tab-separated, ``n/a`` for missing values)."""
    try:
        raw = Path(path).read_bytes()
    except PermissionError:
        raise DatasetError(f"'{path}' is not readable (permission denied); fix its permissions "
                           "(e.g. chmod a+r).") from None
    except OSError as exc:
        raise DatasetError(f"cannot read '{path}' ({exc.strerror or exc}); check that it is a "
                           "readable file.") from None
    text = _decode(raw, path).replace("\r\n", "\n").replace("\r", "\n")
    numbered = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not numbered:
        raise DatasetError(f"'{path}' is empty; it needs a header row and one row per event.")
    lines = [line for _, line in numbered]
    n_columns = len(lines[0].split("\t"))
    for number, line in numbered[1:]:
        if len(line.split("\t")) != n_columns:
            raise DatasetError(
                f"'{path}' line {number} has {len(line.split(chr(9)))} tab-separated fields but "
                f"the header has {n_columns}; fix the row (fields must be separated by tabs)."
            )
    frame = pd.read_csv(io.StringIO("\n".join(lines)), sep="\t", dtype=str,
                        keep_default_na=False, na_filter=False, quoting=3)
    frame.attrs["lines"] = [n for n, _ in numbered[1:]]  # file line of each row (by index)
    return frame


def _line_of(frame: pd.DataFrame, row: int) -> int:
    """File line of the ``row``-th (positional) row of a frame read by :func:`read_tsv`."""
    lines, label = frame.attrs.get("lines"), frame.index[row]
    if lines and isinstance(label, (int, np.integer)) and 0 <= label < len(lines):
        return int(lines[label])
    return row + 2


def numeric_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Return a TSV column as floats (``n/a`` and empty as NaN; other text is an error)."""
    values = pd.to_numeric(frame[column].replace({"n/a": np.nan, "": np.nan}), errors="coerce")
    bad = values.isna() & ~frame[column].isin(["n/a", ""])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"'{path}' column '{column}' row {row + 2} is not a number "
            f"({frame[column].iloc[row]!r}) on line {_line_of(frame, row)}; fix the value."
        )
    return values.to_numpy(dtype=float)


def read_word_events(path: Path, *, text_column: str = "word",
                     story: str | None = None) -> pd.DataFrame:
    """Read an ``events.tsv`` that lists one word per row.

    Parameters
    ----------
    path : Path
        The events file.
    text_column : str
        Column holding the words.
    story : str, optional
        Story name to give the words (the caller names it when omitted).

    Returns
    -------
    DataFrame
        Columns ``onset, duration, word, story, word_index``, sorted by onset.
    """
    frame = read_tsv(path)
    missing = [c for c in ("onset", text_column) if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"'{path}' has no column(s) {missing}; word events need 'onset', 'duration' and the "
            f"word in column '{text_column}' (set annotations.text_column in the spec to use "
            f"another column; columns present: {', '.join(frame.columns)})."
        )
    words = frame[text_column].astype(str).str.strip()
    keep = ~words.isin(["", "n/a"])
    frame, words = frame[keep], words[keep]
    if frame.empty:
        raise DatasetError(
            f"'{path}' lists no words in column '{text_column}'; brainenc needs word timings "
            "(one row per word, or a stim_file naming an annotation under stimuli/)."
        )
    onset = numeric_column(frame, "onset", path)
    if np.isnan(onset).any():
        row = int(np.flatnonzero(np.isnan(onset))[0])
        raise DatasetError(f"'{path}' has a word without an onset on line "
                           f"{_line_of(frame, row)} ({words.iloc[row]!r}); every word needs a "
                           "numeric onset.")
    duration = (numeric_column(frame, "duration", path) if "duration" in frame.columns
                else np.full(len(frame), np.nan))
    order = np.argsort(onset, kind="stable")
    table = pd.DataFrame({
        "onset": onset[order],
        "duration": np.nan_to_num(duration[order], nan=0.0),
        "word": words.to_numpy()[order],
        "story": story or "",
        "word_index": np.arange(len(order)),
    })
    table.attrs["source_index"] = np.flatnonzero(keep.to_numpy())[order]
    return table[WORD_COLUMNS]


_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def story_label(*parts: str) -> str:
    """Build an alphanumeric story name from labels (e.g. task and run)."""
    label = "".join(_NON_ALNUM.sub("", str(p)) for p in parts if p)
    return label or "story"
