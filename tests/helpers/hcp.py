"""Synthetic HCP-pipeline outputs in the layout of SMN4Lang (OpenNeuro ds004078).

The runs are those of :func:`tests.helpers.fmriprep.make_fmriprep_dataset` (the
HRF-convolved word rate planted in part of the grid), moved to where the HCP
pipelines of ds004078 keep them and renamed the way they are named there::

    bids/derivatives/preprocessed_data/sub-01/MNI/sub-01_task-story_run-1_bold.nii.gz
    bids/derivatives/preprocessed_data/sub-01/CIFTI/sub-01_task-story_run-1_bold.dtseries.nii

No sidecar, mask or confounds file comes with them: timing is read from the raw
dataset's sidecars, the brain mask is computed from the runs, and no motion
artefact is added (there is no confounds file to remove it with). The first two
volumes of every run are bright (non-steady state): drop them with
``[bold] dummy_scans = 2``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.helpers.fmriprep import SPACE, TASK, make_fmriprep_dataset

#: ``[inputs]`` patterns of the layout (as in examples/smn4lang_hcp.toml).
VOLUME = "sub-{subject}/MNI/sub-{subject}_task-{task}_run-{run}_bold.nii.gz"
CIFTI = "sub-{subject}/CIFTI/sub-{subject}_task-{task}_run-{run}_bold.dtseries.nii"


@dataclass
class HcpSynthetic:
    """A raw dataset with HCP-pipeline outputs under ``derivatives/preprocessed_data``.

    Attributes
    ----------
    bids : Path
        Raw dataset (events and sidecars).
    root : Path
        Folder the ``[inputs]`` patterns are relative to.
    planted : dict
        ``'volume'``: bool array of shape (x, y, z), the voxels carrying the signal;
        ``'cifti'``: bool array of shape (n_grayordinates,).
    brain : ndarray of bool, shape (x, y, z)
        Voxels holding BOLD (zero outside).
    """

    bids: Path
    root: Path
    planted: dict = field(default_factory=dict)
    brain: np.ndarray | None = None
    n_runs: int = 0
    n_volumes: int = 0


def make_hcp_dataset(root: Path, *, kinds=("volume", "cifti"), n_runs: int = 3,
                     n_volumes: int = 90, seed: int = 0, snr: float = 1.5) -> HcpSynthetic:
    """Write ``root/bids`` with HCP-pipeline outputs under ``derivatives/preprocessed_data``.

    Parameters
    ----------
    root : Path
        Empty folder.
    kinds : tuple of {'volume', 'cifti'}
        ``MNI`` volumes and/or ``CIFTI`` dense time series.
    n_runs, n_volumes : int
        Runs of sub-01 and volumes per run.
    seed : int
        Seed of the noise and the word timings.
    snr : float
        Amplitude of the planted signal relative to the unit noise.

    Returns
    -------
    HcpSynthetic
    """
    import nibabel as nib

    made = make_fmriprep_dataset(Path(root), kinds=kinds, n_runs=n_runs, n_volumes=n_volumes,
                                 seed=seed, snr=snr, artefact=0.0)
    prep = made.bids / "derivatives" / "preprocessed_data"
    source = made.fmriprep / "sub-01" / "func"
    out = HcpSynthetic(bids=made.bids, root=prep, n_runs=n_runs, n_volumes=n_volumes)
    for run in range(1, n_runs + 1):
        stem = f"sub-01_task-{TASK}_run-{run}"
        if "volume" in kinds:
            target = prep / "sub-01" / "MNI" / f"{stem}_bold.nii.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source / f"{stem}_space-{SPACE}_res-2_desc-preproc_bold.nii.gz", target)
        if "cifti" in kinds:
            target = prep / "sub-01" / "CIFTI" / f"{stem}_bold.dtseries.nii"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source / f"{stem}_space-fsLR_den-91k_bold.dtseries.nii", target)
    if "volume" in kinds:
        first = prep / "sub-01" / "MNI" / f"sub-01_task-{TASK}_run-1_bold.nii.gz"
        brain = np.asanyarray(nib.load(first).dataobj)[..., 0] > 0
        planted = np.zeros(brain.shape, dtype=bool)
        planted[brain] = made.planted["volume"]
        out.brain, out.planted["volume"] = brain, planted
    if "cifti" in kinds:
        out.planted["cifti"] = made.planted["cifti"]
    shutil.rmtree(made.fmriprep)  # HCP outputs only
    return out


def hcp_spec_text(model_dir: Path, *, root: str = "derivatives/preprocessed_data") -> str:
    """Experiment spec reading the layout through ``[inputs]`` with a local model.

    Parameters
    ----------
    model_dir : Path
        Local model folder (a tiny BERT in tests).
    root : str
        ``inputs.root`` (relative to BIDS_DIR, or absolute).

    Returns
    -------
    str
        TOML text.
    """
    return f"""
[[models]]
name = "tiny"
source = "{model_dir}"

[[variants]]
model = "tiny"
method = "frozen"

[features]
layers = [1]
context_words = 5

[inputs]
layout = "hcp"
root = "{root}"
volume = "{VOLUME}"
cifti = "{CIFTI}"
space = "MNI152NLin6Asym"
resolution = "2"

[bold]
dummy_scans = 2
high_pass = 0.008

[encoding]
alphas = [1.0, 10.0, 100.0, 1000.0]
inner_folds = 2
"""
