"""The fast ridge solver returns what himalaya's RidgeCV returns on the same folds."""

import numpy as np
import pytest

from bids_app.encoding.cv import inner_splits, outer_splits
from bids_app.encoding.engine import cross_validate
from bids_app.encoding.solver import RidgePlan, batch_size_for, flops_per_voxel

ALPHAS = np.logspace(0, 6, 13).astype(np.float32)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small problems: one BLAS thread avoids oversubscription on shared machines."""
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _data(n_runs=6, n=50, p=40, v=120, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(p, v)) * (rng.random(v) < 0.6)
    Xs = [rng.normal(size=(n, p)).astype(np.float32) for _ in range(n_runs)]
    scale = rng.uniform(0.2, 5.0, size=v)
    Ys = [(x @ W / np.sqrt(p) + scale * rng.normal(size=(n, v))).astype(np.float32) for x in Xs]
    # centred within every run, as the engine centres the kept volumes of each run
    return [x - x.mean(0) for x in Xs], [y - y.mean(0) for y in Ys]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("p", [40, 400])  # primal (n > p) and kernel (n < p) forms
def test_alphas_and_predictions_equal_himalaya(backend, p):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    be = set_backend(backend)
    Xs, Ys = _data(p=p)
    X, Y = np.concatenate(Xs), np.concatenate(Ys)
    groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(Xs)])
    train, test = outer_splits(groups)[0]
    cv = inner_splits(groups[train], 5)
    ref = RidgeCV(alphas=ALPHAS, cv=cv).fit(X[train], Y[train])
    ref_pred = np.asarray(be.to_numpy(ref.predict(X[test])))
    plan = RidgePlan(X[train], X[test], ALPHAS, cv, be)
    Yb = be.asarray(Y[train])
    scores = plan.cv_scores(Yb)
    idx = plan.select(scores)
    pred = np.asarray(be.to_numpy(plan.predict(Yb, idx)))
    chosen = ALPHAS[np.asarray(be.to_numpy(idx))]
    same = np.isclose(chosen, np.asarray(be.to_numpy(ref.best_alphas_)), rtol=1e-5)
    assert same.mean() >= 0.99
    np.testing.assert_allclose(np.asarray(be.to_numpy(scores)).max(0),
                               np.asarray(be.to_numpy(ref.cv_scores_)), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(pred[:, same], ref_pred[:, same], rtol=1e-3, atol=2e-4)


def test_engine_scores_equal_himalaya_on_the_same_folds():
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    from bids_app.encoding.scoring import pearson_r

    Xs, Ys = _data(seed=4)
    result = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=5)
    be = set_backend("numpy")
    X, Y = np.concatenate(Xs), np.concatenate(Ys)
    groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(Xs)])
    for k, (train, test) in enumerate(outer_splits(groups)):
        ref = RidgeCV(alphas=ALPHAS, cv=inner_splits(groups[train], 5)).fit(X[train], Y[train])
        r_ref = pearson_r(Y[test], be.to_numpy(ref.predict(X[test])))
        np.testing.assert_allclose(result.r_folds[k], r_ref, atol=1e-3)
        assert np.mean(np.isclose(result.alpha_folds[k], ref.best_alphas_, rtol=1e-5)) >= 0.99


def test_weights_equal_a_direct_solution():
    from himalaya.backend import set_backend

    be = set_backend("numpy")
    for p in (30, 300):
        Xs, Ys = _data(p=p, v=8)
        X, Y = np.concatenate(Xs), np.concatenate(Ys)
        cv = inner_splits(np.repeat(np.arange(6), 50), 3)
        plan = RidgePlan(X, X[:5], ALPHAS, cv, be)
        idx = np.full(8, 4)
        W = plan.weights(X, Y, idx)
        direct = np.linalg.solve(X.T.astype(float) @ X + ALPHAS[4] * np.eye(p), X.T @ Y)
        np.testing.assert_allclose(W, direct, rtol=2e-3, atol=2e-4)


def test_torch_backend_equals_numpy_through_the_engine():
    Xs, Ys = _data(seed=6, p=80)
    ref = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3, n_permutations=50)
    res = cross_validate([Xs, Xs], Ys, ALPHAS, backend="torch", inner_folds=3, n_permutations=50)
    np.testing.assert_allclose(res.r_folds, ref.r_folds, atol=1e-3)
    assert np.mean(np.isclose(res.alpha_folds, ref.alpha_folds, rtol=1e-5)) >= 0.99
    np.testing.assert_allclose(res.p, ref.p, atol=1e-3)


def test_batches_do_not_change_the_result():
    Xs, Ys = _data(seed=2)
    whole = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3)
    batched = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3, n_targets_batch=7)
    np.testing.assert_allclose(whole.r_folds, batched.r_folds, atol=1e-6)
    np.testing.assert_array_equal(whole.alpha_folds, batched.alpha_folds)


def test_flop_model_and_batch_size():
    cost = flops_per_voxel(1280, 320, 1536, 13)
    assert cost["hat"] == 2 * 13 * 320 * 1280
    assert cost["project"] > cost["hat"]  # more features than volumes: hat matrices win
    assert flops_per_voxel(20000, 5000, 768, 13)["project"] < flops_per_voxel(
        20000, 5000, 768, 13)["hat"]
    small = batch_size_for(10**6, 1600, 400, 320, 13, mem_gb=1)
    large = batch_size_for(10**6, 1600, 400, 320, 13, mem_gb=8)
    assert 64 <= small < large <= 10**6
    assert batch_size_for(100, 1600, 400, 320, 13, mem_gb=8) == 100


@pytest.mark.gpu
@pytest.mark.parametrize("p", [400, 12])  # hat matrices; quadratic forms with shared Xᵀ Y
def test_cuda_backend_equals_cpu(p):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    Xs, Ys = _data(p=p, seed=5)
    cpu = cross_validate(Xs, Ys, ALPHAS, backend="torch", inner_folds=3)
    gpu = cross_validate(Xs, Ys, ALPHAS, backend="torch_cuda", inner_folds=3)
    np.testing.assert_allclose(cpu.r_folds, gpu.r_folds, atol=1e-3)
    assert np.mean(cpu.alpha_folds == gpu.alpha_folds) >= 0.99


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("p", [30, 300])  # primal and kernel forms of the Cholesky hats
def test_cholesky_hats_equal_the_eigendecomposition(backend, p):
    from himalaya.backend import set_backend

    from bids_app.encoding.solver import _cholesky_hats

    be = set_backend(backend)
    Xs, _ = _data(p=p, v=4)
    X = np.concatenate(Xs)
    train, val = np.arange(250), np.arange(250, 300)
    hats = _cholesky_hats(be, X[train], X[val], ALPHAS)
    plan = RidgePlan(X[train], X[val], ALPHAS, [(train[:200], train[200:])], be)
    eigen = plan._eigen_hats(X[train], X[val])
    direct = np.concatenate([X[val].astype(float) @ np.linalg.solve(
        X[train].T.astype(float) @ X[train] + a * np.eye(p), X[train].T) for a in ALPHAS])
    np.testing.assert_allclose(be.to_numpy(hats), direct, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(be.to_numpy(eigen), direct, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_singular_gram_falls_back_to_the_eigendecomposition(backend):
    """alpha = 0 on a rank-deficient kernel: Cholesky fails, the eigenbasis still works."""
    from himalaya.backend import set_backend

    from bids_app.encoding.solver import _cholesky_hats

    be = set_backend(backend)
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(120, 5)) @ rng.normal(size=(5, 200))).astype(np.float32)  # rank 5
    Y = (X[:, :3] @ rng.normal(size=(3, 6))).astype(np.float32)
    alphas = np.array([0.0, 1.0, 10.0], dtype=np.float32)
    assert _cholesky_hats(be, X[:100], X[100:], alphas) is None
    cv = inner_splits(np.repeat(np.arange(5), 20), 5)
    plan = RidgePlan(X[:100], X[100:], alphas, cv, be)
    assert all(f.hat is not None for f in plan.folds)  # hats from the eigenbasis
    if backend == "numpy":
        assert plan.refit_hat is None  # predictions from the eigenbasis
    Yb = be.asarray(Y[:100])
    chosen = plan.select(plan.cv_scores(Yb))
    assert np.all(np.asarray(be.to_numpy(chosen)) > 0), "alpha = 0 is never chosen"
    pred = be.to_numpy(plan.predict(Yb, chosen))
    assert np.all(np.isfinite(pred))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_refit_by_hat_matrices_equals_the_eigenbasis(backend):
    from himalaya.backend import set_backend

    be = set_backend(backend)
    Xs, Ys = _data(p=300, v=60, seed=8)
    X, Y = np.concatenate(Xs), np.concatenate(Ys)
    cv = inner_splits(np.repeat(np.arange(5), 50), 5)
    plan = RidgePlan(X[:250], X[250:], ALPHAS, cv, be)
    assert plan.refit_hat is not None  # more features than volumes: hat matrices win
    Yb = be.asarray(Y[:250])
    idx = be.asarray_like(np.arange(60) % len(ALPHAS), plan.select(plan.cv_scores(Yb)))
    by_hat = be.to_numpy(plan.predict(Yb, idx))
    plan.refit_hat = None  # the same plan through its eigenbasis
    by_eigen = be.to_numpy(plan.predict(Yb, idx))
    np.testing.assert_allclose(by_hat, by_eigen, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_quadratic_form_errors_equal_the_formed_predictions(backend):
    """Fewer features than validation volumes: errors as quadratic forms in the basis."""
    from himalaya.backend import set_backend

    be = set_backend(backend)
    Xs, Ys = _data(n=80, p=12, v=37)
    X, Y = np.concatenate(Xs), np.concatenate(Ys)
    groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(Xs)])
    train, test = outer_splits(groups)[0]
    cv = inner_splits(groups[train], 5)
    plan = RidgePlan(X[train], X[test], ALPHAS, cv, be)
    assert plan.strategies == ["gram_shared"] * len(cv)
    Yb = be.asarray(Y[train])
    gram = np.asarray(be.to_numpy(plan.cv_scores(Yb)))
    idx = plan.select(be.asarray(gram))
    pred = np.asarray(be.to_numpy(plan.predict(Yb, idx)))  # Vᵀ (Xᵀ Y) reused
    assert plan._xty is None, "the shared product is released after the refit"
    # the same folds scored by forming every alpha's predictions, and refitted from (X V)ᵀ Y
    from bids_app.encoding.solver import _eigen_basis

    for fold, (tr, va) in zip(plan.folds, cv, strict=True):
        s, R, C = _eigen_basis(be, X[train][tr], X[train][va])
        fold.G, fold.VT = None, None
        fold.R, fold.C = be.asarray(R, dtype="float32"), be.asarray(C, dtype="float32")
    plan._XT = None
    formed = np.asarray(be.to_numpy(plan.cv_scores(Yb)))
    np.testing.assert_allclose(gram, formed, rtol=2e-5)
    np.testing.assert_array_equal(np.argmax(gram, 0), np.argmax(formed, 0))
    direct = np.asarray(be.to_numpy(plan.predict(Yb, idx)))
    np.testing.assert_allclose(pred, direct, rtol=1e-4, atol=1e-5)
    # r < n_val is where the quadratic forms need fewer operations
    cost = flops_per_voxel(320, 80, 12, 13)
    assert cost["gram"] < cost["project"] < cost["hat"]
    wide = flops_per_voxel(1280, 320, 1536, 13)  # more features than volumes: hat matrices
    assert wide["gram"] > wide["hat"] and "gram_shared" not in wide
