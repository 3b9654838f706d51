"""Low-level word features, used as nuisance bands beside a model's features.

Each feature is one number per word; aligned to the volumes like model
features (an impulse per word convolved with the HRF, or binned), it becomes:

``word_rate``
    1 for every word: after alignment, the number of words per volume.
``word_onset``
    1 for the first word that starts in each volume's window, 0 for the other
    words of that window (see :func:`first_in_volume`): after alignment, whether
    speech starts in a volume, whatever the number of words. It equals
    ``word_rate`` in volumes with at most one word and differs where several
    words start in one volume. The choice of words depends on the run's volume
    times, so the per-word values here are all 1 and the thinning is done when a
    run is aligned.
``phoneme_rate``
    One event per phone at the phone's own onset (a phone tier of the
    annotation, see :func:`phones_per_word`): after alignment, the number of
    phones per volume. Per word it is the word's number of phones.
``word_length``
    Characters of the word without punctuation (letters, digits, CJK characters).
``word_frequency``
    Zipf frequency, ``log10(frequency per billion words)``, from a frequency list
    the user gives or from unigram counts over the stories (Laplace-smoothed,
    so unseen words get a finite, low value).
``sentence_boundary``
    1 on the last word of each sentence, 0 elsewhere.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import SettingsError, check_choice
from .windows import sentence_ids

NUISANCE_BANDS = ("word_rate", "word_onset", "phoneme_rate", "word_length", "word_frequency",
                  "sentence_boundary")
#: Bands whose events depend on a run's timing (volume windows, phone onsets), not
#: only on the words: aligned with :func:`first_in_volume` and :func:`phone_events`.
TIMED_BANDS = ("word_onset", "phoneme_rate")


def normalize_word(word: str, lowercase: bool = True) -> str:
    """Return a word as looked up in frequency tables (no surrounding punctuation, lowercase)."""
    start, end = 0, len(word)
    while start < end and _is_punct(word[start]):
        start += 1
    while end > start and _is_punct(word[end - 1]):
        end -= 1
    word = word[start:end].strip()
    return word.lower() if lowercase else word


def _is_punct(char: str) -> bool:
    return unicodedata.category(char)[0] in "PSZ"


def word_length(word: str) -> int:
    """Characters of a word that are letters, marks or digits."""
    return sum(unicodedata.category(c)[0] in "LMN" for c in word)


def unigram_counts(stories: Iterable[list[str]], lowercase: bool = True) -> dict[str, int]:
    """Count normalized words over stories.

    Parameters
    ----------
    stories : iterable of list of str
        Words of each story.
    lowercase : bool
        Count case-insensitively.

    Returns
    -------
    dict
        Word -> count (punctuation-only tokens are not counted).
    """
    counts: Counter = Counter()
    for words in stories:
        counts.update(w for w in (normalize_word(x, lowercase) for x in words) if w)
    return dict(counts)


class FrequencyTable:
    """Zipf frequencies of words, from counts, relative frequencies or Zipf values.

    Parameters
    ----------
    values : dict
        Word -> count, relative frequency or Zipf value (see ``kind``).
    kind : {'count', 'frequency', 'zipf'}
        What the values are.
    lowercase : bool
        Look words up case-insensitively.
    """

    def __init__(self, values: dict, kind: str = "count", lowercase: bool = True):
        check_choice("kind", kind, ("count", "frequency", "zipf"))
        self.lowercase = lowercase
        table: dict[str, float] = {}
        for word, value in values.items():
            key = normalize_word(str(word), lowercase)
            if key:
                table[key] = table.get(key, 0.0) + float(value) if kind != "zipf" else float(value)
        if not table:
            raise SettingsError("the word frequency table is empty; give at least one word.")
        if kind == "zipf":
            self.zipf = table
            self.unseen = min(table.values())
            return
        values_arr = np.array(list(table.values()), dtype=np.float64)
        if np.any(values_arr < 0) or values_arr.sum() <= 0:
            raise SettingsError("word counts and frequencies must be non-negative with a "
                                "positive total.")
        if kind == "count":  # Laplace smoothing: every word, seen or not, counts once more
            total = values_arr.sum() + len(values_arr) + 1
            self.zipf = {w: float(np.log10((c + 1) / total) + 9) for w, c in table.items()}
            self.unseen = float(np.log10(1 / total) + 9)
        else:
            total = values_arr.sum()
            positive = values_arr[values_arr > 0]
            floor = positive.min() / 2 if len(positive) else 1.0
            self.zipf = {w: float(np.log10(max(f, floor) / total) + 9) for w, f in table.items()}
            self.unseen = float(np.log10(floor / total) + 9)

    def __call__(self, words: list[str]) -> np.ndarray:
        """Zipf frequency of each word (``unseen`` for words not in the table).

        Returns
        -------
        ndarray of shape (n_words,)
        """
        return np.array([self.zipf.get(normalize_word(w, self.lowercase), self.unseen)
                         for w in words], dtype=np.float32)


def read_frequency_file(path: str | os.PathLike, lowercase: bool = True) -> FrequencyTable:
    """Read a word frequency list.

    The file is a table with a header (tab-separated, or comma-separated for
    ``.csv``) holding a ``word`` column and one of ``count``, ``frequency``
    (any relative frequency, e.g. per million) or ``zipf``.

    Parameters
    ----------
    path : path-like
        The file.
    lowercase : bool
        Look words up case-insensitively.

    Returns
    -------
    FrequencyTable
    """
    path = Path(path)
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=delimiter))
    except FileNotFoundError:
        raise SettingsError(f"the word frequency file '{path}' does not exist; fix "
                            "'frequency_file' in the spec.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SettingsError(f"cannot read the word frequency file '{path}' ({exc}).") from None
    columns = set(rows[0]) if rows else set()
    kinds = [k for k in ("count", "frequency", "zipf") if k in columns]
    if "word" not in columns or not kinds:
        raise SettingsError(
            f"the word frequency file '{path}' needs a header with a 'word' column and one of "
            f"'count', 'frequency' or 'zipf'; got columns {sorted(columns)}."
        )
    kind, values = kinds[0], {}
    for line, row in enumerate(rows, start=2):
        try:
            values[row["word"]] = float(row[kind])
        except (TypeError, ValueError):
            raise SettingsError(f"line {line} of '{path}' has a non-numeric {kind} "
                                f"{row[kind]!r}; fix the file.") from None
    return FrequencyTable(values, kind=kind, lowercase=lowercase)


def nuisance_features(words: list[str], bands: Iterable[str], *,
                      sentences: np.ndarray | None = None,
                      frequencies: FrequencyTable | None = None,
                      phones: list | None = None) -> dict[str, np.ndarray]:
    """Low-level features of a story's words, one band each.

    Parameters
    ----------
    words : list of str
        Words of the story.
    bands : iterable of str
        Names among :data:`NUISANCE_BANDS`.
    sentences : ndarray of shape (n_words,), optional
        Sentence index of each word (from the annotation); punctuation otherwise.
    frequencies : FrequencyTable, optional
        Needed for ``word_frequency``.
    phones : list of array-like, optional
        Onsets of the phones of each word, relative to the word's onset (from
        :func:`phones_per_word`); needed for ``phoneme_rate``.

    Returns
    -------
    dict
        Band name -> float32 array of shape (n_words, 1).
    """
    out = {}
    for band in bands:
        check_choice("nuisance", band, NUISANCE_BANDS)
        if band in ("word_rate", "word_onset"):
            values = np.ones(len(words))
        elif band == "phoneme_rate":
            if phones is None or len(phones) != len(words):
                raise SettingsError("the 'phoneme_rate' band needs the phone onsets of every "
                                    "word (a phone tier in the annotation).")
            values = np.array([len(p) for p in phones])
        elif band == "word_length":
            values = np.array([word_length(w) for w in words])
        elif band == "word_frequency":
            if frequencies is None:
                raise SettingsError("the 'word_frequency' band needs a frequency table (a "
                                    "frequency file, or counts over the stories).")
            values = frequencies(words)
        else:
            sent = sentence_ids(words) if sentences is None else np.asarray(sentences)
            values = np.r_[sent[1:] != sent[:-1], True].astype(float) if len(words) else []
        out[band] = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    return out


def first_in_volume(onsets: np.ndarray, times: np.ndarray, tr: float) -> np.ndarray:
    """Mark the first word that starts in each volume's window.

    Volume ``i`` covers ``times[i] - tr <= onset < times[i]`` (as binned
    features do); the windows continue at the same spacing before the first and
    after the last volume, so words outside the volumes are marked alike.

    Parameters
    ----------
    onsets : ndarray of shape (n_words,)
        Word onsets (seconds, same clock as ``times``).
    times : ndarray of shape (n_volumes,)
        Acquisition times of the volumes, ``tr`` apart.
    tr : float
        Repetition time (seconds).

    Returns
    -------
    ndarray of shape (n_words,)
        1.0 for the earliest word of each window (the first in order for ties),
        0.0 for the others.
    """
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    if not len(onsets):
        return np.zeros(0)
    window = np.floor((onsets - (float(times[0]) - tr)) / tr + 1e-9).astype(np.int64)
    order = np.lexsort((np.arange(len(onsets)), onsets))
    first = np.zeros(len(onsets))
    _, position = np.unique(window[order], return_index=True)
    first[order[position]] = 1.0
    return first


def phones_per_word(word_onsets: np.ndarray, phone_onsets: np.ndarray) -> list[list[float]]:
    """Give each phone to the word it belongs to, as an onset relative to that word.

    A phone belongs to the last word that starts at or before it (phones before
    the first word go to the first word, with a negative offset), so every phone
    keeps its exact time: ``word onset + offset``.

    Parameters
    ----------
    word_onsets : ndarray of shape (n_words,)
        Word onsets in increasing order (seconds).
    phone_onsets : ndarray of shape (n_phones,)
        Phone onsets on the same clock.

    Returns
    -------
    list of list of float, length n_words
        Offsets (seconds) of the phones of each word.
    """
    word_onsets = np.asarray(word_onsets, dtype=np.float64).reshape(-1)
    phone_onsets = np.sort(np.asarray(phone_onsets, dtype=np.float64).reshape(-1))
    out: list[list[float]] = [[] for _ in word_onsets]
    if not len(word_onsets):
        return out
    owner = np.clip(np.searchsorted(word_onsets, phone_onsets + 1e-6, side="right") - 1, 0,
                    len(word_onsets) - 1)
    for word, phone in zip(owner, phone_onsets, strict=True):
        out[word].append(round(float(phone - word_onsets[word]), 6))
    return out


def phone_events(word_onsets: np.ndarray, phones: list) -> np.ndarray:
    """Onsets of the phones of some words (each word's onset plus its phone offsets).

    Parameters
    ----------
    word_onsets : ndarray of shape (n_words,)
        Onsets of the words (any clock).
    phones : list of array-like, length n_words
        Phone offsets of each word (see :func:`phones_per_word`).

    Returns
    -------
    ndarray of shape (n_phones,)
        Phone onsets on the clock of ``word_onsets``, sorted.
    """
    if len(phones) != len(word_onsets):
        raise ValueError(f"{len(phones)} phone lists for {len(word_onsets)} words")
    parts = [onset + np.asarray(offsets, dtype=np.float64).reshape(-1)
             for onset, offsets in zip(np.asarray(word_onsets, dtype=np.float64), phones,
                                       strict=True)]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0)
