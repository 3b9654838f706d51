"""Phone tiers of annotations: the timings behind the ``phoneme_rate`` nuisance band.

Forced aligners (the Montreal Forced Aligner, Penn's P2FA) write a phone tier
beside the word tier of a TextGrid, as LeBel/Huth's and Natural Stories'
alignments have; Gentle's ``align.json`` lists the phones of each aligned word
with their durations. Only phone onsets are kept: the band counts phones per
volume.
"""

from __future__ import annotations

import numpy as np

from ._common import clean_label

#: Tier names taken as a phone tier (compared case-insensitively).
PHONE_TIER_NAMES = ("phones", "phone", "phonemes", "phoneme", "phons", "segments")


def find_phone_tier(tiers: list[dict], words: dict) -> dict | None:
    """The phone tier of a TextGrid (an interval tier named like 'phones'), or None.

    Names are compared case-insensitively, also after a speaker prefix
    (``"speaker1 - phones"``, as multi-speaker forced alignments write them).

    Parameters
    ----------
    tiers : list of dict
        Tiers of the file (:func:`parse_textgrid`).
    words : dict
        The word tier (never taken as the phone tier).

    Returns
    -------
    dict or None
    """
    for candidate in tiers:
        if candidate is words or candidate["class"] != "IntervalTier":
            continue
        name = candidate["name"].strip().lower()
        if name in PHONE_TIER_NAMES or name.split("-")[-1].strip() in PHONE_TIER_NAMES:
            return candidate
    return None


def phone_onsets(tier: dict, drop: set, label_separator: str = " / ") -> np.ndarray:
    """Onsets of the phones of a tier, silences and markers left out.

    Parameters
    ----------
    tier : dict
        A phone tier (:func:`find_phone_tier`).
    drop : set of str
        Labels that are not phones (lower case; silences, pauses, markers).
    label_separator : str
        Labels like ``"AH0 / 3"`` keep the part before it.

    Returns
    -------
    ndarray of shape (n_phones,)
        Sorted onsets in seconds (file clock).
    """
    kept = [start for start, _, label in tier["items"]
            if clean_label(label, drop, label_separator) is not None]
    return np.sort(np.asarray(kept, dtype=float))


def gentle_phone_onsets(entries: list) -> np.ndarray | None:
    """Onsets of the phones of Gentle's ``align.json`` words, or None when it lists none.

    Gentle gives each aligned word (``case == "success"``) a ``phones`` list of
    ``{"phone", "duration"}`` in order, starting at the word's ``start``.

    Parameters
    ----------
    entries : list of dict
        The file's ``words`` list.

    Returns
    -------
    ndarray of shape (n_phones,) or None
        Sorted onsets in seconds (file clock).
    """
    onsets, found = [], False
    for entry in entries:
        phones = entry.get("phones") if isinstance(entry, dict) else None
        if not isinstance(phones, list) or entry.get("case", "success") != "success":
            continue
        found = True
        try:
            durations = np.asarray([float(p["duration"]) for p in phones], dtype=float)
            start = float(entry["start"])
        except (KeyError, TypeError, ValueError):
            continue  # a word without usable phone times keeps its word timing only
        if len(durations) and np.all(np.isfinite(durations)) and np.isfinite(start):
            onsets.extend(start + np.r_[0.0, np.cumsum(durations)[:-1]])
    return np.sort(np.asarray(onsets, dtype=float)) if found else None
