"""Statistics of the encoding engine on planted and null data.

Planted voxels are recovered and significant after FDR; under a null (features
unrelated to BOLD) permutation p values are uniform and the FDR map's
false-discovery proportion stays at the nominal rate; the paired bootstrap
finds the better of two models; the inter-subject ceiling matches the planted
shared signal.
"""

import numpy as np
import pytest
from scipy import stats

from bids_app.encoding.contrast import compare_predictions
from bids_app.encoding.engine import cross_validate
from bids_app.encoding.noise_ceiling import ceiling_normalised, loso_correlation, noise_ceiling
from bids_app.encoding.permutation import permutation_indices

ALPHAS = np.logspace(0, 4, 5)


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _ar1(rng, n, v, phi):
    e = rng.normal(size=(n, v))
    out = np.empty_like(e)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + np.sqrt(1 - phi ** 2) * e[t]
    return out


def _smooth_features(rng, n, p, width=4):
    raw = rng.normal(size=(n + width, p))
    c = np.cumsum(raw, axis=0)
    return ((c[width:] - c[:-width]) / np.sqrt(width)).astype(np.float32)


def _dataset(seed, *, n_runs=4, n=100, p=10, v=300, planted=0.2, snr=0.6, phi=0.3):
    rng = np.random.default_rng(seed)
    Xs = [_smooth_features(rng, n, p) for _ in range(n_runs)]
    W = rng.normal(size=(p, v)) / np.sqrt(p)
    n_sig = int(planted * v)
    W[:, n_sig:] = 0
    Ys = [(snr * x @ W + _ar1(rng, n, v, phi)).astype(np.float32) for x in Xs]
    return Xs, Ys, n_sig


def test_planted_voxels_are_significant_and_null_voxels_uniform():
    Xs, Ys, n_sig = _dataset(0)
    res = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3, n_permutations=199,
                         permutation="block", block_length=10, random_state=1)
    assert res.r[:n_sig].mean() > 0.3
    assert (res.q[:n_sig] < 0.05).mean() > 0.9
    null_p = res.p[n_sig:]
    assert stats.kstest(null_p, "uniform").pvalue > 0.01
    assert res.info["n_permutations"] == 199
    # folds are dependent under the null (shared training data): measured, not assumed 0
    assert 0.05 < res.info["null_fold_correlation"] < 0.6


@pytest.mark.parametrize("method", ["block", "circular"])
def test_pure_null_gives_uniform_p_and_controlled_fdr(method):
    p_values, any_discovery = [], []
    for seed in range(3):
        Xs, Ys, _ = _dataset(10 + seed, planted=0.0, v=300)
        res = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3,
                             n_permutations=199, permutation=method, block_length=10,
                             random_state=seed)
        p_values.append(res.p)
        any_discovery.append(float((res.q < 0.05).any()))  # every discovery is false here
    p_values = np.concatenate(p_values)
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    assert np.mean(p_values < 0.05) <= 0.05 + 0.02
    assert np.mean(any_discovery) <= 1 / 3


def test_fdr_false_discovery_proportion_is_nominal_with_signal():
    props = []
    for seed in range(3):
        Xs, Ys, n_sig = _dataset(20 + seed, planted=0.3, snr=0.4)
        res = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3,
                             n_permutations=199, block_length=10, random_state=seed)
        found = res.q < 0.05
        props.append(found[n_sig:].sum() / max(found.sum(), 1))
    assert np.mean(props) <= 0.05 + 0.02


def test_permutation_schemes_keep_blocks():
    idx = permutation_indices(50, 20, method="block", block_length=10, random_state=0)
    for row in idx:
        assert sorted(row) == list(range(50))
        assert all(np.diff(row[i:i + 10]).tolist() == [1] * 9 for i in range(0, 50, 10))
    shifts = permutation_indices(50, 20, method="circular", block_length=10, random_state=0)
    lags = shifts[:, 0]
    assert ((lags >= 1) & (lags <= 49)).all() and len(set(lags)) > 5
    for row, lag in zip(shifts, lags, strict=True):
        np.testing.assert_array_equal(row, (np.arange(50) + lag) % 50)
    with pytest.raises(ValueError, match="'permutation' must be one of"):
        permutation_indices(10, 2, method="shuffle")


