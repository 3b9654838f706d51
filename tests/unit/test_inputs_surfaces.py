"""GIFTI and CIFTI reading and writing of bids_app.io.surfaces."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bids_app.errors import DatasetError
from bids_app.io.surfaces import (
    cifti_info,
    count_gifti_arrays,
    data_kind,
    gifti_n_vertices,
    load_cifti_series,
    load_gifti_series,
    load_surface_run,
    write_dscalar,
    write_func_gifti,
)


def _gifti(path, data):
    arrays = [nib.gifti.GiftiDataArray(row.astype(np.float32), datatype="NIFTI_TYPE_FLOAT32")
              for row in data]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), path)
    return path


def _models():
    return (nib.cifti2.BrainModelAxis.from_surface(np.arange(0, 40, 2), 100,
                                                   "CIFTI_STRUCTURE_CORTEX_LEFT")
            + nib.cifti2.BrainModelAxis.from_mask(np.eye(4, dtype=bool)[:, :, None]
                                                  .repeat(2, axis=2),
                                                  affine=np.eye(4), name="thalamus_left"))


def _dtseries(path, data, tr=1.5):
    series = nib.cifti2.SeriesAxis(start=0.0, step=tr, size=len(data), unit="SECOND")
    header = nib.cifti2.Cifti2Header.from_axes((series, _models()))
    nib.save(nib.cifti2.Cifti2Image(data.astype(np.float32), header), path)
    return path


def test_data_kind_from_extension():
    assert data_kind("a_bold.func.gii") == "surface"
    assert data_kind("a_bold.dtseries.nii") == "cifti"
    assert data_kind("a_bold.nii.gz") == "volume"


def test_gifti_series_roundtrip_and_counts(tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((7, 30)), rng.standard_normal((7, 25))
    files = {"L": _gifti(tmp_path / "l.func.gii", left), "R": _gifti(tmp_path / "r.func.gii",
                                                                      right)}
    assert count_gifti_arrays(files["L"]) == 7
    assert gifti_n_vertices(files["R"]) == 25
    series = load_gifti_series(files["L"])
    assert series.dtype == np.float32 and series.shape == (7, 30)
    np.testing.assert_allclose(series, left, rtol=1e-6)
    both, sizes = load_surface_run(files)
    assert both.shape == (7, 55) and sizes == {"L": 30, "R": 25}
    np.testing.assert_allclose(both[:, 30:], right, rtol=1e-6)


def test_hemispheres_of_different_length_are_refused(tmp_path):
    files = {"L": _gifti(tmp_path / "l.func.gii", np.zeros((5, 4))),
             "R": _gifti(tmp_path / "r.func.gii", np.zeros((6, 4)))}
    with pytest.raises(DatasetError, match="hemispheres must come from one run"):
        load_surface_run(files)


def test_func_gifti_written_per_hemisphere(tmp_path):
    values = np.linspace(-1, 1, 12)
    write_func_gifti(tmp_path / "m_hemi-R.func.gii", values, "R", "stat-r")
    img = nib.load(tmp_path / "m_hemi-R.func.gii")
    assert img.meta["AnatomicalStructurePrimary"] == "CortexRight"
    np.testing.assert_allclose(img.darrays[0].data, values, rtol=1e-6)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary left


def test_cifti_read_and_dscalar_keeps_brain_models(tmp_path):
    data = np.random.default_rng(1).standard_normal((9, 28))
    path = _dtseries(tmp_path / "x_bold.dtseries.nii", data, tr=0.71)
    info = cifti_info(path)
    assert info == {"n_volumes": 9, "tr": pytest.approx(0.71), "n_grayordinates": 28}
    np.testing.assert_allclose(load_cifti_series(path), data, rtol=1e-6)
    values = np.arange(28, dtype=float)
    out = tmp_path / "x_stat-r_statmap.dscalar.nii"
    write_dscalar(out, values, path, "stat-r")
    img = nib.load(out)
    assert isinstance(img.header.get_axis(0), nib.cifti2.ScalarAxis)
    assert img.header.get_axis(0).name[0] == "stat-r"
    assert img.header.get_axis(1) == _models()
    np.testing.assert_allclose(np.asanyarray(img.dataobj)[0], values)


def test_cifti_info_rejects_non_series(tmp_path):
    header = nib.cifti2.Cifti2Header.from_axes((nib.cifti2.ScalarAxis(["a"]), _models()))
    path = tmp_path / "x.dscalar.nii"
    nib.save(nib.cifti2.Cifti2Image(np.zeros((1, 28), dtype=np.float32), header), path)
    with pytest.raises(DatasetError, match="dense time series"):
        cifti_info(path)
