"""Stories of runs in scanner time: events rows, stim_file rows, spec mappings, checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_app.errors import DatasetError, UsageError
from bids_app.io.annotations import StoryRegistry, annotate_run
from bids_app.io.bids import BoldRun
from bids_app.io.stimuli.tables import write_story_table
from bids_app.spec_inputs import AnnotationConfig
from tests.helpers.stimuli import word_intervals, write_mat, write_textgrid

WORDS = ["the", "keeper", "lit", "the", "lamp", "at", "dusk"]
ONSETS = np.array([0.2, 0.5, 1.0, 1.3, 1.5, 2.0, 2.3])
DURS = np.full(7, 0.18)


def make_run(root: Path, *, task="story", run="1", events=None, tr=2.0, n_volumes=20,
             metadata=None) -> BoldRun:
    func = root / "sub-01" / "func"
    func.mkdir(parents=True, exist_ok=True)
    name = f"sub-01_task-{task}" + (f"_run-{run}" if run else "")
    events_file = None
    if events is not None:
        events_file = func / f"{name}_events.tsv"
        events_file.write_text(events, encoding="utf-8")
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.10.0"}')
    entities = {"subject": "01", "task": task, **({"run": run} if run else {})}
    return BoldRun(subject="01", session="", task=task, run=run,
                   bold_file=func / f"{name}_bold.nii.gz", events_file=events_file, tr=tr,
                   n_volumes=n_volumes, entities=entities, metadata=dict(metadata or {}))


def grid(path: Path, words=WORDS, onsets=ONSETS, durs=DURS, **kw) -> Path:
    return write_textgrid(path, {"words": word_intervals(words, onsets, durs)}, **kw)


def test_word_rows_in_events(tmp_path):
    rows = "onset\tduration\ttext\n" + "".join(
        f"{o + 4:.2f}\t0.25\t{w}\n" for w, o in zip(WORDS, ONSETS, strict=True))
    run = make_run(tmp_path, events=rows)
    registry = StoryRegistry()
    table = annotate_run(run, registry, AnnotationConfig(text_column="text"), bids_dir=tmp_path)
    assert table["word"].tolist() == WORDS
    np.testing.assert_allclose(table["onset"], ONSETS + 4)
    assert list(registry.stories) == ["storyrun1"]


def test_story_rows_place_textgrid_at_row_onset_and_several_stories_per_run(tmp_path):
    grid(tmp_path / "stimuli" / "a.TextGrid")
    grid(tmp_path / "stimuli" / "text" / "b.TextGrid", words=WORDS[::-1])
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n"
                   "3.0\t3\ta.TextGrid\n20.0\t3\ttext/b.TextGrid\n26\t2\timages/q.png\n")
    registry, warnings = StoryRegistry(), []
    table = annotate_run(run, registry, AnnotationConfig(), bids_dir=tmp_path,
                         warnings=warnings)
    assert set(registry.stories) == {"a", "b"}
    first = table[table["story"] == "a"]
    np.testing.assert_allclose(first["onset"], ONSETS + 3.0)  # story clock + row onset
    np.testing.assert_allclose(table.loc[table["story"] == "b", "onset"], ONSETS + 20.0)
    assert (table["story_onset"].unique() == [3.0, 20.0]).all()
    assert warnings == []
    story = registry.stories["a"]
    np.testing.assert_allclose(story.timings["onset"], ONSETS)
    assert story.sources == ["stimuli/a.TextGrid"]


def test_story_heard_in_several_runs_is_one_story(tmp_path):
    grid(tmp_path / "stimuli" / "a.TextGrid")
    registry = StoryRegistry()
    for r, onset in (("1", 2.0), ("2", 6.0)):
        run = make_run(tmp_path, run=r, events=f"onset\tduration\tstim_file\n{onset}\t3\t"
                       "a.TextGrid\n")
        table = annotate_run(run, registry, AnnotationConfig(), bids_dir=tmp_path)
        np.testing.assert_allclose(table["onset"], ONSETS + onset)
    assert list(registry.stories) == ["a"]
    assert len(registry.stories["a"].sources) == 2


@pytest.mark.parametrize("value", ["../secret.TextGrid", "/etc/passwd", "a/../../x.TextGrid",
                                   "link.TextGrid", "linkdir/x.TextGrid", "missing.TextGrid"])
def test_escaping_stim_file_is_refused_before_reading(tmp_path, value):
    outside = tmp_path / "outside"
    grid(outside / "x.TextGrid")
    grid(tmp_path / "ds" / "secret.TextGrid")
    stimuli = tmp_path / "ds" / "stimuli"
    stimuli.mkdir(parents=True)
    os.symlink(outside / "x.TextGrid", stimuli / "link.TextGrid")
    os.symlink(outside, stimuli / "linkdir")
    run = make_run(tmp_path / "ds", events=f"onset\tduration\tstim_file\n0\t3\t{value}\n")
    match = "does not exist" if value.startswith("missing") else "refused, not read"
    with pytest.raises(DatasetError, match=match):
        annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path / "ds")


def test_symlink_inside_stimuli_is_followed(tmp_path):
    grid(tmp_path / "stimuli" / "real" / "a.TextGrid")
    os.symlink(tmp_path / "stimuli" / "real" / "a.TextGrid", tmp_path / "stimuli" / "a.TextGrid")
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n1\t3\ta.TextGrid\n")
    assert len(annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path)) == 7


def test_mapping_lebel_style_task_names_story(tmp_path):
    grid(tmp_path / "derivative" / "TextGrids" / "souls.TextGrid")
    spec = AnnotationConfig(stimuli_dir="derivative/TextGrids", mapping={"*": "{task}.TextGrid"})
    run = make_run(tmp_path, task="souls", run="")
    registry = StoryRegistry()
    table = annotate_run(run, registry, spec, bids_dir=tmp_path)
    assert list(registry.stories) == ["souls"] and table["word"].tolist() == WORDS
    other = make_run(tmp_path, task="life", run="")
    with pytest.raises(DatasetError, match="life.TextGrid.*does not exist"):
        annotate_run(other, registry, spec, bids_dir=tmp_path)


def test_mapping_lpp_style_by_run_with_onset_and_most_specific_selector(tmp_path):
    for k in (1, 2):
        grid(tmp_path / "annotation" / "EN" / f"lppEN_section{k}.TextGrid",
             words=[f"{w}{k}" for w in WORDS])
    grid(tmp_path / "annotation" / "special.TextGrid", words=["x"] * 7)
    spec = AnnotationConfig(stimuli_dir="annotation", mapping={
        "task-lppEN": "EN/lppEN_section{run_int}.TextGrid",
        "task-lppEN_run-02": {"file": "EN/lppEN_section2.TextGrid", "onset": 8.0},
        "sub-01_task-lpp*_run-3": [{"file": "special.TextGrid", "story": "extra"},
                                   {"file": "EN/lppEN_section1.TextGrid", "onset": 5.0}]})
    registry = StoryRegistry()
    one = annotate_run(make_run(tmp_path, task="lppEN", run="01"), registry, spec,
                       bids_dir=tmp_path)
    two = annotate_run(make_run(tmp_path, task="lppEN", run="02"), registry, spec,
                       bids_dir=tmp_path)
    three = annotate_run(make_run(tmp_path, task="lppEN", run="3"), registry, spec,
                         bids_dir=tmp_path)
    assert one["word"].iloc[0] == "the1" and two["word"].iloc[0] == "the2"
    np.testing.assert_allclose(two["onset"], ONSETS + 8.0)
    assert three["story"].unique().tolist() == ["extra", "lppENsection1"]
    np.testing.assert_allclose(three.loc[three["story"] == "lppENsection1", "onset"],
                               ONSETS + 5.0)
    with pytest.raises(UsageError, match="selector 'bogus'"):
        annotate_run(make_run(tmp_path), StoryRegistry(),
                     AnnotationConfig(mapping={"bogus": "x"}), bids_dir=tmp_path)


def test_smn4lang_style_mat_in_scanner_time_from_stim_rows(tmp_path):
    times = 10.65 + np.arange(6) * 0.3
    base = tmp_path / "derivatives" / "annotations" / "time_align"
    write_mat(base / "char-level" / "story_3_char_time.mat", list("今天天气很好"), times,
              times + 0.25, key="char")
    write_mat(base / "word-level" / "story_3_word_time.mat", ["今天", "天气", "很好"],
              times[::2], times[1::2] + 0.25)
    events = ("onset\tduration\tstim_file\n10.650000\t240\taudio/story_3.wav\n"
              "258.65\t2\timages/hurryup.png\n")
    spec = AnnotationConfig(stimuli_dir="derivatives/annotations/time_align", language="zh",
                            mapping={"task-RDR": "char-level/{stim}_char_time.mat"},
                            segmentation="file",
                            segmentation_file="word-level/{stim}_word_time.mat")
    registry = StoryRegistry()
    run = make_run(tmp_path, task="RDR", run="3", events=events, n_volumes=130)
    table = annotate_run(run, registry, spec, bids_dir=tmp_path)
    assert table["word"].tolist() == ["今天", "天气", "很好"]
    # times already in scanner time: the row onset (10.65 s) is not added again
    np.testing.assert_allclose(table["onset"], times[::2])
    np.testing.assert_allclose(table["duration"], 0.55)
    story = registry.stories["story3"]
    assert story.separator == ""  # words are joined without spaces for featurization
    np.testing.assert_allclose(story.timings["onset"], times[::2] - 10.65, atol=1e-9)
    assert story.meta["time_reference"] == "run"


def test_scanner_clock_shift_applied_once(tmp_path):
    write_mat(tmp_path / "stimuli" / "w.mat", WORDS, ONSETS + 10, ONSETS + 10.25)
    meta = {"NumberOfVolumesDiscardedByScanner": 3}
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n0\t3\tw.mat\n", metadata=meta)
    events_clock = annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path)
    scanner = annotate_run(run, StoryRegistry(), AnnotationConfig(clock="scanner"),
                           bids_dir=tmp_path)
    np.testing.assert_allclose(events_clock["onset"], ONSETS + 10)
    np.testing.assert_allclose(scanner["onset"], ONSETS + 10 - 3 * 2.0)
    # user dummy scans never move words; they only change which words fall in the data
    warnings = []
    dummy = annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path,
                         dummy_scans=6, warnings=warnings)
    np.testing.assert_allclose(dummy["onset"], events_clock["onset"])
    assert any("before its first used volume" in w for w in warnings)


def test_words_past_the_end_warn_then_error(tmp_path):
    grid(tmp_path / "stimuli" / "a.TextGrid")
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n38.5\t3\ta.TextGrid\n",
                   n_volumes=20)  # run ends at 40 s, story ends at 41.05 s
    warnings = []
    annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path, warnings=warnings)
    assert any("start after the end of the run" in w for w in warnings)
    with pytest.raises(DatasetError, match=r"end at 41.0 s but run .* ends at 40.0 s.*"
                                           "end_tolerance"):
        annotate_run(run, StoryRegistry(), AnnotationConfig(end_tolerance=0.5),
                     bids_dir=tmp_path)


def test_overlaps_and_non_monotonic_onsets_are_reported(tmp_path):
    rows = "onset\tduration\tword\n" + "".join(
        f"{o}\t0.5\t{w}\n" for w, o in zip(WORDS[:3], [0.1, 0.3, 2.0], strict=True))
    (tmp_path / "stimuli").mkdir()
    (tmp_path / "stimuli" / "w.tsv").write_text(rows.replace("2.0\t", "0.2\t"))
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n1\t3\tw.tsv\n")
    warnings = []
    annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path, warnings=warnings)
    text = " ".join(warnings)
    assert "2 word(s) of story 'w' overlap" in text
    assert "1 word(s) of story 'w' start before the previous word" in text


def test_normalisation_is_applied_and_recorded(tmp_path):
    grid(tmp_path / "stimuli" / "a.TextGrid", words=["The", "year", "1984,", "ended."],
         onsets=ONSETS[:4], durs=DURS[:4])
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n0\t3\ta.TextGrid\n")
    spec = AnnotationConfig(lowercase=True, strip_punctuation=True, numbers="spell")
    registry = StoryRegistry()
    table = annotate_run(run, registry, spec, bids_dir=tmp_path)
    assert table["word"].tolist() == ["the", "year", "one thousand nine hundred eighty-four",
                                      "ended"]
    target = write_story_table(tmp_path / "out", registry.stories["a"])
    written = pd.read_csv(target, sep="\t", keep_default_na=False)
    assert list(written.columns[:4]) == ["onset", "duration", "word", "word_index"]
    assert written["source_text"].tolist() == ["The", "year", "1984,", "ended."]
    sidecar = json.loads(target.with_suffix(".json").read_text())
    assert sidecar["Normalisation"]["Numbers"] == "spell"
    assert sidecar["Normalisation"]["Lowercase"] is True
    assert sidecar["Sources"] == ["stimuli/a.TextGrid"]
    assert sidecar["AnnotationFormat"] == "textgrid"
    dropped = annotate_run(run, StoryRegistry(), AnnotationConfig(numbers="drop",
                                                                  strip_punctuation=True),
                           bids_dir=tmp_path)
    assert dropped["word"].tolist() == ["The", "year", "ended"]


def test_chinese_dictionary_segmentation_of_events_words(tmp_path):
    rows = "onset\tduration\tword\n" + "".join(
        f"{i * 0.3:.1f}\t0.3\t{c}\n" for i, c in enumerate("我们今天去北京"))
    (tmp_path / "dict.txt").write_text("我们\n今天\n北京\t5\n", encoding="utf-8")
    run = make_run(tmp_path, events=rows)
    spec = AnnotationConfig(language="zh", segmentation="dictionary", dictionary="dict.txt")
    registry = StoryRegistry()
    table = annotate_run(run, registry, spec, bids_dir=tmp_path)
    assert table["word"].tolist() == ["我们", "今天", "去", "北京"]
    np.testing.assert_allclose(table["onset"], [0.0, 0.6, 1.2, 1.5])
    assert next(iter(registry.stories.values())).separator == ""


def test_stimuli_report_section(tmp_path):
    from bids_app.config import ExperimentSpec
    from bids_app.reports.stimuli import stimuli_section, story_rows

    grid(tmp_path / "stimuli" / "a.TextGrid")
    runs, tables = [], []
    for r, onset in (("1", 2.0), ("2", 38.6)):
        run = make_run(tmp_path, run=r, events=f"onset\tduration\tstim_file\n{onset}\t3\t"
                       "a.TextGrid\n")
        path = tmp_path / f"run{r}.tsv"
        annotate_run(run, StoryRegistry(), AnnotationConfig(),
                     bids_dir=tmp_path).to_csv(path, sep="\t", index=False)
        runs.append(run)
        tables.append(str(path))
    rows = story_rows(runs, tables)
    assert rows["n_words"].tolist() == [7, 7]
    assert rows["n_after"].tolist() == [0, 3]
    assert rows["coverage"].iloc[0] == pytest.approx((2.3 + 0.18 - 0.2) / 40)
    html = stimuli_section(runs, tables, ExperimentSpec())
    assert "Story a" in html and "3 after run end" in html and "data:image/png" in html


def test_slice_timing_is_left_to_the_volume_times(tmp_path):
    """StartTime moves the volumes' acquisition times (run_times), never the words."""
    from bids_app.participant import run_times

    grid(tmp_path / "stimuli" / "a.TextGrid")
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n2\t3\ta.TextGrid\n")
    plain = annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path)
    run.start_time = 0.7
    shifted = annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path)
    np.testing.assert_allclose(plain["onset"], shifted["onset"])
    times = run_times(run, {"dummy_scans": 2})
    assert times[0] == pytest.approx(2 * run.tr + 0.7) and len(times) == run.n_volumes - 2


