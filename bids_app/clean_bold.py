"""The cleaned held-out BOLD of every run, written to OUTPUT_DIR for the noise ceiling.

The group level reads only ``OUTPUT_DIR`` (as BIDS-Apps require), and the
inter-subject noise ceiling needs every participant's BOLD as the encoding model
scored it. For each volumetric run this module writes
``sub-<label>/func/sub-<label>_task-<task>_run-<run>_space-<space>_desc-clean_bold.nii.gz``:
the masked, detrended, filtered and z-scored run of
:func:`bids_app.participant.prepare_bold`, its kept volumes centred (after edge
trimming) and the confounds removed the way the encoding removes them from the
held-out run (regressed within the run, or with
coefficients fitted on the training runs of the outer fold that holds the run
out), on the run's full time line in the input grid. Volumes the encoding does
not score (dummy scans, non-steady-state, scrubbed, trimmed edges) are 0 and listed
in the sidecar's ``ExcludedVolumes``; voxels outside the analysis mask are 0.

Values are stored as int16 with the NIfTI scale factor by default (half the disk
of float32; the rounding error, at most 1/65534 of the run's largest absolute
z-score, changes correlations by far less than 1e-4) or as float32
(``[statistics] clean_bold_dtype``). ``[statistics] noise_ceiling = false`` writes
nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__
from .alignment import edge_mask
from .encoding.confounds import FoldConfoundRegressor, centre_runs, stack_confounds
from .encoding.cv import outer_splits
from .io.confounds import run_samples
from .io.derivatives import bids_uri, build_name, subject_dir, write_json, write_nifti
from .outputs import grid_metadata
from .participant import kept_volumes, load_runs

#: pybids entity names -> the short names of output file names.
_SHORT = {"session": "ses", "acquisition": "acq", "ceagent": "ce", "reconstruction": "rec",
          "direction": "dir", "echo": "echo", "part": "part", "res": "res", "den": "den"}
DTYPES = ("int16", "float32")


def run_labels(word_tables: list[str]) -> list[str] | None:
    """Story label of every run (``+``-joined stories), as the encoding's folds use them."""
    labels = []
    for path in word_tables:
        table = pd.read_csv(path, sep="\t", keep_default_na=False)
        labels.append("+".join(sorted({str(s) for s in table.get("story", [])})))
    return labels if labels and all(labels) else None


def heldout_runs(bold_files: list[str], confound_files: list[str] | None, *,
                 outer_cv: str = "leave-one-run-out", trim=(0, 0), labels=None,
                 batch: int = 20000):
    """Yield the held-out BOLD of every run, confounds removed as the encoding does.

    With confounds (regressed within folds), the coefficients for a run are fitted
    on the training runs of the outer fold that holds it out, exactly as
    :class:`bids_app.encoding.confounds.FoldConfoundRegressor` does in the
    encoding, but from per-run sufficient statistics, so that only one run is in
    memory at a time (each run is read three times).

    Parameters
    ----------
    bold_files : list of str
        ``.npy`` of each run, shape (n_kept_volumes_i, n_voxels), from ``prepare_bold``.
    confound_files : list of str or None
        ``.npy`` of each run's filtered confounds, shape (n_kept_volumes_i, n_confounds_i).
    outer_cv, trim, labels
        ``encoding.outer_cv``, ``encoding.trim_edges`` and the runs' story labels.
    batch : int
        Voxels converted to float64 at once.

    Yields
    ------
    index : int
        Run index.
    rows : ndarray of bool, shape (n_kept_volumes_i,)
        Rows of the run the encoding scores (after edge trimming).
    data : ndarray of shape (rows.sum(), n_voxels)
        float32 held-out BOLD.
    """
    lengths = [int(np.load(p, mmap_mode="r").shape[0]) for p in bold_files]
    masks = [edge_mask(n, *(int(t) for t in (trim or (0, 0)))) for n in lengths]

    def load(i):  # the kept volumes of a run, centred as the encoding centres them
        data = np.asarray(np.load(bold_files[i], mmap_mode="r")[masks[i]], dtype=np.float32)
        return data - data.mean(axis=0, dtype=np.float64).astype(np.float32)

    if not confound_files:
        for i in range(len(bold_files)):
            yield i, masks[i], load(i)
        return

    keep = np.concatenate(masks)
    groups = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)])[keep]
    C = centre_runs(stack_confounds([np.load(p) for p in confound_files], lengths)[keep], groups)
    C1 = np.column_stack([np.ones(len(C)), np.asarray(C, dtype=np.float64)])

    def moments(i, Y):
        rows = C1[groups == i]
        out = np.empty((C1.shape[1], Y.shape[1]))
        for start in range(0, Y.shape[1], max(int(batch), 1)):
            cols = slice(start, start + batch)
            out[:, cols] = rows.T @ np.asarray(Y[:, cols], dtype=np.float64)
        return out

    total = sum(moments(i, load(i)) for i in range(len(bold_files)))
    for train, test in outer_splits(groups, outer_cv, labels=labels):
        runs = [int(i) for i in np.unique(groups[test])]
        gram = C1[train].T @ C1[train]
        regressor = FoldConfoundRegressor()
        gram[np.diag_indices_from(gram)] += regressor.ridge * max(np.trace(gram) / len(gram),
                                                                  1e-12)
        held = sum(moments(i, load(i)) for i in runs)
        regressor.coef_ = np.linalg.solve(gram, total - held).astype(np.float32)
        for i in runs:
            yield i, masks[i], regressor.transform(C[groups == i], load(i))


