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


def glass_brain(path: str | Path, title: str, caption: str, fig_id: str, *,
                cmap: str = "RdBu_r", threshold: float | str | None = "auto",
                symmetric: bool = True, transform=None) -> str:
    """Glass-brain figure of a NIfTI map (values optionally transformed first).

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
    """
    import nibabel as nib
    from nilearn import plotting

    matplotlib_agg()
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if transform is not None:
        inside = data != 0
        data[inside] = transform(data[inside])
        img = nib.Nifti1Image(data, img.affine)
    vmax = _vmax(data)
    if threshold == "auto":
        threshold = vmax / 10
    kwargs = {"plot_abs": False, "symmetric_cbar": symmetric}
    if not symmetric:
        inside = data[data != 0]
        kwargs["vmin"] = float(inside.min()) if inside.size else 0.0
    display = plotting.plot_glass_brain(img, colorbar=True, cmap=cmap, vmax=vmax,
                                        threshold=threshold, title=title, **kwargs)
    uri = figure_data_uri(display.frame_axes.figure)
    display.close()
    return figure(uri, caption, fig_id)


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
