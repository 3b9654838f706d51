"""The reduced paper design (what ``make paper-demo`` runs), end to end on the demo dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

PAPER_SPEC = Path(__file__).resolve().parents[2] / "examples" / "paper_reproduction.toml"


@pytest.mark.slow
def test_reduced_paper_design_runs_every_method_without_external_data(tmp_path):
    from bids_app.cli import main
    from bids_app.demo import make_demo_dataset
    from bids_app.paper_demo import main as paper_demo

    assert paper_demo([str(PAPER_SPEC), str(tmp_path / "paper"), "--steps", "4"]) == 0
    spec = tmp_path / "paper" / "spec.toml"
    bids = make_demo_dataset(tmp_path / "bids", n_subjects=2, seed=3, words_per_story=200)
    out, work = tmp_path / "out", tmp_path / "work"
    assert main([str(bids), str(out), "participant", "-w", str(work), "--config-file",
                 str(spec), "--nprocs", "2"]) == 0
    assert main([str(bids), str(out), "group", "-w", str(work)]) == 0
    records = {p.parent.name: json.loads(p.read_text()) for p in out.glob("models/*/tuning.json")}
    assert {r["method"] for r in records.values()} == {"frozen", "full", "partial", "lora",
                                                        "prompt", "ptuning-v2"}
    assert {r["task"] for r in records.values()} == {None, "wnut17", "sentiment"}
    for record in records.values():
        if record["method"] != "frozen":
            assert record["steps"] == 4 and record["dev_metric"] is not None
            assert record["dev_metric_name"] == ("f1" if record["task"] == "wnut17"
                                                 else "accuracy")
    shares = {(r["method"], r["task"]): r["trainable_share"] for r in records.values()}
    for task in ("wnut17", "sentiment"):
        assert shares[("prompt", task)] < shares[("lora", task)] < shares[("partial", task)] \
            < shares[("full", task)] == 1.0
    table = pd.read_csv(next(out.glob("group/**/*variants*.tsv")), sep="\t")
    from bids_app.config import load_spec

    n_layers = len(load_spec(spec).features.layers)
    assert len(table) == n_layers * len(records)  # one row per tuned model and layer
    assert table["mean_r"].notna().all()
