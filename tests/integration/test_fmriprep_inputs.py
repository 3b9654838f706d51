"""fMRIPrep derivatives end to end: volumes, surfaces and CIFTI with a planted signal.

The per-participant steps (prepare_bold, build_designs, fit_encoding, outputs) run
on synthetic fMRIPrep outputs; word features are precomputed random vectors, so no
language model is needed. The command line is checked on the same data.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app.config import default_spec
from tests.helpers.fmriprep import SPACE, make_fmriprep_dataset
from tests.helpers.pipeline import auc, run_steps

SPACES = {"volume": f"{SPACE}:res-2", "surface": "fsaverage5", "cifti": "fsLR:den-91k"}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmriprep")
    return make_fmriprep_dataset(root, kinds=("volume", "surface", "cifti"), n_volumes=90,
                                 surface_naming="21.0")


def _pipeline(synthetic, kind, tmp_path, **bold):
    spec = default_spec()
    for key, value in {"confounds": "simple", **bold}.items():
        setattr(spec.bold, key, value)
    return run_steps(synthetic.bids, spec, tmp_path / "out", tmp_path / "work",
                     space=SPACES[kind], derivatives={"fmriprep": synthetic.fmriprep})


def test_volume_recovery_and_nifti_outputs(synthetic, tmp_path):
    got = _pipeline(synthetic, "volume", tmp_path)
    mask = np.asanyarray(nib.load(got["mask"]).dataobj) > 0
    assert mask.sum() == len(synthetic.planted["volume"])  # fMRIPrep's brain mask is used
    r = got["result"].r
    assert auc(r, synthetic.planted["volume"]) > 0.95
    assert r[synthetic.planted["volume"]].mean() > 0.3
    r_map = Path(got["written"][0])
    assert r_map.name == f"sub-01_task-story_space-{SPACE}_res-2_stat-r_desc-test_statmap.nii.gz"
    img = nib.load(r_map)
    assert img.shape == mask.shape
    np.testing.assert_allclose(np.asanyarray(img.dataobj)[mask], r, rtol=1e-6)
    sidecar = json.loads(r_map.with_name(r_map.name.replace(".nii.gz", ".json")).read_text())
    assert "res-2" not in sidecar["Resolution"] and "'2'" in sidecar["Resolution"]
    mask_out = r_map.parent / f"sub-01_task-story_space-{SPACE}_res-2_desc-brain_mask.json"
    assert "Resolution" in json.loads(mask_out.read_text())


def test_removed_volumes_leave_bold_and_design_alike(synthetic, tmp_path):
    got = _pipeline(synthetic, "volume", tmp_path, dummy_scans=1)
    for run in got["info"]["runs"]:
        # volume 0: dummy scan, volume 1: flagged non-steady-state by fMRIPrep
        assert run["removed_volumes"] == 2 and run["non_steady_state_volumes"] == 1
        assert run["volumes"] == synthetic.n_volumes - 2
    assert got["info"]["n_volumes_removed"] == 2 * synthetic.n_runs
    for bold, design in zip(got["bold"], got["designs"], strict=True):
        assert np.load(bold).shape[0] == np.load(design).shape[0] == synthetic.n_volumes - 2
        confounds = Path(bold).with_name(Path(bold).name.replace("_bold", "_confounds"))
        assert np.load(confounds).shape[0] == synthetic.n_volumes - 2  # fitted within folds


def test_surface_recovery_and_one_gifti_per_hemisphere(synthetic, tmp_path):
    got = _pipeline(synthetic, "surface", tmp_path)
    planted = synthetic.planted["surface"]
    r = got["result"].r
    assert len(r) == len(planted) == 2 * 10242
    assert auc(r, planted) > 0.95
    maps = [Path(p) for p in got["written"] if "_stat-r_" in p]
    assert sorted(p.name for p in maps) == [
        "sub-01_task-story_hemi-L_space-fsaverage5_stat-r_desc-test_statmap.func.gii",
        "sub-01_task-story_hemi-R_space-fsaverage5_stat-r_desc-test_statmap.func.gii"]
    left, right = (nib.load(p) for p in sorted(maps))
    assert left.meta["AnatomicalStructurePrimary"] == "CortexLeft"
    np.testing.assert_allclose(np.concatenate([left.darrays[0].data, right.darrays[0].data]), r,
                               rtol=1e-6)
    sidecar = json.loads(maps[0].with_name(maps[0].name.split(".")[0] + ".json").read_text())
    assert "Density" in sidecar


def test_cifti_recovery_and_dscalar_with_input_brain_models(synthetic, tmp_path):
    got = _pipeline(synthetic, "cifti", tmp_path, confound_regression="run")
    planted = synthetic.planted["cifti"]
    assert auc(got["result"].r, planted) > 0.95
    assert not Path(got["bold"][0]).with_name("run000_confounds.npy").exists()  # per run
    r_map = Path(got["written"][0])
    assert r_map.name == "sub-01_task-story_space-fsLR_den-91k_stat-r_desc-test_statmap.dscalar.nii"
    out, source = nib.load(r_map), nib.load(got["runs"][0].bold_file)
    assert out.header.get_axis(1) == source.header.get_axis(1)
    np.testing.assert_allclose(np.asanyarray(out.dataobj)[0], got["result"].r, rtol=1e-6)
    sidecar = json.loads(r_map.with_name(r_map.name.split(".")[0] + ".json").read_text())
    assert "91k" in sidecar["Density"]


def test_cli_unknown_space_lists_the_spaces(synthetic, tmp_path, capsys):
    from bids_app.cli import main

    filters = tmp_path / "filter.json"
    filters.write_text(json.dumps({"bold": {"run": [1, 2, 3], "session": None}}))
    code = main([str(synthetic.bids), str(tmp_path / "out"), "participant", "-w",
                 str(tmp_path / "work"), "-d", f"fmriprep={synthetic.fmriprep}",
                 "--space", "MNI152NLin6Asym", "--bids-filter-file", str(filters),
                 "--bids-database-dir", str(tmp_path / "db")])
    err = capsys.readouterr().err
    assert code == 4
    assert "MNI152NLin6Asym" in err and f"{SPACE}:res-2" in err and "fsaverage5" in err
    assert (tmp_path / "db").is_dir() and any((tmp_path / "db").iterdir())


@pytest.mark.slow
def test_cli_end_to_end_on_fmriprep_volumes(synthetic, tmp_path, tiny_bert):
    from bids_app.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
[[models]]
name = "tiny"
source = "{tiny_bert}"

[[variants]]
model = "tiny"
method = "frozen"

[features]
layers = [1]
context_words = 5

[bold]
confounds = "simple"

[encoding]
alphas = [1.0, 10.0, 100.0, 1000.0]
inner_folds = 2
""")
    out = tmp_path / "out"
    code = main([str(synthetic.bids), str(out), "participant", "-w", str(tmp_path / "work"),
                 "-d", f"fmriprep={synthetic.fmriprep}", "--space", SPACES["volume"],
                 "--config-file", str(spec), "--bids-database-dir", str(tmp_path / "db"),
                 "--nprocs", "2"])
    assert code == 0
    func = out / "sub-01" / "func"
    r_map = next(func.glob("*_space-*_res-2_stat-r_desc-*_statmap.nii.gz"))
    r = np.asanyarray(nib.load(r_map).dataobj)
    mask = np.asanyarray(nib.load(next(func.glob("*_desc-brain_mask.nii.gz"))).dataobj) > 0
    assert auc(r[mask], synthetic.planted["volume"]) > 0.9
    report = (out / "sub-01.html").read_text(encoding="utf-8")
    assert "volumes removed" in report
    validator = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "bids-validator-deno"
    if validator.exists():
        done = subprocess.run([str(validator), str(out), "--json"], capture_output=True,
                              text=True, timeout=300)
        issues = json.loads(done.stdout)["issues"]["issues"]
        errors = [i for i in issues if i["severity"] == "error"
                  and "sub-01" in str(i.get("location", ""))]
        assert not errors, errors


