"""Banded ridge attributes a planted band to the right feature space."""

import numpy as np
import pytest

from bids_app.encoding.banded import band_slices, banded_cross_validate
from bids_app.encoding.engine import EncodingResult


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _two_bands(n_runs=4, n=60, pa=6, pb=10, v=20, seed=0, pb_extra=0):
    rng = np.random.default_rng(seed)
    Xs, Ys = [], []
    wa = rng.normal(size=(pa, v))
    wb = rng.normal(size=(pb + pb_extra, v))
    wa[:, v // 2:] = 0  # first half driven by band "a"
    wb[:, : v // 2] = 0  # second half by band "b"
    for _ in range(n_runs):
        xa, xb = rng.normal(size=(n, pa)), rng.normal(size=(n, pb + pb_extra))
        Xs.append(np.hstack([xa, xb]).astype(np.float32))
        Ys.append((xa @ wa + xb @ wb + rng.normal(size=(n, v))).astype(np.float32))
    return Xs, Ys, {"a": [0, pa], "b": [pa, pa + pb + pb_extra]}


@pytest.mark.parametrize("pb_extra", [0, 300])  # banded ridge (n > p) and kernels (n < p)
def test_planted_band_is_attributed_to_its_space(pb_extra, tmp_path):
    Xs, Ys, bands = _two_bands(pb_extra=pb_extra)
    result = banded_cross_validate(Xs, Ys, bands, np.logspace(-1, 4, 6), backend="numpy",
                                   inner_folds=3, n_iter=8)
    assert result.info["bands"] == ["a", "b"]
    split = result.r2_split
    half = Ys[0].shape[1] // 2
    assert (split[0, :half] > split[1, :half]).mean() >= 0.9
    assert (split[1, half:] > split[0, half:]).mean() >= 0.9
    # the parts add up to the R² of the full prediction
    np.testing.assert_allclose(split.sum(0), result.r2, atol=0.05)
    assert result.r[:half].mean() > 0.5
    result.save(tmp_path / "res.npz")
    loaded = EncodingResult.load(tmp_path / "res.npz")
    np.testing.assert_array_equal(loaded.r2_split, split)
    assert loaded.info["bands"] == ["a", "b"]


def test_bands_must_tile_the_design():
    assert [n for n, _ in band_slices({"b": [3, 5], "a": [0, 3]}, 5)] == ["a", "b"]
    with pytest.raises(ValueError, match="tile"):
        band_slices({"a": [0, 2], "b": [3, 5]}, 5)
    with pytest.raises(ValueError, match="design has 6"):
        band_slices({"a": [0, 2], "b": [2, 5]}, 6)
