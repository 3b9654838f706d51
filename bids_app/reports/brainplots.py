"""Brain figures for the reports: glass brains of volumes, surface maps of hemispheres.

Each function returns an HTML ``<figure>`` (PNG data URI) or an explanatory note
when the map cannot be drawn (e.g. a surface mesh that is not shipped offline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..group.maps import hemisphere_of, load_values, map_kind
from .html import figure, figure_data_uri, matplotlib_agg, note


def _vmax(values: np.ndarray, floor: float = 1e-3) -> float:
    finite = np.abs(values[np.isfinite(values) & (values != 0)])
    return float(max(np.percentile(finite, 99.5), floor)) if finite.size else 1.0


def _max_abs_projection(data: np.ndarray, axis: int) -> np.ndarray:
    """Signed value of largest magnitude along ``axis`` (a maximum-intensity projection)."""
    index = np.nanargmax(np.abs(data), axis=axis)
    return np.take_along_axis(data, np.expand_dims(index, axis), axis).squeeze(axis)


def glass_brain(path: str | Path, title: str, caption: str, fig_id: str, *,
                cmap: str = "RdBu_r", threshold: float | str | None = "auto",
                symmetric: bool = True, transform=None, projection: str = "max") -> str:
    """Glass-brain figure of a NIfTI map: sagittal, coronal and axial projections.

    Each panel shows, along one axis, the value of largest magnitude (a
    maximum-intensity projection, as nilearn's glass brains do) inside the
    outline of the map's analysed voxels, in millimetres of the image's space.

    Parameters
    ----------
    path : str or Path
        A 3-D NIfTI map.
    title, caption, fig_id : str
        Figure title, caption and HTML id.
    cmap : str
        Matplotlib colour map.
    threshold : float, 'auto' or None
        Values with a smaller magnitude are not drawn ('auto': a tenth of vmax).
    symmetric : bool
        Diverging colour scale around 0 (else from the minimum).
    transform : callable, optional
        Applied to the non-zero values before plotting (e.g. ``np.log10``).
    projection : {'max', 'mean'}
        Value of largest magnitude along each line of sight, or the mean of the
        analysed voxels on it (for maps such as alpha where extremes mislead).
    """
    import nibabel as nib
    from nilearn.image import reorder_img

    plt = matplotlib_agg()
    img = reorder_img(nib.load(str(path)), resample="nearest")
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    support = (data != 0) & np.isfinite(data)
    if transform is not None:
        data[support] = transform(data[support])
    vmax = _vmax(data[support]) if symmetric else float(np.max(data[support], initial=1.0))
    vmin = -vmax if symmetric else float(np.min(data[support], initial=0.0))
    if threshold == "auto":
        threshold = vmax / 10 if symmetric else None
    shown = np.where(support, data, np.nan)
    if threshold is not None:
        shown[np.abs(shown) < threshold] = np.nan
    shown_filled = np.nan_to_num(shown, nan=0.0)
    origin = img.affine[:3, 3]
    size = np.diag(img.affine)[:3] * np.array(data.shape)
    extents = {0: (origin[1], origin[1] + size[1], origin[2], origin[2] + size[2]),
               1: (origin[0], origin[0] + size[0], origin[2], origin[2] + size[2]),
               2: (origin[0], origin[0] + size[0], origin[1], origin[1] + size[1])}
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3),
                             gridspec_kw={"width_ratios": [size[1], size[0], size[0]]})
    for ax, axis, name in zip(axes, (0, 1, 2), ("sagittal", "coronal", "axial"), strict=True):
        if projection == "mean":
            counts = np.isfinite(shown).sum(axis=axis)
            sums = np.nansum(shown, axis=axis)
            projection_values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).T
        else:
            projection_values = _max_abs_projection(shown_filled, axis).T
        projection_values[projection_values == 0] = np.nan
        outline = support.any(axis=axis).T.astype(float)
        ax.contour(outline, levels=[0.5], colors="#999", linewidths=0.8, origin="lower",
                   extent=extents[axis])
        image = ax.imshow(projection_values, origin="lower", extent=extents[axis], cmap=cmap,
                          vmin=vmin, vmax=vmax, interpolation="nearest", aspect="equal")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8, pad=0.02)
    fig.suptitle(title, fontsize=10)
    return figure(figure_data_uri(fig), caption, fig_id)


def surface_map(path: str | Path, title: str, caption: str, fig_id: str, *,
                cmap: str = "RdBu_r") -> str:
    """Lateral and medial views of a one-hemisphere GIFTI map on nilearn's fsaverage5."""
    from nilearn import datasets, plotting

    plt = matplotlib_agg()
    values = load_values(path)
    hemi = hemisphere_of(path)
    if values.size != 10242 or hemi not in ("L", "R"):
        return note(f"{title}: surface maps are drawn on fsaverage5 (10242 vertices per "
                    f"hemisphere); this map has {values.size} vertices.")
    mesh = datasets.load_fsaverage("fsaverage5")
    part = "left" if hemi == "L" else "right"
    fig, axes = plt.subplots(1, 2, subplot_kw={"projection": "3d"}, figsize=(8, 3.6))
    vmax = _vmax(values)
    for ax, view in zip(axes, ("lateral", "medial"), strict=True):
        plotting.plot_surf_stat_map(mesh["inflated"].parts[part], values, hemi=part, view=view,
                                    cmap=cmap, vmax=vmax, axes=ax, figure=fig,
                                    colorbar=view == "medial", threshold=vmax / 10)
    fig.suptitle(title)
    return figure(figure_data_uri(fig), caption, fig_id)


def brain_map(path: str | Path, title: str, caption: str, fig_id: str, **kwargs) -> str:
    """Glass brain for volumes, surface views for GIFTI, a value histogram for CIFTI."""
    kind = map_kind(path)
    if kind == "volume":
        return glass_brain(path, title, caption, fig_id, **kwargs)
    if kind == "gifti":
        return surface_map(path, title, caption, fig_id, cmap=kwargs.get("cmap", "RdBu_r"))
    plt = matplotlib_agg()
    values = load_values(path)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.hist(values[values != 0], bins=60, color="#345")
    ax.set(title=f"{title} (grayordinates)", xlabel="value", ylabel="grayordinates")
    return figure(figure_data_uri(fig), caption + " (CIFTI: distribution over grayordinates)",
                  fig_id)