def test_paired_contrast_finds_the_better_model():
    rng = np.random.default_rng(3)
    n, v = 300, 400
    signal = _ar1(rng, n, v, 0.5)
    y = signal + _ar1(rng, n, v, 0.3)
    folds = [np.arange(0, 100), np.arange(100, 200), np.arange(200, 300)]
    n_better = 60  # most voxels do not differ (the empirical null needs them)
    pred_a = signal + 2.0 * rng.normal(size=(n, v))
    pred_b = signal + 2.0 * rng.normal(size=(n, v))
    pred_a[:, :n_better] = signal[:, :n_better] + 0.3 * rng.normal(size=(n, n_better))
    out = compare_predictions(y, pred_a, pred_b, folds, n_null=300, batch=64)
    assert (out["rdiff"][:n_better] > 0).all()
    assert (out["q"][:n_better] < 0.05).mean() > 0.9
    # equally good models: few discoveries, and p no smaller than uniform (the complete-null
    # windows are wider than the sampling spread of a difference between good models)
    assert (out["q"][n_better:] < 0.05).mean() <= 0.05
    assert (out["p"][n_better:] < 0.05).mean() <= 0.06
    assert out["p"].min() >= 1 / 301 - 1e-9


def test_inter_subject_ceiling_matches_the_shared_signal():
    rng = np.random.default_rng(4)
    n, v, n_sub = 1000, 50, 6
    shared = rng.normal(size=(n, v))
    noise_sd = np.linspace(0.5, 3.0, v)
    data = [(shared + noise_sd * rng.normal(size=(n, v))).astype(np.float32)
            for _ in range(n_sub)]
    loso = loso_correlation(data, batch=16)
    assert loso.shape == (n_sub, v)
    ceiling = noise_ceiling(data)
    # corr(s + e_i, s + mean of others' e) with var(s) = 1, var(e) = sd^2
    expected = 1 / np.sqrt((1 + noise_sd ** 2) * (1 + noise_sd ** 2 / (n_sub - 1)))
    np.testing.assert_allclose(ceiling, expected, atol=0.06)
    assert np.all(np.diff(ceiling[::10]) < 0)
    normalised = ceiling_normalised(np.full(v, 0.2), ceiling, min_ceiling=0.3)
    assert np.isnan(normalised[ceiling < 0.3]).all()
    np.testing.assert_allclose(normalised[ceiling >= 0.3], 0.2 / ceiling[ceiling >= 0.3],
                               rtol=1e-5)
    with pytest.raises(ValueError, match="at least 3"):
        loso_correlation(data[:2])


@pytest.mark.parametrize("n_sub", [3, 8, 20])
def test_perfect_model_reads_one_of_the_corrected_ceiling(n_sub):
    """A perfect model of the shared response: normalised r 1.0 +- 0.05 at any group size."""
    from bids_app.encoding.noise_ceiling import shared_response_ceiling
    from bids_app.encoding.scoring import pearson_r

    rng = np.random.default_rng(n_sub)
    n, v = 600, 60
    noise_sd = np.linspace(0.5, 2.0, v)
    ratios, raw_ratios = [], []
    for _ in range(5):
        shared = _ar1(rng, n, v, 0.6)
        data = [(shared + noise_sd * _ar1(rng, n, v, 0.6)).astype(np.float32)
                for _ in range(n_sub)]
        loso = loso_correlation(data, batch=32)
        ceiling = shared_response_ceiling(loso, n_sub)
        perfect = np.stack([pearson_r(d, shared) for d in data])  # model = the shared response
        ratios.append(perfect.mean(0) / ceiling.mean(0))
        raw_ratios.append(perfect.mean(0) / loso.mean(0))
    ratio = np.mean(ratios, axis=0)
    np.testing.assert_allclose(ratio.mean(), 1.0, atol=0.05)
    assert np.abs(ratio - 1).max() < 0.15
    # the uncorrected LOSO correlation is exceeded, most with few participants
    expected_raw = {3: 1.3, 8: 1.08, 20: 1.03}[n_sub]
    assert np.mean(raw_ratios) > expected_raw