def test_report_counts_timing_problems_per_story(tmp_path):
    """Negative, non-monotonic, overlapping and unaligned words are counted per story."""
    import re

    from bids_app.config import ExperimentSpec
    from bids_app.reports.stimuli import stimuli_section, story_rows
    from tests.helpers.stimuli import write_gentle_json

    (tmp_path / "stimuli").mkdir()
    # story 'w' (onset 2 s): 2 words before its onset (-0.6, -0.2), 'the' at 0.8 s starts
    # before 'lit' at 1.0 s (non-monotonic) and both 'lit' and 'the' overlap the word before
    rows = "onset\tduration\tword\n" + "".join(f"{o}\t{d}\t{w}\n" for w, o, d in zip(
        ["so", "the", "keeper", "lit", "the", "lamp"], [-0.6, -0.2, 0.4, 1.0, 0.8, 1.6],
        [0.3, 0.3, 0.7, 0.3, 0.3, 0.3], strict=True))
    (tmp_path / "stimuli" / "w.tsv").write_text(rows)
    # story 'galign' (onset 10 s): Gentle could not align 'lit' and 'lamp'
    write_gentle_json(tmp_path / "stimuli" / "g_align.json", WORDS, ONSETS, DURS,
                      missing=(2, 4))
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n2\t3\tw.tsv\n"
                   "10\t3\tg_align.json\n")
    table = annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path)
    table.to_csv(tmp_path / "words.tsv", sep="\t", index=False)
    checks = story_rows([run], [str(tmp_path / "words.tsv")]).set_index("story")
    keys = ["n_words", "n_negative", "n_non_monotonic", "n_overlaps", "n_unaligned"]
    assert checks.loc["w", keys].tolist() == [6, 2, 1, 2, 0]
    assert checks.loc["galign", keys].tolist() == [7, 0, 0, 0, 2]
    html = stimuli_section([run], [str(tmp_path / "words.tsv")], ExperimentSpec())
    blocks = dict(re.findall(r"<h3 id='story-(\w+)'>(.*?)(?=<h3 |$)", html, re.DOTALL))
    assert set(blocks) == {"w", "galign"}
    header = re.findall(r"<th>(.*?)</th>", blocks["w"])
    for story, expected in (("w", {"before story onset": "2", "non-monotonic onsets": "1",
                                   "overlapping words": "2", "unaligned (interpolated)": "0"}),
                            ("galign", {"before story onset": "0", "non-monotonic onsets": "0",
                                        "overlapping words": "0",
                                        "unaligned (interpolated)": "2"})):
        cells = dict(zip(header, re.findall(r"<td>(.*?)</td>", blocks[story]), strict=True))
        assert {k: cells[k] for k in expected} == expected, story
    assert "2 before story onset; 1 non-monotonic onsets; 2 overlapping words" in blocks["w"]
    assert "2 unaligned (interpolated)" in blocks["galign"]
