"""Brain masks computed from raw BOLD runs."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from bids_app.io.bold import compute_brain_mask


def _synthetic_runs(folder, n_runs: int = 2, shape=(24, 24, 12), n_volumes: int = 30):
    """Raw-looking runs: a bright ellipsoid 'brain' in background noise that is never zero.

    Returns the run files and the brain voxels (bool array of ``shape``).
    """
    rng = np.random.default_rng(3)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radii = np.array(shape) * np.array([0.4, 0.45, 0.4])  # ~30% of the field of view
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) < 1
    tissue = 900 + 200 * rng.random(shape)  # grey/white contrast, fixed across runs
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    files = []
    for run in range(n_runs):
        data = np.abs(rng.normal(0, 40, shape + (n_volumes,)))  # Rician-like background
        data[brain] += tissue[brain, None] + rng.normal(0, 15, (int(brain.sum()), n_volumes))
        path = folder / f"sub-01_task-x_run-{run + 1}_bold.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(np.int16), affine), path)
        files.append(path)
    return files, brain


def test_epi_mask_excludes_noisy_background_and_keeps_the_brain(tmp_path):
    files, brain = _synthetic_runs(tmp_path)
    mean = np.asanyarray(nib.load(files[0]).dataobj).mean(axis=-1)
    assert (mean[~brain] > 0).all()  # a 'non-zero' mask would keep the whole field of view
    mask_img = compute_brain_mask(files, [None] * len(files))
    mask = np.asanyarray(mask_img.dataobj) > 0
    assert mask.shape == brain.shape
    np.testing.assert_allclose(mask_img.affine, nib.load(files[0]).affine)
    inner = ndimage.binary_erosion(brain)  # the brain but its outermost voxels
    far = ~ndimage.binary_dilation(brain)  # background more than one voxel away
    assert mask[inner].all()  # the brain is in (morphological opening may trim its edge)
    assert mask[brain].mean() > 0.9
    assert not mask[far].any() and mask[~brain].mean() < 0.01  # the background is out
    assert 2 * (mask & brain).sum() / (mask.sum() + brain.sum()) > 0.9  # Dice


def test_shipped_masks_are_intersected_instead(tmp_path):
    files, brain = _synthetic_runs(tmp_path, n_runs=2)
    affine = nib.load(files[0]).affine
    first, second = brain.copy(), brain.copy()
    first[:12], second[12:] = False, False
    second[12, brain[12]] = True  # both keep slab x = 12
    masks = []
    for index, values in enumerate((first, second)):
        path = tmp_path / f"mask{index}.nii.gz"
        nib.save(nib.Nifti1Image(values.astype(np.uint8), affine), path)
        masks.append(path)
    mask = np.asanyarray(compute_brain_mask(files, masks).dataobj) > 0
    np.testing.assert_array_equal(mask, first & second)
    assert mask.sum() == brain[12].sum() > 0
