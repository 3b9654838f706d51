"""HRF / FIR / Lanczos alignment against hand-computed cases."""

import numpy as np
import pytest
from scipy import stats

from bids_app.alignment import (
    HRF_MODELS,
    align_run,
    bin_features,
    delay_stack,
    frame_times,
    hrf,
    hrf_basis,
    hrf_design,
    zscore_columns,
)


def glover_by_hand(t):
    # Glover (1999) as parametrised by nilearn: gamma(6/0.9, scale 0.9) - 0.48 gamma(12/0.9, 0.9)
    t = np.asarray(t, float)
    peak = stats.gamma.pdf(t, 6 / 0.9, scale=0.9)
    under = stats.gamma.pdf(t, 12 / 0.9, scale=0.9)
    return (peak - 0.48 * under) / 0.52


def spm_by_hand(t):
    # SPM's spm_hrf: gamma(6, scale 1) - gamma(16, scale 1) / 6, peak near 5 s, undershoot near 15 s
    t = np.asarray(t, float)
    return (stats.gamma.pdf(t, 6.0) - stats.gamma.pdf(t, 16.0) / 6.0) / (5.0 / 6.0)


def nilearn_grid(t_r=2.0, oversampling=50, time_length=32.0):
    """nilearn's HRF sampling: ``linspace`` over the kernel, one sample late (``loc=dt``)."""
    dt = t_r / oversampling
    stamps = np.linspace(0, time_length, int(np.rint(time_length / dt)))
    return stamps - dt


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


def test_spm_hrf_is_the_canonical_difference_of_gammas():
    t = np.arange(0, 40, 0.001)
    h = hrf(t, "spm")
    np.testing.assert_allclose(h, spm_by_hand(t), rtol=1e-10, atol=1e-12)
    assert t[np.argmax(h)] == pytest.approx(5.0, abs=0.05)
    assert 15.0 < t[np.argmin(h)] < 16.0  # undershoot
    assert np.trapezoid(h, t) == pytest.approx(1.0, abs=1e-4)
    # late in the undershoot the peak gamma has died out: what is left is -1/6 of gamma(16)
    late = t > 28
    np.testing.assert_allclose(h[late] * 5 / 6 / stats.gamma.pdf(t[late], 16.0), -1 / 6,
                               rtol=0.01)


@pytest.mark.parametrize("model", ["spm", "glover"])
def test_canonical_hrfs_equal_nilearn_sampled_identically(model):
    from nilearn.glm.first_level import glover_hrf, spm_hrf

    reference = {"spm": spm_hrf, "glover": glover_hrf}[model](2.0, oversampling=50)
    ours = hrf(nilearn_grid(), model)
    ours /= ours.sum()  # nilearn scales kernels to unit sum, ours to unit area
    assert np.abs(ours - reference).max() < 1e-3 * reference.max()


def test_glover_undershoot_is_as_deep_as_glover_1999():
    t = np.arange(0.001, 40, 0.001)
    h = hrf(t, "glover")
    np.testing.assert_allclose(h, glover_by_hand(t), rtol=1e-10, atol=1e-12)
    # Glover (1999): t^6 e^{-t/0.9} minus 0.35 times t^12 e^{-t/0.9}, both scaled to peak 1
    g1, g2 = t ** 6 * np.exp(-t / 0.9), t ** 12 * np.exp(-t / 0.9)
    paper = g1 / g1.max() - 0.35 * g2 / g2.max()
    assert h.min() / h.max() == pytest.approx(paper.min() / paper.max(), abs=0.01)
    assert abs(t[np.argmin(h)] - t[np.argmin(paper)]) < 0.2
    assert np.corrcoef(h, paper)[0, 1] > 0.995


def _words(seed=0, n=40, span=80.0):
    rng = np.random.default_rng(seed)
    onsets = np.sort(rng.uniform(2, span, n))
    return onsets, rng.uniform(0.1, 0.5, n), rng.normal(size=(n, 3))


@pytest.mark.parametrize("base", ["spm", "glover"])
@pytest.mark.parametrize("word_duration", ["impulse", "boxcar"])
def test_time_derivative_is_the_shift_derivative_of_the_regressor(base, word_duration):
    onsets, durations, features = _words()
    times = frame_times(60, 1.5, reference=0.75)
    kw = {"word_duration": word_duration}
    X = hrf_design(onsets, durations, features, times, model=f"{base} + derivative", **kw)
    canonical, derivative = X[:, :3].astype(float), X[:, 3:].astype(float)
    np.testing.assert_allclose(canonical, hrf_design(onsets, durations, features, times,
                                                     model=base, **kw), rtol=1e-6)
    # central difference of the canonical regressor with respect to a shift of every word:
    # words heard earlier by s move the response earlier, i.e. X(t + s)
    eps = 0.01
    earlier = hrf_design(onsets - eps, durations, features, times, model=base, **kw)
    later = hrf_design(onsets + eps, durations, features, times, model=base, **kw)
    by_shift = (earlier.astype(float) - later) / (2 * eps)
    for j in range(3):
        a, b = derivative[:, j], by_shift[:, j]
        assert np.corrcoef(a, b)[0, 1] > 0.999
        assert (a @ b) / (b @ b) == pytest.approx(1.0, abs=0.03)  # same scale and sign


