"""HRF / FIR / Lanczos alignment against hand-computed cases."""

import numpy as np
import pytest
from scipy import stats

from bids_app.alignment import (
    align_run,
    bin_features,
    delay_stack,
    frame_times,
    hrf,
    hrf_design,
    lanczos_resample,
    zscore_columns,
)


def glover_by_hand(t):
    # Glover (1999) as parametrised by nilearn: gamma(6/0.9, scale 0.9) - 0.35 gamma(12/0.9, 0.9)
    t = np.asarray(t, float)
    peak = stats.gamma.pdf(t, 6 / 0.9, scale=0.9)
    under = stats.gamma.pdf(t, 12 / 0.9, scale=0.9)
    return (peak - 0.35 * under) / 0.65


def test_glover_peak_and_area():
    t = np.arange(0, 40, 0.01)
    h = hrf(t)
    assert 4.0 < t[np.argmax(h)] < 6.0
    assert np.trapezoid(h, t) == pytest.approx(1.0, abs=1e-3)
    assert h.min() < 0  # undershoot


def test_impulse_design_equals_hand_computed_sum():
    onsets = np.array([1.0, 3.5, 10.25])
    features = np.array([[1.0, 0.0], [2.0, 1.0], [-1.0, 3.0]])
    times = frame_times(12, 2.0, reference=1.0)  # 1, 3, 5, ...
    X = hrf_design(onsets, np.zeros(3), features, times)
    expected = np.zeros((12, 2))
    for i, t in enumerate(times):
        for onset, f in zip(onsets, features, strict=False):
            if t > onset:
                expected[i] += glover_by_hand(t - onset) * f
    np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-6)


def test_boxcar_design_is_the_mean_of_the_hrf_over_the_word():
    onsets, durations = np.array([2.0]), np.array([0.8])
    times = np.array([4.0, 6.0, 9.0])
    X = hrf_design(onsets, durations, np.ones((1, 1)), times, word_duration="boxcar")
    for i, t in enumerate(times):
        s = np.linspace(onsets[0], onsets[0] + durations[0], 20001)
        by_hand = np.trapezoid(glover_by_hand(t - s), s) / durations[0]
        assert X[i, 0] == pytest.approx(by_hand, rel=1e-4)


def test_design_is_linear_and_causal():
    rng = np.random.default_rng(0)
    onsets = np.sort(rng.uniform(0, 60, 50))
    f1, f2 = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    times = frame_times(40, 2.0)
    a = hrf_design(onsets, np.zeros(50), f1, times)
    b = hrf_design(onsets, np.zeros(50), f2, times)
    ab = hrf_design(onsets, np.zeros(50), 2 * f1 + f2, times)
    np.testing.assert_allclose(ab, 2 * a + b, rtol=1e-4, atol=1e-5)
    late = hrf_design(np.array([30.0]), np.zeros(1), np.ones((1, 1)), times)
    assert np.all(late[times <= 30.0] == 0)


def test_derivatives_add_feature_blocks():
    times = frame_times(20, 2.0)
    X = hrf_design(np.array([3.0]), np.zeros(1), np.ones((1, 4)), times,
                   model="glover + derivative + dispersion")
    assert X.shape == (20, 12)


def test_fir_bins_words_into_volumes_and_delays():
    times = np.array([2.0, 4.0, 6.0, 8.0])
    onsets = np.array([0.5, 1.9, 2.0, 7.9])
    feats = np.array([[1.0], [10.0], [100.0], [1000.0]])
    binned = bin_features(onsets, feats, times, tr=2.0)
    np.testing.assert_array_equal(binned[:, 0], [11.0, 100.0, 0.0, 1000.0])
    stacked = delay_stack(binned, [0, 1, 2])
    np.testing.assert_array_equal(stacked[:, 1], [0.0, 11.0, 100.0, 0.0])
    np.testing.assert_array_equal(stacked[:, 2], [0.0, 0.0, 11.0, 100.0])


def test_lanczos_reproduces_a_slow_signal():
    onsets = np.arange(0, 100, 0.25)
    signal = np.sin(2 * np.pi * onsets / 40.0)[:, None]
    times = np.arange(10, 90, 2.0)
    # the kernel integrates to 1 / cutoff seconds: scale the sum by dt * cutoff
    out = lanczos_resample(onsets, signal, times, cutoff=1 / 4.0) * 0.25 * 0.25
    np.testing.assert_allclose(out[:, 0], np.sin(2 * np.pi * times / 40.0), atol=0.05)


def test_zscore_and_constant_columns():
    X = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    Z = zscore_columns(X)
    assert Z.dtype == np.float32
    assert Z[:, 0].mean() == pytest.approx(0, abs=1e-6) and Z[:, 0].std() == pytest.approx(1)
    assert np.all(Z[:, 1] == 0)


def test_align_run_rejects_unknown_method():
    with pytest.raises(ValueError, match="'method' must be one of"):
        align_run(np.zeros(1), np.zeros(1), np.ones((1, 1)), np.arange(3.0), 2.0,
                  method="boxcar")
