"""Cross-validation over whole runs, and scores equal to a direct numpy computation."""

import numpy as np
import pytest

from bids_app.encoding.cv import inner_splits, outer_splits
from bids_app.encoding.engine import cross_validate
from bids_app.encoding.scoring import pearson_r, r2_score
from bids_app.encoding.voxel_stats import fdr_bh, one_sample_t


@pytest.mark.parametrize("scheme", ["leave-one-run-out", "2-fold", "3-fold"])
def test_no_run_is_in_train_and_test(scheme):
    groups = np.repeat([0, 1, 2, 3, 4], [30, 25, 40, 10, 20])
    splits = outer_splits(groups, scheme)
    held = []
    for train, test in splits:
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(train) + len(test) == len(groups)
        held.extend(np.unique(groups[test]))
        for itrain, ival in inner_splits(groups[train], 5):
            sub = groups[train]
            assert set(sub[itrain]).isdisjoint(sub[ival])
    assert sorted(held) == [0, 1, 2, 3, 4]


def test_outer_cv_needs_two_runs():
    with pytest.raises(ValueError, match="at least 2 runs"):
        outer_splits(np.zeros(10), "leave-one-run-out")


def test_scores_match_numpy():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    p[:, 0] = y[:, 0] * 2 + 1
    r = pearson_r(y, p)
    for j in range(4):
        assert r[j] == pytest.approx(np.corrcoef(y[:, j], p[:, j])[0, 1], abs=1e-6)
    r2 = r2_score(y, p)
    assert r2[1] == pytest.approx(1 - ((y[:, 1] - p[:, 1]) ** 2).sum()
                                  / ((y[:, 1] - y[:, 1].mean()) ** 2).sum(), abs=1e-5)


def _ridge_numpy(X, Y, alpha):
    return np.linalg.solve(X.T @ X + alpha * np.eye(X.shape[1]), X.T @ Y)


def _planted(n_runs=4, n=60, p=8, v=30, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(p, v))
    W[:, v // 2:] = 0
    Xs = [rng.normal(size=(n, p)).astype(np.float32) for _ in range(n_runs)]
    Ys = [(x @ W + rng.normal(size=(n, v))).astype(np.float32) for x in Xs]
    return Xs, Ys


def test_encoding_r_equals_direct_numpy_on_the_same_folds():
    Xs, Ys = _planted()
    alphas = [0.1, 10.0, 1000.0]
    result = cross_validate(Xs, Ys, alphas, backend="numpy", inner_folds=3)
    # the engine centres every run's design and BOLD (the ridge has no intercept)
    X = np.concatenate([x - x.mean(axis=0) for x in Xs])
    Y = np.concatenate([y - y.mean(axis=0) for y in Ys])
    groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(Xs)])
    for k, (train, test) in enumerate(outer_splits(groups)):
        alpha = result.alpha_folds[k]
        pred = np.zeros((len(test), Y.shape[1]))
        for a in np.unique(alpha):
            cols = alpha == a
            pred[:, cols] = X[test] @ _ridge_numpy(X[train].astype(float),
                                                   Y[train][:, cols].astype(float), a)
        direct = [np.corrcoef(Y[test][:, j], pred[:, j])[0, 1] for j in range(Y.shape[1])]
        np.testing.assert_allclose(result.r_folds[k], direct, atol=2e-4)
        assert result.test_runs[k] == [k]
    np.testing.assert_allclose(result.r, result.r_folds.mean(axis=0), atol=1e-6)


def test_alphas_chosen_by_inner_cv_match_a_direct_search():
    Xs, Ys = _planted(seed=3)
    alphas = [1.0, 300.0, 1e5]
    result = cross_validate(Xs, Ys, alphas, backend="numpy", inner_folds=3)
    X, Y = np.concatenate(Xs).astype(float), np.concatenate(Ys).astype(float)
    groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(Xs)])
    train, _ = outer_splits(groups)[0]
    inner = inner_splits(groups[train], 3)
    scores = np.zeros((len(alphas), Y.shape[1]))
    for i, a in enumerate(alphas):
        for itr, iva in inner:
            Xt, Yt = X[train][itr], Y[train][itr]
            pred = X[train][iva] @ _ridge_numpy(Xt, Yt, a)
            scores[i] += r2_score(Y[train][iva], pred)
    best = np.asarray(alphas)[np.argmax(scores, axis=0)]
    # voxels with signal have a clear optimum; pure-noise voxels are near ties
    np.testing.assert_allclose(result.alpha_folds[0][:15], best[:15])


def test_signal_voxels_beat_noise_voxels():
    Xs, Ys = _planted()
    result = cross_validate(Xs, Ys, [1.0, 100.0], backend="numpy", inner_folds=3)
    assert result.r[:15].mean() > 0.8
    assert abs(result.r[15:].mean()) < 0.1


def test_mismatched_lengths_are_refused():
    Xs, Ys = _planted()
    Ys[1] = Ys[1][:-1]
    with pytest.raises(ValueError, match="run 1"):
        cross_validate(Xs, Ys, [1.0], backend="numpy")


def test_fdr_bh_matches_definition():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    q = fdr_bh(p)
    # by hand: q_i = min_{j>=i} p_(j) * m / j
    m = len(p)
    expected = np.minimum.accumulate((p * m / np.arange(1, m + 1))[::-1])[::-1]
    np.testing.assert_allclose(q, np.minimum(expected, 1), rtol=1e-6)


def test_one_sample_t_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    values = rng.normal(0.2, 0.1, size=(6, 20))
    t, p = one_sample_t(values, fisher_z=False)
    ref = stats.ttest_1samp(values, 0.0, axis=0, alternative="greater")
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-5)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-4)
