"""Null calibration of the participant-level held-out test (stat-p, stat-q).

BOLD independent of the features, AR(1) 0.8 and 0.95 per volume, spatially
smooth, with slowly drifting features and runs of different lengths
(:mod:`tests.helpers.nulls`), goes through the real ``cross_validate`` with the
settings a user gets by default. Every voxel is null, so the share of voxels
under a threshold is the false-positive rate.
"""

import numpy as np
import pytest
from scipy import stats

from bids_app.encoding.engine import cross_validate
from tests.helpers.nulls import binomial_upper, default_settings, null_fits, null_story_data

N_DATASETS = 12


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _defaults() -> dict:
    return default_settings()


def _null_maps(phi: float, **overrides):
    settings = {**_defaults(), **overrides}
    alphas = settings.pop("alphas")
    p, q, floors = [], [], set()
    for seed in range(N_DATASETS):
        Xs, Ys = null_story_data(seed, phi)
        res = cross_validate(Xs, Ys, alphas, backend="numpy", random_state=seed, **settings)
        p.append(res.p)
        q.append(res.q)
        floors.add(res.info["p_floor"])
    return np.concatenate(p), np.concatenate(q), floors, res


@pytest.mark.slow
@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_default_participant_test_is_calibrated_under_autocorrelated_null(phi):
    p, q, floors, res = _null_maps(phi)
    assert res.info["permutation"] == "mismatched" and res.info["heldout_p"] == "permutation"
    assert np.mean(p < 0.05) <= 0.06
    assert np.mean(p < 0.01) <= 0.015
    assert np.mean(q < 0.05) <= 0.002
    # an exact rank p: never below 1 / (n_permutations + 1), recorded as such
    n_perm = res.info["n_permutations"]
    assert floors == {1.0 / (n_perm + 1)}
    assert p.min() >= 1.0 / (n_perm + 1) - 1e-9


@pytest.mark.slow
def test_circular_scheme_is_calibrated_and_the_fixture_defeats_a_naive_test():
    from scipy import stats

    p, q, _, res = _null_maps(0.95, permutation="circular")
    assert np.mean(p < 0.05) <= 0.06 and np.mean(q < 0.05) <= 0.002
    # a naive test (Fisher z of each fold's r with n - 3 degrees of freedom, folds taken as
    # independent) on the same kind of data: far too many false positives
    lengths = np.asarray(res.info["run_lengths"])
    n_k = np.array([lengths[runs].sum() for runs in res.test_runs])[:, None]
    z = (np.arctanh(res.r_folds) * np.sqrt(n_k - 3)).sum(axis=0) / np.sqrt(len(n_k))
    assert np.mean(stats.norm.sf(z) < 0.05) > 0.2


#: The CI-sized null: the participants of the CI-sized group test (shared through the cache
#: of :func:`null_fits`), 16 per AR value, 600 voxels each, spatially independent so that the
#: voxel counts are binomial given the designs.
CI_SEEDS = [1000 * g + s for g in (50, 51) for s in range(8)]
CI_GRID = (10, 10, 6)


@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_default_participant_test_is_calibrated_ci_sized(phi):
    """p < .05, p < .01 within 3.29 binomial standard errors of nominal over 9,600 voxels.

    Bounds: 5.73 % and 1.33 %. The block scheme (10-volume blocks shuffled), kept for
    comparison, marks 7.2 % p < .05 at AR 0.95 on these data and fails.
    """
    fits = null_fits(phi, CI_SEEDS, grid=CI_GRID, smooth=0.0)
    p = np.concatenate([f.p for f in fits])
    assert fits[0].info["permutation"] == "mismatched"
    assert np.mean(p < 0.05) <= binomial_upper(0.05, p.size)
    assert np.mean(p < 0.01) <= binomial_upper(0.01, p.size)
    # BH under a complete null: any discovery in at most 5 % of datasets, so at most 3 of
    # these 16 (P(>= 4 of 16) = 0.7 % at 5 %)
    assert sum(bool((f.q < 0.05).any()) for f in fits) <= 3
    n_perm = fits[0].info["n_permutations"]
    assert p.min() >= 1.0 / (n_perm + 1) - 1e-9
    # the fixture defeats a naive test (Fisher z of each fold's r with n - 3 degrees of
    # freedom, folds taken as independent): far more than 5 % at either AR value
    naive = []
    for f in fits:
        lengths = np.asarray(f.info["run_lengths"])
        n_k = np.array([lengths[runs].sum() for runs in f.test_runs])[:, None]
        z = (np.arctanh(f.r_folds) * np.sqrt(n_k - 3)).sum(axis=0) / np.sqrt(len(n_k))
        naive.append(stats.norm.sf(z) < 0.05)
    assert np.mean(np.concatenate(naive)) > 0.15


def test_planted_voxels_are_found_with_the_default_test():
    rng = np.random.default_rng(5)
    Xs, Ys = null_story_data(99, 0.8)
    n_sig = 200
    w = rng.normal(size=(Xs[0].shape[1], n_sig)) / np.sqrt(Xs[0].shape[1])
    for x, y in zip(Xs, Ys, strict=True):
        # slowly drifting features make chance correlations wide (a held-out r of 0.37 has
        # a fold score of about 1.3 here), so the planted r is about 0.74
        y[:, :n_sig] += 2.0 * x @ w
    settings = _defaults()
    res = cross_validate(Xs, Ys, settings.pop("alphas"), backend="numpy", **settings)
    assert (res.q[:n_sig] < 0.05).mean() > 0.8
    assert (res.q[n_sig:] < 0.05).mean() < 0.05


def test_the_uncalibrated_block_scheme_says_so():
    import warnings

    from bids_app.encoding.heldout import HeldoutTest

    with pytest.warns(UserWarning, match="'block' is kept for comparison only and is not "
                                         "calibrated"):
        HeldoutTest(4, 10, 5, method="block")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("mismatched", "circular"):
            HeldoutTest(4, 10, 5, method=method)
