"""EncodingRidgeCV and EncodingBandedRidgeCV: scikit-learn API, equal to himalaya's estimators."""

import numpy as np
import pytest

from bids_app.encoding import EncodingBandedRidgeCV, EncodingRidgeCV
from bids_app.encoding.cv import inner_splits

ALPHAS = np.logspace(0, 6, 13).astype(np.float32)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small problems: one BLAS thread avoids oversubscription on shared machines."""
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _data(n_runs=6, n=50, p=40, v=120, seed=0, offset=0.0):
    """Runs of a design and targets with a planted linear signal of varied noise level."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(p, v)) * (rng.random(v) < 0.6)
    X = rng.normal(size=(n_runs * n, p)).astype(np.float32)
    scale = rng.uniform(0.2, 5.0, size=v)
    Y = (X @ W / np.sqrt(p) + scale * rng.normal(size=(n_runs * n, v)) + offset)
    return X, Y.astype(np.float32), np.repeat(np.arange(n_runs), n)


@pytest.mark.parametrize("backend", ["numpy", "torch",
                                     pytest.param("torch_cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("p", [40, 400])  # primal (n > p) and kernel (n < p) forms
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_equals_himalaya_ridgecv(backend, p, fit_intercept):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    X, Y, groups = _data(p=p, offset=3.0 if fit_intercept else 0.0)
    train, test = groups < 5, groups == 5
    model = EncodingRidgeCV(alphas=ALPHAS, cv=5, backend=backend, fit_intercept=fit_intercept)
    model.fit(X[train], Y[train], groups=groups[train])
    be = set_backend(backend)
    ref = RidgeCV(alphas=ALPHAS, cv=inner_splits(groups[train], 5),
                  fit_intercept=fit_intercept).fit(X[train], Y[train])
    ref_alphas = be.to_numpy(ref.best_alphas_)
    same = np.isclose(model.best_alphas_, ref_alphas, rtol=1e-5)
    assert same.mean() >= 0.99
    assert len(np.unique(model.best_alphas_)) >= 4  # the test is not decided by one alpha
    np.testing.assert_allclose(model.cv_scores_, be.to_numpy(ref.cv_scores_), rtol=1e-3,
                               atol=1e-4)
    np.testing.assert_allclose(model.predict(X[test])[:, same],
                               be.to_numpy(ref.predict(X[test]))[:, same], rtol=1e-3, atol=2e-4)
    np.testing.assert_allclose(model.coef_[:, same], be.to_numpy(ref.coef_)[:, same],
                               rtol=1e-3, atol=2e-4)
    ref_r2 = be.to_numpy(ref.score(X[test], Y[test]))
    np.testing.assert_allclose(model.score(X[test], Y[test])[same], ref_r2[same], atol=1e-4)
    assert isinstance(model.predict(X[test]), np.ndarray)


def test_coef_is_the_ridge_solution_of_each_chosen_alpha_including_rank_deficient_designs():
    X, Y, groups = _data(p=30, v=20, seed=3)
    X = np.concatenate([X, X[:, :5]], 1)  # duplicated columns: Xᵀ X is singular
    model = EncodingRidgeCV(alphas=ALPHAS, backend="numpy", fit_intercept=False)
    model.fit(X, Y, groups=groups)
    X64 = X.astype(np.float64)
    for voxel in range(Y.shape[1]):
        alpha = float(model.best_alphas_[voxel])
        direct = np.linalg.solve(X64.T @ X64 + alpha * np.eye(X.shape[1]), X64.T @ Y[:, voxel])
        np.testing.assert_allclose(model.coef_[:, voxel], direct, rtol=2e-3, atol=2e-4)


def test_eigen_solver_equals_the_himalaya_solver_and_batches_do_not_matter():
    X, Y, groups = _data(p=60, seed=5)
    eigen = EncodingRidgeCV(alphas=ALPHAS, backend="torch").fit(X, Y, groups=groups)
    batched = EncodingRidgeCV(alphas=ALPHAS, backend="torch", n_targets_batch=7).fit(
        X, Y, groups=groups)
    reference = EncodingRidgeCV(alphas=ALPHAS, backend="torch", solver="himalaya").fit(
        X, Y, groups=groups)
    np.testing.assert_array_equal(batched.best_alphas_, eigen.best_alphas_)
    np.testing.assert_allclose(batched.coef_, eigen.coef_, rtol=1e-5, atol=1e-6)
    assert np.mean(np.isclose(eigen.best_alphas_, reference.best_alphas_)) >= 0.99
    np.testing.assert_allclose(eigen.intercept_, reference.intercept_, atol=1e-4)


def test_groups_make_inner_folds_of_whole_runs():
    X, Y, groups = _data(p=20, v=30, seed=7)
    by_runs = EncodingRidgeCV(alphas=ALPHAS, cv=3, backend="numpy").fit(X, Y, groups=groups)
    explicit = EncodingRidgeCV(alphas=ALPHAS, cv=inner_splits(groups, 3), backend="numpy")
    explicit.fit(X, Y)
    np.testing.assert_array_equal(by_runs.best_alphas_, explicit.best_alphas_)
    np.testing.assert_allclose(by_runs.cv_scores_, explicit.cv_scores_, rtol=1e-6)
    # run labels need not be 0..n-1: any labels give the same folds
    relabelled = EncodingRidgeCV(alphas=ALPHAS, cv=3, backend="numpy").fit(
        X, Y, groups=np.array([f"run-{g * 3 + 1:02d}" for g in groups]))
    np.testing.assert_array_equal(relabelled.best_alphas_, by_runs.best_alphas_)


def test_score_is_per_voxel_r2_or_r_and_recovers_the_planted_voxels():
    from bids_app.encoding.scoring import pearson_r

    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 20))
    planted = np.arange(60) < 30
    Y = X @ (rng.normal(size=(20, 60)) * planted) / np.sqrt(20) + rng.normal(size=(300, 60))
    groups = np.repeat(np.arange(6), 50)
    train, test = groups < 5, groups == 5
    model = EncodingRidgeCV(alphas=ALPHAS, backend="numpy").fit(X[train], Y[train],
                                                                groups=groups[train])
    r = model.set_params(scoring="r").score(X[test], Y[test])
    np.testing.assert_allclose(r, pearson_r(Y[test], model.predict(X[test])), atol=1e-6)
    assert r.shape == (60,)
    assert r[planted].mean() > 0.5 and abs(r[~planted].mean()) < 0.1
    single = EncodingRidgeCV(alphas=ALPHAS, backend="numpy").fit(X[train], Y[train, 0])
    assert isinstance(single.score(X[test], Y[test, 0]), float)
    assert single.predict(X[test]).shape == (int(test.sum()),)


def test_clone_and_cross_val_score_with_run_groups():
    from sklearn.base import clone
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_score

    X, Y, groups = _data(p=20, v=10, seed=9)
    model = EncodingRidgeCV(alphas=tuple(ALPHAS.tolist()), cv=3, backend="numpy", scoring="r")
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "coef_")
    scores = cross_val_score(copy, X, Y[:, 0], groups=groups, cv=LeaveOneGroupOut(),
                             params={"groups": groups})
    manual = []
    for run in range(6):
        fitted = clone(model).fit(X[groups != run], Y[groups != run, 0],
                                  groups=groups[groups != run])
        manual.append(fitted.score(X[groups == run], Y[groups == run, 0]))
    np.testing.assert_allclose(scores, manual, rtol=1e-6)
    multi = cross_val_score(clone(model), X, Y, groups=groups, cv=LeaveOneGroupOut(),
                            scoring="r2", params={"groups": groups})
    assert multi.shape == (6,) and np.all(np.isfinite(multi))


