"""The Lanczos alignment: 3 lobes cut off at the TR's Nyquist frequency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bids_app.alignment import align_run, frame_times, lanczos_kernel, lanczos_resample

TR = 2.0
NYQUIST = 1.0 / (2.0 * TR)


def _hand(t: float, tr: float = TR, lobes: int = 3) -> float:
    """Lanczos-3 low-pass written out: (1/TR) sinc(t/TR) sinc(t/(3 TR)) on |t| < 3 TR."""
    if abs(t) >= lobes * tr:
        return 0.0
    if t == 0:
        return 1.0 / tr
    x = math.pi * t / tr
    return (1.0 / tr) * (math.sin(x) / x) * (math.sin(x / lobes) / (x / lobes))


def test_kernel_matches_the_hand_formula():
    lags = np.r_[np.linspace(-7.0, 7.0, 281), 0.0, 1.3, -5.99, 6.01]
    expected = np.array([_hand(t) for t in lags])
    np.testing.assert_allclose(lanczos_kernel(lags, cutoff=NYQUIST), expected, atol=1e-12)


def test_kernel_support_is_three_trs_with_zeros_at_every_tr():
    assert lanczos_kernel(np.array([0.0]), cutoff=NYQUIST)[0] == pytest.approx(1.0 / TR)
    multiples = TR * np.array([-3, -2, -1, 1, 2, 3], dtype=float)
    np.testing.assert_allclose(lanczos_kernel(multiples, cutoff=NYQUIST), 0.0, atol=1e-15)
    inside = lanczos_kernel(np.array([-2.9 * TR, 2.9 * TR]), cutoff=NYQUIST)
    assert np.all(np.abs(inside) > 1e-4)
    outside = lanczos_kernel(np.array([-3.01 * TR, 3.01 * TR, 6 * TR]), cutoff=NYQUIST)
    np.testing.assert_array_equal(outside, 0.0)


def test_kernel_is_a_low_pass_at_the_nyquist_frequency():
    t = np.arange(-3 * TR, 3 * TR, 1e-3)
    h = lanczos_kernel(t, cutoff=NYQUIST)

    def gain(f):
        return float(np.sum(h * np.cos(2 * np.pi * f * t)) * 1e-3)

    assert gain(0.0) == pytest.approx(1.0, abs=0.01)
    assert gain(NYQUIST) == pytest.approx(0.5, abs=0.02)  # the cut-off, not half of it
    assert gain(NYQUIST / 2) > 0.9
    assert abs(gain(2 * NYQUIST)) < 0.05


def test_resampling_recovers_a_slow_signal():
    onsets = np.arange(0, 100, 0.25)
    signal = np.sin(2 * np.pi * onsets / 40.0)[:, None]
    times = np.arange(10, 90, TR)
    out = lanczos_resample(onsets, signal, times, cutoff=NYQUIST) * 0.25  # sum * dt
    np.testing.assert_allclose(out[:, 0], np.sin(2 * np.pi * times / 40.0), atol=0.02)


@pytest.mark.parametrize("onset", [40.0, 40.3, 40.9, 41.5, 41.99])
def test_no_leakage_into_volumes_more_than_one_tr_before_a_word(onset):
    times = frame_times(60, TR)
    design = align_run(np.array([onset]), np.array([0.3]), np.ones((1, 1)), times, TR,
                       method="lanczos", delays=(1, 2, 3, 4), zscore=False)
    response = np.abs(design).max(axis=1)
    early = times < onset - 2 * TR
    assert np.all(response[early] == 0.0)
    # between one and two TRs before the word only the outermost side lobe reaches:
    # under 3 % of the kernel's peak (1 / TR)
    between = (times >= onset - 2 * TR) & (times < onset - TR)
    assert np.all(response[between] <= 0.03 / TR)
    # the main lobe lands after the word: the largest weight is at least one TR later
    assert times[np.argmax(response)] > onset
