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


def _control_summaries():
    def summary(variant, method, task, untrained, subjects):
        return {"variant": variant, "task": "listening", "subjects": subjects,
                "metadata": {"TuningMethod": method, "ModelName": "m", "Layer": 6,
                             "TaskName": task, "TuningSettings": {"untrained": untrained}}}

    return [summary("frozen", "frozen", None, False, ["01"]),
            summary("ptsst", "ptuning-v2", "sst", False, ["01"]),
            summary("ptner", "ptuning-v2", "ner", False, ["01"]),
            summary("ptuntrained", "ptuning-v2", None, True, ["01"]),
            summary("prlabelsner", "prompt", "ner", False, ["01"]),
            summary("prlabelsneruntrained", "prompt", "ner", True, ["01"])]


def test_method_task_matrix_shows_a_task_free_control_under_every_task():
    from bids_app.group.tables import method_task_matrix

    summaries = _control_summaries()
    means = {"frozen": 0.10, "ptsst": 0.30, "ptner": 0.20, "ptuntrained": 0.12,
             "prlabelsner": 0.25, "prlabelsneruntrained": 0.05}
    regions = pd.DataFrame({"subject": "01", "variant": list(means), "task": "listening",
                            "region": "brain", "mean_r": list(means.values())})
    table = variant_table(summaries, regions, pd.DataFrame())
    flags = dict(zip(table["variant"], table["untrained_control"], strict=True))
    assert flags == {"frozen": False, "ptsst": False, "ptner": False, "ptuntrained": True,
                     "prlabelsner": False, "prlabelsneruntrained": True}
    assert (table["note"] == "").all()  # no pair identical by construction
    matrix = method_task_matrix(table).set_index("method")
    assert sorted(matrix.index) == ["frozen", "prompt", "prompt untrained", "ptuning-v2",
                                    "ptuning-v2 untrained"]
    # the trained cells hold the trained variants only (the control is not averaged in)
    assert matrix.loc["ptuning-v2", "sst"] == 0.30 and matrix.loc["ptuning-v2", "ner"] == 0.20
    # one control, shown beside each task its method was tuned on; not as an untuned model
    assert matrix.loc["ptuning-v2 untrained", "sst"] == 0.12
    assert matrix.loc["ptuning-v2 untrained", "ner"] == 0.12
    assert pd.isna(matrix.loc["ptuning-v2 untrained", "none"])
    # a control set up for one task stays under that task
    assert matrix.loc["prompt untrained", "ner"] == 0.05
    assert pd.isna(matrix.loc["prompt untrained", "sst"])
    assert matrix.loc["frozen", "none"] == 0.10 and pd.isna(matrix.loc["frozen", "sst"])
