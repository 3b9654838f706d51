"""Shared pieces of the annotation readers: timing container, decoding, label cleaning.

Every reader returns a :class:`WordTimings` whose times are in seconds on the clock
of the file (story start, or the run's clock for files already in scanner time) and
raises :class:`~bids_app.errors.DatasetError` for anything it cannot use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DatasetError

#: Labels dropped by default (compared case-insensitively): silences, pauses and markers.
DEFAULT_DROP_LABELS = ("", "sp", "sil", "sil.", "spn", "pau", "silence", "#", "<s>", "</s>",
                       "<sil>", "<unk>", "{sl}", "{lg}", "{ns}", "{br}", "{cg}", "{ls}")
_MARKER = re.compile(r"^(\{[^{}]*\}|</?[^<>\s]*>?|\[[^\[\]]*\])$")
#: Largest file an annotation reader accepts (bytes).
MAX_BYTES = 256 * 1024 * 1024


@dataclass
class WordTimings:
    """Words of one annotation file with their timings.

    Attributes
    ----------
    words : list of str, length n_words
        Word labels as read (cleaned of markers and token ids, not normalised).
    onsets, offsets : ndarray of shape (n_words,)
        Start and end of each word in seconds (file clock).
    aligned : ndarray of shape (n_words,), bool
        False for words whose times were interpolated (not aligned to the audio).
    source_index : ndarray of shape (n_words,), int
        Position of each word's entry in the source file (intervals, rows ...).
    source_text : list of str
        Label of each word exactly as written in the file.
    source : str
        The file read.
    fmt : str
        ``textgrid``, ``gentle``, ``table``, ``mat`` or ``events``.
    time_reference : str
        ``story`` (times from the story start) or ``run`` (already in scanner time).
    notes : list of str
        What the reader did that the user should know (interpolations, tier used ...).
    repairs : list of str
        Defects of the file that were repaired while reading, each naming the file,
        the line and what was done (see :class:`Repairs`).
    phones : ndarray of shape (n_phones,) or None
        Onsets of the phones (seconds, file clock) when the file has a phone tier
        (silences left out); None otherwise.
    """

    words: list
    onsets: np.ndarray
    offsets: np.ndarray
    aligned: np.ndarray
    source_index: np.ndarray
    source_text: list
    source: str
    fmt: str
    time_reference: str = "story"
    notes: list = field(default_factory=list)
    repairs: list = field(default_factory=list)
    phones: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, words, onsets, offsets, *, source, fmt, aligned=None, source_index=None,
              source_text=None, time_reference="story", notes=None,
              repairs=None) -> WordTimings:
        """Create from sequences, checking lengths and finiteness."""
        onsets = np.asarray(onsets, dtype=float).reshape(-1)
        offsets = np.asarray(offsets, dtype=float).reshape(-1)
        n = len(words)
        if len(onsets) != n or len(offsets) != n:
            raise DatasetError(f"'{source}' gives {n} words but {len(onsets)} onsets and "
                               f"{len(offsets)} offsets; every word needs a start and an end.")
        bad = ~(np.isfinite(onsets) & np.isfinite(offsets))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"'{source}' word {i + 1} ({words[i]!r}) has no finite start/end "
                               "time; fix or remove the entry.")
        return cls(
            words=list(words), onsets=onsets, offsets=np.maximum(offsets, onsets),
            aligned=(np.ones(n, bool) if aligned is None else np.asarray(aligned, bool)),
            source_index=(np.arange(n) if source_index is None
                          else np.asarray(source_index, int)),
            source_text=list(words if source_text is None else source_text),
            source=str(source), fmt=fmt, time_reference=time_reference,
            notes=list(notes or []), repairs=list(repairs or []))


class Repairs:
    """Collects the defects of one file that a reader repairs, or refuses them.

    Parameters
    ----------
    path : Path
        The file read (named in every message).
    strict : bool
        Raise :class:`~bids_app.errors.DatasetError` at the first defect instead of
        repairing it (``[annotations] strict = true``).
    """

    def __init__(self, path: Path, strict: bool = False):
        self.path, self.strict, self.messages = Path(path), bool(strict), []

    def add(self, line: int | None, found: str, action: str) -> None:
        """Record one repair (``found``: the defect; ``action``: what was done)."""
        where = f"'{self.path}' line {line}" if line else f"'{self.path}'"
        if self.strict:
            raise DatasetError(f"{where}: {found}; fix the file (annotations.strict is true; "
                               "with strict = false it is read with this repair: "
                               f"{action}).")
        self.messages.append(f"{where}: {found}; {action}.")


def text_defects(raw: bytes, text: str, repairs: Repairs) -> None:
    """Report a UTF-8 byte-order mark, CR/CRLF line ends and mixed tab/space indentation.

    Parameters
    ----------
    raw : bytes
        The file as read.
    text : str
        The decoded text before its line ends are normalised.
    repairs : Repairs
        Receives one repair per kind of defect found.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        repairs.add(1, "a UTF-8 byte-order mark (BOM) starts the file", "it was ignored")
    if "\r" in text:
        line = text[:text.index("\r")].count("\n") + 1
        kind = "Windows (CRLF)" if "\r\n" in text else "old Mac (CR)"
        repairs.add(line, f"{kind} line ends", "they were read as plain line ends")
    styles, first = set(), None
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n")
                                  .split("\n"), start=1):
        indent = line[:len(line) - len(line.lstrip(" \t"))]
        if not indent or not line.strip():
            continue
        style = "mixed" if (" " in indent and "\t" in indent) else indent[0]
        styles.add(style)
        if (style == "mixed" or len(styles) > 1) and first is None:
            first = number
    if first is not None:
        repairs.add(first, "indentation mixing tabs and spaces",
                    "the indentation was ignored (it carries no meaning)")


