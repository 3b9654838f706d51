"""Low-level controls are on by default and can be switched off (small base dataset)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd

from bids_app.errors import EXIT_OK


def _outputs(case, label="tinyfrozenL1"):
    func = case.out / "sub-01" / "func"
    return {path.name.split("_stat-")[1].split("_")[0]: path
            for path in func.glob(f"*_desc-{label}_statmap.nii.gz")}, func


def test_word_rate_band_and_unique_variance_by_default(case, run_cli):
    code, err = run_cli(case.argv("--participant-label", "01"))
    assert code == EXIT_OK, err
    maps, func = _outputs(case)
    assert {"r", "r2", "p", "q", "r2unique"} <= set(maps), sorted(maps)
    sidecar = json.loads(maps["r2unique"].with_name(
        maps["r2unique"].name.replace(".nii.gz", ".json")).read_text(encoding="utf-8"))
    assert sidecar["NuisanceBands"] == ["word_rate"]
    assert sidecar["Encoding"]["nuisance_weights"] == [1.0, 10.0, 100.0]
    assert "minus that of the nuisance bands (word_rate) alone" in sidecar["Description"]
    unique = np.asanyarray(nib.load(maps["r2unique"]).dataobj)
    assert np.isfinite(unique).all() and np.any(unique != 0)
    scores = pd.read_csv(next(func.glob("*_desc-tinyfrozenL1_scores.tsv")), sep="\t")
    brain = scores.loc[scores["region"] == "brain", "mean_r2_unique"].iloc[0]
    mask = np.asanyarray(nib.load(next(func.glob("*_desc-brain_mask.nii.gz"))).dataobj) > 0
    assert abs(brain - unique[mask].mean()) < 1e-5  # the table reports the map


def test_controls_switched_off(case, run_cli):
    case.write_spec(case.spec.read_text(encoding="utf-8").replace(
        "context_words = 5", "context_words = 5\nnuisance = []"))
    code, err = run_cli(case.argv("--participant-label", "01"))
    assert code == EXIT_OK, err
    maps, func = _outputs(case)
    assert {"r", "r2", "alpha"} <= set(maps)
    assert not any(stat.startswith(("r2unique", "r2split")) for stat in maps), sorted(maps)
    scores = pd.read_csv(next(func.glob("*_desc-tinyfrozenL1_scores.tsv")), sep="\t")
    assert "mean_r2_unique" not in scores
