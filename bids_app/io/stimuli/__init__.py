"""Readers of stimulus word timings in the forms real story datasets use.

=================  ==========================================  ==========================
form               files                                        clock of the times
=================  ==========================================  ==========================
Praat TextGrid     ``*.TextGrid`` (long/short, UTF-8/UTF-16)    story start
Gentle             ``align.json``, Gentle ``*.csv``             story start
table              ``*.tsv``, ``*.csv``, ``*.txt`` with header  story start
MATLAB             ``*.mat`` (SMN4Lang word/char timing)        run (scanner time)
=================  ==========================================  ==========================

:func:`read_annotation` picks the reader from the file name and content and
returns :class:`WordTimings`. Every problem is a
:class:`~bids_app.errors.DatasetError` naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from ._common import DEFAULT_DROP_LABELS, WordTimings, decode_text, read_bytes
from .gentle import read_gentle_csv, read_gentle_json
from .matlab import read_mat
from .resolve import resolve_under
from .segment import is_no_space, segment
from .table import has_onset_header, read_rows, read_table
from .textgrid import read_textgrid

#: File extensions read as annotations (lower case).
ANNOTATION_EXTENSIONS = (".textgrid", ".json", ".tsv", ".csv", ".txt", ".mat")
#: Extensions of audio stimuli (story rows whose annotation comes from the spec's mapping).
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".aiff", ".aif")

__all__ = ["ANNOTATION_EXTENSIONS", "AUDIO_EXTENSIONS", "DEFAULT_DROP_LABELS", "WordTimings",
           "is_annotation", "is_no_space", "read_annotation", "read_segmentation",
           "resolve_under", "segment"]


def is_annotation(name: str) -> bool:
    """Tell whether a file name has an annotation extension."""
    return Path(str(name)).suffix.lower() in ANNOTATION_EXTENSIONS


def _default_reference(path: Path, time_reference: str) -> str:
    if time_reference and time_reference != "auto":
        return time_reference
    return "run" if path.suffix.lower() == ".mat" else "story"


def read_annotation(path: Path, *, tier=None, drop_labels=None, label_separator: str = " / ",
                    text_column: str = "word", interpolate: bool = True,
                    time_reference: str = "auto", strict: bool = False,
                    rows: dict | None = None) -> WordTimings:
    """Read the word timings of one story from any supported file.

    Parameters
    ----------
    path : Path
        The annotation file.
    tier : str or int, optional
        TextGrid tier (name or 1-based index).
    drop_labels : sequence of str, optional
        TextGrid labels that are not words (default :data:`DEFAULT_DROP_LABELS`).
    label_separator : str
        TextGrid labels like ``"YOU / 1.2"`` keep the part before it.
    text_column : str
        Preferred word column of tables.
    interpolate : bool
        Interpolate (True) or drop (False) words Gentle could not align.
    time_reference : str
        ``auto`` (``run`` for .mat, ``story`` otherwise), ``story`` or ``run``.
    strict : bool
        Refuse a TextGrid with a known defect instead of repairing it (the repairs
        made are listed in the result's ``repairs``).
    rows : dict, optional
        Table rows to keep by column value (a table holding several stories).

    Returns
    -------
    WordTimings
    """
    path = Path(path)
    suffix = path.suffix.lower()
    reference = _default_reference(path, time_reference)
    if rows and suffix not in (".tsv", ".csv", ".txt"):
        raise DatasetError("rows can only be selected in a table (TSV/CSV) with a header; "
                           f"'{path}' is not one.")
    if suffix == ".textgrid":
        timings = read_textgrid(path, tier=tier, drop_labels=drop_labels,
                                label_separator=label_separator, strict=strict)
    elif suffix == ".json":
        timings = read_gentle_json(path, interpolate=interpolate)
    elif suffix == ".mat":
        timings = read_mat(path)
    elif suffix in (".tsv", ".csv", ".txt"):
        if has_onset_header(read_rows(path)) or suffix == ".tsv":
            timings = read_table(path, text_column=text_column, rows=rows)
        elif rows:
            raise DatasetError(f"rows can only be selected in a table whose header names an "
                               f"onset column; '{path}' has none (Gentle's align.csv?).")
        else:
            timings = read_gentle_csv(path, interpolate=interpolate)
    else:
        raise DatasetError(
            f"'{path}' is not a known annotation format; give a TextGrid, Gentle align.json/"
            f".csv, a TSV/CSV table or a .mat file ({', '.join(ANNOTATION_EXTENSIONS)}).")
    timings.time_reference = reference
    return timings


def read_segmentation(path: Path, **options) -> list[str]:
    """Words of a segmentation file: any annotation, or plain text split on whitespace."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        rows = read_rows(path)
        if not has_onset_header(rows):
            words = decode_text(read_bytes(path), path).split()
            if not words:
                raise DatasetError(f"the segmentation '{path}' is empty; give the words of the "
                                   "story separated by spaces or newlines.")
            return words
    return read_annotation(path, **options).words
