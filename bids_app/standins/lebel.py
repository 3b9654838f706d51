"""Stand-in for LeBel et al.'s story dataset (OpenNeuro ds003020, 'deep-fMRI-dataset').

Layout as in the dataset: one run per story, named by the story
(``sub-UTS01/ses-1/func/sub-UTS01_ses-1_task-<story>_bold.nii.gz``), TR 2 s in
top-level ``task-<story>_bold.json`` sidecars, **no events.tsv** for story runs,
word timings in ``derivative/TextGrids/<story>.TextGrid`` (tiers ``phone`` and
``word``, times from the start of the run) and the number of volumes of each
story in ``derivative/respdict.json``. The stories and volume counts are those of
session 1 in the dataset's ``respdict.json`` and session map; ``scale`` shortens
every story (and its count) for quick tests.
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
    write_word_textgrid,
)

TR = 2.0
SUBJECT = "UTS01"
SESSION = "1"
#: Stories of session 1 and their volume counts in the dataset's respdict.json.
STORIES = {"alternateithicatom": 363, "souls": 375, "avatar": 387}
#: Seconds of silence before the first word and after the last.
LEAD, TAIL = 10.0, 10.0
SIDECAR = {"RepetitionTime": TR, "EchoTime": 0.0038, "FlipAngle": 71,
           "MultibandAccelerationFactor": 2, "MagneticFieldStrength": 3,
           "Manufacturer": "Siemens", "ManufacturersModelName": "Skyra"}


def make_lebel(out_dir: str | Path, *, scale: float = 1.0, seed: int = 0,
               snr: float = 1.0) -> Path:
    """Write the LeBel stand-in.

    Parameters
    ----------
    out_dir : path-like
        Destination (the dataset root).
    scale : float
        Fraction of each story's real length (1.0: the volume counts of respdict.json).
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
    dataset_files(root, "LeBel et al. (2023)", "OpenNeuro ds003020", [SUBJECT])
    counts = {}
    for story, real_count in STORIES.items():
        n_volumes = max(int(math.ceil(real_count * scale)), 30)
        counts[story] = n_volumes
        end = n_volumes * TR - TAIL
        words, onsets, durations = spoken_story(story, int((end - LEAD) * 2.5), seed, rng,
                                                start=LEAD, end=end, bare=True)
        write_word_textgrid(root / "derivative" / "TextGrids" / f"{story}.TextGrid",
                            {"phone": [(0.0, n_volumes * TR, "sp")]}, "word", words, onsets,
                            durations, n_volumes * TR)
        write_json(root / f"task-{story}_bold.json", {
            **SIDECAR, "TaskName": story,
            "TaskDescription": "Listen to story titled in the TaskName"})
        func = root / f"sub-{SUBJECT}" / f"ses-{SESSION}" / "func"
        save_run_bold(func / f"sub-{SUBJECT}_ses-{SESSION}_task-{story}_bold.nii.gz", onsets,
                      durations, n_volumes, TR, rng, snr)
    write_json(root / "derivative" / "respdict.json", counts)
    write_planted(root, {"Dataset": "ds003020", "Seed": seed, "SNR": snr, "Scale": scale})
    return root
