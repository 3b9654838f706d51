"""Confounds (nilearn's real fMRIPrep file), sample masks, cleaning and fold-wise regression."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.config import spec_from_dict
from bids_app.encoding.confounds import FoldConfoundRegressor, residualize_fold, stack_confounds
from bids_app.encoding.engine import cross_validate
from bids_app.errors import DatasetError, UsageError
from bids_app.io.bids import BoldRun
from bids_app.io.bold import clean_confounds, clean_run
from bids_app.io.confounds import run_samples
from tests.helpers.fmriprep import nilearn_confounds_file

N = 30  # rows of nilearn's confounds file


@pytest.fixture()
def real_run(tmp_path) -> BoldRun:
    """A 30-volume fMRIPrep run whose confounds are nilearn's real v21 file."""
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = func / "sub-01_task-a_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2, N), np.float32), np.eye(4)), bold)
    tsv = func / "sub-01_task-a_desc-confounds_timeseries.tsv"
    shutil.copy(nilearn_confounds_file(), tsv)
    shutil.copy(nilearn_confounds_file().with_suffix(".json"), tsv.with_suffix(".json"))
    return BoldRun(subject="01", session="", task="a", run="", bold_file=bold, events_file=None,
                   tr=2.0, n_volumes=N, space="MNI152NLin2009cAsym", confounds_file=tsv,
                   source="fmriprep", entities={"subject": "01", "task": "a"})


#: nilearn's real fMRIPrep confounds files: (file stem, name fMRIPrep gives it).
SHIPPED = {"v21": ("test-v21_desc-confounds_timeseries", "desc-confounds_timeseries"),
           "v1": ("test_desc-confounds_regressors", "desc-confounds_regressors")}


@pytest.fixture(params=sorted(SHIPPED))
def shipped_run(request, tmp_path) -> BoldRun:
    """A run beside one of nilearn's real confounds files (fMRIPrep 21 and 1.x names)."""
    stem, name = SHIPPED[request.param]
    source = nilearn_confounds_file().parent / f"{stem}.tsv"
    n = len(pd.read_csv(source, sep="\t"))
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = func / "sub-01_task-a_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2, n), np.float32), np.eye(4)), bold)
    tsv = func / f"sub-01_task-a_{name}.tsv"
    shutil.copy(source, tsv)
    shutil.copy(source.with_suffix(".json"), tsv.with_suffix(".json"))
    return BoldRun(subject="01", session="", task="a", run="", bold_file=bold, events_file=None,
                   tr=2.0, n_volumes=n, space="MNI152NLin2009cAsym", confounds_file=tsv,
                   source="fmriprep", entities={"subject": "01", "task": "a"})


def _nilearn(run, strategy, options):
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    frame, mask = load_confounds_strategy(str(run.bold_file), denoise_strategy=strategy,
                                          **options)
    kept = np.arange(run.n_volumes) if mask is None else np.asarray(mask)
    return frame, kept


@pytest.mark.parametrize("options", [{}, {"compcor": "temporal_anat_separated", "n_compcor": 3}],
                         ids=["anat_combined_all", "temporal_anat_separated_3"])
def test_compcor_strategy_matches_nilearn(shipped_run, options):
    frame, kept = _nilearn(shipped_run, "compcor", options)
    samples = run_samples(shipped_run, {"confounds": "compcor", "confound_options": options})
    assert samples.names == [str(c) for c in frame.columns]
    assert samples.confounds.shape == (shipped_run.n_volumes, frame.shape[1])
    np.testing.assert_allclose(samples.confounds, np.nan_to_num(frame.to_numpy()), rtol=1e-6,
                               atol=1e-6)
    components = [n for n in samples.names if "comp_cor" in n]
    if options:  # three of each: temporal, CSF, white matter
        assert len(components) == 9 and sum(n.startswith("t_comp_cor_") for n in components) == 3
    else:
        assert components and all(n.startswith("a_comp_cor_") for n in components)
    np.testing.assert_array_equal(np.flatnonzero(samples.keep), kept)
    assert samples.counts["removed"] == shipped_run.n_volumes - len(kept)


