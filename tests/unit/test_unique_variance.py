"""Unique variance of the language bands beside a word-rate nuisance band."""

from __future__ import annotations

import numpy as np
import pytest

from bids_app.encoding.banded import banded_cross_validate
from bids_app.encoding.engine import cross_validate
from bids_app.unique_variance import nuisance_candidates, nuisance_columns, unique_variance

ALPHAS = np.logspace(-2, 4, 7)
CV = {"outer_cv": "leave-one-run-out", "inner_folds": 3, "backend": "numpy"}


def _smooth(rng, n, k, width=6):
    kernel = np.hanning(2 * width + 1)
    raw = rng.standard_normal((n + 2 * width, k))
    return np.stack([np.convolve(raw[:, j], kernel, mode="valid") for j in range(k)], 1)[:n]


@pytest.fixture(scope="module")
def data():
    """Word-rate voxels, language voxels; the language features partly follow word rate."""
    rng = np.random.default_rng(0)
    Xs, Ys = [], []
    weights = rng.standard_normal((3, 10))  # the same voxels in every run
    for _ in range(3):
        n = 160
        rate = _smooth(rng, n, 1)
        language = _smooth(rng, n, 8)
        language[:, 0] += 1.5 * rate[:, 0]  # as in real features: PC1 tracks word rate
        signal_rate = rate @ np.ones((1, 10))
        signal_lang = language[:, 1:4] @ weights
        noise = rng.standard_normal((n, 20))
        Y = np.hstack([signal_rate, signal_lang]) / 1.5 + noise
        Xs.append(np.hstack([language, rate]).astype(np.float32))
        Ys.append(((Y - Y.mean(0)) / Y.std(0)).astype(np.float32))
    return Xs, Ys, {"L3": [0, 8], "word_rate": [8, 9]}


def test_unique_variance_tells_word_rate_voxels_from_language_voxels(data):
    Xs, Ys, bands = data
    full = banded_cross_validate(Xs, Ys, bands, ALPHAS, n_iter=10, random_state=0, **CV)
    unique = unique_variance(Xs, Ys, bands, ["word_rate"], full.r2, ALPHAS, **CV)
    rate_voxels, lang_voxels = slice(0, 10), slice(10, 20)
    assert full.r[rate_voxels].mean() > 0.25  # the full model predicts word-rate voxels ...
    assert abs(unique[rate_voxels].mean()) < 0.03  # ... but the language bands add nothing
    assert unique[lang_voxels].mean() > 0.1
    assert unique[lang_voxels].min() > unique[rate_voxels].max()
    alone = cross_validate([x[:, 8:9] for x in Xs], Ys, ALPHAS, **CV)
    np.testing.assert_allclose(unique, full.r2 - alone.r2, atol=1e-6)


def test_nuisance_columns_and_degenerate_bands(data):
    Xs, Ys, bands = data
    assert nuisance_columns(bands, ["word_rate"]).tolist() == [8]
    assert nuisance_columns(bands, ["word_length"]).size == 0
    with pytest.raises(ValueError, match="must hold the nuisance bands"):
        unique_variance(Xs, Ys, bands, ["word_length"], np.zeros(20), ALPHAS, **CV)
    with pytest.raises(ValueError, match="at least one other band"):
        unique_variance(Xs, Ys, {"word_rate": [0, 9]}, ["word_rate"], np.zeros(20), ALPHAS,
                        **CV)


def test_joint_fit_weights_the_nuisance_band_per_voxel(data):
    """Grid-searched band weights predict as banded ridge does, and beat one shared penalty."""
    Xs, Ys, bands = data
    candidates = nuisance_candidates(Xs, bands, ["word_rate"])
    assert [c[0][0, 8] / Xs[0][0, 8] for c in candidates] == pytest.approx([1, 10, 100])
    assert all(np.array_equal(c[0][:, :8], Xs[0][:, :8]) for c in candidates)
    joint = cross_validate(candidates, Ys, ALPHAS, **CV)
    shared = cross_validate(Xs, Ys, ALPHAS, **CV)
    banded = banded_cross_validate(Xs, Ys, bands, ALPHAS, n_iter=10, random_state=0, **CV)
    rate_voxels = slice(0, 10)
    assert joint.r[rate_voxels].mean() >= shared.r[rate_voxels].mean()
    assert abs(joint.r.mean() - banded.r.mean()) < 0.02
    assert set(np.unique(joint.layer_folds[:, rate_voxels])) - {0}  # larger weights chosen
