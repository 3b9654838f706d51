"""Group statistics: sign-flip permutation test, t test, FDR, FWE."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bids_app.group.one_sample import _flips, fisher_z, one_sample_test, t_statistic


def test_t_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 50)) + 0.3
    expected = stats.ttest_1samp(x, 0.0, axis=0).statistic
    np.testing.assert_allclose(t_statistic(x), expected, rtol=1e-10)
    result = one_sample_test(x, n_permutations=0)
    np.testing.assert_allclose(result.p, stats.ttest_1samp(x, 0.0, axis=0,
                                                           alternative="greater").pvalue)
    assert result.p_perm is None


def test_exhaustive_flips_for_small_groups():
    flips = _flips(4, 1000, np.random.default_rng(0))
    assert flips.shape == (16, 4)
    assert len({tuple(row) for row in flips}) == 16
    assert np.all(flips[0] == 1)  # identity first
    random = _flips(12, 100, np.random.default_rng(0))
    assert random.shape == (101, 12) and np.all(random[0] == 1)


def test_exact_p_values_with_few_subjects():
    x = np.array([[0.5], [0.6], [0.4], [0.7]])  # every subject positive
    result = one_sample_test(x, n_permutations=1000)
    assert result.n_permutations == 16
    assert result.p_perm[0] == pytest.approx(1 / 16)


def test_planted_effect_found_and_null_calibrated():
    rng = np.random.default_rng(1)
    n_sub, n_vox = 12, 600
    x = rng.standard_normal((n_sub, n_vox))
    x[:, :100] += 2.0
    result = one_sample_test(x, n_permutations=5000, seed=3)
    assert result.n_permutations == 4096  # exhaustive
    assert np.mean(result.q_perm[:100] < 0.05) > 0.9
    null_p = result.p_perm[100:]
    # Under the null the permutation p values are close to uniform.
    assert stats.kstest(null_p, "uniform").pvalue > 0.001
    assert np.mean(result.q_perm[100:] < 0.05) < 0.05
    # FWE p values are never smaller than voxel-wise permutation p values.
    assert np.all(result.p_fwe >= result.p_perm - 1e-12)
    assert np.mean(result.p_fwe[100:] < 0.05) <= 0.01


def test_two_sided_detects_negative_effects():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 300))
    x[:, :30] -= 2.5
    one = one_sample_test(x, n_permutations=2000)
    two = one_sample_test(x, two_sided=True, n_permutations=2000)
    assert np.all(one.p_perm[:30] > 0.9)
    assert np.mean(two.q_perm[:30] < 0.05) > 0.9


def test_deterministic_under_seed_and_constant_voxels():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((15, 40))
    x[:, 0] = 0.0  # no variance: not testable
    a = one_sample_test(x, n_permutations=200, seed=7)
    b = one_sample_test(x, n_permutations=200, seed=7)
    np.testing.assert_array_equal(a.p_perm[1:], b.p_perm[1:])
    assert np.isnan(a.t[0]) and np.isnan(a.p_perm[0])


def test_fisher_z_is_bounded():
    z = fisher_z(np.array([-1.0, 0.0, 1.0]))
    assert np.all(np.isfinite(z)) and z[1] == 0


def test_p_never_below_one_over_flips_for_tight_effects():
    """Large means with tiny spread: rounding must not drop the identity flip."""
    rng = np.random.default_rng(4)
    x = 0.3 + 1e-7 * rng.standard_normal((3, 500))
    result = one_sample_test(x, n_permutations=1000)
    assert result.n_permutations == 8
    assert np.all(result.p_perm >= 1 / 8 - 1e-12) and np.all(result.p_fwe >= 1 / 8 - 1e-12)
    assert np.sum(result.q_perm < 0.05) == 0