#: Scrubbing settings that keep some volumes of each file (nilearn's defaults scrub every
#: volume of the v21 file and none of the 1.x one).
SCRUB = {"desc-confounds_timeseries": {"fd_threshold": 0.5, "std_dvars_threshold": 1.5,
                                       "scrub": 0},
         "desc-confounds_regressors": {"fd_threshold": 0.15, "scrub": 0}}


def test_scrubbing_strategy_matches_nilearn(shipped_run):
    options = SCRUB[shipped_run.confounds_file.stem.split("_", 2)[2]]
    frame, kept = _nilearn(shipped_run, "scrubbing", options)
    samples = run_samples(shipped_run, {"confounds": "scrubbing", "confound_options": options})
    assert samples.names == [str(c) for c in frame.columns]
    np.testing.assert_array_equal(np.flatnonzero(samples.keep), kept)
    counts = samples.counts
    assert counts["removed"] == shipped_run.n_volumes - len(kept)
    assert counts["removed"] == counts["non_steady_state"] + counts["scrubbed"]
    assert counts["scrubbed"] >= 4
    fd = pd.read_csv(shipped_run.confounds_file, sep="\t", na_values="n/a")[
        "framewise_displacement"].to_numpy()
    assert not samples.keep[np.nan_to_num(fd) > options["fd_threshold"]].any()
    # scrubbed volumes are censored, not regressed with one-hot columns
    assert not [n for n in samples.names if n.startswith("motion_outlier")]


def _real_table() -> pd.DataFrame:
    return pd.read_csv(nilearn_confounds_file(), sep="\t", na_values="n/a")


def test_simple_strategy_drops_non_steady_state_volumes(real_run):
    table = _real_table()
    flagged = table.filter(like="non_steady_state_outlier").sum(axis=1).to_numpy() > 0
    samples = run_samples(real_run, {"confounds": "simple"})
    np.testing.assert_array_equal(samples.keep, ~flagged)
    assert samples.counts == {"dummy_scans": 0, "non_steady_state": int(flagged.sum()),
                              "scrubbed": 0, "removed": int(flagged.sum())}
    assert samples.confounds.shape[0] == N and samples.confounds.dtype == np.float32
    assert {"trans_x", "rot_z", "csf", "white_matter", "cosine00"} <= set(samples.names)
    assert np.isfinite(samples.confounds).all()


def test_scrubbing_removes_high_motion_volumes(real_run):
    options = {"fd_threshold": 5.0, "std_dvars_threshold": 100.0, "scrub": 0}
    samples = run_samples(real_run, {"confounds": "scrubbing", "confound_options": options})
    fd = _real_table()["framewise_displacement"].to_numpy()
    high = np.nan_to_num(fd) > 5.0
    assert not samples.keep[high].any()
    assert samples.counts["scrubbed"] == int(high.sum()) == 2
    assert samples.counts["removed"] == int((~samples.keep).sum()) == 5


def test_dummy_scans_and_steady_state_are_counted_once(real_run):
    samples = run_samples(real_run, {"confounds": "simple", "dummy_scans": 2})
    assert samples.counts["dummy_scans"] == 2 and samples.counts["non_steady_state"] == 1
    assert samples.counts["removed"] == 3


def test_scrubbing_everything_is_a_clear_error(real_run):
    with pytest.raises(DatasetError, match="fd_threshold"):
        run_samples(real_run, {"confounds": "scrubbing",
                               "confound_options": {"scrub": 0, "fd_threshold": 0.1}})


def test_confounds_need_fmriprep_inputs(real_run):
    raw = BoldRun(**{**real_run.__dict__, "confounds_file": None, "source": "raw"})
    with pytest.raises(DatasetError, match="fMRIPrep confounds"):
        run_samples(raw, {"confounds": "simple"})


def test_no_strategy_keeps_every_volume(real_run):
    samples = run_samples(real_run, {})
    assert samples.keep.all() and samples.confounds is None


@pytest.mark.parametrize("bold", [{"confounds": "bogus"}, {"confound_regression": "both"},
                                  {"confounds": "custom"}])
def test_bad_confound_settings_are_refused(bold):
    with pytest.raises(UsageError, match="bold.confound"):
        spec_from_dict({"bold": bold})