@pytest.mark.parametrize("params, message", [
    ({"solver": "svd"}, "'solver' must be one of"),
    ({"alphas": [1.0, -2.0]}, "'alphas' must be a non-empty list of positive numbers"),
    ({"scoring": "mse"}, "'scoring' must be one of"),
    ({"cv": 1}, "'cv' must be at least 2 folds; got 1"),
    ({"n_targets_batch": 0}, "'n_targets_batch' must be a positive integer"),
    ({"backend": "jax"}, "'backend' must be one of"),
])
def test_bad_parameters_are_named_in_the_message(params, message):
    X, Y, groups = _data(p=5, v=3, n_runs=3, n=10)
    with pytest.raises(ValueError, match=message):
        EncodingRidgeCV(**params).fit(X, Y, groups=groups)


def test_groups_of_the_wrong_length_are_refused():
    X, Y, _ = _data(p=5, v=3, n_runs=3, n=10)
    with pytest.raises(ValueError, match="'groups' must give the run of each of the 30 samples"):
        EncodingRidgeCV(backend="numpy").fit(X, Y, groups=[0, 1])


def test_fit_restores_the_himalaya_backend_in_use():
    from himalaya.backend import get_backend, set_backend

    set_backend("numpy")
    X, Y, groups = _data(p=5, v=3, n_runs=3, n=10)
    EncodingRidgeCV(backend="torch").fit(X, Y, groups=groups)
    assert get_backend().name == "numpy"


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_banded_equals_himalaya_bandedridgecv(fit_intercept):
    from himalaya.backend import set_backend
    from himalaya.ridge import BandedRidgeCV

    X, Y, groups = _data(p=30, v=40, seed=11, offset=2.0 if fit_intercept else 0.0)
    train, test = groups < 5, groups == 5
    bands = {"a": (0, 10), "b": (10, 30)}
    model = EncodingBandedRidgeCV(bands=bands, alphas=ALPHAS, cv=5, n_iter=8, random_state=3,
                                  backend="numpy", fit_intercept=fit_intercept)
    model.fit(X[train], Y[train], groups=groups[train])
    be = set_backend("numpy")
    params = {"alphas": ALPHAS, "n_iter": 8, "progress_bar": False, "warn": False}
    ref = BandedRidgeCV(groups=np.repeat([0, 1], [10, 20]), solver_params=params,
                        cv=inner_splits(groups[train], 5), random_state=3,
                        fit_intercept=fit_intercept)
    ref.fit(X[train], Y[train])
    np.testing.assert_allclose(model.deltas_, be.to_numpy(ref.deltas_), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.best_alphas_, be.to_numpy(ref.best_alphas_), rtol=1e-5)
    np.testing.assert_allclose(model.predict(X[test]), be.to_numpy(ref.predict(X[test])),
                               rtol=1e-4, atol=1e-5)
    if not fit_intercept:  # himalaya splits predictions only without an intercept
        np.testing.assert_allclose(model.predict(X[test], split=True),
                                   be.to_numpy(ref.predict(X[test], split=True)), rtol=1e-4,
                                   atol=1e-5)
    assert model.band_names_ == ["a", "b"]


