"""The reduced paper design (what ``make paper-demo`` runs), end to end on the demo dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.tuned_spec import run_design

PAPER_SPEC = Path(__file__).resolve().parents[2] / "examples" / "paper_reproduction.toml"


@pytest.mark.slow
def test_reduced_paper_design_runs_every_method_without_external_data(tmp_path):
    from bids_app.config import load_spec
    from bids_app.paper_demo import main as paper_demo

    assert paper_demo([str(PAPER_SPEC), str(tmp_path / "paper"), "--steps", "4"]) == 0
    spec = tmp_path / "paper" / "spec.toml"
    out, records = run_design(spec, tmp_path)
    trained = {name: r for name, r in records.items()
               if r["method"] != "frozen" and not r["settings"].get("untrained")}
    controls = {name: r for name, r in records.items() if r["settings"].get("untrained")}
    assert {r["method"] for r in records.values()} == {"frozen", "full", "partial", "lora",
                                                        "prompt", "ptuning-v2"}
    assert {r["task"] for r in records.values()} == {None, "wnut17", "sentiment"}
    assert len(trained) == 10  # five methods x two tasks
    # every prompt-family model has its untrained control, which did not train; a control whose
    # virtual tokens start from the seed serves both tasks (tuned once), one from label words
    # (prompt, init = "labels") is set up for its task
    assert {name: r["task"] for name, r in controls.items()} == {
        "minilmptuningv2untrained": None, "minilmpromptinitvocabnvt20untrained": None,
        "minilmpromptinitlabelsnvt20sentimentuntrained": "sentiment"}
    assert all(r["steps"] == 0 for r in controls.values())
    for record in trained.values():
        assert record["steps"] == 4 and record["dev_metric"] is not None
        assert record["dev_metric_name"] == ("f1" if record["task"] == "wnut17"
                                             else "accuracy")
    shares = {(r["method"], r["task"]): r["trainable_share"] for r in trained.values()}
    for task in ("wnut17", "sentiment"):
        assert shares[("prompt", task)] < shares[("lora", task)] < shares[("partial", task)] \
            < shares[("full", task)] == 1.0
    table = pd.read_csv(out / "group" / "group_variants.tsv", sep="\t", keep_default_na=False)
    layers = load_spec(spec).features.layers
    assert len(layers) == 1  # the reduced version reads the last layer only
    assert len(table) == len(records)  # one row per tuned model (and control)
    assert pd.to_numeric(table["mean_r"], errors="coerce").notna().all()
    # partial tuning reaches the layer read: no variant is frozen by construction
    assert table["variant"].str.contains("partial").sum() == 2
    # no variant is identical to another, by construction or in fact (feature digests)
    assert not table["note"].str.contains("identical").any(), table[["variant", "note"]]
