"""Phone tiers of annotations: the timings behind the ``phoneme_rate`` nuisance band.

Forced aligners (the Montreal Forced Aligner, Penn's P2FA, Gentle exported to
Praat) write a phone tier beside the word tier of a TextGrid; LeBel/Huth's and
Natural Stories' alignments have one. Only phone onsets are kept: the band
counts phones per volume.
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
