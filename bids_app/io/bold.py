"""Read BOLD runs masked and in float32, compute brain masks, clean the signal.

A run is read once (never volume by volume, which re-decompresses a ``.nii.gz``
from the start each time), masked in its stored dtype and only then cast to
float32, so the peak memory is one run in its on-disk dtype plus the masked copy.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .surfaces import cifti_info, gifti_n_vertices, load_cifti_series, load_surface_run


def image_error(path: Path, exc: Exception) -> DatasetError:
    """Return the error for an image nibabel could not load, naming what the user can fix.

    nibabel reports a file it may not open as one it cannot parse: the file is
    opened again here to tell permissions and missing files from corrupt content.

    Parameters
    ----------
    path : Path
        The image.
    exc : Exception
        What nibabel raised.

    Returns
    -------
    DatasetError
        One sentence naming the file and the fix.
    """
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        return DatasetError(f"the image '{path}' is not readable (permission denied); fix its "
                            "permissions (e.g. chmod a+r) or remove it.")
    except OSError as os_exc:
        return DatasetError(f"cannot open the image '{path}' ({os_exc.strerror or os_exc}); "
                            "check that it is a readable file.")
    return DatasetError(f"cannot read the image '{path}' ({type(exc).__name__}: {exc}); "
                        "re-export or remove the file.")


def _load(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types on unreadable files
        raise image_error(path, exc) from None


def compute_brain_mask(bold_files: list[Path], mask_files: list[Path | None]):
    """Compute a brain mask shared by all runs of a participant.

    Shipped masks (preprocessed data) are intersected; otherwise an EPI mask is
    computed from the mean images of the runs (nilearn's ``compute_multi_epi_mask``).

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on the grid of the first run.
    """
    import nibabel as nib
    from nilearn.masking import compute_multi_epi_mask

    reference = _load(bold_files[0])
    shipped = [m for m in mask_files if m]
    if shipped:
        combined = None
        for path in shipped:
            img = _load(path)
            if img.shape[:3] != reference.shape[:3] or not np.allclose(img.affine, reference.affine,
                                                                       atol=1e-3):
                raise DatasetError(
                    f"the mask '{path}' is not on the grid of '{bold_files[0]}' "
                    f"(shape {img.shape[:3]} vs {reference.shape[:3]}); use the mask of the same "
                    "space and resolution."
                )
            data = np.asanyarray(img.dataobj) > 0
            combined = data if combined is None else combined & data
        return nib.Nifti1Image(combined.astype(np.uint8), reference.affine)
    for path in bold_files[1:]:
        img = _load(path)
        if img.shape[:3] != reference.shape[:3] or not np.allclose(img.affine, reference.affine,
                                                                   atol=1e-3):
            raise DatasetError(
                f"'{path.name}' and '{bold_files[0].name}' are on different grids; runs of a "
                "participant must share one voxel grid (resample or use preprocessed data)."
            )
    try:
        mask = compute_multi_epi_mask([str(p) for p in bold_files], threshold=0.5, n_jobs=1)
    except (EOFError, OSError, ValueError, zlib.error):  # name the unreadable run
        for path in bold_files:
            _read_data(path)
        raise
    data = np.asanyarray(mask.dataobj).astype(np.uint8)
    if not data.any():
        raise DatasetError(f"the brain mask computed from '{bold_files[0].name}' is empty; "
                           "check that the images hold BOLD signal.")
    return nib.Nifti1Image(data, reference.affine)


def _read_data(path: Path, img=None) -> np.ndarray:
    """All voxel data of an image, or a :class:`DatasetError` naming the broken file."""
    img = _load(path) if img is None else img
    try:
        return np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated gzip streams raise EOFError/zlib.error/OSError
        raise DatasetError(f"cannot read the voxel data of '{path}' ({type(exc).__name__}: "
                           f"{exc}); the file is truncated or corrupt: re-export or remove "
                           "it.") from None


def load_masked(bold_file: Path, mask: np.ndarray) -> np.ndarray:
    """Read a run masked, as float32.

    Parameters
    ----------
    bold_file : Path
        4-D image.
    mask : ndarray of bool, shape (x, y, z)
        Voxels to keep.

    Returns
    -------
    ndarray of shape (n_volumes, n_voxels)
        float32 time series.
    """
    img = _load(bold_file)
    if img.ndim != 4:
        raise DatasetError(f"'{bold_file.name}' is not 4-D (shape {img.shape}).")
    if img.shape[:3] != mask.shape:
        raise DatasetError(f"'{bold_file.name}' has grid {img.shape[:3]} but the mask has "
                           f"{mask.shape}; all runs must share one grid.")
    raw = _read_data(bold_file, img)
    data = raw[mask].T
    del raw
    return np.ascontiguousarray(data, dtype=np.float32)


def load_run_data(run, mask: np.ndarray) -> np.ndarray:
    """Read one run (volume, surface or CIFTI) restricted to ``mask``, as float32.

    Parameters
    ----------
    run : BoldRun
        The run.
    mask : ndarray of bool
        Shape (x, y, z) for volumes; (n_vertices_L + n_vertices_R,) for surfaces;
        (n_grayordinates,) for CIFTI.

    Returns
    -------
    ndarray of shape (n_volumes, n_kept)
    """
    if run.kind == "volume":
        return load_masked(run.bold_file, mask)
    if run.kind == "surface":
        data, _ = load_surface_run(run.surface_files)
    else:
        data = load_cifti_series(run.bold_file)
    if data.shape[1] != mask.shape[0]:
        raise DatasetError(f"'{run.bold_file.name}' has {data.shape[1]} vertices/grayordinates "
                           f"but the participant's first run has {mask.shape[0]}; all runs must "
                           "be in one space and density.")
    return data if mask.all() else np.ascontiguousarray(data[:, mask])


def analysis_mask(runs):
    """Return the analysis mask of a participant's runs.

    Returns
    -------
    mask : ndarray of bool
        3-D for volumes, 1-D over vertices (left then right) or grayordinates.
    img : nibabel.Nifti1Image or None
        The NIfTI mask of volume runs (None otherwise).
    """
    kinds = {r.kind for r in runs}
    if len(kinds) != 1:
        raise DatasetError(f"the runs of sub-{runs[0].subject} mix {', '.join(sorted(kinds))} "
                           "data; choose one space with --space.")
    kind = kinds.pop()
    if kind == "volume":
        img = compute_brain_mask([r.bold_file for r in runs], [r.mask_file for r in runs])
        return np.asanyarray(img.dataobj) > 0, img
    if kind == "cifti":
        size = cifti_info(runs[0].bold_file)["n_grayordinates"]
    else:
        size = sum(gifti_n_vertices(runs[0].surface_files[h]) for h in ("L", "R"))
    return np.ones(size, dtype=bool), None


def _with_time_trend(confounds: np.ndarray | None, keep: np.ndarray, detrend: bool):
    """Add a linear trend in scan time to the confounds when volumes inside the run are dropped.

    nilearn detrends the kept volumes by their order, which is a linear function of
    scan time only when the dropped volumes are all at the start; after a gap in the
    middle of a run (scrubbing) a drift that is linear in time would be left in.
    The trend is computed over all volumes and censored with them.
    """
    kept = np.flatnonzero(keep)
    if not detrend or len(kept) < 2 or not (np.diff(kept) > 1).any():
        return confounds
    trend = np.arange(len(keep), dtype=np.float64)[:, None]
    if confounds is None:
        return trend
    return np.hstack([np.asarray(confounds, dtype=np.float64), trend])


def clean_run(data: np.ndarray, *, tr: float, detrend: bool = True, standardize: bool = True,
              high_pass: float | None = None, keep: np.ndarray | None = None,
              confounds: np.ndarray | None = None,
              batch_size: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Detrend, high-pass filter, regress confounds from and z-score one run.

    Voxels are cleaned in batches (every operation is voxel-wise), so the
    temporaries of the filter never exceed ``batch_size`` voxels.

    Parameters
    ----------
    data : ndarray of shape (n_volumes, n_voxels)
        Masked float32 run.
    tr : float
        Repetition time (seconds).
    detrend, standardize : bool
        Linear detrending (in scan time, across dropped volumes); z-scoring of every voxel.
    high_pass : float, optional
        Cut-off frequency in Hz: discrete cosine drifts below it are regressed out (as
        SPM and fMRIPrep's cosine regressors do).
    keep : ndarray of bool, shape (n_volumes,), optional
        Volumes kept (scrubbing, non-steady state); the others are removed.
    confounds : ndarray of shape (n_volumes, n_confounds), optional
        Regressed out of every voxel (orthogonally to the filter, as nilearn does).
    batch_size : int
        Voxels cleaned at once.

    Returns
    -------
    cleaned : ndarray of shape (n_kept_volumes, n_voxels)
        float32; voxels that are not finite or constant are set to 0.
    bad : ndarray of bool, shape (n_voxels,)
        Voxels that were not finite or had no variance in the kept volumes.
    """
    from nilearn.signal import clean

    n_volumes, n_voxels = data.shape
    keep = np.ones(n_volumes, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    n_kept = int(keep.sum())
    cleaned = np.empty((n_kept, n_voxels), dtype=np.float32)
    bad = np.zeros(n_voxels, dtype=bool)
    sample_mask = None if keep.all() else np.flatnonzero(keep)
    confounds = _with_time_trend(confounds, keep, detrend)
    for start in range(0, n_voxels, max(int(batch_size), 1)):
        part = data[:, start:start + batch_size]
        kept = part[keep]
        finite = np.isfinite(kept).all(axis=0)
        with np.errstate(invalid="ignore"):
            constant = np.ptp(np.where(np.isfinite(kept), kept, 0), axis=0) <= 0
        bad_part = ~finite | constant
        del kept
        part = np.where(np.isfinite(part) & ~bad_part[None, :], part, 0.0).astype(np.float32)
        out = clean(part, detrend=detrend, standardize="zscore_sample" if standardize else None,
                    high_pass=high_pass or None, filter="cosine" if high_pass else False,
                    t_r=tr, ensure_finite=False,
                    sample_mask=sample_mask, confounds=confounds)
        out = np.asarray(out, dtype=np.float32)
        out[:, bad_part] = 0.0
        cleaned[:, start:start + batch_size] = out
        bad[start:start + batch_size] = bad_part
    return cleaned, bad


def clean_confounds(confounds: np.ndarray, *, tr: float, detrend: bool = True,
                    high_pass: float | None = None,
                    keep: np.ndarray | None = None,
                    within: np.ndarray | None = None) -> np.ndarray:
    """Filter and censor confounds the way :func:`clean_run` treats the BOLD.

    Used when confounds are regressed within cross-validation folds: the
    regressors must see the same detrending, filtering and censoring as the data.
    ``within`` (run-specific confounds of shape (n_volumes, n_within), regressed out
    of the BOLD within the run) are regressed out of these confounds too, so that
    the two-step regression equals one joint regression.

    Returns
    -------
    ndarray of shape (n_kept_volumes, n_confounds)
        float32, each column z-scored (constant columns set to 0).
    """
    from nilearn.signal import clean

    keep = np.ones(len(confounds), dtype=bool) if keep is None else np.asarray(keep, bool)
    values = np.nan_to_num(np.asarray(confounds, dtype=np.float64))
    constant = np.ptp(values[keep], axis=0) <= 0
    out = clean(values, detrend=detrend, standardize=None, high_pass=high_pass or None,
                filter="cosine" if high_pass else False, t_r=tr,
                confounds=_with_time_trend(None if within is None or not within.size else
                                           np.nan_to_num(np.asarray(within, np.float64)),
                                           keep, detrend),
                sample_mask=None if keep.all() else np.flatnonzero(keep))
    out = np.asarray(out)
    std = out.std(axis=0)
    out = np.where((std > 1e-12) & ~constant, (out - out.mean(axis=0)) / np.where(std > 0, std, 1),
                   0.0)
    return out.astype(np.float32)


def clean_design(design: np.ndarray, *, tr: float, detrend: bool = True,
                 high_pass: float | None = None, keep: np.ndarray | None = None,
                 within: np.ndarray | None = None) -> np.ndarray:
    """Give a run's design the projection :func:`clean_run` gives its BOLD.

    Detrending, the cosine high-pass filter, censoring and the run's within-run
    confounds are linear projections of the kept volumes; applied to both sides of
    the regression (as nilearn's ``signal.clean`` with ``confounds`` and a GLM's
    design do), a design component that lies in the removed space cannot fit the
    cleaned BOLD. The columns are not rescaled.

    Parameters
    ----------
    design : ndarray of shape (n_volumes, n_features)
        Aligned design of every volume of the run (after dummy scans).
    tr, detrend, high_pass, keep
        As for :func:`clean_run`.
    within : ndarray of shape (n_volumes, n_within), optional
        Confounds regressed out within the run.

    Returns
    -------
    ndarray of shape (n_kept_volumes, n_features)
        float32; columns lying in the removed space (all but 1e-4 of their norm) are 0.
    """
    from nilearn.signal import clean

    values = np.asarray(design, dtype=np.float64)
    keep = np.ones(len(values), dtype=bool) if keep is None else np.asarray(keep, bool)
    if within is not None and not np.asarray(within).size:
        within = None
    out = clean(values, detrend=detrend, standardize=None, high_pass=high_pass or None,
                filter="cosine" if high_pass else False, t_r=tr, ensure_finite=False,
                confounds=_with_time_trend(None if within is None else
                                           np.nan_to_num(np.asarray(within, np.float64)),
                                           keep, detrend),
                sample_mask=None if keep.all() else np.flatnonzero(keep))
    out = np.asarray(out, dtype=np.float64)
    # columns lying in the removed space leave only round-off, which r (blind to scale) would
    # still correlate with the BOLD: they are set to 0
    kept = values[keep] - values[keep].mean(axis=0)
    out[:, np.linalg.norm(out, axis=0) <= 1e-4 * np.linalg.norm(kept, axis=0)] = 0.0
    return out.astype(np.float32)
