"""Story datasets in the forms real ones use, collected and run through the participant level."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.stimuli import (
    word_intervals,
    write_gentle_json,
    write_mat,
    write_table,
    write_textgrid,
)

STORY_ONSET = 4.0


def _story_dataset(root: Path, form: str, *, words: int = 160) -> dict:
    """The demo dataset (1 participant) with its word rows moved into annotation files."""
    from bids_app.demo import make_demo_dataset

    bids = make_demo_dataset(root / "bids", n_subjects=1, seed=3, words_per_story=words)
    truth = {}
    for events in sorted(bids.glob("sub-01/func/*_events.tsv")):
        rows = pd.read_csv(events, sep="\t", keep_default_na=False, quoting=3)
        story = events.name.split("_run-")[1].split("_")[0]
        name = f"story{story}"
        rel = rows["onset"].to_numpy(float) - STORY_ONSET
        dur, text = rows["duration"].to_numpy(float), rows["word"].tolist()
        stimuli = bids / "stimuli"
        if form == "textgrid":
            target = write_textgrid(stimuli / "annot" / f"{name}.TextGrid",
                                    {"phones": [(0.0, float(rel[-1] + dur[-1]), "x")],
                                     "words": word_intervals(text, rel, dur)},
                                    short=story == "2", encoding="utf-16" if story == "3"
                                    else "utf-8")
        elif form == "gentle":
            target = write_gentle_json(stimuli / f"{name}_align.json", text, rel, dur,
                                       missing={5, 6})
        elif form == "tsv":
            target = write_table(stimuli / f"{name}.tsv", text, rel, dur)
        else:  # .mat in scanner time
            target = write_mat(stimuli / f"{name}.mat", text, rel + STORY_ONSET,
                               rel + STORY_ONSET + dur)
        events.write_text("onset\tduration\tstim_file\n"
                          f"{STORY_ONSET}\t{rel[-1] + dur[-1]:.3f}\t"
                          f"{target.relative_to(stimuli).as_posix()}\n", encoding="utf-8")
        truth[target.stem] = rows
    (bids / "task-stories_events.json").unlink(missing_ok=True)
    return {"bids": bids, "truth": truth}


TEXT = ('"Where is it?" she asked. The keeper, who was 84, lit the lamp at dusk; '
        "ships passed the rocks safely that night and every night after").split()


def _write_story(stimuli: Path, form: str, name: str, words, rel, dur) -> Path:
    if form == "textgrid":
        return write_textgrid(stimuli / "annot" / f"{name}.TextGrid",
                              {"phones": [(0.0, float(rel[-1] + dur[-1]), "x")],
                               "words": word_intervals(words, rel, dur)},
                              short=name == "b", encoding="utf-16" if name == "c" else "utf-8")
    if form == "gentle":
        return write_gentle_json(stimuli / f"{name}_align.json", words, rel, dur, missing={5, 6})
    if form == "tsv":
        return write_table(stimuli / f"{name}.tsv", words, rel, dur)
    return write_mat(stimuli / f"{name}.mat", words, rel, rel + dur)


def _light_dataset(root: Path, form: str) -> tuple[Path, dict]:
    """Three runs: story a; stories b and c; story a again (tiny images, real annotations)."""
    import nibabel as nib

    bids = root / "bids"
    func = bids / "sub-01" / "func"
    func.mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "s", "BIDSVersion": "1.10.0"}')
    (bids / "task-listen_bold.json").write_text('{"RepetitionTime": 2.0, "TaskName": "listen"}')
    rng = np.random.default_rng(0)
    rel = np.cumsum(rng.uniform(0.25, 0.45, len(TEXT)))
    dur = np.full(len(TEXT), 0.2)
    files = {name: _write_story(bids / "stimuli", form, name, TEXT[k:] + TEXT[:k], rel, dur)
             for k, name in ((0, "a"), (3, "b"), (7, "c"))}
    layout = {"1": [("a", 6.0)], "2": [("b", 4.0), ("c", 20.0)], "3": [("a", 10.0)]}
    truth = {}
    for run, stories in layout.items():
        img = nib.Nifti1Image(rng.normal(100, 1, (3, 3, 3, 25)).astype(np.float32), np.eye(4))
        img.header.set_zooms((1.0, 1.0, 1.0, 2.0))
        nib.save(img, func / f"sub-01_task-listen_run-{run}_bold.nii.gz")
        lines = ["onset\tduration\tstim_file"]
        for name, onset in stories:
            stim = files[name].relative_to(bids / "stimuli").as_posix()
            lines.append(f"{onset}\t10\t{stim}")
            # .mat timings are already in scanner time: the row onset is not added
            shift = 0.0 if form == "mat" else onset
            truth.setdefault(run, []).append((name, rel + shift, onset))
        lines.append("30\t2\timages/question.png")
        (func / f"sub-01_task-listen_run-{run}_events.tsv").write_text("\n".join(lines) + "\n")
    return bids, truth


@pytest.mark.parametrize("form", ["textgrid", "gentle", "tsv", "mat"])
def test_plan_reads_every_form_in_scanner_time(tmp_path, form):
    from bids_app.config import default_spec
    from bids_app.io.bids import make_layout
    from bids_app.plan import make_plan

    bids, truth = _light_dataset(tmp_path, form)
    plan = make_plan(make_layout(bids), ["01"], default_spec(), work_dir=tmp_path / "work",
                     output_dir=tmp_path / "out")
    assert not plan.failures, plan.failures
    assert len(plan.story_names) == 3  # story a heard in runs 1 and 3 is one story
    for run, table_file in zip("123", plan.subjects[0].word_tables, strict=True):
        table = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        assert table["story"].nunique() == len(truth[run])
        for (_name, onsets, story_onset), (_, part) in zip(
                truth[run], table.groupby("story_onset", sort=True), strict=True):
            assert part["story_onset"].iloc[0] == story_onset
            assert len(part) == len(TEXT) and part["word"].iloc[0] in TEXT
            exact = part["aligned"].to_numpy(bool)
            np.testing.assert_allclose(part["onset"].to_numpy()[exact], onsets[exact], atol=2e-3)
            if form == "gentle":
                assert (~exact).sum() == 2
    canonical = sorted((tmp_path / "out" / "stimuli").glob("stim-*_annot-words_events.tsv"))
    assert len(canonical) == 3
    first = pd.read_csv(canonical[0], sep="\t", keep_default_na=False, quoting=3)
    assert list(first.columns) == ["onset", "duration", "word", "word_index", "source_index",
                                   "source_text", "aligned"]
    assert first["word"].tolist() == TEXT  # quotes and punctuation kept as written
    sidecar = json.loads(canonical[0].with_suffix(".json").read_text())
    assert len(sidecar["Sources"]) == 1 and sidecar["Sources"][0].startswith("stimuli/")


@pytest.mark.slow
def test_participant_level_with_textgrid_story_rows(tmp_path):
    from bids_app.cli import main

    data = _story_dataset(tmp_path, "textgrid", words=160)
    out, work = tmp_path / "out", tmp_path / "work"
    code = main([str(data["bids"]), str(out), "participant", "-w", str(work), "--nprocs", "2"])
    assert code == 0
    tables = sorted((out / "stimuli").glob("stim-*_annot-words_events.tsv"))
    assert [t.name for t in tables] == [f"stim-story{k}_annot-words_events.tsv" for k in (1, 2, 3)]
    for table, (_, truth) in zip(tables, sorted(data["truth"].items()), strict=True):
        words = pd.read_csv(table, sep="\t", keep_default_na=False, quoting=3)
        assert words["word"].tolist() == truth["word"].tolist()
        np.testing.assert_allclose(words["onset"] + STORY_ONSET, truth["onset"], atol=1e-3)
    assert next((out / "sub-01" / "func").glob("*_stat-r_desc-*_statmap.nii.gz"))
    report = (out / "sub-01.html").read_text(encoding="utf-8")
    assert "id='stimuli'" in report and "Story story1" in report
    assert report.count("id=\"fig-rate-") == 3
    validator = shutil.which("bids-validator-deno") or shutil.which(
        "bids-validator-deno", path=str(Path(sys.executable).parent))
    if validator is not None:
        proc = subprocess.run([validator, str(out), "--json"], capture_output=True, text=True,
                              timeout=600)
        issues = json.loads(proc.stdout)["issues"]["issues"]
        errors = [i for i in issues if i["severity"] == "error"
                  and str(i.get("location", "")).startswith("/stimuli")]
        assert errors == [], errors


def test_escaping_stim_file_fails_the_participant(tmp_path, capsys):
    from bids_app.cli import main

    bids, _ = _light_dataset(tmp_path, "tsv")
    (tmp_path / "secret.tsv").write_text("onset\tduration\tword\n0\t1\tsecret\n")
    events = bids / "sub-01" / "func" / "sub-01_task-listen_run-1_events.tsv"
    events.write_text("onset\tduration\tstim_file\n4\t10\t../../secret.tsv\n")
    code = main([str(bids), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "work"),
                 "--skip-bids-validation"])
    assert code == 3
    assert "'../../secret.tsv' contains '..'" in capsys.readouterr().err
