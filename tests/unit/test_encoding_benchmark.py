"""The encoding benchmark runs at its small size and its methods agree with himalaya."""

import pytest

from tests.helpers.benchmarks import load_benchmark


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _load():
    return load_benchmark("encoding")


def test_small_benchmark_agrees_with_himalaya(tmp_path):
    bench = _load()
    out = tmp_path / "bench.json"
    report = bench.main(["--size", "small", "--repeats", "1", "--out", str(out)])
    assert out.is_file()
    row = report["results"][0]
    ours = row["methods"]["brainenc"]
    assert ours["mean_r_diff_vs_himalaya"] <= 0.005
    assert ours["alpha_agreement"] >= 0.99
    assert row["methods"]["himalaya_best"]["mean_r_diff_vs_himalaya"] <= 0.005
    assert abs(row["methods"]["sklearn"]["mean_r"] - ours["mean_r"]) < 0.05  # GCV alphas
    assert row["methods"]["naive"]["extrapolated_from_voxels"] == 2
    assert 0 < ours["fraction_of_gemm"] and ours["gflop"] > 0
    assert report["gemm_gflops_start"] > 0 and ours["peak_rss_mib"] >= 0
    assert set(row["speedup_of_brainenc"]) == {"himalaya_default", "himalaya_best", "sklearn",
                                               "naive"}


def test_hat_matrix_benchmark_compares_both_ways(tmp_path):
    bench = load_benchmark("hat_matrices")
    out = tmp_path / "hats.json"
    report = bench.main(["--size", "small", "--repeats", "1", "--out", str(out)])
    assert out.is_file() and {r["backend"] for r in report["rows"]} == {"torch", "numpy"}
    for row in report["rows"]:
        assert row["max_relative_difference"] < 1e-6  # the same hat matrices
        assert row["cholesky_over_eigendecomposition"] > 0