def test_banded_split_scores_sum_to_the_full_score_and_name_the_useful_band():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(240, 12))
    Y = X[:, :4] @ rng.normal(size=(4, 15)) + 2.0 + rng.normal(size=(240, 15))
    groups = np.repeat(np.arange(4), 60)
    train, test = groups < 3, groups == 3
    model = EncodingBandedRidgeCV(bands={"signal": (0, 4), "noise": (4, 12)}, alphas=ALPHAS,
                                  n_iter=6, backend="torch")
    model.fit(X[train], Y[train], groups=groups[train])
    split = model.score(X[test], Y[test], split=True)
    full = model.score(X[test], Y[test])
    n = int(test.sum())
    sst = ((Y[test] - Y[test].mean(0)) ** 2).sum(0)
    intercept_only = -n * (Y[test].mean(0) - model.y_mean_) ** 2 / sst
    np.testing.assert_allclose(split.sum(0) + intercept_only, full, atol=1e-4)
    assert np.all(split[0] > 0.3) and np.all(np.abs(split[1]) < 0.1)
    parts = model.predict(X[test], split=True)
    np.testing.assert_allclose(parts.sum(0) + model.y_mean_, model.predict(X[test]), atol=1e-4)


def test_banded_bands_must_tile_the_design():
    X, Y, groups = _data(p=10, v=3, n_runs=3, n=20)
    with pytest.raises(ValueError, match="bands cover 8 columns but the design has 10"):
        EncodingBandedRidgeCV(bands={"a": (0, 8)}, backend="numpy").fit(X, Y, groups=groups)


