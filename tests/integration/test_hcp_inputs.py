"""HCP-pipeline outputs (ds004078 layout) read through the [inputs] mapping, end to end.

The participant steps run on synthetic MNI volumes and CIFTI dense time series
with a planted signal and random word features; the command line runs them with
a tiny BERT. Maps must recover the planted voxels and stay on the input's grid
(volumes) or carry the input's brain models (CIFTI).
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bids_app.config import default_spec
from bids_app.spec_inputs import InputsConfig
from tests.helpers.hcp import CIFTI, VOLUME, hcp_spec_text, make_hcp_dataset
from tests.helpers.pipeline import auc, run_steps
from tests.helpers.validation import sidecar_errors, validate

NAME = "sub-01_task-story_space-MNI152NLin6Asym_res-2"


@pytest.fixture(scope="module")
def hcp(tmp_path_factory):
    return make_hcp_dataset(tmp_path_factory.mktemp("hcp"))


def _spec(**bold):
    spec = default_spec()
    spec.inputs = InputsConfig(layout="hcp", volume=VOLUME, cifti=CIFTI, resolution="2")
    spec.bold.dummy_scans = 2
    for key, value in bold.items():
        setattr(spec.bold, key, value)
    return spec


def _source(hcp, kind="MNI"):
    suffix = "bold.nii.gz" if kind == "MNI" else "bold.dtseries.nii"
    return hcp.root / "sub-01" / kind / f"sub-01_task-story_run-1_{suffix}"


def _check_volume_outputs(hcp, func):
    """The r map is on the input's grid and ranks the planted voxels first."""
    r_map = func / f"{NAME}_stat-r_desc-{_variant(func)}_statmap.nii.gz"
    img, source = nib.load(r_map), nib.load(_source(hcp))
    assert img.shape == source.shape[:3]
    np.testing.assert_allclose(img.affine, source.affine)
    mask_img = nib.load(func / f"{NAME}_desc-brain_mask.nii.gz")
    assert mask_img.shape == source.shape[:3]
    mask = np.asanyarray(mask_img.dataobj) > 0
    assert (mask <= hcp.brain).all()  # the EPI mask leaves the empty background out
    r = np.asanyarray(img.dataobj)
    assert (r[~mask] == 0).all()
    assert auc(r[mask], hcp.planted["volume"][mask]) > 0.9
    sidecar = json.loads(r_map.with_name(r_map.name.replace(".nii.gz", ".json")).read_text())
    assert "'2'" in sidecar["Resolution"] and "MNI152NLin6Asym" in sidecar["Resolution"]
    return r


def _check_cifti_outputs(hcp, func):
    """The r map carries the input's brain models and ranks the planted ones first."""
    r_map = func / f"sub-01_task-story_space-fsLR_den-91k_stat-r_desc-{_variant(func)}" \
                   "_statmap.dscalar.nii"
    out, source = nib.load(r_map), nib.load(_source(hcp, "CIFTI"))
    assert out.header.get_axis(1) == source.header.get_axis(1)
    assert isinstance(out.header.get_axis(0), nib.cifti2.ScalarAxis)
    r = np.asanyarray(out.dataobj)[0]
    assert auc(r, hcp.planted["cifti"]) > 0.9
    sidecar = json.loads(r_map.with_name(r_map.name.split(".")[0] + ".json").read_text())
    assert "91k" in sidecar["Density"]
    return r


def _variant(func):
    name = next(func.glob("*_stat-r_desc-*_statmap.*")).name
    return name.split("_desc-")[1].split("_")[0]


