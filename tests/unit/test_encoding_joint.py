"""The joint nuisance estimator, and the outer loop fitting every split with an estimator."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from bids_app.encoding import EncodingJointRidgeCV, EncodingRidgeCV
from bids_app.encoding.cv import inner_splits
from bids_app.encoding.joint_estimator import choose_candidates
from bids_app.unique_variance import joint_estimator, nuisance_candidates
from tests.helpers.outer_loop import ALPHAS, BANDS, make_case, run_case

REFERENCE = Path(__file__).parent / "data" / "outer_loop_reference.npz"


def _joint_data(n_runs=5, n_per_run=60, v=30, seed=0):
    """22 language columns and a 2-column word-rate band; the last ten voxels follow word rate."""
    rng = np.random.default_rng(seed)
    n = n_runs * n_per_run
    X = rng.standard_normal((n, 24)).astype(np.float32)
    X[:, 22:] = np.abs(X[:, 22:])
    W = 0.3 * rng.standard_normal((24, v))
    W[22:, -10:] = 4.0
    Y = (X @ W + rng.standard_normal((n, v))).astype(np.float32)
    return X, Y, np.repeat(np.arange(n_runs), n_per_run)


@pytest.fixture(scope="module")
def outer_loop_maps():
    return run_case(make_case())


@pytest.mark.parametrize("model", ["plain", "joint", "banded", "kernel"])
def test_outer_loop_maps_equal_those_of_the_direct_solver_calls(outer_loop_maps, model):
    """A fixed-seed run gives the maps saved when the loop called the solver and himalaya."""
    reference = np.load(REFERENCE)
    keys = [k for k in reference.files if k.startswith(model)]
    keys += ["unique"] if model == "joint" else []
    assert len(keys) >= 4
    for key in keys:
        np.testing.assert_allclose(outer_loop_maps[key], reference[key], rtol=1e-5, atol=1e-6,
                                   err_msg=key)


def test_joint_heldout_predictions_equal_the_candidate_designs_of_the_engine():
    """fit_heldout equals one plain fit per weighted design and the best score per voxel."""
    X, Y, groups = _joint_data()
    train, test = groups < 4, groups == 4
    cv = inner_splits(groups[train], 5)
    joint = joint_estimator(BANDS, ["word_rate"], ALPHAS, backend="numpy").set_params(cv=cv)
    pred = joint.fit_heldout(X[train], Y[train], X[test])
    designs = [d[0] for d in nuisance_candidates([X], BANDS, ["word_rate"])]
    plain = [EncodingRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False, backend="numpy")
             for _ in designs]
    preds = [m.fit_heldout(d[train], Y[train], d[test]) for m, d in zip(plain, designs,
                                                                        strict=True)]
    best = choose_candidates([m.cv_scores_float64_ for m in plain])
    expected = np.choose(best[None, :], np.stack(preds))
    np.testing.assert_allclose(pred, expected, rtol=1e-6)
    np.testing.assert_array_equal(joint.best_candidate_, best)
    assert np.all(joint.best_weights_[-10:] > 1)  # the word-rate voxels free its penalty
    assert np.mean(joint.best_weights_[:-10] == 1) > 0.5


def test_joint_weights_are_on_the_design_columns_and_predict_as_fit_heldout():
    """coef_ includes the chosen weight on the nuisance rows: predict equals fit_heldout."""
    X, Y, groups = _joint_data(seed=1)
    train, test = groups < 4, groups == 4
    joint = EncodingJointRidgeCV(bands=BANDS, alphas=ALPHAS, fit_intercept=False,
                                 backend="numpy")
    held = joint.fit_heldout(X[train], Y[train], X[test], groups=groups[train])
    chosen = joint.best_weights_.copy()
    joint.fit(X[train], Y[train], groups=groups[train])
    np.testing.assert_array_equal(joint.best_weights_, chosen)
    np.testing.assert_allclose(joint.predict(X[test]), held, rtol=2e-3, atol=2e-3)
    # the same fit with the word-rate columns rescaled by hand
    k = 2  # the voxels' weight index where it is 100
    voxels = np.flatnonzero(joint.best_candidate_ == k)
    assert voxels.size
    Xw = X.copy()
    Xw[:, 22:] *= 100.0
    plain = EncodingRidgeCV(alphas=ALPHAS, fit_intercept=False, backend="numpy").fit(
        Xw[train], Y[train], groups=groups[train])
    np.testing.assert_allclose(joint.coef_[22:, voxels], 100 * plain.coef_[22:, voxels],
                               rtol=1e-3)


def test_joint_with_an_intercept_recovers_word_rate_voxels_from_raw_data():
    X, Y, groups = _joint_data(seed=2)
    Y = Y + 50.0  # an offset the intercept absorbs
    train, test = groups < 4, groups == 4
    model = EncodingJointRidgeCV(bands=BANDS, alphas=ALPHAS, backend="numpy", scoring="r")
    r = model.fit(X[train], Y[train], groups=groups[train]).score(X[test], Y[test])
    assert np.all(r[-10:] > 0.8)
    assert abs(float(np.mean(model.intercept_)) - 50.0) < 2.0


def test_decompositions_are_reused_across_voxel_batches_and_renewed_for_a_new_design():
    X, Y, groups = _joint_data(seed=3)
    train, test = groups < 4, groups == 4
    cv = inner_splits(groups[train], 5)
    whole = EncodingRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False, backend="numpy")
    full = whole.fit_heldout(X[train], Y[train], X[test])
    model = EncodingRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False, backend="numpy")
    first = model.fit_heldout(X[train], Y[train, :10], X[test])
    plan = model._plan_cache[1]
    second = model.fit_heldout(X[train], Y[train, 10:], X[test])
    assert model._plan_cache[1] is plan
    np.testing.assert_allclose(np.hstack([first, second]), full, rtol=1e-6)
    other = model.fit_heldout(2 * X[train], Y[train], 2 * X[test])
    assert model._plan_cache[1] is not plan
    fresh = EncodingRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False, backend="numpy")
    np.testing.assert_allclose(other, fresh.fit_heldout(2 * X[train], Y[train], 2 * X[test]),
                               rtol=1e-6)
    restored = pickle.loads(pickle.dumps(model))
    assert not hasattr(restored, "_plan_cache")
    np.testing.assert_array_equal(restored.best_alphas_, model.best_alphas_)


@pytest.mark.parametrize("params, message", [
    ({"nuisance": ("pitch",)}, "'nuisance' must name some but not all"),
    ({"nuisance": ("language", "word_rate")}, "'nuisance' must name some but not all"),
    ({"weights": (1.0, -2.0)}, "'weights' must be a non-empty list of positive numbers"),
    ({"bands": {"language": (0, 20), "word_rate": (20, 24)}, "nuisance": ("word_rate",),
      "alphas": ()}, "'alphas' must be a non-empty list"),
])
def test_bad_joint_parameters_are_named_in_the_message(params, message):
    X, Y, groups = _joint_data(n_runs=3, v=3)
    model = EncodingJointRidgeCV(**{"bands": BANDS, "backend": "numpy", **params})
    with pytest.raises(ValueError, match=message):
        model.fit(X, Y, groups=groups)


def test_without_bands_the_last_column_is_the_word_rate_band():
    X, Y, groups = _joint_data(n_runs=3, v=4)
    X = X[:, 1:23]  # 21 language columns, then one word-rate column
    default = EncodingJointRidgeCV(alphas=ALPHAS, backend="numpy").fit(X, Y, groups=groups)
    named = EncodingJointRidgeCV(bands={"language": (0, 21), "word_rate": (21, 22)},
                                 alphas=ALPHAS, backend="numpy").fit(X, Y, groups=groups)
    np.testing.assert_array_equal(default.best_weights_, named.best_weights_)
    np.testing.assert_allclose(default.coef_, named.coef_)


def test_the_joint_estimator_passes_scikit_learn_checks():
    from sklearn.utils.estimator_checks import check_estimator

    failures = check_estimator(EncodingJointRidgeCV(alphas=(0.1, 1.0, 10.0), cv=2,
                                                    backend="numpy"), on_fail=None)
    failed = [f for f in failures if f["status"] == "failed"]
    assert not failed, [(f["check_name"], str(f["exception"])[:200]) for f in failed]
