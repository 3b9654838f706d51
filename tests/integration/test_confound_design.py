"""Confound cleaning on fMRIPrep-shaped runs of different lengths, design and BOLD alike.

Runs differ in length, in their number of cosine drift columns and of aCompCor
columns, as real fMRIPrep runs do, and every voxel carries a strong motion
artefact. The design is detrended, high-pass filtered and projected off the
run's confounds as the BOLD is; ``fold`` mode recovers the planted voxels at
least as well as ``run`` mode; and ``desc-clean_bold`` holds exactly what the
fit scored.
"""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pytest

from bids_app.config import default_spec
from tests.helpers.fmriprep import SPACE, make_fmriprep_dataset
from tests.helpers.pipeline import auc, run_steps

LENGTHS = [80, 130, 105]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_fmriprep_dataset(tmp_path_factory.mktemp("lengths"), n_volumes=LENGTHS,
                                 artefact=4.0, snr=1.0, seed=3)


def _pipeline(synthetic, tmp_path, **bold):
    spec = default_spec()
    for key, value in {"confounds": "simple", **bold}.items():
        setattr(spec.bold, key, value)
    return run_steps(synthetic.bids, spec, tmp_path / "out", tmp_path / "work",
                     space=f"{SPACE}:res-2", derivatives={"fmriprep": synthetic.fmriprep})


@pytest.fixture(scope="module")
def fold(synthetic, tmp_path_factory):
    return _pipeline(synthetic, tmp_path_factory.mktemp("fold"), confound_regression="fold")


def test_runs_differ_in_length_and_confound_columns(fold):
    names = [run["confounds"] for run in fold["info"]["runs"]]
    cosines = [sum(n.startswith("cosine") for n in run) for run in names]
    assert cosines == [int(2 * n * 2.0 / 128) for n in LENGTHS] == [2, 4, 3]
    assert [run["volumes"] for run in fold["info"]["runs"]] == [n - 2 for n in LENGTHS]


def test_design_is_projected_off_its_runs_own_confounds(fold, synthetic):
    """The run-specific columns (cosines of the run's length) leave the design as the BOLD;
    the shared ones (motion, WM/CSF) are left to the folds, as for the BOLD."""
    from bids_app.io.confounds import run_samples, run_specific_columns

    bold_spec = dataclasses.asdict(default_spec().bold) | {"confounds": "simple"}
    for run, design_file in zip(fold["runs"], fold["designs"], strict=True):
        samples = run_samples(run, bold_spec)
        specific = run_specific_columns(samples.names)
        confounds = samples.confounds[samples.keep]
        design = np.load(design_file)
        for columns, explained in ((specific, False), (~specific, True)):
            basis = np.column_stack([np.ones(len(design)), np.arange(len(design)),
                                     confounds[:, columns]])
            fitted = basis @ np.linalg.lstsq(basis, design, rcond=None)[0]
            share = np.linalg.norm(fitted, axis=0) / np.linalg.norm(design, axis=0)
            # a constant, a trend and the run's cosines explain nothing of the design
            assert (share > 0.05).any() if explained else (share < 1e-3).all()


def test_fold_mode_recovers_planted_voxels_as_well_as_run_mode(fold, synthetic, tmp_path):
    """Recovery is judged by how well r separates planted from other voxels (AUC, and the
    planted voxels above the 95th percentile of the others). Mean r is not compared: regressing
    ~30 columns out of each scored run of 78-128 volumes ('run' mode) removes that much noise
    from the scored run itself and raises r of every signal voxel."""
    run = _pipeline(synthetic, tmp_path, confound_regression="run")
    planted = synthetic.planted["volume"]
    r_fold, r_run = fold["result"].r, run["result"].r
    assert auc(r_run, planted) > 0.95 and r_run[planted].mean() > 0.3
    assert auc(r_fold, planted) >= auc(r_run, planted) - 0.005
    assert r_fold[planted].mean() > 0.3
    for r in (r_fold, r_run):  # both modes find every planted voxel above the others' tail
        assert (r[planted] > np.percentile(r[~planted], 95)).mean() > 0.97
    assert np.percentile(r_fold[~planted], 95) < 0.2


def test_clean_bold_holds_what_the_fit_scored(fold, synthetic, tmp_path):
    """Same volumes, same cleaning, same centring: the written run equals the fit's held-out
    BOLD, to float tolerance, and every run's scored volumes have mean zero."""
    from bids_app.clean_bold import write_clean_bold
    from bids_app.participant import fit_encoding

    encoding = {**fold["encoding"], "save_predictions": True}
    result_file = fit_encoding(fold["designs"], fold["bold"], encoding, "numpy",
                               str(tmp_path / "fit.npz"))
    heldout = np.load(result_file.replace(".npz", "_heldout.npy"))
    bold_spec = dataclasses.asdict(default_spec().bold) | {"confounds": "simple",
                                                           "confound_regression": "fold"}
    written = write_clean_bold(str(tmp_path / "out"), str(synthetic.bids), fold["runs_json"],
                               fold["bold"], fold["mask"], bold_spec, encoding,
                               {"clean_bold_dtype": "float32"}, fold["word_tables"])
    mask = np.asanyarray(nib.load(fold["mask"]).dataobj) > 0
    start = 0
    trim = encoding["trim_edges"]
    for path, length in zip(written, LENGTHS, strict=True):
        data = np.asanyarray(nib.load(path).dataobj)[mask].T  # (volumes, voxels)
        used = np.arange(2 + trim[0], length - trim[1])  # 2 non-steady-state volumes
        assert not data[np.setdiff1d(np.arange(length), used)].any()
        rows = heldout[start:start + len(used)]
        np.testing.assert_allclose(data[used], rows, atol=1e-4)
        np.testing.assert_allclose(rows.mean(0), 0.0, atol=1e-4)
        start += len(used)
    assert start == len(heldout)