def clean_bold_entities(run) -> dict:
    """Entities of a run's ``desc-clean_bold`` file (its own, in BIDS order)."""
    entities = {"sub": run.subject, "task": run.task, "run": run.run, "space": run.space,
                "desc": "clean"}
    for key, short in _SHORT.items():
        value = run.entities.get(key, run.entities.get(short))
        if value not in (None, ""):
            entities[short] = str(value)
    if run.session:
        entities["ses"] = run.session
    return entities


def _volume_image(values: np.ndarray, used: np.ndarray, n_volumes: int, mask_img,
                  tr: float, dtype: str):
    """4-D image on the mask's grid: ``values`` (n_used, n_voxels) at volumes ``used``."""
    import nibabel as nib

    mask = np.asanyarray(mask_img.dataobj) > 0
    scale = 1.0
    if dtype == "int16":
        peak = float(np.abs(values).max()) if values.size else 0.0
        scale = peak / 32767.0 if peak > 0 else 1.0
        series = np.zeros((int(mask.sum()), n_volumes), dtype=np.int16)
        series[:, used] = np.round(values.T / scale).astype(np.int16)
    else:
        series = np.zeros((int(mask.sum()), n_volumes), dtype=np.float32)
        series[:, used] = values.T
    volume = np.zeros(mask.shape + (n_volumes,), dtype=series.dtype)
    volume[mask] = series
    del series
    img = nib.Nifti1Image(volume, mask_img.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = float(tr)
    img.header["descrip"] = f"brainenc {__version__} cleaned BOLD".encode()[:79]
    if dtype == "int16":
        img.header.set_slope_inter(scale, 0.0)
    return img


def write_clean_bold(output_dir: str, bids_dir: str, runs_json: str, bold_files: list[str],
                     mask_file: str, bold_spec: dict, encoding: dict, statistics: dict,
                     word_tables: list[str] | None = None) -> list[str]:
    """Write every volumetric run's cleaned held-out BOLD and its sidecar to OUTPUT_DIR.

    Parameters
    ----------
    output_dir, bids_dir : str
        OUTPUT_DIR and BIDS_DIR.
    runs_json : str
        Runs of the participant.
    bold_files : list of str
        Cleaned runs from :func:`bids_app.participant.prepare_bold`.
    mask_file : str
        Analysis mask (NIfTI for volumes; surfaces and CIFTI write nothing).
    bold_spec, encoding, statistics : dict
        ``[bold]``, ``[encoding]`` and ``[statistics]`` of the spec.
    word_tables : list of str, optional
        Word table of each run (story labels of ``leave-one-story-out`` folds).

    Returns
    -------
    list of str
        The written images (sidecars beside them).
    """
    import nibabel as nib

    if not statistics.get("noise_ceiling", True) or not str(mask_file).endswith(
            (".nii", ".nii.gz")):
        return []
    dtype = statistics.get("clean_bold_dtype", "int16")
    runs = load_runs(runs_json)
    mask_img = nib.load(mask_file)
    siblings = [Path(p).with_name(Path(p).name.replace("_bold.npy", "_confounds.npy"))
                for p in bold_files]
    in_folds = bold_spec.get("confound_regression", "fold") == "fold"
    confounds = [str(p) for p in siblings] if in_folds and all(
        p.is_file() for p in siblings) else None
    trim = [int(t) for t in (encoding.get("trim_edges") or (0, 0))]
    outer_cv = encoding.get("outer_cv", "leave-one-run-out")
    labels = run_labels(word_tables) if word_tables else None
    regression = ("none" if not bold_spec.get("confounds") else
                  "within the run" if not in_folds else
                  "coefficients fitted on the training runs of the outer fold holding the "
                  "run out")
    written = []
    for i, rows, data in heldout_runs(bold_files, confounds, outer_cv=outer_cv, trim=trim,
                                      labels=labels, batch=bold_spec.get("voxel_batch", 20000)):
        run = runs[i]
        first = kept_volumes(run, bold_spec.get("dummy_scans", 0))
        kept = first + np.flatnonzero(run_samples(run, bold_spec).keep[first:])
        if len(kept) != len(rows):
            raise ValueError(f"'{bold_files[i]}' has {len(rows)} volumes but the run keeps "
                             f"{len(kept)}; rerun the participant level with a new -w.")
        used = kept[rows]
        entities = clean_bold_entities(run)
        final = subject_dir(Path(output_dir), entities) / build_name(entities, "bold",
                                                                     ".nii.gz")
        write_nifti(final, _volume_image(data, used, run.n_volumes, mask_img, run.tr, dtype))
        excluded = np.setdiff1d(np.arange(run.n_volumes), used)
        write_json(final.with_name(final.name.replace(".nii.gz", ".json")), {
            "Description": "BOLD of the run as the encoding model scored it when the run "
                           "was held out: masked and cleaned as 'Cleaning' says, confounds "
                           "removed as 'ConfoundRegression' says. Volumes listed in "
                           "'ExcludedVolumes' and voxels outside the brain mask are 0.",
            "RepetitionTime": float(run.tr),
            "TaskName": run.metadata.get("TaskName", run.task),
            "SkullStripped": True,
            "Sources": [bids_uri(run.bold_file, Path(bids_dir))],
            "ExcludedVolumes": [int(v) for v in excluded],
            "ConfoundRegression": regression,
            "Cleaning": {key: bold_spec.get(key) for key in
                         ("detrend", "standardize", "high_pass", "confounds", "dummy_scans")},
            "TrimEdges": trim,
            "StorageDataType": dtype,
            # the group noise ceiling pairs participants' runs by story, not by run number
            **({"Stories": labels[i].split("+")} if labels else {}),
            **grid_metadata([run], entities),
        })
        written.append(str(final))
    return written
