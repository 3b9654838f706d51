"""Group tables from summaries, region means and participants' score columns."""

from __future__ import annotations

import pandas as pd
import pytest

from bids_app.config import save_spec, spec_from_dict
from bids_app.group.run import saved_spec
from bids_app.group.tables import variant_table


def test_variant_table_falls_back_to_score_columns():
    scores = pd.DataFrame({"variant": ["a", "a", "a"], "region": ["brain", "brain", "top10pct"],
                           "layer": [3, 3, 3], "n_significant": [10, 20, 5],
                           "dev_metric": [0.8, 0.8, 0.8], "trainable_share": [0.1, 0.1, 0.1],
                           "cka": [0.7, 0.7, 0.7]})
    regions = pd.DataFrame({"subject": ["01", "02"], "variant": "a", "task": "t",
                            "region": "brain", "mean_r": [0.1, 0.2]})
    summary = {"variant": "a", "task": "t", "subjects": ["01", "02"], "metadata": {}}
    row = variant_table([summary], regions, scores).iloc[0]
    assert row["n_significant_subject_mean"] == 15.0
    assert row["dev_metric"] == pytest.approx(0.8)
    assert row["trainable_share"] == pytest.approx(0.1)
    assert row["cka_drift"] == pytest.approx(0.3)
    assert row["mean_r"] == pytest.approx(0.15) and row["layer"] == 3
    assert row["ci95_r"] == pytest.approx(12.706 * 0.0707107 / 2 ** 0.5, rel=1e-3)


def test_saved_spec_gives_group_statistics(tmp_path):
    spec = spec_from_dict({"statistics": {"compare": [["b", "a"]], "n_permutations": 99,
                                          "top_percent": 5.0}})
    save_spec(spec, tmp_path / "logs" / "spec-20240101-000000.toml")
    loaded = saved_spec(tmp_path)
    assert loaded.statistics.compare == [["b", "a"]]
    assert loaded.statistics.n_permutations == 99 and loaded.statistics.top_percent == 5.0
    assert saved_spec(tmp_path / "nothing") is None
