"""The design gets the cleaning the BOLD gets: within-run projection and fold-wise confounds."""

from __future__ import annotations

import numpy as np
import pytest

from bids_app.encoding.confounds import centre_runs
from bids_app.encoding.engine import cross_validate
from bids_app.io.bold import clean_design, clean_run

TR = 2.0


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _walk(rng, n, k=1):
    return np.cumsum(rng.standard_normal((n, k)), axis=0) * 0.1


@pytest.mark.parametrize("high_pass", [None, 0.01])
def test_design_column_equal_to_a_voxel_gets_the_voxels_cleaning(high_pass):
    """Detrending, the cosine filter, scrubbing gaps and within-run confounds: one projection,
    so a design column that is a voxel's raw series becomes that voxel's cleaned series."""
    rng = np.random.default_rng(0)
    n = 120
    data = (_walk(rng, n, 5) + rng.standard_normal((n, 5)) + 100).astype(np.float32)
    confounds = np.column_stack([_walk(rng, n, 2), rng.standard_normal(n)])
    keep = np.ones(n, dtype=bool)
    keep[[0, 1, 40, 41, 42, 90]] = False  # non-steady state and scrubbed volumes
    settings = {"tr": TR, "detrend": True, "high_pass": high_pass, "keep": keep}
    cleaned, _ = clean_run(data, confounds=confounds, **settings)
    design = clean_design(np.column_stack([data, confounds[:, 0] * 3.0 + 1.0]),
                          within=confounds, **settings)
    assert design.shape == (keep.sum(), 6)
    for j in range(5):  # z-scoring aside, the same series
        assert np.corrcoef(design[:, j], cleaned[:, j])[0, 1] > 0.9999
    # a design column lying in the confound space is removed, not left to fit the BOLD
    assert not design[:, 5].any()
    assert np.abs(design.mean(0)).max() < 1e-4  # detrending centres the kept volumes


def _null_with_motion(seed=0, lengths=(70, 110, 90, 130), v=300):
    """Null voxels holding a motion artefact whose size differs from run to run."""
    rng = np.random.default_rng(seed)
    Cs, Ys, Xs = [], [], []
    for i, n in enumerate(lengths):
        motion = _walk(rng, n, 2)
        motion = (motion - motion.mean(0)) / motion.std(0)
        coupling = (1.0 + 1.5 * i) * rng.uniform(0.5, 1.5, v)  # run-dependent coupling
        Ys.append((motion[:, :1] * coupling + rng.standard_normal((n, v))).astype(np.float32))
        Cs.append(motion.astype(np.float32))
        Xs.append(np.column_stack([rng.standard_normal((n, 4)), motion]).astype(np.float32))
    return Xs, Ys, Cs


def test_design_component_in_the_confound_space_gives_no_spurious_fit():
    """Null BOLD plus motion whose size differs by run, so the training-run coefficients leave
    motion in every held-out run. The design's motion columns get the BOLD's fold-wise
    regression, so they are removed from training and held-out rows alike: alone they
    predict nothing at all (r = 0), and beside random features they change no score."""
    Xs, Ys, Cs = _null_with_motion()
    alphas = [0.1, 1.0, 10.0, 100.0, 1e3, 1e4]
    motion_only = cross_validate([x[:, 4:] for x in Xs], Ys, alphas, backend="numpy",
                                 inner_folds=3, confounds=Cs)
    assert np.abs(motion_only.r_folds).max() < 1e-3
    with_motion = cross_validate(Xs, Ys, alphas, backend="numpy", inner_folds=3,
                                 confounds=Cs)
    without = cross_validate([x[:, :4] for x in Xs], Ys, alphas, backend="numpy",
                             inner_folds=3, confounds=Cs)
    np.testing.assert_allclose(with_motion.r_folds, without.r_folds, atol=1e-3)


def test_centring_after_trimming_in_the_fit():
    """Trimmed z-scored runs are off zero mean; the fit centres BOLD and design per run."""
    rng = np.random.default_rng(3)
    lengths, trim = [60, 80, 70], (6, 3)
    Xs = [rng.standard_normal((n, 3)).astype(np.float32) + 5.0 for n in lengths]
    Ys, W = [], rng.standard_normal((3, 20))
    for x in Xs:
        y = x @ W + rng.standard_normal((len(x), 20))
        y[:trim[0]] += 10.0  # an onset transient, trimmed away
        Ys.append(((y - y.mean(0)) / y.std(0)).astype(np.float32))
    n_kept = sum(n - sum(trim) for n in lengths)
    heldout = np.zeros((n_kept, 20), np.float32)
    res = cross_validate(Xs, Ys, [1.0, 10.0], backend="numpy", inner_folds=2, trim=trim,
                         heldout=heldout)
    groups = np.repeat(np.arange(3), [n - sum(trim) for n in lengths])
    for g in range(3):  # the z-scored runs were off zero mean after trimming
        kept = Ys[g][trim[0]:lengths[g] - trim[1]]
        assert np.abs(kept.mean(0)).max() > 0.1
        np.testing.assert_allclose(heldout[groups == g].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(centre_runs(heldout, groups), heldout, atol=1e-5)
    assert res.r.mean() > 0.5
