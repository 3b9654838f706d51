"""The alpha-grid-edge warning of the banded and joint-nuisance fits, judged on predicted voxels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bids_app.encoding.banded import banded_cross_validate
from bids_app.unique_variance import unique_variance

CV = {"outer_cv": "leave-one-run-out", "inner_folds": 2, "backend": "numpy"}
BANDS = {"a": [0, 20], "b": [20, 24]}


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _data(signal: float, seed: int = 0):
    """Three runs; the first 20 of 40 voxels follow weak, spread weights on band 'a'."""
    rng = np.random.default_rng(seed)
    W = np.zeros((24, 40))
    W[:20, :20] = signal * rng.standard_normal((20, 20))
    Xs = [rng.standard_normal((80, 24)).astype(np.float32) for _ in range(3)]
    Ys = [(x @ W + rng.standard_normal((80, 40))).astype(np.float32) for x in Xs]
    return Xs, Ys


def test_banded_fit_warns_when_predicted_voxels_sit_at_the_grid_top():
    Xs, Ys = _data(0.15)
    with pytest.warns(RuntimeWarning, match=r"banded ridge: .* of the \d+ voxels with r above 3 "
                      "times the spread of the negative r values chose the largest alpha"):
        res = banded_cross_validate(Xs, Ys, BANDS, [0.01, 0.1, 1.0], n_iter=5, **CV)
    edges = res.info["alpha_grid_edges"]
    assert 15 <= edges["n_voxels"] <= 20 and edges["largest"] > 0.5  # the planted voxels


def test_banded_fit_is_silent_on_noise_only_maps():
    Xs, Ys = _data(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = banded_cross_validate(Xs, Ys, BANDS, [0.01, 0.1, 1.0], n_iter=5, **CV)
    assert np.isclose(res.alpha_folds, 1.0).mean() > 0.5  # the top is right for noise
    assert res.info["alpha_grid_edges"]["n_voxels"] < 10


def test_unique_variance_names_the_nuisance_only_fit_in_its_warning():
    """The nuisance band alone predicts the 'b' voxels; its grid is far too small."""
    rng = np.random.default_rng(1)
    Xs = [rng.standard_normal((80, 24)).astype(np.float32) for _ in range(3)]
    W = np.zeros((24, 40))
    W[20:, :20] = 0.3 * rng.standard_normal((4, 20))
    Ys = [(x @ W + rng.standard_normal((80, 40))).astype(np.float32) for x in Xs]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        unique_variance(Xs, Ys, BANDS, ["b"], np.zeros(40), [1e-3, 1e-2], **CV)
    texts = [str(w.message) for w in caught]
    assert any(t.startswith("nuisance-only model of the unique variance: ") and
               "chose the largest alpha" in t for t in texts), texts