def test_clean_run_in_voxel_batches_matches_one_batch(real_run):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((N, 50)).astype(np.float32) + 5
    data[:, 7] = 3.0  # constant voxel
    samples = run_samples(real_run, {"confounds": "simple",
                                     "confound_options": {"motion": "basic"}})
    assert len(samples.names) == 9  # 6 motion, csf, white matter, 1 cosine
    kwargs = {"tr": 2.0, "high_pass": 0.01, "keep": samples.keep, "confounds": samples.confounds}
    one, bad_one = clean_run(data, batch_size=1000, **kwargs)
    many, bad_many = clean_run(data, batch_size=8, **kwargs)
    np.testing.assert_allclose(one, many, atol=1e-5)
    assert one.shape == (int(samples.keep.sum()), 50) and one.dtype == np.float32
    assert bad_one[7] and bad_one.sum() == 1 and (bad_one == bad_many).all()
    np.testing.assert_allclose(one[:, ~bad_one].std(axis=0, ddof=1), 1.0, atol=1e-4)


def test_run_regression_removes_confounds_from_the_run(real_run):
    samples = run_samples(real_run, {"confounds": "simple",
                                     "confound_options": {"motion": "basic"}})
    motion = samples.confounds[:, samples.names.index("trans_x")]
    data = (np.random.default_rng(1).standard_normal((N, 5)) + 4 * motion[:, None]).astype(
        np.float32)
    cleaned, _ = clean_run(data, tr=2.0, keep=samples.keep, confounds=samples.confounds)
    kept_motion = clean_confounds(samples.confounds, tr=2.0, keep=samples.keep)[
        :, samples.names.index("trans_x")]
    assert np.abs([np.corrcoef(kept_motion, c)[0, 1] for c in cleaned.T]).max() < 1e-3


# ---------------------------------------------------------------- fold-wise regression
def _shared_artefact(seed=0, n_runs=4, n=80):
    """Runs where the design correlates with motion, as when speech moves the head."""
    rng = np.random.default_rng(seed)
    Xs, Ys, Cs = [], [], []
    for _ in range(n_runs):
        motion = np.cumsum(rng.standard_normal(n))
        motion = (motion - motion.mean()) / motion.std()
        x = (0.7 * motion[:, None] + rng.standard_normal((n, 3))).astype(np.float32)
        artefact_only = 2.0 * motion + 0.5 * rng.standard_normal(n)
        signal = x @ np.array([1.0, -1.0, 0.5]) + 0.5 * rng.standard_normal(n)
        Xs.append(x)
        Ys.append(np.column_stack([artefact_only, signal]).astype(np.float32))
        Cs.append(motion[:, None].astype(np.float32))
    return Xs, Ys, Cs


def test_fold_regression_coefficients_never_see_the_test_run():
    Xs, Ys, Cs = _shared_artefact()
    C, Y = np.concatenate(Cs), np.concatenate(Ys)
    groups = np.repeat(np.arange(4), 80)
    train, test = np.flatnonzero(groups != 0), np.flatnonzero(groups == 0)
    train_a, test_a, reg_a = residualize_fold(C, Y, train, test)
    Y_changed = Y.copy()
    Y_changed[test] = np.random.default_rng(5).standard_normal((len(test), 2)) * 100
    train_b, test_b, reg_b = residualize_fold(C, Y_changed, train, test)
    np.testing.assert_array_equal(reg_a.coef_, reg_b.coef_)
    np.testing.assert_array_equal(train_a, train_b)
    # the test run is transformed with the training coefficients, not refitted on itself
    own = FoldConfoundRegressor().fit(C[test], Y[test])
    assert not np.allclose(own.coef_, reg_a.coef_, atol=1e-3)
    np.testing.assert_allclose(test_a, reg_a.transform(C[test], Y[test]))


def test_cross_validated_alphas_do_not_depend_on_the_test_run():
    Xs, Ys, Cs = _shared_artefact()
    alphas = [0.1, 1.0, 10.0, 100.0, 1000.0]
    first = cross_validate(Xs, Ys, alphas, inner_folds=3, backend="numpy", confounds=Cs)
    changed = [y.copy() for y in Ys]
    changed[0] = np.random.default_rng(9).standard_normal(changed[0].shape).astype(np.float32)
    second = cross_validate(Xs, changed, alphas, inner_folds=3, backend="numpy", confounds=Cs)
    fold = [i for i, runs in enumerate(first.test_runs) if runs == [0]][0]
    np.testing.assert_array_equal(first.alpha_folds[fold], second.alpha_folds[fold])


