"""The group report and its figures and table helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bids_app.group.tables import cka_value, dev_metric, method_task_matrix, nlu_task
from bids_app.reports.figures import cka_vs_encoding, layer_curves, share_vs_encoding
from bids_app.reports.html import note, page, table
from tests.helpers.fake_reports import make_group_report


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    return make_group_report(tmp_path_factory.mktemp("groupreport")).read_text()


def test_group_report_content(html):
    for anchor in ("table-variants", "table-matrix", "table-comparisons", "table-regions",
                   "fig-bars-brain", "fig-bars-language", "fig-share", "fig-layers", "fig-cka",
                   "fig-meanr-minilmfrozenL3", "fig-compare-minilmlorasstL3vsminilmfrozenL3"):
        assert anchor in html, anchor
    assert "minilmlorasstL3</b>" in html  # the best variant is named in the summary
    assert "sign-flip" in html and "Benjamini-Hochberg" in html
    assert "<script" not in html and "src=\"http" not in html


def test_html_helpers_escape_and_format():
    frame = pd.DataFrame({"a<b": ["<x>"], "v": [0.12345], "m": [float("nan")]})
    out = table(frame, table_id="t1")
    assert "a&lt;b" in out and "&lt;x&gt;" in out and "0.123" in out and "n/a" in out
    assert '<table id="t1">' in out and "overflow" not in out
    assert "&lt;i&gt;" in note("<i>")
    assert page("T", "<p>b</p>").startswith("<!DOCTYPE html>")


def test_figures_explain_when_not_applicable():
    table_ = pd.DataFrame({"variant": ["a"], "task": ["t"], "model": ["m"], "method": ["frozen"],
                           "nlu_task": ["none"], "layer": [3], "mean_r": [0.1],
                           "trainable_share": [np.nan], "cka_drift": [np.nan]})
    assert "single layer" in layer_curves(table_)
    assert "no variant records a trainable" in share_vs_encoding(table_)
    assert "CKA" in cka_vs_encoding(table_) and "<figure" not in cka_vs_encoding(table_)
    same = table_.assign(trainable_share=[0.0])
    assert "same share" in share_vs_encoding(same)


def test_share_figure_reports_trend():
    table_ = pd.DataFrame({"variant": list("abcd"), "method": ["prompt", "lora", "partial",
                                                              "full"],
                           "trainable_share": [0.001, 0.01, 0.3, 1.0],
                           "mean_r": [0.12, 0.11, 0.09, 0.08], "ci95_r": [0.01] * 4})
    out = share_vs_encoding(table_)
    assert "<figure" in out and "Spearman rho = -1.00" in out


def test_metadata_readers():
    assert dev_metric({"DevMetric": {"f1": 0.5}}) == ("f1", 0.5)
    assert dev_metric({"DevMetric": 0.7, "DevMetricName": "accuracy"}) == ("accuracy", 0.7)
    assert dev_metric({}) == (None, None)
    assert cka_value(0.9, 3) == 0.9
    assert cka_value({"3": 0.8, "4": 0.7}, 3) == 0.8
    assert cka_value({"layer4": 0.7}, 4) == 0.7
    assert cka_value([1.0, 0.9], 1) == 0.9
    assert cka_value({"a": 0.1, "b": 0.2}, 9) is None
    assert nlu_task({"TaskName": None}) == "none"
    assert nlu_task({"Task": {"name": "ner"}}) == "ner"


def test_method_task_matrix_layout():
    table_ = pd.DataFrame({"model": ["m"] * 3, "layer": [3] * 3,
                           "method": ["frozen", "lora", "lora"],
                           "nlu_task": ["none", "sst", "ner"], "mean_r": [0.1, 0.2, 0.3]})
    matrix = method_task_matrix(table_)
    assert list(matrix.columns) == ["measure", "model", "layer", "method", "ner", "none", "sst"]
    lora = matrix.set_index("method").loc["lora"]
    assert lora["sst"] == 0.2 and lora["ner"] == 0.3 and np.isnan(lora["none"])