def _sklearn_checks():
    from sklearn.utils.estimator_checks import parametrize_with_checks

    return parametrize_with_checks([
        EncodingRidgeCV(alphas=(0.1, 1.0, 10.0), cv=2, backend="numpy"),
        EncodingBandedRidgeCV(alphas=(0.1, 1.0, 10.0), cv=2, n_iter=2, backend="numpy"),
    ])


@_sklearn_checks()
def test_scikit_learn_estimator_checks(estimator, check):
    """Every check of scikit-learn's ``check_estimator`` (himalaya's estimators pass them all)."""
    check(estimator)


def test_folds_that_leave_samples_out_equal_himalaya():
    """A splitter whose folds do not cover every sample (forward chaining) is scored as himalaya."""
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from sklearn.model_selection import TimeSeriesSplit

    X, Y, _ = _data(p=30, v=40, seed=13)
    splitter = TimeSeriesSplit(n_splits=4)
    model = EncodingRidgeCV(alphas=ALPHAS, cv=splitter, backend="numpy", fit_intercept=False)
    model.fit(X, Y)
    be = set_backend("numpy")
    ref = RidgeCV(alphas=ALPHAS, cv=splitter).fit(X, Y)
    assert np.mean(np.isclose(model.best_alphas_, be.to_numpy(ref.best_alphas_))) >= 0.99
    np.testing.assert_allclose(model.cv_scores_, be.to_numpy(ref.cv_scores_), rtol=1e-3,
                               atol=1e-4)


def test_solver_params_change_the_arithmetic_not_the_result():
    X, Y, groups = _data(p=40, v=50, seed=14)
    default = EncodingRidgeCV(alphas=ALPHAS, backend="numpy").fit(X, Y, groups=groups)
    projected = EncodingRidgeCV(alphas=ALPHAS, backend="numpy",  # no stacked hat matrices
                                solver_params={"hat_budget_bytes": 0, "mem_gb": 0.5}).fit(
        X, Y, groups=groups)
    assert np.mean(default.best_alphas_ == projected.best_alphas_) >= 0.99
    np.testing.assert_allclose(projected.coef_, default.coef_, rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="'solver_params' of the 'eigen' solver must be among"):
        EncodingRidgeCV(solver_params={"n_alphas_batch": 2}).fit(X, Y)


def test_importing_the_packages_loads_no_heavy_library():
    """The estimators and the Python API load on first use: ``brainenc --help`` stays instant."""
    import subprocess
    import sys

    code = ("import sys, bids_app, bids_app.encoding, stimuli_models; "
            "heavy = {'sklearn', 'torch', 'himalaya', 'transformers'} & set(sys.modules); "
            "print(sorted(heavy)); "
            "from bids_app.encoding import EncodingRidgeCV; print('sklearn' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_outer_folds_equal_the_command_line_engine():
    """Fitted fold by fold, the estimator gives the engine's held-out r and alphas."""
    from bids_app.encoding.cv import outer_splits
    from bids_app.encoding.engine import cross_validate
    from bids_app.encoding.scoring import pearson_r

    X, Y, groups = _data(p=30, v=60, seed=15)
    runs = [np.flatnonzero(groups == g) for g in range(6)]
    for rows in runs:  # the engine centres the kept volumes of every run
        X[rows] -= X[rows].mean(0)
        Y[rows] -= Y[rows].mean(0)
    result = cross_validate([X[r] for r in runs], [Y[r] for r in runs], ALPHAS,
                            backend="numpy", inner_folds=4)
    for k, (train, test) in enumerate(outer_splits(groups)):
        model = EncodingRidgeCV(alphas=ALPHAS, cv=4, backend="numpy", fit_intercept=False)
        model.fit(X[train], Y[train], groups=groups[train])
        np.testing.assert_allclose(pearson_r(Y[test], model.predict(X[test])), result.r_folds[k],
                                   atol=1e-4)
        assert np.mean(np.isclose(model.best_alphas_, result.alpha_folds[k])) >= 0.99