def test_fold_regression_removes_artefact_predicted_through_the_design():
    Xs, Ys, Cs = _shared_artefact()
    alphas = [0.1, 1.0, 10.0, 100.0]
    plain = cross_validate(Xs, Ys, alphas, inner_folds=3, backend="numpy")
    cleaned = cross_validate(Xs, Ys, alphas, inner_folds=3, backend="numpy", confounds=Cs)
    assert plain.r[0] > 0.4  # the design predicts the motion artefact ...
    assert abs(cleaned.r[0]) < 0.15  # ... until motion is regressed out within folds
    assert cleaned.r[1] > 0.7  # the design-driven voxel is still predicted


def test_stack_confounds_keeps_runs_with_other_columns_apart():
    stacked = stack_confounds([np.ones((3, 2)), np.ones((2, 1))], [3, 2])
    assert stacked.shape == (5, 3)
    assert (stacked[:3, 2] == 0).all() and (stacked[3:, :2] == 0).all()
    with pytest.raises(ValueError):
        stack_confounds([np.ones((3, 2))], [4])


# ---------------------------------------------------------------- filtering
def _low_power(x: np.ndarray, tr: float, cutoff: float) -> np.ndarray:
    """Power of each column at frequencies in (0, cutoff) Hz."""
    freqs = np.fft.rfftfreq(len(x), tr)
    power = np.abs(np.fft.rfft(x - x.mean(axis=0), axis=0)) ** 2
    return power[(freqs > 0) & (freqs < cutoff)].sum(axis=0)


def test_high_pass_removes_slow_drift_and_keeps_faster_signal():
    tr, n, cutoff = 2.0, 300, 0.01
    t = np.arange(n) * tr
    rng = np.random.default_rng(3)
    fast = np.sin(2 * np.pi * 0.05 * t)  # 20 s period, well above the cut-off
    drift = 4.0 * np.cos(2 * np.pi * 0.004 * t + 0.7) + 2.0 * np.cos(2 * np.pi * 0.0015 * t)
    data = (100 + fast[:, None] * rng.uniform(0.5, 1.5, 20) + drift[:, None]
            + 0.05 * rng.standard_normal((n, 20))).astype(np.float32)
    filtered, _ = clean_run(data, tr=tr, high_pass=cutoff)
    detrended, _ = clean_run(data, tr=tr)
    before = _low_power(data / data.std(axis=0), tr, cutoff)
    assert (_low_power(filtered, tr, cutoff) < before / 100).all()
    # linear detrending alone leaves the drift in
    assert (_low_power(detrended, tr, cutoff) > before / 10).all()
    assert min(np.corrcoef(fast, column)[0, 1] for column in filtered.T) > 0.95
    assert max(np.corrcoef(fast, column)[0, 1] for column in detrended.T) < 0.6


def test_detrending_removes_a_linear_drift_within_the_kept_volumes():
    tr, n = 2.0, 120
    t = np.arange(n) * tr
    fast = np.sin(2 * np.pi * 0.06 * t)
    data = (50 + 0.2 * t[:, None] + fast[:, None]).astype(np.float32) * np.ones((1, 4), np.float32)
    keep = np.ones(n, dtype=bool)
    keep[:3] = False
    keep[60:64] = False  # scrubbed volumes
    cleaned, _ = clean_run(data, tr=tr, keep=keep)
    assert cleaned.shape == (keep.sum(), 4)
    assert max(abs(np.corrcoef(t[keep], c)[0, 1]) for c in cleaned.T) < 1e-3
    assert min(np.corrcoef(fast[keep], c)[0, 1] for c in cleaned.T) > 0.99
    # confounds regressed within folds are detrended the same way
    regressors = clean_confounds(np.column_stack([t, fast]), tr=tr, keep=keep)
    assert np.abs(regressors[:, 0]).max() < 1e-6 and regressors[:, 1].std() == pytest.approx(1)
