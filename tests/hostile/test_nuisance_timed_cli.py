"""Word-onset and phoneme-rate controls through the CLI, on TextGrids with a phone tier."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.errors import EXIT_DATASET, EXIT_OK
from tests.helpers.stimuli import word_intervals, write_textgrid


def _to_textgrids(case, phones: bool) -> None:
    """Move every run's words into a TextGrid (a story row), with a phone tier if asked."""
    for events in sorted(case.bids.glob("sub-*/func/*_events.tsv")):
        frame = pd.read_csv(events, sep="\t")
        stem = events.name.split("_", 1)[1].replace("_events.tsv", "")
        tiers = {"words": word_intervals(frame["word"], frame["onset"], frame["duration"])}
        if phones:  # one phone per two letters, spread over the word
            tiers["phones"] = [
                (o + k * d / n, o + (k + 1) * d / n, "AH0")
                for o, d, w in zip(frame["onset"], frame["duration"], frame["word"], strict=True)
                for n in [max(1, len(str(w)) // 2)] for k in range(n)]
        write_textgrid(case.bids / "stimuli" / f"{stem}.TextGrid", tiers)
        events.write_text(f"onset\tduration\tstim_file\n0\t{frame['onset'].max() + 1:.3f}\t"
                          f"{stem}.TextGrid\n", encoding="utf-8")


def _spec(case, bands: str) -> None:
    case.write_spec(case.spec.read_text(encoding="utf-8").replace(
        "context_words = 5", f"context_words = 5\nnuisance = [{bands}]"))


def test_timed_controls_run_end_to_end(case, run_cli):
    _to_textgrids(case, phones=True)
    _spec(case, '"word_rate", "word_onset", "phoneme_rate"')
    code, err = run_cli(case.argv("--participant-label", "01"))
    assert code == EXIT_OK, err
    func = case.out / "sub-01" / "func"
    r2unique = next(func.glob("*_stat-r2unique_desc-tinyfrozenL1_statmap.nii.gz"))
    sidecar = json.loads(r2unique.with_name(r2unique.name.replace(".nii.gz", ".json"))
                         .read_text(encoding="utf-8"))
    assert sidecar["NuisanceBands"] == ["word_rate", "word_onset", "phoneme_rate"]
    assert np.isfinite(np.asanyarray(nib.load(r2unique).dataobj)).all()
    # the three bands are distinct columns of every design
    designs = sorted(case.work.rglob("run*_design.npy"))
    assert designs
    for path in designs:
        bands = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["bands"]
        design = np.load(path)
        columns = [design[:, slice(*bands[b])][:, 0]
                   for b in ("word_rate", "word_onset", "phoneme_rate")]
        assert all(np.std(c) > 0 for c in columns)
        corr = np.corrcoef(columns)
        assert corr[0, 1] < 0.9999 and corr[0, 2] < 0.9999 and corr[1, 2] < 0.9999
    story = json.loads(next((case.out / "stimuli").glob("*.json")).read_text(encoding="utf-8"))
    assert any("phones from tier 'phones'" in note for note in story["Notes"])


def test_phoneme_rate_without_a_phone_tier_stops_naming_the_file(case, run_cli):
    _to_textgrids(case, phones=False)
    _spec(case, '"word_rate", "phoneme_rate"')
    code, err = run_cli(case.argv("--participant-label", "01"))
    assert code == EXIT_DATASET
    assert "the annotation 'stimuli/task-listening_run-1.TextGrid' of story" in err
    assert "has no phone tier; give a TextGrid with an IntervalTier named 'phones'" in err
    assert "Traceback" not in err
    assert not case.statmaps("01")


def test_group_level_writes_the_mean_unique_variance_map(group_case, run_cli):
    code, err = run_cli(group_case.argv(level="group"))
    assert code == EXIT_OK, err
    group = group_case.out / "group"
    mean_map = next(group.glob("*_stat-meanr2unique_desc-tinyfrozenL1_statmap.nii.gz"))
    participants = [np.asanyarray(nib.load(p).dataobj) for p in sorted(
        group_case.out.glob("sub-*/func/*_stat-r2unique_desc-tinyfrozenL1_statmap.nii.gz"))]
    assert len(participants) == 3
    values = np.asanyarray(nib.load(mean_map).dataobj)
    analysed = values != 0
    assert analysed.sum() > 100
    np.testing.assert_allclose(values[analysed], np.mean(participants, axis=0)[analysed],
                               rtol=1e-5, atol=1e-7)
    table = pd.read_csv(group / "group_variants.tsv", sep="\t")
    assert table["mean_r2_unique_map"].iloc[0] == pytest.approx(values[analysed].mean(),
                                                                rel=1e-4)
    assert "fig-r2unique-tinyfrozenL1" in (group / "group.html").read_text(encoding="utf-8")
