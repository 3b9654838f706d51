"""bids-validator-deno on the outputs of surface, CIFTI and native-space runs.

The participant steps write the maps of synthetic fMRIPrep runs (fsaverage5
surfaces, fsLR CIFTI, T1w-space volumes); the validator must report no error,
neither on OUTPUT_DIR (where maps are listed in .bidsignore) nor on a copy that
gives the maps a BIDS suffix so that their sidecars are checked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bids_app.config import default_spec
from bids_app.io.derivatives import STANDARD_SPACES
from tests.helpers.fmriprep import SPACE, make_fmriprep_dataset
from tests.helpers.pipeline import auc, run_steps
from tests.helpers.validation import sidecar_errors, validate


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_fmriprep_dataset(tmp_path_factory.mktemp("fmriprep"),
                                 kinds=("volume", "surface", "cifti"), n_volumes=90)


def _run(synthetic, tmp_path, space):
    spec = default_spec()
    spec.bold.confounds = "simple"
    return run_steps(synthetic.bids, spec, tmp_path / "out", tmp_path / "work", space=space,
                     derivatives={"fmriprep": synthetic.fmriprep})


def _sidecar(path: str) -> dict:
    path = Path(path)
    return json.loads(path.with_name(path.name.split(".")[0] + ".json").read_text())


def test_surface_outputs_pass_the_validator(synthetic, tmp_path):
    got = _run(synthetic, tmp_path, "fsaverage5")
    assert auc(got["result"].r, synthetic.planted["surface"]) > 0.95
    maps = [p for p in got["written"] if p.endswith(".func.gii")]
    assert len(maps) == 6  # r, r2, alpha x two hemispheres
    for path in maps:
        hemi = "L" if "_hemi-L_" in path else "R"
        reference = _sidecar(path)["SpatialReference"]  # fsaverage5 is no standard template
        assert reference.endswith(f"tpl-fsaverage_hemi-{hemi}_den-10k_sphere.surf.gii")
    assert validate(tmp_path / "out") == []
    errors, n_maps = sidecar_errors(tmp_path / "out", tmp_path / "copy")
    assert n_maps == 6 and errors == []


def test_cifti_outputs_pass_the_validator(synthetic, tmp_path):
    got = _run(synthetic, tmp_path, "fsLR:den-91k")
    assert auc(got["result"].r, synthetic.planted["cifti"]) > 0.95
    maps = [p for p in got["written"] if p.endswith(".dscalar.nii")]
    assert len(maps) == 3
    sidecar = _sidecar(maps[0])
    assert "91k" in sidecar["Density"] and "SpatialReference" not in sidecar  # fsLR: standard
    assert validate(tmp_path / "out") == []
    errors, n_maps = sidecar_errors(tmp_path / "out", tmp_path / "copy")
    assert n_maps == 3 and errors == []


@pytest.fixture()
def native(tmp_path):
    """The volume runs renamed to fMRIPrep's T1w space (not a standard template)."""
    made = make_fmriprep_dataset(tmp_path / "native", kinds=("volume",), n_volumes=90)
    for path in sorted((made.fmriprep / "sub-01" / "func").glob(f"*_space-{SPACE}_res-2_*")):
        path.rename(path.with_name(path.name.replace(f"space-{SPACE}_res-2", "space-T1w")))
    return made


def test_native_space_outputs_name_their_spatial_reference(native, tmp_path):
    got = _run(native, tmp_path, "T1w")
    func = tmp_path / "out" / "sub-01" / "func"
    mask = json.loads((func / "sub-01_task-story_space-T1w_desc-brain_mask.json").read_text())
    source = native.fmriprep / "sub-01" / "func" / \
        "sub-01_task-story_run-1_space-T1w_desc-preproc_bold.nii.gz"
    assert mask["SpatialReference"] == f"file://{source.resolve()}"
    assert _sidecar(got["written"][0])["SpatialReference"] == mask["SpatialReference"]
    assert validate(tmp_path / "out") == []  # the mask is validated as it is
    errors, n_maps = sidecar_errors(tmp_path / "out", tmp_path / "copy")
    assert n_maps == 3 and errors == []


def test_standard_spaces_are_those_of_the_bids_schema():
    schema = pytest.importorskip("bidsschematools.schema").load_schema()
    assert STANDARD_SPACES == set(schema.objects.enums._StandardTemplateCoordSys.enum)
