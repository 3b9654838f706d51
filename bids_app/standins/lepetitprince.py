"""Stand-in for Le Petit Prince (OpenNeuro ds003643), English participants.

Layout as in the dataset: 9 runs per participant (``run-15`` ... ``run-23`` for
sub-EN057), one section of the audiobook each, every run stored as **3 echoes**
(``_echo-1/2/3_bold.nii.gz``, TEs 12.8, 27.5 and 43 ms, TR 2 s), no events.tsv
for the sections; annotations under ``annotation/EN/``: one TextGrid per
section (``lppEN_section<N>.TextGrid``) and ``lppEN_word_information.csv``
(``word,lemma,onset,offset,section``: every word of the book, times from the
start of its section). The section audio lengths and raw scan counts are those
of the dataset's README: the raw English runs hold 4 volumes (8 s) before the
audio starts and 4 after it ends. ``scale`` shortens every section and
``sections`` keeps the first ones, for quick tests.

The planted signal is BOLD-like across echoes (its amplitude grows with TE);
the second echo carries ``snr``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._common import (
    bold_series,
    dataset_files,
    save_nifti,
    spoken_story,
    word_rate,
    write_json,
    write_planted,
    write_text,
    write_word_textgrid,
)

TR = 2.0
SUBJECT = "EN057"
FIRST_RUN = 15
ECHO_TIMES = (0.0128, 0.0275, 0.043)
#: Audio length (s) and raw scan count of the 9 English sections (dataset README).
SECTIONS = ((554.7, 286), (587.8, 302), (671.4, 344), (598.2, 307), (522.2, 269),
            (678.1, 347), (642.0, 329), (575.8, 296), (727.1, 372))
#: Seconds of scanning before the audio starts in the raw English runs (4 volumes).
AUDIO_ONSET = 8.0


def make_lepetitprince(out_dir: str | Path, *, scale: float = 1.0, sections: int = 9,
                       seed: int = 0, snr: float = 1.0) -> Path:
    """Write the Le Petit Prince stand-in (English).

    Parameters
    ----------
    out_dir : path-like
        Destination (the dataset root).
    scale : float
        Fraction of each section's real audio length.
    sections : int
        Sections written (1 to 9; runs 15 onwards).
    seed : int
        Seed of text, timing and noise.
    snr : float
        Amplitude of the planted signal in the second echo relative to the noise.

    Returns
    -------
    Path
        The dataset root.
    """
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    dataset_files(root, "Le Petit Prince (Li et al., 2022)", "OpenNeuro ds003643", [SUBJECT])
    func = root / f"sub-{SUBJECT}" / "func"
    table = ["word,lemma,onset,offset,section"]
    for section, (audio, scans) in enumerate(SECTIONS[:sections], start=1):
        length = max(audio * scale, 60.0)
        n_volumes = scans if scale == 1.0 else int(math.ceil(length / TR)) + 8
        words, onsets, durations = spoken_story(f"lpp{section}", int(length * 2.5), seed, rng,
                                                start=0.5, end=length - 0.5, bare=True)
        write_word_textgrid(root / "annotation" / "EN" / f"lppEN_section{section}.TextGrid", {},
                            "words", words, onsets, durations, length)
        table += [f"{w},{w},{o:.3f},{o + d:.3f},{section}"
                  for w, o, d in zip(words, onsets, durations, strict=True)]
        signal = word_rate(onsets + AUDIO_ONSET, durations, n_volumes, TR)
        noise_seed = rng.integers(1 << 31)
        run = FIRST_RUN + section - 1
        for echo, te in enumerate(ECHO_TIMES, start=1):
            stem = f"sub-{SUBJECT}_task-lppEN_run-{run}_echo-{echo}_bold"
            data = bold_series(signal * te / ECHO_TIMES[1], np.random.default_rng(noise_seed),
                               snr=snr, baseline=1000.0 * np.exp(-te / 0.045))
            save_nifti(func / f"{stem}.nii.gz", data, TR)
            write_json(func / f"{stem}.json", {
                "RepetitionTime": TR, "EchoTime": te, "TaskName": "lppEN",
                "Manufacturer": "GE", "MagneticFieldStrength": 3})
    write_text(root / "annotation" / "EN" / "lppEN_word_information.csv", "\n".join(table) + "\n")
    write_planted(root, {"Dataset": "ds003643", "Seed": seed, "SNR": snr, "Scale": scale,
                         "Echo": "the planted signal grows with TE; echo 2 carries the SNR"})
    return root
