"""The tuning benchmark runs (small mode) and reports consistent numbers."""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    import torch

    threads = torch.get_num_threads()
    yield load_benchmark("tuning")
    torch.set_num_threads(threads)  # the small mode runs on one thread


def test_small_benchmark_compares_both_loops(bench, tmp_path, capsys):
    out = tmp_path / "tuning.json"
    report = bench.main(["--size", "small", "--repeats", "1", "--steps", "6", "--out",
                         str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    for key in ("size", "device", "torch_threads", "gemm_gflops_start", "gemm_gflops_end",
                "steps", "batch_size", "repeats", "methods", "gates", "peak_rss_mib",
                "throughput_ratio_brainenc_over_bare", "paired_ratio_median"):
        assert key in report, key
    assert report["size"] == "small" and report["device"] == "cpu"
    methods = report["methods"]
    assert set(methods) == {"brainenc", "bare"}
    ours, bare = methods["brainenc"], methods["bare"]
    assert ours["samples"] == bare["samples"] == 6 * report["batch_size"]
    assert ours["steps"] == bare["steps"] == 6
    assert ours["trainable_params"] == bare["trainable_params"] > 0
    for row in (ours, bare):
        assert len(row["seconds"]) == 1  # one timed round after the warm-up
        assert row["first_batch_loss_after"] < row["first_batch_loss_before"]
        assert math.isfinite(row["mean_train_loss"])
        assert 0.0 <= row["dev_accuracy"] <= 1.0
        assert row["seconds_per_1k_samples"] == pytest.approx(
            row["median_seconds"] / row["samples"] * 1000)
    gates = report["gates"]
    assert gates["same_first_batch"] and gates["same_samples"] and gates["loss_decreased"]
    assert gates["same_trainable_params"]
    assert gates["initial_trainable_max_abs_diff"] == 0.0  # same initial weights
    assert gates["initial_loss_abs_diff"] < 1e-6
    ratio = report["throughput_ratio_brainenc_over_bare"]
    assert math.isfinite(ratio) and ratio > 0
    assert ratio == pytest.approx(bare["median_seconds"] / ours["median_seconds"])
    assert report["gemm_gflops_start"] > 0 and report["gemm_gflops_end"] > 0
    assert "brainenc / bare throughput" in capsys.readouterr().out


def test_cuda_request_without_gpu_is_refused(bench):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(SystemExit, match="no CUDA device"):
        bench.benchmark("small", device="cuda")
