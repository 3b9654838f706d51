"""Read and write participant and group maps of any supported kind as flat vectors.

The group stage works on one value per *element*: a voxel of a NIfTI volume, a
vertex of a GIFTI surface (one hemisphere per file) or a grayordinate of a CIFTI
``.dscalar.nii``. :func:`load_values` returns that vector, :func:`save_values`
writes a vector back with the geometry of a template map of the same kind.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..io.derivatives import write_nifti

KINDS = ("volume", "gifti", "cifti")


def map_kind(path: str | Path) -> str:
    """Kind of a map file: ``'volume'``, ``'gifti'`` or ``'cifti'``.

    Parameters
    ----------
    path : str or Path
        A ``.nii[.gz]``, ``.gii`` or ``.dscalar.nii`` / ``.dlabel.nii`` file.

    Returns
    -------
    str
        One of :data:`KINDS`.
    """
    name = Path(path).name
    if name.endswith((".dscalar.nii", ".dlabel.nii", ".dtseries.nii")):
        return "cifti"
    if name.endswith(".gii") or name.endswith(".gii.gz"):
        return "gifti"
    if name.endswith((".nii", ".nii.gz")):
        return "volume"
    raise DatasetError(f"'{path}' is not a NIfTI, GIFTI or CIFTI file; maps must end in "
                       "'.nii.gz', '.func.gii', '.label.gii', '.dscalar.nii' or '.dlabel.nii'.")


def _load(path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a damaged file
        raise DatasetError(f"cannot read the map '{path}' ({exc}); rerun the participant level "
                           "to rewrite it.") from None


def load_values(path: str | Path) -> np.ndarray:
    """Read the values of a map as one flat float32 vector.

    Parameters
    ----------
    path : str or Path
        A 3-D NIfTI volume, a one-hemisphere GIFTI or a one-map CIFTI.

    Returns
    -------
    ndarray of shape (n_elements,)
        Voxels (C order), vertices or grayordinates.
    """
    img = _load(path)
    kind = map_kind(path)
    try:
        if kind == "gifti":
            data = np.asarray(img.darrays[0].data)
        elif kind == "cifti":
            data = np.asarray(img.get_fdata(dtype=np.float32))[0]
        else:
            data = np.asanyarray(img.dataobj)
            if data.ndim == 4 and data.shape[3] == 1:
                data = data[..., 0]
    except (EOFError, OSError, ValueError, zlib.error) as exc:  # truncated or damaged data
        raise corrupt_output(path, exc) from None
    return np.asarray(data, dtype=np.float32).ravel()


def load_scores(maps, key: tuple, subjects: list) -> np.ndarray | None:
    """Stack the participants' held-out score maps (``stat-z``) of one variant.

    Parameters
    ----------
    maps : DataFrame
        Participant maps (columns ``sub, desc, task, space, hemi, kind, stat, path``).
    key : tuple
        ``(desc, task, space, hemi, kind)`` of the variant's maps.
    subjects : list of str
        Participants in the order of the group's r maps.

    Returns
    -------
    ndarray of shape (n_subjects, n_elements) or None
        None unless every participant has a ``stat-z`` map of the same size as its
        ``stat-r`` map (written by the participant level with a held-out test).
    """
    columns = ("desc", "task", "space", "hemi", "kind")
    rows = maps[maps["stat"] == "z"]
    for column, value in zip(columns, key, strict=True):
        rows = rows[rows[column].fillna("") == (value or "")]
    paths = dict(zip(rows["sub"], rows["path"], strict=True))
    if any(subject not in paths for subject in subjects):
        return None
    return np.stack([load_values(paths[subject]) for subject in subjects])


def corrupt_output(path: str | Path, exc: BaseException) -> DatasetError:
    """The error for a participant output that exists but cannot be read in full.

    Parameters
    ----------
    path : str or Path
        The damaged file (a map, a mask or a cleaned BOLD run).
    exc : BaseException
        What reading it raised.

    Returns
    -------
    DatasetError
        Naming the file, the participant and how to rewrite it.
    """
    subject = next((part for part in Path(path).parts if part.startswith("sub-")), "its")
    return DatasetError(
        f"the participant output '{path}' is truncated or corrupt ({exc or type(exc).__name__}); "
        f"delete it and rerun the participant level for {subject} (or leave that participant "
        "out with --participant-label), then rerun the group level.")


def readable_maps(rows, present: set) -> tuple:
    """Keep the participants whose map of a variant can be opened; explain the others.

    Parameters
    ----------
    rows : DataFrame
        The ``stat-r`` rows of one variant (columns ``sub`` and ``path``).
    present : set of str
        Participants with outputs of this variant in OUTPUT_DIR (any map or score table).

    Returns
    -------
    rows : DataFrame
        The rows whose file can be opened.
    warnings : list of str
        One sentence per participant left out (map missing or not readable).
    """
    keep, warnings = [], []
    for index, row in rows.iterrows():
        try:
            with open(row["path"], "rb"):
                keep.append(index)
        except PermissionError:
            warnings.append(f"sub-{row['sub']} left out: its map '{row['path']}' is not readable "
                            "(permission denied); fix its permissions and rerun the group level.")
    for subject in sorted(present - set(rows["sub"])):
        warnings.append(f"sub-{subject} left out: it has outputs of this variant but no stat-r "
                        "map; rerun the participant level for it, then the group level.")
    return rows.loc[keep], warnings


def included_scores(scores, datasets: dict):
    """The participants' score rows of the (participant, variant) pairs the group maps used.

    Parameters
    ----------
    scores : DataFrame
        Stacked ``_scores.tsv`` tables (``subject`` and ``variant`` columns).
    datasets : dict
        Group data per variant key (each with ``variant`` and ``subjects``).

    Returns
    -------
    DataFrame
        The rows of included pairs only, so that every table lists the same participants.
    """
    if scores.empty or "variant" not in scores:
        return scores
    pairs = {(str(s), d.variant) for d in datasets.values() for s in d.subjects}
    keep = [(str(s), v) in pairs for s, v in zip(scores["subject"], scores["variant"],
                                                  strict=True)]
    return scores[keep].reset_index(drop=True)


def geometry(path: str | Path) -> tuple:
    """Describe a map's geometry, hashable (shape and, for volumes, affine)."""
    img = _load(path)
    kind = map_kind(path)
    if kind == "volume":
        return (kind, tuple(img.shape[:3]), tuple(np.round(img.affine, 3).ravel()))
    if kind == "gifti":
        return (kind, int(np.asarray(img.darrays[0].data).size))
    return (kind, int(img.shape[-1]))


