"""Sentence boundaries of a story's timed words, from the sources real datasets have.

Forced alignments and word-level events carry no punctuation, so sentences must
come from somewhere else. Sources are tried in this order, and the first one that
gives plausible sentences is used:

1. punctuation at the end of the timed words (``.``, ``!``, ``?``, ``…`` ...);
2. a sentence column of ``events.tsv`` (``[annotations] sentence_column``): a new
   sentence starts where the value changes;
3. a sentence (or phrase, utterance) tier of the TextGrid the words come from
   (``[annotations] sentence_tier``, or a tier named like one): each word goes to
   the interval holding its midpoint;
4. a punctuated transcript (``[annotations] transcript``) aligned to the timed
   words by word sequence (case, punctuation and apostrophes ignored; missing and
   extra words tolerated); the share of timed words matched is reported;
5. only when asked (``[annotations] sentence_fallback``): pauses of at least
   ``sentence_gap`` seconds, or chunks of ``sentence_chunk`` words.

A source is *implausible* when sentences of more than :data:`MAX_WORDS` words or
:data:`MAX_SECONDS` seconds hold more than :data:`MAX_LONG_SHARE` of the words
(a text without punctuation is one such "sentence").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stimuli_models.windows import sentence_ids

from ...errors import DatasetError
from ..events import read_tsv
from ._common import Repairs, decode_text, read_bytes
from .textgrid import parse_textgrid

#: Longest plausible sentence, in words and in seconds.
MAX_WORDS = 60
MAX_SECONDS = 30.0
#: Largest share of the words allowed in sentences longer than that.
MAX_LONG_SHARE = 0.1
#: Least share of the timed words a transcript must match to be used.
MIN_COVERAGE = 0.8
#: Tier names taken as sentence tiers (compared case-insensitively).
SENTENCE_TIER_NAMES = ("sentence", "sentences", "sent", "phrase", "phrases", "utterance",
                       "utterances", "ipu", "ipus")
FALLBACKS = ("none", "pause", "chunks")

_NORMAL = re.compile(r"[\W_]+", re.UNICODE)


@dataclass
class Sentences:
    """Sentence boundaries of one story, or why none could be found.

    Attributes
    ----------
    ids : ndarray of shape (n_words,) or None
        Sentence index of every word (starting at 0), None when no source is usable.
    source : str
        The source used (empty when none).
    tried : list of str
        Every source tried, with why it was not used.
    coverage : float or None
        Share of the timed words matched to the transcript (transcript source only).
    """

    ids: np.ndarray | None
    source: str = ""
    tried: list = field(default_factory=list)
    coverage: float | None = None

    def record(self) -> dict:
        """JSON-serialisable description (for sidecars and story tables)."""
        return {"SentenceSource": self.source or "none", "SentencesTried": list(self.tried),
                "SentenceCount": 0 if self.ids is None else int(self.ids.max()) + 1,
                "TranscriptCoverage": self.coverage}


def from_punctuation(words: list[str]) -> np.ndarray:
    """Sentence index of every word, a sentence ending at a word ending in ``.!?…``.

    Returns
    -------
    ndarray of shape (n_words,)
    """
    return sentence_ids([str(w) for w in words])


def from_labels(labels: Sequence) -> np.ndarray:
    """Sentence index from per-word labels: a new sentence where the label changes.

    Returns
    -------
    ndarray of shape (n_words,)
    """
    labels = [str(x).strip() for x in labels]
    change = [i > 0 and labels[i] != labels[i - 1] for i in range(len(labels))]
    return np.cumsum(change).astype(np.int64)


def from_intervals(intervals: list[tuple], onsets: np.ndarray, offsets: np.ndarray
                   ) -> np.ndarray | None:
    """Sentence index from timed intervals (a TextGrid tier): the one holding each midpoint.

    Parameters
    ----------
    intervals : list of (start, end, label)
        Non-empty intervals, in time order.
    onsets, offsets : ndarray of shape (n_words,)
        Word times on the same clock.

    Returns
    -------
    ndarray of shape (n_words,) or None
        None when no interval holds any word.
    """
    spans = sorted((float(a), float(b)) for a, b, label in intervals if str(label).strip())
    if not spans:
        return None
    starts = np.array([a for a, _ in spans])
    middle = (np.asarray(onsets, float) + np.asarray(offsets, float)) / 2.0
    which = np.clip(np.searchsorted(starts, middle, side="right") - 1, 0, len(spans) - 1)
    _, ids = np.unique(which, return_inverse=True)
    return np.maximum.accumulate(ids.astype(np.int64)) if len(ids) else None


def _norm(word: str) -> str:
    return _NORMAL.sub("", str(word).replace("’", "'")).lower()


def align_transcript(words: list[str], transcript: str) -> tuple[np.ndarray, float]:
    """Give timed words the sentences of a punctuated transcript.

    The two word sequences are aligned after lower-casing and removing
    punctuation and apostrophes (longest matching blocks, so a few missing or
    extra words on either side are tolerated). A timed word left unmatched takes
    the sentence of the matched word before it (after it at the start). A
    contraction split in one text and not the other (``ca n't`` / ``can't``) is
    matched by joining the pieces.

    Parameters
    ----------
    words : list of str
        Timed words.
    transcript : str
        The punctuated text of the story.

    Returns
    -------
    ids : ndarray of shape (n_words,)
    coverage : float
        Share of the timed words matched.
    """
    tokens = transcript.split()
    token_ids = from_punctuation(tokens)
    a = [_norm(w) for w in words]
    b = [_norm(t) for t in tokens]
    sentence = np.full(len(words), -1, dtype=np.int64)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i0, i1, j0, j1 in matcher.get_opcodes():
        if tag == "equal":
            sentence[i0:i1] = token_ids[j0:j1]
        elif tag == "replace" and "".join(a[i0:i1]) == "".join(b[j0:j1]):
            sentence[i0:i1] = token_ids[j0]  # the same text split differently
    matched = sentence >= 0
    coverage = float(matched.mean()) if len(words) else 0.0
    if not matched.any():
        return np.zeros(len(words), dtype=np.int64), 0.0
    index = np.maximum.accumulate(np.where(matched, np.arange(len(words)), -1))
    index[index < 0] = int(np.flatnonzero(matched)[0])
    filled = np.maximum.accumulate(sentence[index])
    _, ids = np.unique(filled, return_inverse=True)
    return ids.astype(np.int64), coverage


def from_pauses(onsets: np.ndarray, offsets: np.ndarray, gap: float) -> np.ndarray:
    """A new sentence after every silence of at least ``gap`` seconds.

    Returns
    -------
    ndarray of shape (n_words,)
    """
    onsets, offsets = np.asarray(onsets, float), np.asarray(offsets, float)
    silence = onsets[1:] - offsets[:-1]
    return np.r_[0, np.cumsum(silence >= gap)].astype(np.int64)


def from_chunks(n_words: int, size: int) -> np.ndarray:
    """Consecutive chunks of ``size`` words.

    Returns
    -------
    ndarray of shape (n_words,)
    """
    return (np.arange(n_words) // max(int(size), 1)).astype(np.int64)


def implausible(ids: np.ndarray, onsets: np.ndarray, offsets: np.ndarray) -> str:
    """Say why sentence boundaries are implausible, or ``''`` when they are usable."""
    ids = np.asarray(ids)
    if not len(ids):
        return "no words"
    starts = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
    ends = np.r_[starts[1:], len(ids)]
    lengths = ends - starts
    seconds = np.asarray(offsets, float)[ends - 1] - np.asarray(onsets, float)[starts]
    long = (lengths > MAX_WORDS) | (seconds > MAX_SECONDS)
    if lengths[long].sum() <= MAX_LONG_SHARE * len(ids):
        return ""
    k = int(np.argmax(np.where(long, lengths, -1)))
    return (f"{len(starts)} sentence(s), the longest {int(lengths[k])} words over "
            f"{seconds[k]:.0f} s")


def find_sentences(words: list[str], onsets: np.ndarray, offsets: np.ndarray, *,
                   column: Sequence | None = None, tiers: list | None = None,
                   transcript: str | None = None, fallback: str = "none",
                   gap: float = 0.5, chunk: int = 12, names: dict | None = None) -> Sentences:
    """Find the sentences of a story from the first plausible source (see module docstring).

    Parameters
    ----------
    words : list of str
        Timed words, as read (before any normalisation).
    onsets, offsets : ndarray of shape (n_words,)
        Their times, in seconds.
    column : sequence of str, optional
        Sentence labels of the words (the events.tsv column), None when not set.
    tiers : list of (name, intervals), optional
        Sentence tiers of the TextGrid the words come from.
    transcript : str, optional
        The punctuated transcript text.
    fallback : {'none', 'pause', 'chunks'}
        Segmentation used when nothing else gives sentences.
    gap, chunk : float, int
        Pause length (s) and chunk size (words) of the fallbacks.
    names : dict, optional
        How to name the column, tier and transcript sources in messages.

    Returns
    -------
    Sentences
    """
    names = names or {}
    result = Sentences(None)

    def attempt(label: str, ids, coverage=None) -> bool:
        if ids is None:
            return False
        why = implausible(ids, onsets, offsets)
        if why:
            result.tried.append(f"{label} ({why})")
            return False
        result.ids, result.source, result.coverage = ids, label, coverage
        return True

    ends = int(from_punctuation(list(words) + [""])[-1])  # sentence ends among the words
    if ends == 0:
        result.tried.append(f"punctuation (no sentence ends in the {len(words)} words)")
    elif attempt("punctuation", from_punctuation(words)):
        return result
    if column is None:
        why = names.get("column_missing", "annotations.sentence_column not set")
        result.tried.append(f"events.tsv sentence column ({why})")
    elif attempt(f"events.tsv column '{names.get('column', 'sentence')}'", from_labels(column)):
        return result
    if not tiers:
        result.tried.append(f"TextGrid sentence tier ({names.get('tiers', 'none found')})")
    for name, intervals in tiers or []:
        ids = from_intervals(intervals, onsets, offsets)
        if ids is None:
            result.tried.append(f"TextGrid tier '{name}' (no interval holds a word)")
        elif attempt(f"TextGrid tier '{name}'", ids):
            return result
    if transcript is None:
        result.tried.append("punctuated transcript (annotations.transcript not set)")
    else:
        ids, coverage = align_transcript(words, transcript)
        label = f"transcript '{names.get('transcript', '')}' ({coverage:.0%} of words matched)"
        if coverage < MIN_COVERAGE:
            result.tried.append(f"{label}: under {MIN_COVERAGE:.0%}")
        elif attempt(label, ids, coverage):
            return result
    if fallback == "pause":
        attempt(f"pauses of at least {gap:g} s", from_pauses(onsets, offsets, gap))
    elif fallback == "chunks":
        attempt(f"chunks of {int(chunk)} words", from_chunks(len(words), chunk))
    return result


def _tiers(path: Path, wanted: str) -> tuple[list, str]:
    """Interval tiers of a TextGrid usable as sentence tiers, and how to name the search."""
    # the word reader has already repaired (or, with annotations.strict, refused) the
    # file's defects and reported them; the same repairs apply here without a second report
    tiers = [t for t in parse_textgrid(decode_text(read_bytes(path), path), path,
                                       Repairs(path, strict=False))
             if t["class"] == "IntervalTier"]
    if wanted:
        chosen = [t for t in tiers if t["name"].strip().lower() == wanted.strip().lower()]
        if not chosen:
            shown = ", ".join(repr(t["name"]) for t in tiers) or "none"
            raise DatasetError(f"'{path}' has no tier named {wanted!r} (tiers: {shown}); set "
                               "annotations.sentence_tier to one of them or leave it empty.")
    else:
        chosen = [t for t in tiers if t["name"].strip().lower() in SENTENCE_TIER_NAMES]
    shown = ", ".join(repr(t["name"]) for t in tiers)
    return ([(t["name"], t["items"]) for t in chosen],
            f"none among the tiers {shown} of '{path.name}'")


def story_sentences(timings, spec, *, path: Path | None = None, events: Path | None = None,
                    transcript: Path | None = None) -> Sentences:
    """Find the sentences of one story's timed words from the sources the spec allows.

    Parameters
    ----------
    timings : WordTimings
        The story's words as read.
    spec : AnnotationConfig
        ``sentence_column``, ``sentence_tier``, ``sentence_fallback``,
        ``sentence_gap`` and ``sentence_chunk``.
    path : Path, optional
        The annotation file the words come from (its sentence tiers are used
        when it is a TextGrid).
    events : Path, optional
        The events.tsv the words come from (one word per row).
    transcript : Path, optional
        A punctuated transcript of the story.

    Returns
    -------
    Sentences
    """
    names: dict = {}
    column = None
    wanted = getattr(spec, "sentence_column", "")
    if wanted and events is not None:
        frame = read_tsv(events)
        if wanted not in frame.columns:
            raise DatasetError(f"'{events}' has no column '{wanted}' "
                               f"(annotations.sentence_column; columns: "
                               f"{', '.join(frame.columns)}); fix the setting.")
        column = frame[wanted].to_numpy()[np.asarray(timings.source_index, dtype=int)]
        names["column"] = wanted
    elif wanted:
        names["column_missing"] = "the words do not come from word rows of events.tsv"
    tiers = None
    if path is not None and Path(path).suffix.lower() == ".textgrid":
        tiers, names["tiers"] = _tiers(Path(path), getattr(spec, "sentence_tier", ""))
    elif path is None:
        names["tiers"] = "the words do not come from a TextGrid"
    else:
        names["tiers"] = f"'{Path(path).name}' is not a TextGrid"
    text = None
    if transcript is not None:
        text = decode_text(read_bytes(transcript), transcript)
        names["transcript"] = Path(transcript).name
    return find_sentences(list(timings.words), timings.onsets, timings.offsets, column=column,
                          tiers=tiers, transcript=text,
                          fallback=getattr(spec, "sentence_fallback", "none"),
                          gap=float(getattr(spec, "sentence_gap", 0.5)),
                          chunk=int(getattr(spec, "sentence_chunk", 12)), names=names)


def sentence_error(story: str, source: str, sentences: Sentences) -> str:
    """One sentence saying that a story has no sentence boundaries, what was tried and the fix."""
    return (f"no sentence boundaries for story '{story}' ('{source}') with features.unit = "
            f"'sentence': tried {'; '.join(sentences.tried)}; give a source with "
            "[annotations] sentence_column (events.tsv), sentence_tier (TextGrid) or transcript "
            "(punctuated text), or set sentence_fallback = 'pause' or 'chunks', or use "
            "features.unit = 'word'.")
