"""The participant report: inputs, tuning, maps, significance, warnings, methods."""

from __future__ import annotations

import re

import pytest

from bids_app.reports.participant import bold_warnings, collect_warnings, tuning_summary
from tests.helpers.fake_reports import REPORT_VARIANTS, make_participant_report


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    return make_participant_report(tmp_path_factory.mktemp("participant")).read_text()


def test_sections_and_figures(html):
    for anchor in ("id='inputs'", "id='warnings'", "id='methods'", 'id="fig-timing"'):
        assert anchor in html, anchor
    for label in REPORT_VARIANTS[:2]:
        for fig in ("fig-glass", "fig-alpha", "fig-hist"):
            assert f'id="{fig}-{label}"' in html, (fig, label)
        assert f"id='variant-{label}'" in html
    assert "<h3>Significance</h3>" in html and "<h3>Tuning</h3>" in html


def test_self_contained(html):
    assert html.count("data:image/png;base64,") >= 7
    assert not re.search(r"<script[^>]*src=|<link[^>]*href=|src=\"http", html)


def test_inputs_and_warnings(html):
    assert "2 runs, 300 volumes and 800 words" in html
    assert "run 2 has 4 dummy scans" in html  # given by the workflow
    assert "3 words fall after the last volume" in html  # read from OUTPUT_DIR/logs
    assert "INFO fitting" not in html
    assert "12 voxel(s) were NaN, infinite or constant" in html  # from the BOLD record


def test_methods_paragraph_has_versions(html):
    methods = html[html.index("id='methods'"):]
    assert re.search(r"brainenc \S+ \(Python 3\.\d+", methods)
    assert "himalaya 0." in methods and "leave-one-run-out" in methods


def test_tuning_summary_reads_sidecar_keys():
    frame = tuning_summary("x", {"ModelName": "m", "TuningMethod": "lora", "TaskName": "sst",
                                 "Layer": 3, "DevMetric": {"accuracy": 0.9},
                                 "TrainableParameterShare": 0.01, "CKA": [1, 1, 1, 0.8],
                                 "TuningSettings": {"r": 8}})
    row = frame.iloc[0]
    assert row["dev metric"] == "accuracy: 0.900" and row["CKA to pretrained"] == 0.8
    assert row["settings"] == "r=8" and row["NLU task"] == "sst"


def test_collect_warnings_filters_by_subject(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "brainenc.log").write_text("WARNING sub-02: odd\nWARNING sub-01: fine\nINFO sub-01\n")
    (logs / "sub-01_x.log").write_text("ERROR something\nINFO other\n")
    found = collect_warnings(tmp_path, "01", ["given"])
    assert found == ["given", "WARNING sub-01: fine", "ERROR something"]


def test_bold_warnings():
    info = {"runs": [{"run": "r1", "volumes": 70, "removed_volumes": 30, "scrubbed_volumes": 30},
                     {"run": "r2", "volumes": 100, "bad_voxels": 0}]}
    assert bold_warnings(info) == ["r1: 30 of 100 volumes were scrubbed for motion; its "
                                   "estimates rest on fewer samples."]


def test_surface_variant_section(tmp_path):
    """GIFTI variants show both hemispheres on fsaverage5 and read maps beside stat-r."""
    import nibabel as nib
    import numpy as np

    from bids_app.reports.participant import _variant_section

    rng = np.random.default_rng(0)
    for hemi in ("L", "R"):
        for stat in ("r", "alpha"):
            values = (rng.uniform(-0.1, 0.4, 10242) if stat == "r"
                      else 10.0 ** rng.integers(0, 5, 10242)).astype(np.float32)
            img = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(values)])
            nib.save(img, tmp_path / f"sub-01_hemi-{hemi}_space-fsaverage5_stat-{stat}_desc-x_"
                                     "statmap.func.gii")
    scores = tmp_path / "scores.tsv"
    scores.write_text("variant\tregion\tmean_r\nx\tbrain\t0.15\n")
    r_left = str(tmp_path / "sub-01_hemi-L_space-fsaverage5_stat-r_desc-x_statmap.func.gii")
    # a wrong 'alpha' entry (the right-hemisphere r) is replaced by the map beside stat-r
    html = _variant_section("x", {"r": r_left, "alpha": r_left.replace("hemi-L", "hemi-R")},
                            str(scores))
    assert 'id="fig-glass-x"' in html and 'id="fig-glass-x-R"' in html
    assert 'id="fig-hist-x"' in html and "voxels analysed" in html