def save_values(values: np.ndarray, template: str | Path, final: str | Path) -> Path:
    """Write a vector with the geometry of ``template`` (same kind) at ``final``.

    Parameters
    ----------
    values : ndarray of shape (n_elements,)
        Values in the element order of :func:`load_values` of ``template``.
    template : str or Path
        A map of the same kind and size.
    final : str or Path
        Output file (written atomically).

    Returns
    -------
    Path
        ``final``.
    """
    import nibabel as nib

    img = _load(template)
    kind = map_kind(template)
    values = np.asarray(values, dtype=np.float32)
    if kind == "gifti":
        array = nib.gifti.GiftiDataArray(values, intent="NIFTI_INTENT_NONE",
                                         datatype="NIFTI_TYPE_FLOAT32")
        out = nib.gifti.GiftiImage(darrays=[array], meta=img.meta)
    elif kind == "cifti":
        axis = img.header.get_axis(1)
        scalar = nib.cifti2.ScalarAxis([Path(final).name.split(".")[0]])
        out = nib.cifti2.Cifti2Image(values[None, :], header=(scalar, axis))
    else:
        out = nib.Nifti1Image(values.reshape(img.shape[:3]), img.affine)
        out.header.set_xyzt_units("mm", "sec")
    write_nifti(Path(final), out)
    return Path(final)


def element_coordinates(path: str | Path) -> np.ndarray | None:
    """Millimetre coordinates of the elements of a map, when they are known.

    Volumes: voxel centres through the affine. CIFTI: the voxels of its volume
    structures (surface vertices get NaN). GIFTI: vertices of nilearn's fsaverage
    pial mesh when the vertex count matches fsaverage3-7, otherwise None.

    Returns
    -------
    ndarray of shape (n_elements, 3) or None
    """
    img = _load(path)
    kind = map_kind(path)
    if kind == "volume":
        ijk = np.indices(img.shape[:3]).reshape(3, -1).T
        return ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    if kind == "cifti":
        axis = img.header.get_axis(1)
        coords = np.full((len(axis), 3), np.nan)
        if axis.volume_mask.any():
            voxels = axis.voxel[axis.volume_mask]
            coords[axis.volume_mask] = voxels @ axis.affine[:3, :3].T + axis.affine[:3, 3]
        return coords
    n_vertices = int(np.asarray(img.darrays[0].data).size)
    return fsaverage_coordinates(n_vertices, hemisphere_of(path))


_FSAVERAGE = {642: "fsaverage3", 2562: "fsaverage4", 10242: "fsaverage5",
              40962: "fsaverage6", 163842: "fsaverage"}


def fsaverage_coordinates(n_vertices: int, hemi: str | None) -> np.ndarray | None:
    """Pial coordinates of an fsaverage mesh with ``n_vertices`` (None if unknown)."""
    mesh_name = _FSAVERAGE.get(n_vertices)
    if mesh_name is None or hemi not in ("L", "R"):
        return None
    from nilearn import datasets

    try:
        mesh = datasets.load_fsaverage(mesh_name)
    except (OSError, ValueError):  # only fsaverage5 ships with nilearn; others need a download
        return None
    part = mesh["pial"].parts["left" if hemi == "L" else "right"]
    return np.asarray(part.coordinates, dtype=np.float64)


def hemisphere_of(path: str | Path) -> str | None:
    """``'L'``/``'R'`` from a ``hemi-`` entity or a FreeSurfer ``lh.``/``rh.`` prefix."""
    name = Path(path).name
    for part in name.split("_"):
        if part.startswith("hemi-"):
            return part[5:6].upper()
    if name.startswith(("lh.", "L.")):
        return "L"
    if name.startswith(("rh.", "R.")):
        return "R"
    return None


def read_sidecar(path: str | Path) -> dict:
    """Read the JSON sidecar of a map ({} when absent or unreadable)."""
    name = Path(path).name
    for ext in (".nii.gz", ".dscalar.nii", ".func.gii", ".gii", ".nii"):
        if name.endswith(ext):
            sidecar = Path(path).with_name(name[: -len(ext)] + ".json")
            break
    else:
        return {}
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
