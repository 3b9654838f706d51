"""Regions for group summaries: user atlases, the language network, top voxels.

With no atlas, regions are spheres around the language-network centres shipped in
``bids_app/data/language_network.tsv`` (see the README there for the source). A
user atlas may be a NIfTI label image (resampled to the maps' grid by nearest
neighbour; names from a ``.tsv`` beside it with ``index`` and ``name`` columns), a
GIFTI ``.label.gii`` per hemisphere or a CIFTI ``.dlabel.nii``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from .maps import element_coordinates, hemisphere_of, load_values, map_kind

LANGUAGE = "language"


@dataclass
class RegionSet:
    """Named boolean masks over the elements of one kind of map.

    Attributes
    ----------
    names : list of str
        Region names.
    masks : ndarray of shape (n_regions, n_elements)
        Membership of each element.
    source : str
        What the regions are (for tables and reports).
    """

    names: list
    masks: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.names)

    def methods(self, top_percent: float, n_subjects: int) -> str:
        """Methods sentence of the region and top-voxel values computed with these regions.

        Parameters
        ----------
        top_percent : float
            Share (%) of analysed elements in the top-voxel set.
        n_subjects : int
            Participants of the variant (one: its own map selects its top elements).

        Returns
        -------
        str
        """
        where = (f"over the elements of each of {len(self)} regions, {self.source}, and over "
                 "the whole analysed mask" if len(self) else
                 f"over the whole analysed mask (no regions: {self.source})")
        select = ("highest r in the participant's own map (one participant)" if n_subjects < 2
                  else "highest mean r over the other participants (leave-one-participant-out "
                  "selection)")
        return (f"Region values are each participant's mean r {where}; top-voxel values "
                f"(top{top_percent:g}pct) average, for each participant, the "
                f"{top_percent:g}% of analysed elements with the {select}.")


def language_centres() -> pd.DataFrame:
    """Read the shipped language-network centres (name, hemisphere, x, y, z, radius_mm)."""
    text = resources.files("bids_app").joinpath("data/language_network.tsv").read_text("utf-8")
    from io import StringIO

    return pd.read_csv(StringIO(text), sep="\t")


def language_network(coordinates: np.ndarray | None, radius_mm: float | None = None) -> RegionSet:
    """Spheres around the language-network centres, plus their union ``'language'``.

    Parameters
    ----------
    coordinates : ndarray of shape (n_elements, 3) or None
        Millimetre MNI coordinates of the map elements (NaN: not placeable).
    radius_mm : float, optional
        Sphere radius (default: the radius in the table, 10 mm).

    Returns
    -------
    RegionSet
        Empty when ``coordinates`` is None.
    """
    if coordinates is None:
        return RegionSet([], np.zeros((0, 0), dtype=bool), "none (no coordinates)")
    centres = language_centres()
    masks = []
    for row in centres.itertuples(index=False):
        radius = radius_mm or float(row.radius_mm)
        centre = np.array([row.x, row.y, row.z], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            masks.append(np.linalg.norm(coordinates - centre, axis=1) <= radius)
    masks = np.array(masks)
    union = masks.any(axis=0)
    radius_text = f"{radius_mm:g}" if radius_mm else "10"
    return RegionSet(list(centres["name"]) + [LANGUAGE], np.vstack([masks, union]),
                     f"language-network spheres ({radius_text} mm, MNI152)")


def _label_names(atlas: Path) -> dict:
    name = atlas.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else atlas.stem
    for candidate in (atlas.with_name(stem + ".tsv"),
                      atlas.with_name(stem.rsplit("_", 1)[0] + "_dseg.tsv")):
        if candidate.exists():
            table = pd.read_csv(candidate, sep="\t")
            if {"index", "name"} <= set(table.columns):
                return {int(i): str(n) for i, n in zip(table["index"], table["name"], strict=True)}
    return {}


def _from_labels(labels: np.ndarray, names: dict, source: str) -> RegionSet:
    values = [int(v) for v in np.unique(labels) if v > 0]
    if not values:
        raise UsageError(f"the atlas '{source}' holds no positive labels on the maps' grid; "
                         "check that it is in the same space as the maps.")
    return RegionSet([names.get(v, f"label-{v}") for v in values],
                     np.array([labels == v for v in values]), f"atlas {Path(source).name}")


def load_atlas(atlas: str | list, template: str | Path) -> RegionSet:
    """Regions of a user atlas on the elements of ``template``.

    Parameters
    ----------
    atlas : str or list of str
        A NIfTI label image, a CIFTI ``.dlabel.nii``, or GIFTI ``.label.gii``
        files (one per hemisphere; the one matching the template's hemisphere is used).
    template : str or Path
        A participant map giving the geometry.

    Returns
    -------
    RegionSet
    """
    import nibabel as nib

    files = [Path(a) for a in ([atlas] if isinstance(atlas, str) else atlas)]
    for file in files:
        if not file.exists():
            raise UsageError(f"the atlas '{file}' does not exist; fix 'statistics.atlas' in the "
                             "experiment spec.")
    kind = map_kind(template)
    matching = [f for f in files if map_kind(f) == kind]
    if kind == "gifti":
        hemi = hemisphere_of(template)
        matching = [f for f in matching if hemisphere_of(f) in (hemi, None)]
    if not matching:
        wanted = ".label.gii per hemisphere" if kind == "gifti" else kind
        raise UsageError(f"'statistics.atlas' holds no {kind} atlas for "
                         f"'{Path(template).name}'; give a {wanted} atlas.")
    file = matching[0]
    img = nib.load(str(file))
    if kind == "volume":
        from nilearn.image import resample_to_img

        resampled = resample_to_img(img, nib.load(str(template)), interpolation="nearest",
                                    force_resample=True, copy_header=True)
        labels = np.rint(np.asanyarray(resampled.dataobj)).astype(np.int64).ravel()
        return _from_labels(labels, _label_names(file), str(file))
    if kind == "gifti":
        labels = np.asarray(img.darrays[0].data).astype(np.int64).ravel()
        names = {int(k): str(v) for k, v in img.labeltable.get_labels_as_dict().items()}
    else:
        labels = np.asarray(img.get_fdata())[0].astype(np.int64)
        table = img.header.get_axis(0).label[0]
        names = {int(k): str(v[0]) for k, v in table.items()}
    n_elements = load_values(template).size
    if labels.size != n_elements:
        raise UsageError(f"the atlas '{file}' has {labels.size} elements but the maps have "
                         f"{n_elements}; use an atlas on the same mesh or grayordinates.")
    return _from_labels(labels, names, str(file))


def regions_for(template: str | Path, atlas: str | list | None = None,
                radius_mm: float | None = None) -> RegionSet:
    """Build the regions: the user's atlas when given, else language-network spheres."""
    if atlas:
        return load_atlas(atlas, template)
    return language_network(element_coordinates(template), radius_mm)


def region_means(values: np.ndarray, valid: np.ndarray, regions: RegionSet) -> pd.DataFrame:
    """Mean of each subject's values in each region (and the whole mask).

    Parameters
    ----------
    values : ndarray of shape (n_subjects, n_elements)
    valid : ndarray of shape (n_elements,), bool
        Elements analysed in every subject (the group mask).
    regions : RegionSet

    Returns
    -------
    DataFrame
        Columns ``subject_index``, ``region``, ``n_voxels``, ``mean_r``; region
        ``'brain'`` is the whole group mask. Regions without valid elements are left out.
    """
    rows = []
    pairs = zip(regions.names, regions.masks, strict=True)
    sets = [("brain", valid)] + [(n, m & valid) for n, m in pairs]
    for name, mask in sets:
        if not mask.any():
            continue
        means = values[:, mask].mean(axis=1)
        for index, value in enumerate(means):
            rows.append({"subject_index": index, "region": name, "n_voxels": int(mask.sum()),
                         "mean_r": float(value)})
    return pd.DataFrame(rows)


def top_voxel_means(values: np.ndarray, valid: np.ndarray, percent: float) -> np.ndarray:
    """Each subject's mean in the top ``percent`` % elements chosen without that subject.

    The top elements for subject ``s`` are those with the highest mean over the
    *other* subjects (leave-one-subject-out), so that selecting and measuring do
    not use the same data; with one subject the subject's own map is used.

    Parameters
    ----------
    values : ndarray of shape (n_subjects, n_elements)
    valid : ndarray of shape (n_elements,), bool
    percent : float
        Share of valid elements to keep, in (0, 100].

    Returns
    -------
    ndarray of shape (n_subjects,)
    """
    data = values[:, valid]
    n_sub, n_el = data.shape
    k = max(1, int(round(n_el * percent / 100.0)))
    total = data.sum(axis=0)
    out = np.empty(n_sub)
    for s in range(n_sub):
        selector = (total - data[s]) / (n_sub - 1) if n_sub > 1 else data[s]
        top = np.argpartition(-selector, k - 1)[:k]
        out[s] = data[s, top].mean()
    return out