def test_fold_mode_cleans_run_specific_confounds_within_their_run(synthetic, tmp_path):
    """Cosine and CompCor columns are regressed within their run in 'fold' mode; only the
    columns that mean the same in every run (motion, WM/CSF) go to the folds, and the planted
    voxels are recovered as well as with confounds regressed run by run."""
    from bids_app.io.confounds import run_specific_columns

    fold = _pipeline(synthetic, "volume", tmp_path / "fold", confound_regression="fold",
                     confound_options={"motion": "full", "wm_csf": "basic"})
    run = _pipeline(synthetic, "volume", tmp_path / "run", confound_regression="run",
                    confound_options={"motion": "full", "wm_csf": "basic"})
    names = fold["info"]["runs"][0]["confounds"]
    specific = run_specific_columns(names)
    assert specific.any() and (~specific).any()  # cosines alongside motion and WM/CSF
    assert all(not n.startswith(("trans", "rot", "white", "csf")) for n in np.array(names)[
        specific])
    for bold in fold["bold"]:
        shared = np.load(Path(bold).with_name(Path(bold).name.replace("_bold", "_confounds")))
        assert shared.shape[1] == int((~specific).sum())  # only run-invariant columns
    planted = synthetic.planted["volume"]
    r_fold, r_run = fold["result"].r, run["result"].r
    assert auc(r_fold, planted) >= auc(r_run, planted) - 0.01
    # mean r is not compared: 'run' mode projects design and BOLD of the scored run off its
    # ~30 confound columns, which removes that much noise from the scored run and raises r
    assert r_fold[planted].mean() > 0.5
    assert (r_fold[planted] > np.percentile(r_fold[~planted], 95)).mean() > 0.97
