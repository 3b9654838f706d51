"""Group regions: language-network spheres, user atlases, top voxels."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.errors import UsageError
from bids_app.group.maps import (
    element_coordinates,
    geometry,
    load_values,
    read_sidecar,
    save_values,
)
from bids_app.group.regions import (
    language_centres,
    language_network,
    load_atlas,
    region_means,
    regions_for,
    top_voxel_means,
)

AFFINE = np.array([[4.0, 0, 0, -90], [0, 4, 0, -126], [0, 0, 4, -72], [0, 0, 0, 1]])


@pytest.fixture
def volume(tmp_path):
    path = tmp_path / "sub-01_stat-r_desc-x_statmap.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((46, 55, 46), dtype=np.float32), AFFINE), path)
    return path


def test_centres_table_is_complete():
    table = language_centres()
    regions = {"IFG", "MFG", "AntTemp", "PostTemp", "AngG"}
    assert {n.split("_", 1)[1] for n in table["name"]} == regions
    assert (table["hemisphere"] == "L").sum() == 5 and (table["hemisphere"] == "R").sum() == 5
    table["region"] = table["name"].str[3:]
    both = table[table["hemisphere"] == "L"].merge(table[table["hemisphere"] == "R"],
                                                   on="region", suffixes=("_l", "_r"))
    assert len(both) == 5
    np.testing.assert_array_equal(both["x_l"], -both["x_r"])
    np.testing.assert_array_equal(both["y_l"], both["y_r"])
    assert (both["x_l"] < 0).all() and (both["radius_mm_l"] == 10).all()


def test_language_spheres_on_a_volume(volume):
    regions = regions_for(volume)
    coords = element_coordinates(volume)
    assert regions.names[-1] == "language"
    assert regions.masks.shape == (11, coords.shape[0])
    ifg = regions.masks[regions.names.index("LH_IFG")]
    centre = np.array([-50, 20, 18])
    assert np.all(np.linalg.norm(coords[ifg] - centre, axis=1) <= 10)
    # a 10 mm sphere on a 4 mm grid holds about 4/3 pi 10^3 / 64 voxels
    assert 40 <= ifg.sum() <= 85
    assert np.array_equal(regions.masks[-1], regions.masks[:-1].any(axis=0))
    smaller = language_network(coords, radius_mm=6)
    assert smaller.masks[0].sum() < ifg.sum()


def test_nifti_atlas_resampled_with_names(tmp_path, volume):
    labels = np.zeros((23, 28, 23), dtype=np.int16)  # 8 mm grid, same field of view
    labels[5:10, 5:10, 5:10] = 3
    labels[12:15, 12:15, 12:15] = 7
    affine = AFFINE.copy()
    affine[:3, :3] *= 2
    atlas = tmp_path / "atlas_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), atlas)
    pd.DataFrame({"index": [3, 7], "name": ["alpha", "beta"]}).to_csv(
        tmp_path / "atlas_dseg.tsv", sep="\t", index=False)
    regions = load_atlas(str(atlas), volume)
    assert regions.names == ["alpha", "beta"]
    assert regions.masks[0].sum() == 5 ** 3 * 8  # each 8 mm voxel is 8 voxels of 4 mm
    assert regions.masks[1].sum() == 3 ** 3 * 8


def test_missing_atlas_is_a_usage_error(volume, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_atlas(str(tmp_path / "nope.nii.gz"), volume)


def _gifti(path, values, labels=None):
    darray = nib.gifti.GiftiDataArray(np.asarray(values, dtype=np.float32 if labels is None
                                                 else np.int32))
    img = nib.gifti.GiftiImage(darrays=[darray])
    if labels:
        for key, name in labels.items():
            label = nib.gifti.GiftiLabel(key)
            label.label = name
            img.labeltable.labels.append(label)
    nib.save(img, path)
    return path


def test_gifti_atlas_and_fsaverage_spheres(tmp_path):
    n = 10242
    surface = _gifti(tmp_path / "sub-01_hemi-L_stat-r_desc-x_statmap.func.gii",
                     np.linspace(0, 1, n))
    labels = np.zeros(n, dtype=np.int32)
    labels[:100] = 2
    atlas_l = _gifti(tmp_path / "lh.atlas.label.gii", labels, {0: "unknown", 2: "temporal"})
    atlas_r = _gifti(tmp_path / "rh.atlas.label.gii", np.zeros(n, dtype=np.int32) + 5,
                     {5: "right"})
    regions = load_atlas([str(atlas_r), str(atlas_l)], surface)
    assert regions.names == ["temporal"] and regions.masks[0].sum() == 100
    spheres = regions_for(surface)  # fsaverage5 ships with nilearn
    names = spheres.names
    assert spheres.masks[names.index("LH_PostTemp")].sum() > 0
    assert spheres.masks[names.index("RH_PostTemp")].sum() == 0  # other hemisphere
    save_values(np.arange(n), surface, tmp_path / "copy.func.gii")
    np.testing.assert_array_equal(load_values(tmp_path / "copy.func.gii"), np.arange(n))


def test_cifti_round_trip_and_dlabel(tmp_path):
    n_vertices = 50
    brain = nib.cifti2.BrainModelAxis.from_mask(np.ones(n_vertices, bool), name="CortexLeft")
    scalar = nib.cifti2.ScalarAxis(["r"])
    data = np.linspace(-0.2, 0.5, n_vertices, dtype=np.float32)[None]
    path = tmp_path / "sub-01_stat-r_desc-x_statmap.dscalar.nii"
    nib.save(nib.cifti2.Cifti2Image(data, header=(scalar, brain)), path)
    np.testing.assert_allclose(load_values(path), data[0])
    assert geometry(path) == ("cifti", n_vertices)
    out = save_values(load_values(path) * 2, path, tmp_path / "twice.dscalar.nii")
    np.testing.assert_allclose(load_values(out), 2 * data[0], rtol=1e-6)
    labels = np.zeros((1, n_vertices), dtype=np.float32)
    labels[0, 10:20] = 4
    label_axis = nib.cifti2.LabelAxis(["atlas"], [{0: ("???", (0, 0, 0, 0)),
                                                   4: ("ROI4", (1, 0, 0, 1))}])
    atlas = tmp_path / "atlas.dlabel.nii"
    nib.save(nib.cifti2.Cifti2Image(labels, header=(label_axis, brain)), atlas)
    regions = load_atlas(str(atlas), path)
    assert regions.names == ["ROI4"] and regions.masks[0].sum() == 10


def test_region_means_and_loso_top_voxels():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.05, (4, 1000))
    values[:, :50] += 0.4
    valid = np.ones(1000, bool)
    valid[-100:] = False
    from bids_app.group.regions import RegionSet

    regions = RegionSet(["a"], np.r_[np.ones(50, bool), np.zeros(950, bool)][None], "test")
    frame = region_means(values, valid, regions)
    brain = frame[frame["region"] == "brain"]
    assert (brain["n_voxels"] == 900).all()
    np.testing.assert_allclose(brain["mean_r"], values[:, valid].mean(axis=1))
    top = top_voxel_means(values, valid, 5.0)  # 45 voxels
    assert np.all(top > 0.3)
    # selection without the subject: noise alone would not select its own lucky voxels
    noise = rng.normal(0, 0.05, (4, 1000))
    assert abs(top_voxel_means(noise, valid, 5.0).mean()) < 0.03


def test_sidecar_reader(tmp_path, volume):
    (tmp_path / "sub-01_stat-r_desc-x_statmap.json").write_text(json.dumps({"Layer": 3}))
    assert read_sidecar(volume) == {"Layer": 3}
    assert read_sidecar(tmp_path / "other.nii.gz") == {}
