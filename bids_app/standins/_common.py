"""Shared pieces of the public-dataset stand-ins: speech timing, planted BOLD, file writers.

A stand-in reproduces the layout, names and timing metadata of a public story
dataset, with synthetic contents: story text from :mod:`bids_app.demo_text`,
spoken in bursts separated by pauses (so the word rate varies), and BOLD on a
small grid whose *planted* voxels carry the HRF-convolved word rate of the story
heard, plus AR(1) noise; the other voxels hold noise only. Any word feature with
a non-zero mean (those of every transformer layer) predicts the word rate, so a
frozen model recovers the planted voxels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..alignment import align_run, frame_times
from ..demo_text import OPENINGS, story_words

#: Shape of the BOLD grid (voxels of 4 mm): a box of brain inside one voxel of background.
GRID = (12, 12, 9)
#: Brain voxels whose x index is below this are planted.
PLANTED_X = 4
VOXEL_MM = 4.0


def brain_mask() -> np.ndarray:
    """Bool array of shape :data:`GRID`: the voxels holding BOLD (zero elsewhere)."""
    mask = np.zeros(GRID, dtype=bool)
    mask[1:-1, 1:-1, 1:-1] = True
    return mask


def story_text(story: str, n_words: int, seed: int) -> list[str]:
    """Words of a synthetic story named ``story`` (reproducible from the seed)."""
    openings = sorted(OPENINGS)
    code = sum(map(ord, story))
    return story_words(openings[code % len(openings)], n_words, seed + code)


def speech_timing(n_words: int, rng: np.random.Generator, *, start: float = 0.5,
                  rate: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and durations of words spoken in bursts of 4-14 s separated by 2-9 s pauses.

    Parameters
    ----------
    n_words : int
        Words to place.
    rng : Generator
        Random source.
    start : float
        Onset of the first word (seconds from the story's start).
    rate : float
        Words per second inside a burst.

    Returns
    -------
    onsets, durations : ndarray of shape (n_words,)
    """
    onsets, t, burst_end = [], start, start + rng.uniform(4.0, 14.0)
    for _ in range(n_words):
        if t > burst_end:
            t += rng.uniform(2.0, 9.0)
            burst_end = t + rng.uniform(4.0, 14.0)
        onsets.append(round(t, 3))
        t += rng.uniform(0.6, 1.4) / rate
    onsets = np.asarray(onsets)
    durations = np.round(np.minimum(np.diff(np.append(onsets, onsets[-1] + 0.4)) - 0.02, 0.6),
                         3)
    return onsets, np.maximum(durations, 0.05)


def word_rate(onsets: np.ndarray, durations: np.ndarray, n_volumes: int, tr: float) -> np.ndarray:
    """The HRF-convolved word rate at each volume (z-scored), shape (n_volumes,)."""
    times = frame_times(n_volumes, tr, reference=0.5 * tr)
    design = align_run(onsets, durations, np.ones((len(onsets), 1), np.float32), times, tr)
    return design[:, 0].astype(np.float64)


