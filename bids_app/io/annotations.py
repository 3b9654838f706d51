"""Word annotations of the stories heard in each run, in scanner time.

A run's annotation is a table with one row per word: ``onset`` and ``duration``
(seconds from the start of the run's first volume), ``word``, ``story`` (the name
of the story the word belongs to) and ``word_index`` (position of the word in
that story). Stories are collected across runs and participants so that each is
featurized once.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError

WORD_COLUMNS = ["onset", "duration", "word", "story", "word_index"]


@dataclass
class StoryText:
    """Words of one story (shared by every run and participant that heard it)."""

    name: str
    words: list
    sentences: list | None = None
    separator: str = " "
    sources: list = field(default_factory=list)


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
    except OSError as exc:
        raise DatasetError(f"cannot read '{path}' ({exc.strerror or exc}).") from None
    text = _decode(raw, path).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise DatasetError(f"'{path}' is empty; it needs a header row and one row per event.")
    n_columns = len(lines[0].split("\t"))
    for number, line in enumerate(lines[1:], start=2):
        if len(line.split("\t")) != n_columns:
            raise DatasetError(
                f"'{path}' line {number} has {len(line.split(chr(9)))} tab-separated fields but "
                f"the header has {n_columns}; fix the row (fields must be separated by tabs)."
            )
    return pd.read_csv(io.StringIO("\n".join(lines)), sep="\t", dtype=str,
                       keep_default_na=False, na_filter=False)


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column].replace({"n/a": np.nan, "": np.nan}), errors="coerce")
    bad = values.isna() & ~frame[column].isin(["n/a", ""])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"'{path}' column '{column}' row {row + 2} is not a number "
            f"({frame[column].iloc[row]!r}); fix the value."
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
    onset = _numeric(frame, "onset", path)
    if np.isnan(onset).any():
        row = int(np.flatnonzero(np.isnan(onset))[0])
        raise DatasetError(f"'{path}' has a word without an onset (data row {row + 1}); "
                           "every word needs a numeric onset.")
    duration = (_numeric(frame, "duration", path) if "duration" in frame.columns
                else np.full(len(frame), np.nan))
    order = np.argsort(onset, kind="stable")
    table = pd.DataFrame({
        "onset": onset[order],
        "duration": np.nan_to_num(duration[order], nan=0.0),
        "word": words.to_numpy()[order],
        "story": story or "",
        "word_index": np.arange(len(order)),
    })
    return table[WORD_COLUMNS]


_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def story_label(*parts: str) -> str:
    """An alphanumeric story name built from labels (e.g. task and run)."""
    label = "".join(_NON_ALNUM.sub("", str(p)) for p in parts if p)
    return label or "story"


class StoryRegistry:
    """Collects stories across runs; identical word lists share one story."""

    def __init__(self):
        self.stories: dict[str, StoryText] = {}
        self._by_words: dict[tuple, str] = {}

    def add(self, name: str, words: list, source: str, *, separator: str = " ",
            sentences: list | None = None) -> str:
        """Register a story (or find the identical one) and return its name."""
        key = (tuple(words), separator, tuple(sentences) if sentences is not None else None)
        if key in self._by_words:
            existing = self._by_words[key]
            self.stories[existing].sources.append(source)
            return existing
        unique, k = name, 2
        while unique in self.stories:
            unique, k = f"{name}v{k}", k + 1
        self.stories[unique] = StoryText(unique, list(words), sentences, separator, [source])
        self._by_words[key] = unique
        return unique


def annotate_run(run, registry: StoryRegistry, spec) -> pd.DataFrame:
    """Word table of one run in scanner time, registering its story.

    Parameters
    ----------
    run : BoldRun
        The run (its ``events_file`` is read).
    registry : StoryRegistry
        Receives the story.
    spec : AnnotationConfig
        Reading options.

    Returns
    -------
    DataFrame
        Columns ``onset, duration, word, story, word_index``.
    """
    if run.events_file is None:
        raise DatasetError(
            f"no events.tsv for '{run.bold_file.name}'; add "
            f"'{run.name}_events.tsv' with the word timings of the run."
        )
    table = read_word_events(run.events_file, text_column=spec.text_column)
    words = normalise_words(table["word"].tolist(), spec)
    table["word"] = words
    name = registry.add(story_label(run.task, run.run and f"run{run.run}"), words,
                        str(run.events_file), separator=spec.separator)
    table["story"] = name
    return table


def normalise_words(words: list[str], spec) -> list[str]:
    """Apply the spec's explicit text normalisation (case, punctuation)."""
    out = []
    for word in words:
        if spec.lowercase:
            word = word.lower()
        if spec.strip_punctuation:
            stripped = re.sub(r"[^\w'-]+", "", word)
            word = stripped or word
        out.append(word)
    return out
