"""Checks of word timings against the run they were heard in.

The same numbers feed the warnings printed when the inputs are collected and the
stimulus section of the participant report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import DatasetError


def story_checks(words: pd.DataFrame, window: tuple[float, float]) -> dict:
    """Summarise the timing of one story in one run.

    Parameters
    ----------
    words : DataFrame
        Rows of one story in word order with ``onset``, ``duration`` (events clock)
        and optionally ``story_onset`` and ``aligned``.
    window : tuple of float
        Start and end (events clock) of the volumes used.

    Returns
    -------
    dict
        ``n_words``, ``first_onset``, ``last_offset``, ``coverage`` (share of the
        used run spanned by speech), ``n_before``/``n_after`` (onsets outside the
        used volumes), ``n_negative`` (onsets before the story's start),
        ``n_non_monotonic``, ``n_overlaps``, ``n_unaligned`` and ``overrun``
        (seconds the last word ends after the run).
    """
    onset = words["onset"].to_numpy(float)
    offset = onset + np.nan_to_num(words["duration"].to_numpy(float))
    start, end = window
    story_onset = (words["story_onset"].to_numpy(float) if "story_onset" in words
                   else np.zeros(len(onset)))
    aligned = (words["aligned"].to_numpy().astype(bool) if "aligned" in words
               else np.ones(len(onset), bool))
    n = len(onset)
    if n == 0:
        return {"n_words": 0, "first_onset": np.nan, "last_offset": np.nan, "coverage": 0.0,
                "n_before": 0, "n_after": 0, "n_negative": 0, "n_non_monotonic": 0,
                "n_overlaps": 0, "n_unaligned": 0, "overrun": 0.0}
    first, last = float(onset.min()), float(offset.max())
    span = max(0.0, min(last, end) - max(first, start))
    return {
        "n_words": n, "first_onset": first, "last_offset": last,
        "coverage": span / (end - start) if end > start else 0.0,
        "n_before": int((onset < start).sum()), "n_after": int((onset >= end).sum()),
        "n_negative": int((onset < story_onset - 1e-9).sum()),
        "n_non_monotonic": int((np.diff(onset) < -1e-9).sum()),
        "n_overlaps": int((onset[1:] < offset[:-1] - 1e-6).sum()),
        "n_unaligned": int((~aligned).sum()),
        "overrun": max(0.0, last - end),
    }


def check_run_words(table: pd.DataFrame, run, window: tuple[float, float], *,
                    tolerance: float, sources: dict) -> list[str]:
    """Raise when a story overruns its run; return warnings for smaller problems.

    Parameters
    ----------
    table : DataFrame
        Word table of the run (``onset, duration, story`` ...).
    run : BoldRun
        The run.
    window : tuple of float
        Used volumes (events clock).
    tolerance : float
        Seconds a story may end after the run before it is an error.
    sources : dict
        Story name -> annotation file (for messages).

    Returns
    -------
    list of str
        One warning per problem found.
    """
    warnings = []
    for story, words in table.groupby("story", sort=False):
        info = story_checks(words, window)
        source = sources.get(story, str(run.events_file))
        if info["overrun"] > tolerance:
            raise DatasetError(
                f"the words of story '{story}' ('{source}') end at {info['last_offset']:.1f} s but "
                f"run '{run.name}' ends at {window[1]:.1f} s ({run.n_volumes} volumes x TR "
                f"{run.tr} s), more than annotations.end_tolerance ({tolerance:g} s) later; check "
                "the story onset, the annotation file and the RepetitionTime.")
        if info["n_after"] or info["n_before"]:
            warnings.append(
                f"{run.name}: {info['n_after']} word(s) of story '{story}' start after the end of "
                f"the run and {info['n_before']} before its first used volume; they are outside "
                "the data and do not contribute.")
        for key, text in (("n_negative", "start before the story onset"),
                          ("n_non_monotonic", "start before the previous word"),
                          ("n_overlaps", "overlap the previous word"),
                          ("n_unaligned", "have interpolated (unaligned) times")):
            if info[key]:
                warnings.append(f"{run.name}: {info[key]} word(s) of story '{story}' {text} "
                                f"('{source}').")
    return warnings