def spoken_story(story: str, n_words: int, seed: int, rng: np.random.Generator, *,
                 start: float, end: float, bare: bool = False
                 ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The first ``n_words`` of a story spoken from ``start``, those ending before ``end``.

    Parameters
    ----------
    story : str
        Story name (seeds its text).
    n_words : int
        Words drawn before the cut at ``end``.
    seed : int
        Seed of the text.
    rng : Generator
        Random source of the timing.
    start, end : float
        Onset of the first word and the time every kept word ends before (seconds).
    bare : bool
        Words without punctuation and in lower case (as forced aligners write them).

    Returns
    -------
    words : list of str
    onsets, durations : ndarray of shape (n_kept,)
    """
    words = story_text(story, n_words, seed)
    onsets, durations = speech_timing(len(words), rng, start=start)
    keep = onsets + durations < end
    words = [w for w, k in zip(words, keep, strict=True) if k]
    if bare:
        words = [w.strip(".,!?\"").lower() for w in words]
    return words, onsets[keep], durations[keep]


def planted_mask() -> np.ndarray:
    """Bool array of shape :data:`GRID`: the voxels carrying the planted signal."""
    mask = brain_mask()
    mask[PLANTED_X:] = False
    return mask


def _affine() -> np.ndarray:
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = [-12.0, -12.0, -8.0]
    return affine


def bold_series(signal: np.ndarray, rng: np.random.Generator, *, snr: float = 1.0,
                phi: float = 0.5, baseline: float = 800.0, scale: float = 10.0) -> np.ndarray:
    """4-D BOLD of shape ``GRID + (n_volumes,)``: planted voxels get ``snr * signal``."""
    brain = brain_mask()
    n_time, n_vox = len(signal), int(brain.sum())
    noise = rng.standard_normal((n_time, n_vox))
    for t in range(1, n_time):
        noise[t] = phi * noise[t - 1] + np.sqrt(1 - phi ** 2) * noise[t]
    noise[:, planted_mask()[brain]] += snr * signal[:, None]
    data = np.zeros(GRID + (n_time,), dtype=np.float32)
    data[brain] = (baseline + scale * noise).T
    return data


def save_nifti(path: Path, data: np.ndarray, tr: float | None = None) -> Path:
    """Save a NIfTI image on the stand-in grid (``tr`` in seconds for 4-D images)."""
    import nibabel as nib

    img = nib.Nifti1Image(data, _affine())
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None:
        img.header["pixdim"][4] = tr
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def save_run_bold(path: Path, onsets: np.ndarray, durations: np.ndarray, n_volumes: int,
                  tr: float, rng: np.random.Generator, snr: float) -> Path:
    """Save a run's BOLD whose planted voxels carry the word rate of these words (run time)."""
    return save_nifti(path, bold_series(word_rate(onsets, durations, n_volumes, tr), rng,
                                        snr=snr), tr)


def write_json(path: Path, data) -> None:
    """Write JSON (indented, UTF-8), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _quote(text: str) -> str:
    return '"' + str(text).replace('"', '""') + '"'


def textgrid(tiers: dict, xmax: float) -> str:
    """A long-format Praat TextGrid with IntervalTiers ``{name: [(xmin, xmax, label)]}``."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
             f"xmax = {xmax:.3f}", "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for k, (name, items) in enumerate(tiers.items(), start=1):
        lines += [f"    item [{k}]:", '        class = "IntervalTier"',
                  f"        name = {_quote(name)}", "        xmin = 0",
                  f"        xmax = {xmax:.3f}", f"        intervals: size = {len(items)}"]
        for j, (start, stop, label) in enumerate(items, start=1):
            lines += [f"        intervals [{j}]:", f"            xmin = {start:.3f}",
                      f"            xmax = {stop:.3f}", f"            text = {_quote(label)}"]
    return "\n".join(lines) + "\n"


def word_intervals(words, onsets, durations, end: float) -> list[tuple]:
    """Contiguous intervals of a word tier: words, with silences (``sp``) between them."""
    items, t = [], 0.0
    for word, onset, duration in zip(words, onsets, durations, strict=True):
        if onset > t + 1e-6:
            items.append((t, float(onset), "sp"))
        items.append((float(onset), float(onset + duration), word))
        t = float(onset + duration)
    if end > t:
        items.append((t, end, "sp"))
    return items


def write_word_textgrid(path: Path, tiers: dict, tier: str, words, onsets, durations,
                        xmax: float) -> None:
    """Write a TextGrid: the interval ``tiers`` given, then the word tier ``tier``."""
    write_text(path, textgrid({**tiers, tier: word_intervals(words, onsets, durations, xmax)},
                              xmax))


def write_planted(root: Path, description: dict) -> None:
    """Save the planted mask and a description under ``sourcedata/planted/``."""
    truth = Path(root) / "sourcedata" / "planted"
    save_nifti(truth / "planted_mask.nii.gz", planted_mask().astype(np.uint8))
    write_json(truth / "planted.json", {
        "Description": "Voxels whose BOLD carries the HRF-convolved word rate of the story",
        "NPlanted": int(planted_mask().sum()), "NBrainVoxels": int(brain_mask().sum()),
        **description})


def dataset_files(root: Path, name: str, source: str, participants: list[str]) -> None:
    """``dataset_description.json``, README and ``participants.tsv`` of a stand-in."""
    write_json(Path(root) / "dataset_description.json", {
        "Name": f"brainenc stand-in for {name}", "BIDSVersion": "1.10.0", "DatasetType": "raw",
        "License": "CC0", "Authors": ["brainenc stand-in generator"],
        "GeneratedBy": [{"Name": "brainenc-standin", "Description": f"layout of {source}, "
                                                                   "synthetic contents"}]})
    write_text(Path(root) / "README", f"Synthetic stand-in with the layout of {name} ({source}).\n"
               "Story text, word timings and BOLD are synthetic; the planted ground truth is in "
               "sourcedata/planted/.\n")
    write_text(Path(root) / "participants.tsv",
               "participant_id\n" + "".join(f"sub-{p}\n" for p in participants))
