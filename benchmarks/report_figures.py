"""Report glass brains: brainenc's projection figure vs nilearn's ``plot_glass_brain``.

The group report draws one or two brain figures per variant and comparison, so a
study with dozens of variants draws dozens of them. Side by side in one process,
on the same map (MNI152 grey-matter mask grid at ``--resolution`` mm, a planted
blob plus noise), each rendered to an embedded PNG exactly as the reports do:

(a) ``nilearn.plotting.plot_glass_brain`` (the figure the reports used first);
(b) ``bids_app.reports.brainplots.glass_brain`` (three max-|value| projections).

Each timing is the median of ``--repeats`` after one warm-up; the report gives
seconds per figure and the ratio (a)/(b).

Usage::

    python benchmarks/report_figures.py                 # 2 mm grid, 5 repeats
    python benchmarks/report_figures.py --resolution 4 --repeats 2   # CI
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_map(folder: Path, resolution: int) -> Path:
    """A group-mean-like r map on the MNI grey-matter grid."""
    import nibabel as nib
    from nilearn.datasets import load_mni152_gm_mask

    mask_img = load_mni152_gm_mask(resolution=resolution)
    mask = np.asanyarray(mask_img.dataobj) > 0
    rng = np.random.default_rng(0)
    data = np.where(mask, 0.02 + 0.05 * rng.standard_normal(mask.shape), 0).astype(np.float32)
    ijk = np.indices(mask.shape).reshape(3, -1).T
    xyz = ijk @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
    blob = (np.linalg.norm(xyz - [-56, -42, 6], axis=1) < 12).reshape(mask.shape) & mask
    data[blob] += 0.3
    path = folder / "meanr.nii.gz"
    nib.save(nib.Nifti1Image(data, mask_img.affine), path)
    return path


def nilearn_figure(path: Path) -> str:
    """Render nilearn's glass brain to a data URI as the first reports did."""
    import nibabel as nib
    from nilearn import plotting

    from bids_app.reports.html import figure_data_uri, matplotlib_agg

    matplotlib_agg()
    img = nib.load(str(path))
    values = np.asanyarray(img.dataobj)
    vmax = float(np.percentile(np.abs(values[values != 0]), 99.5))
    display = plotting.plot_glass_brain(img, colorbar=True, plot_abs=False, cmap="RdBu_r",
                                        vmax=vmax, threshold=vmax / 10, title="mean r")
    uri = figure_data_uri(display.frame_axes.figure)
    display.close()
    return uri


def brainenc_figure(path: Path) -> str:
    """Render brainenc's projection glass brain."""
    from bids_app.reports.brainplots import glass_brain

    return glass_brain(path, "mean r", "caption", "fig")


def timed(func, path: Path, repeats: int) -> float:
    """Median seconds of ``func(path)`` after one warm-up call."""
    func(path)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    """Run the benchmark and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=2, choices=(2, 3, 4, 8))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_map(Path(tmp), args.resolution)
        t_nilearn = timed(nilearn_figure, path, args.repeats)
        t_ours = timed(brainenc_figure, path, args.repeats)
    print(f"glass brain, {args.resolution} mm grid, median of {args.repeats}:")
    print(f"  (a) nilearn plot_glass_brain : {t_nilearn:.3f} s/figure")
    print(f"  (b) brainenc glass_brain     : {t_ours:.3f} s/figure")
    print(f"  ratio (a)/(b)                : {t_nilearn / t_ours:.1f}")


if __name__ == "__main__":
    main()
