"""The events of one design band in a run: what :func:`bids_app.alignment.align_run` aligns.

Language bands and most nuisance bands are one event per word, at the word's
onset, carrying the word's features. Two nuisance bands are timed otherwise
(:data:`stimuli_models.nuisance.TIMED_BANDS`):

``word_onset``
    Only the first word that starts in each volume's window is an event, so
    the band says whether speech starts in a volume, not how many words do.
``phoneme_rate``
    One event per phone, at the phone's own onset (from the phone tier of the
    annotation), so the band counts phones per volume, not words.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stimuli_models.nuisance import first_in_volume, phone_events

from .errors import DatasetError


def band_events(band: str, features: dict, table: pd.DataFrame, times: np.ndarray,
                tr: float, *, phones: dict | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onsets, durations and values of the events of one band in one run.

    Parameters
    ----------
    band : str
        Band name (a language band or a nuisance band).
    features : dict
        Story name -> array of shape (n_story_words, n_features): the band's
        values per word.
    table : DataFrame
        Word table of the run (``onset``, ``duration``, ``story``, ``word_index``),
        onsets on the clock of ``times``.
    times : ndarray of shape (n_volumes,)
        Acquisition times of the run's volumes.
    tr : float
        Repetition time.
    phones : dict, optional
        Story name -> list (one per story word) of phone onsets relative to the
        word (needed for ``phoneme_rate``).

    Returns
    -------
    onsets, durations : ndarray of shape (n_events,)
        Event timing (seconds, clock of ``times``).
    values : ndarray of shape (n_events, n_features)
        What each event carries.
    """
    onsets = table["onset"].to_numpy(float)
    durations = table["duration"].to_numpy(float)
    stories = [str(s) for s in table["story"]]
    indices = [int(w) for w in table["word_index"]]
    if band == "phoneme_rate":
        missing = sorted({s for s in stories if not phones or phones.get(s) is None})
        if missing:
            raise DatasetError(f"the 'phoneme_rate' nuisance band needs phone timings, but "
                               f"story '{missing[0]}' has none; give its annotation a phone "
                               "tier or remove 'phoneme_rate' from [features] nuisance.")
        times_ = phone_events(onsets, [phones[s][w] for s, w in zip(stories, indices,
                                                                     strict=True)])
        return times_, np.zeros(len(times_)), np.ones((len(times_), 1), dtype=np.float32)
    rows = (np.vstack([np.asarray(features[s][w]) for s, w in zip(stories, indices, strict=True)])
            if len(stories) else np.zeros((0, np.asarray(next(iter(features.values()))).shape[-1])))
    if band == "word_onset":
        first = first_in_volume(onsets, times, tr).astype(bool)
        return onsets[first], durations[first], rows[first]
    return onsets, durations, rows
