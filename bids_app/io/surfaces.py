"""Read surface (GIFTI) and grayordinate (CIFTI-2) BOLD; write maps in the same format.

fMRIPrep writes one ``.func.gii`` per hemisphere (one data array per volume) and
CIFTI-2 dense time series (``space-fsLR_den-91k_bold.dtseries.nii``); the
HCP pipelines write the same CIFTI files. Maps are written back as one
``.func.gii`` per hemisphere, or as a ``.dscalar.nii`` carrying the brain models
(surface vertices and subcortical voxels) of the input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .derivatives import guard_io

HEMISPHERES = ("L", "R")
_STRUCTURE = {"L": "CortexLeft", "R": "CortexRight"}
#: TemplateFlow density labels of the fsaverage meshes (vertices per hemisphere).
FSAVERAGE_DENSITIES = {"fsaverage4": "3k", "fsaverage5": "10k", "fsaverage6": "41k",
                       "fsaverage": "164k"}
_TEMPLATEFLOW = "https://templateflow.s3.amazonaws.com"


def surface_reference(space: str, hemi: str) -> str | None:
    """URL of the TemplateFlow sphere of one hemisphere of an fsaverage mesh.

    Parameters
    ----------
    space : str
        ``space-`` label of the surface (``fsaverage5`` ...).
    hemi : {'L', 'R'}
        Hemisphere.

    Returns
    -------
    str or None
        None when the space is not an fsaverage mesh.
    """
    density = FSAVERAGE_DENSITIES.get(space)
    if density is None:
        return None
    return (f"{_TEMPLATEFLOW}/tpl-fsaverage/tpl-fsaverage_hemi-{hemi}_den-{density}"
            "_sphere.surf.gii")


def data_kind(path: str | Path) -> str:
    """Tell the kind of BOLD a file holds, from its extension.

    Returns
    -------
    {'volume', 'surface', 'cifti'}
    """
    name = Path(path).name
    if name.endswith(".func.gii"):
        return "surface"
    if name.endswith(".dtseries.nii"):
        return "cifti"
    return "volume"


def _load(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types on unreadable files
        raise DatasetError(f"cannot read '{path}' ({type(exc).__name__}: {exc}); re-export or "
                           "remove the file.") from None


def count_gifti_arrays(path: str | Path) -> int:
    """Count the data arrays (volumes) of a GIFTI file without decoding the data."""
    pattern = b"<DataArray"
    count, tail = 0, b""
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            block = tail + chunk
            count += block.count(pattern)
            tail = block[-(len(pattern) - 1):]  # too short to hold a whole match
    return count


def gifti_n_vertices(path: str | Path) -> int:
    """Vertices of a GIFTI file (size of its first data array)."""
    arrays = getattr(_load(Path(path)), "darrays", None)
    if not arrays:
        raise DatasetError(f"'{path}' holds no GIFTI data arrays; give a .func.gii time series.")
    return int(np.asarray(arrays[0].data).shape[0])


def load_gifti_series(path: str | Path) -> np.ndarray:
    """Time series of one hemisphere.

    Returns
    -------
    ndarray of shape (n_volumes, n_vertices)
        float32.
    """
    img = _load(Path(path))
    arrays = getattr(img, "darrays", None)
    if not arrays:
        raise DatasetError(f"'{path}' holds no GIFTI data arrays; give a .func.gii time series.")
    sizes = {int(np.asarray(d.data).size) for d in arrays}
    if len(sizes) != 1:
        raise DatasetError(f"the data arrays of '{path}' have different sizes {sorted(sizes)}; "
                           "every volume must cover the same vertices.")
    if len(arrays) == 1 and np.asarray(arrays[0].data).ndim == 2:  # (vertices, time) in one array
        return np.ascontiguousarray(np.asarray(arrays[0].data).T, dtype=np.float32)
    out = np.empty((len(arrays), sizes.pop()), dtype=np.float32)
    for i, darray in enumerate(arrays):
        out[i] = np.asarray(darray.data).ravel()
    return out


def load_surface_run(files: dict) -> tuple[np.ndarray, dict]:
    """Both hemispheres of a run, left then right.

    Parameters
    ----------
    files : dict
        ``{'L': path, 'R': path}``.

    Returns
    -------
    data : ndarray of shape (n_volumes, n_vertices_L + n_vertices_R)
        float32.
    sizes : dict
        Vertices per hemisphere.
    """
    parts, sizes = [], {}
    for hemi in HEMISPHERES:
        if hemi not in files:
            raise DatasetError(f"the {hemi} hemisphere of a surface run is missing (have "
                               f"{sorted(files)}); both .func.gii files are needed.")
        data = load_gifti_series(files[hemi])
        sizes[hemi] = int(data.shape[1])
        parts.append(data)
    if parts[0].shape[0] != parts[1].shape[0]:
        raise DatasetError(f"'{files['L']}' has {parts[0].shape[0]} volumes but '{files['R']}' "
                           f"has {parts[1].shape[0]}; the hemispheres must come from one run.")
    return np.concatenate(parts, axis=1), sizes


def load_cifti_series(path: str | Path) -> np.ndarray:
    """Grayordinate time series of a ``.dtseries.nii``.

    Returns
    -------
    ndarray of shape (n_volumes, n_grayordinates)
        float32.
    """
    img = _load(Path(path))
    if not hasattr(img.header, "get_axis"):
        raise DatasetError(f"'{path}' is not a CIFTI-2 file; give a .dtseries.nii.")
    try:
        raw = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated files raise several types
        raise DatasetError(f"cannot read the data of '{path}' ({type(exc).__name__}); the file "
                           "is truncated or corrupt.") from None
    return np.ascontiguousarray(raw, dtype=np.float32)


def cifti_info(path: str | Path) -> dict:
    """Volumes, repetition time and grayordinates of a ``.dtseries.nii`` (header only)."""
    import nibabel as nib

    img = _load(Path(path))
    try:
        series, models = img.header.get_axis(0), img.header.get_axis(1)
    except (AttributeError, ValueError, IndexError):
        raise DatasetError(f"'{path}' is not a CIFTI-2 dense time series; give a "
                           ".dtseries.nii.") from None
    if not isinstance(series, nib.cifti2.SeriesAxis) or not isinstance(
            models, nib.cifti2.BrainModelAxis):
        raise DatasetError(f"'{path}' is not a dense time series (axes {type(series).__name__}, "
                           f"{type(models).__name__}); give a .dtseries.nii.")
    step = float(series.step) * (1e-3 if series.unit.upper() == "MSEC" else 1.0)
    return {"n_volumes": int(series.size), "tr": step, "n_grayordinates": int(len(models))}


def write_func_gifti(final: Path, values: np.ndarray, hemi: str, name: str = "") -> None:
    """Write one hemisphere's map as a ``.func.gii`` (atomically).

    Parameters
    ----------
    final : Path
        Target file.
    values : ndarray of shape (n_vertices,)
        Map values.
    hemi : {'L', 'R'}
        Hemisphere (sets ``AnatomicalStructurePrimary``).
    name : str
        Short name of the map, stored in the data array's metadata.
    """
    import nibabel as nib

    darray = nib.gifti.GiftiDataArray(
        np.asarray(values, dtype=np.float32), intent="NIFTI_INTENT_ESTIMATE",
        datatype="NIFTI_TYPE_FLOAT32", meta=nib.gifti.GiftiMetaData({"Name": name or "map"}))
    img = nib.gifti.GiftiImage(
        meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": _STRUCTURE[hemi]}),
        darrays=[darray])
    guard_io(Path(final), lambda tmp: nib.save(img, str(tmp)))


def write_dscalar(final: Path, values: np.ndarray, template: str | Path, name: str) -> None:
    """Write a map as a ``.dscalar.nii`` with the brain models of ``template`` (atomically).

    Parameters
    ----------
    final : Path
        Target file (``.dscalar.nii``).
    values : ndarray of shape (n_grayordinates,)
        One value per grayordinate of the template.
    template : path-like
        A ``.dtseries.nii`` of the input: its brain-model axis is reused.
    name : str
        Name of the map (the scalar axis label).
    """
    import nibabel as nib

    models = _load(Path(template)).header.get_axis(1)
    values = np.asarray(values, dtype=np.float32).reshape(1, -1)
    if values.shape[1] != len(models):
        raise ValueError(f"{values.shape[1]} values for {len(models)} grayordinates")
    header = nib.cifti2.Cifti2Header.from_axes((nib.cifti2.ScalarAxis([name]), models))
    img = nib.cifti2.Cifti2Image(values, header)
    img.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_SCALARS")
    guard_io(Path(final), lambda tmp: nib.save(img, str(tmp)))