def read_bytes(path: Path) -> bytes:
    """Read a file, turning OS errors into one-sentence dataset errors."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DatasetError(f"the annotation '{path}' is {size} bytes, more than an annotation "
                               "file can sensibly be; check the file name.")
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"the annotation '{path}' does not exist; add it or fix the name "
                           "given in events.tsv (stim_file) or in [annotations] mapping.") from None
    except PermissionError:
        raise DatasetError(f"the annotation '{path}' is not readable (permission denied); fix "
                           "its permissions (e.g. chmod a+r).") from None
    except IsADirectoryError:
        raise DatasetError(f"the annotation '{path}' is a folder; name the annotation file "
                           "inside it (stim_file in events.tsv or [annotations] mapping).") \
            from None
    except OSError as exc:
        raise DatasetError(f"cannot read the annotation '{path}' ({exc.strerror or exc}); "
                           "check that it is a readable file.") from None


def decode_text(raw: bytes, path: Path, *, keep_line_ends: bool = False) -> str:
    """Decode UTF-8 (with or without BOM) or UTF-16 (BOM, or BOM-less with NUL bytes).

    Line ends are normalised to newlines unless ``keep_line_ends``.
    """
    candidates = []
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates.append("utf-16")
    elif raw.startswith(b"\xef\xbb\xbf"):
        candidates.append("utf-8-sig")
    elif len(raw) >= 2 and b"\x00" in raw[:200]:
        candidates += ["utf-16-be" if raw[0] == 0 else "utf-16-le"]
    candidates.append("utf-8")
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            continue
        if keep_line_ends:
            return text
        return text.replace("\r\n", "\n").replace("\r", "\n")
    raise DatasetError(f"'{path}' is neither UTF-8 nor UTF-16 text; re-save it as UTF-8 "
                       "(e.g. iconv -f latin1 -t utf-8).")


def clean_label(text: str, drop: set, label_separator: str = " / ") -> str | None:
    """Return the word of an annotation label, or None for a silence or marker.

    ``"YOU / 1.2"`` (word / token id) gives ``"YOU"``; labels in ``drop``
    (lower-cased), and labels wholly in ``{}``, ``<>`` (also unclosed, e.g. ``<s``) or ``[]``
    give None.
    """
    label = str(text).strip()
    if label_separator and label_separator in label:
        label = label.split(label_separator, 1)[0].strip()
    if label.lower() in drop or _MARKER.match(label):
        return None
    return label


def drop_set(labels) -> set:
    """Lower-cased set of labels to drop (always including the empty label)."""
    return {str(x).strip().lower() for x in labels} | {""}
