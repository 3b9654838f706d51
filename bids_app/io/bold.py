"""Read BOLD runs masked and in float32, compute brain masks, clean the signal.

A run is read once (never volume by volume, which re-decompresses a ``.nii.gz``
from the start each time), masked in its stored dtype and only then cast to
float32, so the peak memory is one run in its on-disk dtype plus the masked copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError


def _load(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types on unreadable files
        raise DatasetError(f"cannot read the image '{path}' ({type(exc).__name__}: {exc}); "
                           "re-export or remove the file.") from None


def compute_brain_mask(bold_files: list[Path], mask_files: list[Path | None]):
    """A brain mask shared by all runs of a participant.

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
    mask = compute_multi_epi_mask([str(p) for p in bold_files], threshold=0.5, n_jobs=1)
    data = np.asanyarray(mask.dataobj).astype(np.uint8)
    if not data.any():
        raise DatasetError(f"the brain mask computed from '{bold_files[0].name}' is empty; "
                           "check that the images hold BOLD signal.")
    return nib.Nifti1Image(data, reference.affine)


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
    try:
        raw = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated gzip streams raise EOFError/zlib.error/OSError
        raise DatasetError(f"cannot read the voxel data of '{bold_file}' ({type(exc).__name__}: "
                           f"{exc}); the file is truncated or corrupt.") from None
    data = raw[mask].T
    del raw
    return np.ascontiguousarray(data, dtype=np.float32)


def clean_run(data: np.ndarray, *, tr: float, detrend: bool = True, standardize: bool = True,
              high_pass: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Detrend, high-pass filter and z-score one run.

    Parameters
    ----------
    data : ndarray of shape (n_volumes, n_voxels)
        Masked float32 run.
    tr : float
        Repetition time (seconds).
    detrend, standardize : bool
        Linear detrending; z-scoring of every voxel.
    high_pass : float, optional
        Cut-off frequency in Hz (cosine drift removal).

    Returns
    -------
    cleaned : ndarray of shape (n_volumes, n_voxels)
        float32; voxels that are not finite or constant are set to 0.
    bad : ndarray of bool, shape (n_voxels,)
        Voxels that were not finite or had no variance in this run.
    """
    from nilearn.signal import clean

    finite = np.isfinite(data).all(axis=0)
    constant = np.ptp(np.where(np.isfinite(data), data, 0), axis=0) <= 0
    bad = ~finite | constant
    data = np.where(bad[None, :], 0.0, data).astype(np.float32, copy=False)
    cleaned = clean(
        data, detrend=detrend, standardize="zscore_sample" if standardize else False,
        high_pass=high_pass or None, t_r=tr, ensure_finite=False,
    ).astype(np.float32, copy=False)
    cleaned[:, bad] = 0.0
    return cleaned, bad
