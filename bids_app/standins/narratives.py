"""Stand-in for the Narratives collection (OpenNeuro ds002345).

Layout as in the dataset: one run per story presentation
(``sub-001/func/sub-001_task-<story>[_run-N]_bold.nii.gz``), TR 1.5 s and
``NumberOfVolumesDiscardedByScanner`` 3 in the sidecars, an ``events.tsv`` per
run at the level of the whole story: an optional ``music`` row (the prelude) and
one ``story`` row, both naming ``<story>_audio.wav``, the ``story`` row's onset
being where the story starts on the run's clock (15 s for pieman after 13 s of
music, 21 s for prettymouth after 18 s, 3 s for tunnel without music, as in the
dataset's events). Word timings are Gentle's ``align.csv`` per story
(``stimuli/gentle/<story>/align.csv``: ``word,alignedWord,start,end`` without a
header, times from the start of the story, words Gentle could not align without
times). ``scale`` shortens every story for quick tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._common import (
    dataset_files,
    save_run_bold,
    spoken_story,
    write_json,
    write_planted,
    write_text,
)

TR = 1.5
SUBJECT = "001"
#: run label -> (story, music prelude (onset, duration) or None, story onset, story duration)
RUNS = {
    "task-pieman_run-1": ("pieman", (0.0, 13.0), 15.0, 422.0),
    "task-prettymouth": ("prettymouth", (0.0, 18.0), 21.0, 676.0),
    "task-tunnel": ("tunnel", None, 3.0, 1534.0),
}
SIDECAR = {"RepetitionTime": TR, "EchoTime": 0.028, "FlipAngle": 64,
           "NumberOfVolumesDiscardedByScanner": 3, "Manufacturer": "Siemens",
           "ManufacturersModelName": "Skyra", "MagneticFieldStrength": 3}


def _align_csv(words, onsets, durations, missing) -> str:
    rows = []
    for i, (word, onset, duration) in enumerate(zip(words, onsets, durations, strict=True)):
        bare = word.strip(".,!?\"")
        if i in missing:
            rows.append(f"{bare},,,")
        else:
            rows.append(f"{bare},{bare.lower()},{onset:.2f},{onset + duration:.2f}")
    return "\n".join(rows) + "\n"


def make_narratives(out_dir: str | Path, *, scale: float = 1.0, seed: int = 0,
                    snr: float = 1.0) -> Path:
    """Write the Narratives stand-in.

    Parameters
    ----------
    out_dir : path-like
        Destination (the dataset root).
    scale : float
        Fraction of each story's real duration (prelude and onsets are kept).
    seed : int
        Seed of text, timing and noise.
    snr : float
        Amplitude of the planted word-rate signal relative to the noise.

    Returns
    -------
    Path
        The dataset root.
    """
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    dataset_files(root, "Narratives (Nastase et al., 2021)", "OpenNeuro ds002345", [SUBJECT])
    func = root / f"sub-{SUBJECT}" / "func"
    for label, (story, music, onset, real_duration) in RUNS.items():
        duration = max(real_duration * scale, 60.0)
        words, times, lengths = spoken_story(story, int(duration * 2.5), seed, rng, start=0.3,
                                             end=duration - 0.5)
        missing = set(rng.choice(np.arange(1, len(words) - 1), size=len(words) // 50,
                                 replace=False).tolist())
        write_text(root / "stimuli" / "gentle" / story / "align.csv",
                   _align_csv(words, times, lengths, missing))
        rows = ["onset\tduration\ttrial_type\tstim_file"]
        if music is not None:
            rows.append(f"{music[0]:.1f}\t{music[1]:.1f}\tmusic\t{story}_audio.wav")
        rows.append(f"{onset:.1f}\t{duration:.1f}\tstory\t{story}_audio.wav")
        write_text(func / f"sub-{SUBJECT}_{label}_events.tsv", "\n".join(rows) + "\n")
        n_volumes = int(math.ceil((onset + duration + 12.0) / TR))
        write_json(func / f"sub-{SUBJECT}_{label}_bold.json", {**SIDECAR, "TaskName": story})
        save_run_bold(func / f"sub-{SUBJECT}_{label}_bold.nii.gz", times + onset, lengths,
                      n_volumes, TR, rng, snr)
    write_planted(root, {"Dataset": "ds002345", "Seed": seed, "SNR": snr, "Scale": scale})
    return root