def test_time_derivative_absorbs_a_latency_shift():
    onsets, durations, features = _words(seed=1)
    times = frame_times(60, 1.5)
    X = hrf_design(onsets, durations, features[:, :1], times, model="spm + derivative")
    late = hrf_design(onsets + 0.5, durations, features[:, :1], times, model="spm")[:, 0]

    def residual(design):
        beta = np.linalg.lstsq(design, late, rcond=None)[0]
        return np.sum((late - design @ beta) ** 2) / np.sum(late ** 2)

    assert residual(X) < 0.01 < residual(X[:, :1])
    beta = np.linalg.lstsq(X, late, rcond=None)[0]
    assert beta[1] / beta[0] == pytest.approx(-0.5, abs=0.1)  # the shift, in seconds


@pytest.mark.parametrize("base", ["spm", "glover"])
def test_dispersion_derivative_as_nilearn_defines_it(base):
    from nilearn.glm.first_level import (
        glover_dispersion_derivative,
        glover_time_derivative,
        spm_dispersion_derivative,
        spm_time_derivative,
    )

    canonical, time_d, dispersion_d = hrf_basis(f"{base} + derivative + dispersion")
    grid = nilearn_grid()
    scale = 1.0 / hrf(grid, base).sum()  # nilearn's unit-sum scaling
    references = {"spm": (spm_time_derivative, spm_dispersion_derivative),
                  "glover": (glover_time_derivative, glover_dispersion_derivative)}[base]
    for ours, reference in zip((time_d, dispersion_d), references, strict=True):
        expected = reference(2.0, oversampling=50)
        assert np.abs(scale * ours(grid) - expected).max() < 2e-3 * np.abs(expected).max()
    # both derivatives keep the response's area; the time derivative is orthogonal to the HRF,
    # the dispersion derivative is distinct from both (neither collinear nor a mix of the two)
    t = np.arange(0, 45, 0.001)
    h, dt_, dd = canonical(t), time_d(t), dispersion_d(t)
    assert abs(np.trapezoid(dt_, t)) < 1e-4 and abs(np.trapezoid(dd, t)) < 1e-4
    assert abs(np.corrcoef(h, dt_)[0, 1]) < 0.05
    assert abs(np.corrcoef(h, dd)[0, 1]) < 0.7 and abs(np.corrcoef(dt_, dd)[0, 1]) < 0.7
    basis = np.column_stack([h, dt_])
    left = dd - basis @ np.linalg.lstsq(basis, dd, rcond=None)[0]
    assert np.sum(left ** 2) > 0.3 * np.sum(dd ** 2)
    # it is minus the derivative in the peak's dispersion (here by a wider step, by hand)
    if base == "spm":
        wider = (stats.gamma.pdf(t, 6.0 / 1.05, scale=1.05)
                 - stats.gamma.pdf(t, 16.0) / 6.0) / (5.0 / 6.0)
        assert np.corrcoef(dd, (spm_by_hand(t) - wider) / 0.05)[0, 1] > 0.999


def test_derivative_regressors_are_distinct_columns_of_the_design():
    onsets, durations, features = _words(seed=2, n=60)
    times = frame_times(80, 1.5)
    X = hrf_design(onsets, durations, features[:, :1], times,
                   model="glover + derivative + dispersion").astype(float)
    corr = np.corrcoef(X.T)
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 0.9)
    singular = np.linalg.svd(zscore_columns(X), compute_uv=False)
    assert singular[-1] / singular[0] > 0.05


def test_hrf_model_names_are_checked():
    assert set(HRF_MODELS) == {"glover", "spm", "glover + derivative", "spm + derivative",
                               "glover + derivative + dispersion",
                               "spm + derivative + dispersion"}
    assert len(hrf_basis("spm+derivative+dispersion")) == 3
    for bad in ("glover + derivatives", "spm + dispersion", "canonical"):
        with pytest.raises(ValueError, match="'hrf_model' must be one of"):
            hrf_basis(bad)
    with pytest.raises(ValueError, match="'hrf_model' must be one of"):
        hrf(np.zeros(2), "canonical")