def test_hcp_volumes_recovered_on_the_input_grid(hcp, tmp_path):
    got = run_steps(hcp.bids, _spec(), tmp_path / "out", tmp_path / "work")
    assert [r.run for r in got["runs"]] == ["1", "2", "3"] and got["runs"][0].source == "hcp"
    assert got["runs"][0].tr == 2.0  # from the raw dataset's sidecar
    mask = np.asanyarray(nib.load(got["mask"]).dataobj) > 0  # EPI mask of the runs
    assert mask.sum() > 0.5 * hcp.brain.sum() and hcp.planted["volume"][mask].any()
    assert auc(got["result"].r, hcp.planted["volume"][mask]) > 0.95
    for run in got["info"]["runs"]:
        assert run["removed_volumes"] == 2 and run["volumes"] == hcp.n_volumes - 2
    r = _check_volume_outputs(hcp, tmp_path / "out" / "sub-01" / "func")
    np.testing.assert_allclose(r[mask], got["result"].r, rtol=1e-6)
    assert validate(tmp_path / "out") == []


def test_hcp_cifti_recovered_with_the_input_brain_models(hcp, tmp_path):
    got = run_steps(hcp.bids, _spec(), tmp_path / "out", tmp_path / "work", space="fsLR")
    assert got["runs"][0].kind == "cifti" and got["runs"][0].entities["den"] == "91k"
    assert auc(got["result"].r, hcp.planted["cifti"]) > 0.95
    r = _check_cifti_outputs(hcp, tmp_path / "out" / "sub-01" / "func")
    np.testing.assert_allclose(r, got["result"].r, rtol=1e-6)
    assert validate(tmp_path / "out") == []


def _cli(hcp, tmp_path, spec_text, *extra):
    from bids_app.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text, encoding="utf-8")
    return main([str(hcp.bids), str(tmp_path / "out"), "participant", "-w",
                 str(tmp_path / "work"), "--config-file", str(spec), "--nprocs", "2", *extra])


def test_cli_hcp_option_needs_the_mapping(hcp, tmp_path, capsys, minilm):
    spec = hcp_spec_text(minilm).split("[inputs]")[0] + "\n[bold]\ndummy_scans = 2\n"
    code = _cli(hcp, tmp_path, spec, "-d", f"hcp={hcp.root}")
    err = capsys.readouterr().err
    assert code == 2
    assert "-d hcp=PATH needs an [inputs] section with layout = 'hcp'" in err
    assert "Traceback" not in err


def test_cli_hcp_missing_root_names_the_fix(hcp, tmp_path, capsys, minilm):
    code = _cli(hcp, tmp_path, hcp_spec_text(minilm, root="derivatives/hcp_outputs"))
    err = capsys.readouterr().err
    assert code == 3
    assert "derivatives/hcp_outputs" in err and "-d hcp=PATH" in err
    assert not (tmp_path / "out" / "sub-01").exists()


@pytest.mark.slow
def test_cli_hcp_volumes_through_the_spec_mapping(hcp, tmp_path, tiny_bert):
    assert _cli(hcp, tmp_path, hcp_spec_text(tiny_bert)) == 0
    _check_volume_outputs(hcp, tmp_path / "out" / "sub-01" / "func")
    info = json.loads(next((tmp_path / "work").rglob("bold_info.json")).read_text())
    assert info["n_volumes_removed"] == 2 * hcp.n_runs
    assert validate(tmp_path / "out") == []
    errors, n_maps = sidecar_errors(tmp_path / "out", tmp_path / "copy")
    assert n_maps >= 3 and errors == []


@pytest.mark.slow
def test_cli_hcp_cifti_from_the_derivatives_option(hcp, tmp_path, tiny_bert):
    # the spec's root does not exist: -d hcp=PATH replaces it
    spec = hcp_spec_text(tiny_bert, root="/nonexistent/preprocessed_data")
    assert _cli(hcp, tmp_path, spec, "-d", f"hcp={hcp.root}", "--space", "fsLR") == 0
    func = tmp_path / "out" / "sub-01" / "func"
    _check_cifti_outputs(hcp, func)
    assert not list(func.glob("*.nii.gz"))  # no volume map or mask for CIFTI inputs
    saved = (tmp_path / "out" / "experiment_spec.toml").read_text(encoding="utf-8")
    assert str(hcp.root) in saved
    assert validate(tmp_path / "out") == []
    errors, n_maps = sidecar_errors(tmp_path / "out", tmp_path / "copy")
    assert n_maps >= 3 and errors == []
