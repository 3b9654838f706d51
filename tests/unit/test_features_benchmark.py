"""The featurization benchmark runs (small mode) and computes its ratios and gates."""

from __future__ import annotations

import json

import pytest

from tests.helpers.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("features")


def test_small_benchmark_reports_ratios(bench, tmp_path, capsys):
    out = tmp_path / "features.json"
    report = bench.main(["--size", "small", "--repeats", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    methods = report["methods"]
    assert set(methods) == {"brainenc", "bare_forward", "shared_windows_bare", "naive_per_word"}
    assert methods["brainenc"]["tokens_processed"] == methods["bare_forward"]["tokens_processed"]
    # causal: one window per word, never more tokens per word than one 128-token pass per word
    assert methods["brainenc"]["n_windows"] == report["n_words"]
    per_word_ours = methods["brainenc"]["tokens_processed"] / report["n_words"]
    per_word_naive = (methods["naive_per_word"]["tokens_processed"]
                      / methods["naive_per_word"]["words_timed"])
    assert per_word_ours <= per_word_naive
    # shared windows (earlier targets seeing later words) run fewer tokens: the stated price
    assert report["ratios"]["causal_price_tokens"] > 1.0
    ratios = report["ratios"]
    assert ratios["brainenc_vs_bare_throughput"] > 0
    assert ratios["brainenc_vs_naive_speedup"] > 0
    assert report["gates"]["stride1_vs_naive_max_abs_diff"] < 1e-4
    assert "brainenc / bare throughput" in capsys.readouterr().out
