"""Inter-subject noise ceiling at the group stage.

The ceiling needs every participant's cleaned BOLD on the same stimulus time
line, which the participant level keeps in its work directory
(``<work>/brainenc_wf/sub_<label>_wf/prepare_bold``). When the group level is given
that work directory (``-w``) and it still holds those files, each participant's
leave-one-subject-out correlation is computed with
:func:`bids_app.encoding.ceiling.loso_correlation` over the runs every participant
has (matched by task and run entities, with equal numbers of volumes), and encoding
r is reported as a fraction of it. Without them, ceiling maps already in
``OUTPUT_DIR`` (``stat-ceiling``) are used, and otherwise no normalised values are given.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger("brainenc.group")


def _run_key(name: str) -> str:
    return re.sub(r"^sub-[A-Za-z0-9]+_", "", name)


def _prepared(work_dir: Path, subject: str) -> Path | None:
    folder = Path(work_dir) / "brainenc_wf" / f"sub_{subject}_wf" / "prepare_bold"
    if (folder / "bold_info.json").exists() and (folder / "brain_mask.nii.gz").exists():
        return folder
    return None


def loso_ceiling_from_work(work_dir: str | Path | None, subjects: list[str],
                           template: str | Path) -> np.ndarray | None:
    """Per-participant leave-one-subject-out correlation on the grid of ``template``.

    Parameters
    ----------
    work_dir : str or Path or None
        The participant level's work directory.
    subjects : list of str
        Participant labels, in the order of the group data.
    template : str or Path
        A participant NIfTI map giving the grid (flattened element order).

    Returns
    -------
    ndarray of shape (n_subjects, n_elements) or None
        float32 ceilings (0 outside the voxels every participant has), or None when
        fewer than 3 participants have cleaned BOLD on a common time line.
    """
    import nibabel as nib

    from ..encoding.ceiling import loso_correlation
    from .maps import geometry, map_kind

    if work_dir is None or len(subjects) < 3 or map_kind(template) != "volume":
        return None
    folders = [_prepared(Path(work_dir), s) for s in subjects]
    if any(f is None for f in folders):
        return None
    grid = geometry(template)
    infos, masks = [], []
    for folder in folders:
        infos.append(json.loads((folder / "bold_info.json").read_text(encoding="utf-8")))
        mask_path = folder / "brain_mask.nii.gz"
        if geometry(mask_path)[1:] != grid[1:]:
            return None
        masks.append(np.asanyarray(nib.load(str(mask_path)).dataobj).ravel() > 0)
    runs = [{_run_key(r["run"]): (i, r["volumes"]) for i, r in enumerate(info["runs"])}
            for info in infos]
    common = [k for k in runs[0] if all(k in r and r[k][1] == runs[0][k][1] for r in runs)]
    if not common:
        LOGGER.warning("noise ceiling skipped: participants share no run of equal length")
        return None
    shared = np.logical_and.reduce(masks)
    series = []
    for folder, mask, run_map in zip(folders, masks, runs, strict=True):
        columns = shared[mask]  # the shared voxels among this participant's voxels
        parts = [np.load(folder / f"run{run_map[k][0]:03d}_bold.npy", mmap_mode="r")[:, columns]
                 for k in common]
        series.append(np.concatenate(parts, axis=0))
    ceiling = loso_correlation(series)
    full = np.zeros((len(subjects), shared.size), dtype=np.float32)
    full[:, shared] = ceiling
    return full
