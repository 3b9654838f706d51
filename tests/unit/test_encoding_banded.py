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


@pytest.mark.parametrize("pb_extra", [0, 300])
def test_streamed_batches_give_the_whole_result(pb_extra, tmp_path):
    """On-disk runs read a few voxels at a time give what the whole array in memory gives."""
    Xs, Ys, bands = _two_bands(pb_extra=pb_extra, v=23)
    whole = banded_cross_validate(Xs, Ys, bands, np.logspace(-1, 4, 6), backend="numpy",
                                  inner_folds=3, n_iter=6)
    paths = []
    for i, y in enumerate(Ys):
        np.save(tmp_path / f"run{i}.npy", y)
        paths.append(np.load(tmp_path / f"run{i}.npy", mmap_mode="r"))
    calls = []
    streamed = banded_cross_validate(Xs, paths, bands, np.logspace(-1, 4, 6), backend="numpy",
                                     inner_folds=3, n_iter=6, n_targets_batch=5,
                                     mem_gb=1e-6, progress=lambda *a: calls.append(a))
    assert streamed.info["voxel_batch"] == 5
    assert calls[-1] == (3, 4, 23, 23) and len(calls) == 4 * 5  # 4 folds x 5 batches
    np.testing.assert_array_equal(streamed.alpha_folds, whole.alpha_folds)
    # float32 kernels of differently laid out (but equal) arrays: rounding only
    np.testing.assert_allclose(streamed.r_folds, whole.r_folds, atol=3e-5)
    np.testing.assert_allclose(streamed.r2_split, whole.r2_split, atol=3e-5)


def test_banded_batch_size_follows_the_memory_budget():
    from bids_app.encoding.banded import banded_batch_size

    small = banded_batch_size(10 ** 6, 20_000, 450, 3, 13, 4_000, mem_gb=2)
    large = banded_batch_size(10 ** 6, 20_000, 450, 3, 13, 4_000, mem_gb=16)
    assert 64 <= small < large < 10 ** 6
    # per voxel at most what the formula counts, so the buffers stay under the budget
    assert large * 2 * 4 * (2 * 20_000 + 5 * 450 + 13 * 4_000) <= 16 * 1024 ** 3
    assert banded_batch_size(100, 20_000, 450, 3, 13, 4_000, mem_gb=16) == 100


@pytest.mark.parametrize("pb_extra", [0, 300])
def test_banded_fits_get_the_same_heldout_test_as_plain_fits(pb_extra):
    """Planted voxels significant, null voxels not; p floor and settings as for plain ridge."""
    from tests.helpers.nulls import null_story_data

    Xs, Ys = null_story_data(3, 0.8, lengths=(150, 160, 140, 170), grid=(5, 5, 4),
                             n_features=6 + 10 + pb_extra)
    rng = np.random.default_rng(1)
    n_sig = 30
    w = rng.normal(size=(6, n_sig)) / np.sqrt(6)
    for x, y in zip(Xs, Ys, strict=True):
        y[:, :n_sig] += 2.0 * x[:, :6] @ w  # driven by band "a" only
    bands = {"a": [0, 6], "b": [6, 16 + pb_extra]}
    result = banded_cross_validate(Xs, Ys, bands, np.logspace(-1, 4, 6), backend="numpy",
                                   inner_folds=3, n_iter=4, n_permutations=199)
    assert result.p is not None and result.q is not None
    # (with 300 noise columns in band "b" the kernel search finds fewer planted voxels)
    assert (result.q[:n_sig] < 0.05).mean() > (0.9 if pb_extra == 0 else 0.6)
    assert (result.q[n_sig:] < 0.05).mean() < 0.05
    assert result.info["permutation"] == "mismatched" and result.info["heldout_p"] == "permutation"
    assert result.p.min() >= 1 / 200 - 1e-9 and result.info["p_floor"] == pytest.approx(1 / 200)
    assert 0 <= result.info["null_fold_correlation"] < 0.95
    # without permutations: no p map, as for plain ridge
    plain = banded_cross_validate(Xs, Ys, bands, np.logspace(-1, 4, 6), backend="numpy",
                                  inner_folds=3, n_iter=4)
    assert plain.p is None and plain.info["n_permutations"] == 0
    np.testing.assert_allclose(plain.r, result.r, atol=1e-5)
