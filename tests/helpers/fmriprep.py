"""Synthetic fMRIPrep-style derivatives with a planted signal (volume, surface, CIFTI).

The planted signal is the HRF-convolved word rate of each run (words come in
bursts separated by silences), which any word-level language-model design spans,
so recovery does not depend on the model's weights. Every run also carries a
motion artefact: a confound column of the run's confounds file added to every
voxel, so confound regression has something to remove. Confound files take the
columns and rows of the real fMRIPrep confounds file that nilearn ships.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TR = 2.0
TASK = "story"
SPACE = "MNI152NLin2009cAsym"
#: fMRIPrep surface names through the versions (query by entities reads all of them).
SURFACE_NAMES = {
    "20.2": "sub-{s}_task-{t}_run-{r}_space-fsaverage5_hemi-{h}.func.gii",
    "21.0": "sub-{s}_task-{t}_run-{r}_space-fsaverage5_hemi-{h}_bold.func.gii",
    "23.0": "sub-{s}_task-{t}_run-{r}_hemi-{h}_space-fsaverage5_bold.func.gii",
}
ARTEFACT = "trans_x"
#: mm of motion giving one unit of artefact (runs of different lengths).
MOTION_SCALE = 0.3


def nilearn_confounds_file() -> Path:
    """The real fMRIPrep (v21) confounds file shipped inside nilearn."""
    import nilearn.interfaces.fmriprep as module

    return Path(module.__file__).parent / "data" / "test-v21_desc-confounds_timeseries.tsv"


@dataclass
class Synthetic:
    bids: Path
    fmriprep: Path
    planted: dict = field(default_factory=dict)  # kind -> bool array over the analysed grid
    n_volumes: int | list = 0
    n_runs: int = 0


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _word_runs(rng, n_runs: int, lengths: list[int]):
    from bids_app.demo import STORIES
    from bids_app.demo_text import story_words

    runs = []
    for r in range(n_runs):
        words = story_words(STORIES[r % len(STORIES)], 400, seed=r)
        onsets, t, i = [], 4.0, 0
        end = lengths[r] * TR - 16.0
        while t < end and i < len(words):
            burst_end = t + rng.uniform(8, 25)
            while t < min(burst_end, end) and i < len(words):
                onsets.append(round(t, 3))
                t += rng.uniform(0.25, 0.45)
                i += 1
            t += rng.uniform(6, 16)
        runs.append((words[:len(onsets)], np.array(onsets)))
    return runs


def _confounds(rng, n_volumes: int, n_steady: int = 2):
    import pandas as pd

    real = pd.read_csv(nilearn_confounds_file(), sep="\t")
    rows = rng.integers(0, len(real), n_volumes)
    frame = real.iloc[rows].reset_index(drop=True)
    # smooth, small motion traces in place of shuffled rows
    for column in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"):
        frame[column] = np.cumsum(rng.standard_normal(n_volumes)) * 0.05
    frame["framewise_displacement"] = np.abs(rng.standard_normal(n_volumes)) * 0.1
    frame.loc[0, "framewise_displacement"] = np.nan
    for column in frame.columns:
        if column.startswith(("non_steady_state_outlier", "motion_outlier")):
            frame = frame.drop(columns=column)
    for k in range(n_steady):
        flag = np.zeros(n_volumes)
        flag[k] = 1
        frame[f"non_steady_state_outlier{k:02d}"] = flag
    return frame


def _run_specific(frame, sidecar: dict, n_volumes: int, n_compcor: int):
    """Cosine drift columns of the run's own length, and ``n_compcor`` aCompCor columns.

    As fMRIPrep writes them: the number of cosines (128 s cut-off) grows with the
    run's duration, and the number of CompCor components retained differs by run.
    """
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("cosine")
                                or (c.startswith("a_comp_cor_") and int(c[-2:]) >= n_compcor)])
    sidecar = {k: v for k, v in sidecar.items()
               if not (k.startswith("a_comp_cor_") and int(k[-2:]) >= n_compcor)}
    n_cosines = int(np.floor(2 * n_volumes * TR / 128.0))
    times = np.arange(n_volumes)
    for k in range(1, n_cosines + 1):
        frame[f"cosine{k - 1:02d}"] = np.sqrt(2.0 / n_volumes) * np.cos(
            np.pi * k * (2 * times + 1) / (2 * n_volumes))
    return frame, sidecar


def make_fmriprep_dataset(root: Path, *, kinds=("volume",), n_runs: int = 3,
                          n_volumes: int | list[int] = 100, seed: int = 0, snr: float = 1.5,
                          artefact: float = 2.0, surface_naming: str = "23.0",
                          subjects=("01",)) -> Synthetic:
    """Write ``root/bids`` (raw: events, sidecars) and ``root/fmriprep`` (derivatives).

    Parameters
    ----------
    kinds : tuple of {'volume', 'surface', 'cifti'}
        Outputs fMRIPrep "wrote".
    n_volumes : int or list of int
        Volumes of every run, or of each run. With a list, runs also differ as real
        fMRIPrep runs do: each has the cosine drift columns of its own length
        (128 s cut-off) and its own number of aCompCor columns (3, 4, 5, 3 ...).
    artefact : float
        Amplitude of the motion artefact in every voxel (a confound column).
    surface_naming : str
        Key of :data:`SURFACE_NAMES`.

    Returns
    -------
    Synthetic
    """
    from bids_app.alignment import align_run, frame_times

    rng = np.random.default_rng(seed)
    bids, prep = Path(root) / "bids", Path(root) / "fmriprep"
    _json(bids / "dataset_description.json", {"Name": "synthetic stories", "BIDSVersion": "1.10.0",
                                              "DatasetType": "raw"})
    _json(bids / f"task-{TASK}_bold.json", {"RepetitionTime": TR, "TaskName": TASK})
    _json(prep / "dataset_description.json", {
        "Name": "fMRIPrep outputs", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]})
    varying = not isinstance(n_volumes, (int, np.integer))
    lengths = [int(n) for n in n_volumes] if varying else [int(n_volumes)] * n_runs
    if len(lengths) != n_runs:
        raise ValueError(f"{len(lengths)} run lengths for {n_runs} runs")
    words = _word_runs(rng, n_runs, lengths)
    grids = _grids(rng, kinds)
    out = Synthetic(bids=bids, fmriprep=prep, n_volumes=n_volumes, n_runs=n_runs,
                    planted={k: g["planted"] for k, g in grids.items()})
    sidecar = json.loads(nilearn_confounds_file().with_suffix(".json").read_text("utf-8"))
    for sub in subjects:
        func, raw = prep / f"sub-{sub}" / "func", bids / f"sub-{sub}" / "func"
        for r, (run_words, onsets) in enumerate(words, start=1):
            stem = f"sub-{sub}_task-{TASK}_run-{r}"
            raw.mkdir(parents=True, exist_ok=True)
            (raw / f"{stem}_events.tsv").write_text(
                "onset\tduration\tword\n" + "".join(
                    f"{o:.3f}\t0.300\t{w}\n" for o, w in zip(onsets, run_words, strict=True)),
                "utf-8")
            n_vol = lengths[r - 1]
            times = frame_times(n_vol, TR, reference=0.5 * TR)
            rate = align_run(onsets, np.full(len(onsets), 0.3), np.ones((len(onsets), 1)),
                             times, TR)[:, 0]
            frame = _confounds(rng, n_vol)
            func.mkdir(parents=True, exist_ok=True)
            if varying:
                frame, meta = _run_specific(frame, sidecar, n_vol, 3 + (r - 1) % 3)
                _json(func / f"{stem}_desc-confounds_timeseries.json", meta)
            else:
                shutil.copy(nilearn_confounds_file().with_suffix(".json"),
                            func / f"{stem}_desc-confounds_timeseries.json")
            frame.to_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False,
                         na_rep="n/a")
            motion = frame[ARTEFACT].to_numpy()
            # runs of different lengths: the artefact follows the motion in mm, one coupling for
            # every run (as head motion moves the signal); equal runs: the motion z-scored per run
            motion = (motion - motion.mean()) / (MOTION_SCALE if varying else motion.std())
            for kind, grid in grids.items():
                n = grid["n"]
                noise = rng.standard_normal((n_vol, n)).astype(np.float32)
                data = noise + artefact * motion[:, None]
                data[:, grid["planted"]] += snr * rate[:, None]
                data[:2] += 8.0  # non-steady-state volumes: bright
                data = (1000 + 20 * data).astype(np.float32)
                _write_run(func, stem, kind, grid, data, surface_naming)
    return out


def _grids(rng, kinds) -> dict:
    import nibabel as nib

    grids = {}
    if "volume" in kinds:
        shape = (12, 12, 10)
        affine = np.array([[2.0, 0, 0, -12], [0, 2, 0, -30], [0, 0, 2, 0], [0, 0, 0, 1]])
        ijk = np.indices(shape).reshape(3, -1).T
        inside = np.linalg.norm(ijk - (np.array(shape) - 1) / 2, axis=1) <= 5
        mask = inside.reshape(shape)
        planted = np.zeros(int(mask.sum()), dtype=bool)
        planted[: len(planted) // 3] = True
        grids["volume"] = {"n": int(mask.sum()), "planted": planted, "mask": mask,
                           "affine": affine}
    if "surface" in kinds:
        from nilearn import datasets

        mesh = datasets.load_fsaverage("fsaverage5")
        sizes, planted = {}, []
        for hemi, part in (("L", "left"), ("R", "right")):
            coords = np.asarray(mesh["pial"].parts[part].coordinates)
            sizes[hemi] = len(coords)
            centre = np.array([-55.0 if hemi == "L" else 55.0, -20.0, 5.0])
            planted.append(np.linalg.norm(coords - centre, axis=1) < 25)
        grids["surface"] = {"n": sum(sizes.values()), "sizes": sizes,
                            "planted": np.concatenate(planted)}
    if "cifti" in kinds:
        models = (nib.cifti2.BrainModelAxis.from_surface(
            np.arange(300), 10242, "CIFTI_STRUCTURE_CORTEX_LEFT")
            + nib.cifti2.BrainModelAxis.from_surface(
                np.arange(300), 10242, "CIFTI_STRUCTURE_CORTEX_RIGHT")
            + nib.cifti2.BrainModelAxis.from_mask(
                _small_mask(), affine=np.diag([2.0, 2.0, 2.0, 1.0]), name="thalamus_left"))
        planted = np.zeros(len(models), dtype=bool)
        planted[:100] = True
        planted[300:400] = True
        grids["cifti"] = {"n": len(models), "models": models, "planted": planted}
    del rng
    return grids


def _small_mask() -> np.ndarray:
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[4:7, 4:7, 4:7] = True
    return mask


def _write_run(func: Path, stem: str, kind: str, grid: dict, data: np.ndarray,
               naming: str) -> None:
    import nibabel as nib

    meta = {"RepetitionTime": TR, "StartTime": 0.9, "SkullStripped": False}
    if kind == "volume":
        base = f"{stem}_space-{SPACE}_res-2"
        volume = np.zeros(grid["mask"].shape + (len(data),), dtype=np.float32)
        volume[grid["mask"]] = data.T
        img = nib.Nifti1Image(volume, grid["affine"])
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = TR
        nib.save(img, func / f"{base}_desc-preproc_bold.nii.gz")
        _json(func / f"{base}_desc-preproc_bold.json", meta)
        nib.save(nib.Nifti1Image(grid["mask"].astype(np.uint8), grid["affine"]),
                 func / f"{base}_desc-brain_mask.nii.gz")
    elif kind == "surface":
        start = 0
        sub, task, run = stem.split("_")
        for hemi in ("L", "R"):
            n = grid["sizes"][hemi]
            arrays = [nib.gifti.GiftiDataArray(row[start:start + n].astype(np.float32),
                                               intent="NIFTI_INTENT_TIME_SERIES",
                                               datatype="NIFTI_TYPE_FLOAT32") for row in data]
            name = SURFACE_NAMES[naming].format(s=sub[4:], t=task[5:], r=run[4:], h=hemi)
            nib.save(nib.gifti.GiftiImage(darrays=arrays), func / name)
            _json(func / name.replace(".func.gii", ".json"), meta)
            start += n
    else:
        series = nib.cifti2.SeriesAxis(start=0.0, step=TR, size=len(data), unit="SECOND")
        header = nib.cifti2.Cifti2Header.from_axes((series, grid["models"]))
        name = f"{stem}_space-fsLR_den-91k_bold.dtseries.nii"
        nib.save(nib.cifti2.Cifti2Image(data.astype(np.float32), header), func / name)
        _json(func / name.replace(".dtseries.nii", ".json"), meta)
