"""Word annotations of the stories heard in each run, in scanner time.

A run's annotation is a table with one row per word: ``onset`` and ``duration``
(seconds from the start of the run's first stored volume: the events clock),
``word``, ``story`` (the name of the story the word belongs to), ``word_index``
(position of the word in that story), ``story_onset`` (events-clock time of the
story's start), ``aligned`` and ``source_index``. Words come from one of three
places, tried in this order:

1. the spec's ``[annotations] mapping`` (runs or tasks -> annotation files under
   ``stimuli_dir``; for datasets that keep timings outside BIDS);
2. story rows of ``events.tsv`` whose ``stim_file`` names an annotation under
   ``BIDS_DIR/stimuli`` (placed at the row's ``onset``);
3. word rows of ``events.tsv`` (one word per row).

Stories are collected across runs and participants (:class:`StoryRegistry`) so
that each is featurized once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stimuli_models.nuisance import phones_per_word

from ..errors import DatasetError
from .events import WORD_COLUMNS, read_tsv, read_word_events, story_label
from .runs import used_window
from .stimuli import WordTimings, is_no_space
from .stimuli.checks import check_run_words
from .stimuli.normalise import normalisation_record, normalise_words
from .stimuli.sources import StorySource, story_sources
from .stimuli.tables import record_words

RUN_COLUMNS = WORD_COLUMNS + ["story_onset", "aligned", "source_index"]

__all__ = ["RUN_COLUMNS", "WORD_COLUMNS", "StoryRegistry", "StoryText", "annotate_run",
           "normalise_words", "read_tsv", "read_word_events", "resolve_separator",
           "story_label"]


@dataclass
class StoryText:
    """Words of one story (shared by every run and participant that heard it).

    ``timings`` (when known) holds ``onset, duration, source_index, source_text,
    aligned`` per word on the story's clock; ``meta`` records the source format,
    time reference, normalisation and reader notes.
    """

    name: str
    words: list
    sentences: list | None = None
    separator: str = " "
    sources: list = field(default_factory=list)
    timings: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)
    #: Phone onsets of each word relative to the word (s), when the annotation has phones.
    phones: list | None = None


class StoryRegistry:
    """Collects stories across runs; identical word lists share one story."""

    def __init__(self, recorded: dict | None = None):
        self.stories: dict[str, StoryText] = {}
        self._by_words: dict[tuple, str] = {}
        #: Words of stories recorded in OUTPUT_DIR by earlier jobs: a story with other words
        #: never takes one of their names (its record would replace theirs).
        self.recorded: dict[str, tuple] = dict(recorded or {})

    def add(self, name: str, words: list, source: str, *, separator: str = " ",
            sentences: list | None = None, timings: pd.DataFrame | None = None,
            meta: dict | None = None, phones: list | None = None) -> str:
        """Register a story (or find the identical one) and return its name.

        A story heard in several runs (same words) is registered once; a run
        holding several stories registers each.
        """
        key = (tuple(words), separator, tuple(sentences) if sentences is not None else None)
        if key in self._by_words:
            existing = self._by_words[key]
            self.stories[existing].sources.append(source)
            return existing
        recorded = record_words(words)
        unique, k = name, 2
        while unique in self.stories or self.recorded.get(unique, recorded) != recorded:
            unique, k = f"{name}v{k}", k + 1
        self.stories[unique] = StoryText(unique, list(words), sentences, separator, [source],
                                         timings, dict(meta or {}), phones)
        self._by_words[key] = unique
        return unique


def resolve_separator(spec) -> str:
    """Return the word separator (``""`` for languages written without spaces when 'auto')."""
    if spec.separator != "auto":
        return spec.separator
    return "" if is_no_space(getattr(spec, "language", "")) else " "


def _find_root(run) -> Path:
    for parent in Path(run.bold_file).parents:
        if (parent / "dataset_description.json").is_file():
            return parent
    return Path(run.bold_file).parent


def _register(source: StorySource, registry: StoryRegistry, spec, shift: float,
              separator: str) -> pd.DataFrame:
    timings: WordTimings = source.timings
    words = normalise_words(list(timings.words), spec)
    keep = np.array([bool(w) for w in words])
    if not keep.any():
        raise DatasetError(f"no word of '{timings.source}' is left after normalisation "
                           f"(annotations.numbers = '{spec.numbers}'); change the setting.")
    words = [w for w, k in zip(words, keep, strict=True) if k]
    onsets, offsets = timings.onsets[keep], timings.offsets[keep]
    if timings.time_reference == "run":
        events_onsets = onsets - shift
        story_times = events_onsets - source.onset
    else:
        events_onsets = onsets + source.onset
        story_times = onsets
    story_frame = pd.DataFrame({
        "onset": story_times, "duration": offsets - onsets,
        "source_index": timings.source_index[keep],
        "source_text": [t for t, k in zip(timings.source_text, keep, strict=True) if k],
        "aligned": timings.aligned[keep].astype(int)})
    meta = {"format": timings.fmt, "time_reference": timings.time_reference,
            "normalisation": normalisation_record(spec, separator), "notes": timings.notes,
            "repairs": list(timings.repairs)}
    sentences = None
    if source.sentences is not None:
        meta["sentences"] = source.sentences.record()
        if source.sentences.ids is not None:
            kept = np.asarray(source.sentences.ids)[keep]
            sentences = np.unique(kept, return_inverse=True)[1].astype(int).tolist()
    phones = None
    if timings.phones is not None:  # on the story clock, like the words
        phone_times = np.asarray(timings.phones, dtype=float)
        if timings.time_reference == "run":
            phone_times = phone_times - shift - source.onset
        phones = phones_per_word(story_times, phone_times)
    name = registry.add(source.name, words, source.label, separator=separator,
                        sentences=sentences, timings=story_frame, meta=meta, phones=phones)
    return pd.DataFrame({
        "onset": events_onsets, "duration": offsets - onsets, "word": words, "story": name,
        "word_index": np.arange(len(words)), "story_onset": source.onset,
        "aligned": timings.aligned[keep].astype(int),
        "source_index": timings.source_index[keep]})


def annotate_run(run, registry: StoryRegistry, spec, *, bids_dir: Path | None = None,
                 dummy_scans: int = 0, warnings: list | None = None) -> pd.DataFrame:
    """Word table of one run in scanner time, registering its stories.

    Parameters
    ----------
    run : BoldRun
        The run (its ``events_file`` is read unless the mapping names files).
    registry : StoryRegistry
        Receives the stories.
    spec : AnnotationConfig
        Reading options.
    bids_dir : Path, optional
        Dataset root (found from the BOLD file when omitted).
    dummy_scans : int
        Volumes dropped at the start of the run (only to check coverage).
    warnings : list, optional
        Receives one string per timing problem that is not an error.

    Returns
    -------
    DataFrame
        Columns :data:`RUN_COLUMNS`, ordered by story onset then word.

    Raises
    ------
    DatasetError
        Missing or unreadable annotation, no or empty word tier, a ``stim_file``
        escaping ``stimuli/``, or words ending later than the run by more than
        ``end_tolerance``.
    """
    root = Path(bids_dir) if bids_dir is not None else _find_root(run)
    separator = resolve_separator(spec)
    sources = story_sources(run, spec, root)
    shift = 0.0
    if spec.clock == "scanner":
        discarded = run.metadata.get("NumberOfVolumesDiscardedByScanner", 0) or 0
        shift = float(discarded) * run.tr
    tables = [_register(source, registry, spec, shift, separator) for source in sources]
    table = pd.concat(tables, ignore_index=True)
    table = table.sort_values(["story_onset", "story", "word_index"], kind="stable")
    table = table.reset_index(drop=True)[RUN_COLUMNS]
    files = {t["story"].iloc[0]: s.timings.source for t, s in zip(tables, sources, strict=True)}
    found = check_run_words(table, run, used_window(run, dummy_scans),
                            tolerance=spec.end_tolerance, sources=files)
    if warnings is not None:
        repaired = [m for m in dict.fromkeys(m for s in sources for m in s.timings.repairs)
                    if m not in warnings]
        for message in repaired:  # shown as the run goes, and in the report
            logging.getLogger("brainenc").warning("%s", message)
        warnings.extend(repaired + found)
    return table
