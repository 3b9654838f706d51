"""Annotation mappings on the real metadata of LeBel, Le Petit Prince and SMN4Lang.

The word timings of these datasets are not in ../shared/data (git-annex content),
so the annotation files are written here with the real story names, run labels,
TRs, story onsets and audio lengths; what is tested is how brainenc places them.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from bids_app.errors import DatasetError
from bids_app.io.annotations import StoryRegistry, annotate_run
from bids_app.io.bids import BoldRun
from bids_app.spec_inputs import AnnotationConfig
from tests.helpers.stimuli import word_intervals, write_mat, write_textgrid

pytestmark = pytest.mark.realdata


def _words(length: float, rate: float = 2.5, prefix: str = "w"):
    n = max(int(length * rate), 2)
    onsets = np.linspace(0.3, length - 0.5, n)
    return [f"{prefix}{i}" for i in range(n)], onsets, np.full(n, 0.8 / rate)


def _run(root, task, run, n_volumes, sidecar, *, events=None, session=""):
    func = root / "sub-01" / "func"
    func.mkdir(parents=True, exist_ok=True)
    meta = json.loads(sidecar.read_text())
    entities = {"subject": "01", "task": task, **({"run": run} if run else {}),
                **({"session": session} if session else {})}
    return BoldRun(subject="01", session=session, task=task, run=run,
                   bold_file=func / f"sub-01_task-{task}_bold.nii.gz", events_file=events,
                   tr=float(meta["RepetitionTime"]), n_volumes=n_volumes,
                   start_time=meta.get("StartTime"), entities=entities, metadata=meta)


def test_lebel_task_names_the_story_and_repeats_share_it(shared_data, tmp_path):
    lebel = shared_data / "openneuro-ds003020-lebel"
    sessions = json.loads((lebel / "deep-fMRI-dataset_em_data_sess_to_story.json").read_text())
    lengths = json.loads((lebel / "derivative" / "respdict.json").read_text())
    spec = AnnotationConfig(stimuli_dir="derivative/TextGrids", mapping={"*": "{task}.TextGrid"})
    registry, n_runs = StoryRegistry(), 0
    for session, (stories, repeated) in sessions.items():
        for story in stories + [repeated]:
            tr = json.loads((lebel / f"task-{story}_bold.json").read_text())["RepetitionTime"]
            words, onsets, durs = _words(lengths[story] * tr - 10.0, rate=1.0, prefix=story)
            path = tmp_path / "derivative" / "TextGrids" / f"{story}.TextGrid"
            if not path.exists():
                write_textgrid(path, {"word": word_intervals(words, onsets, durs),
                                      "phone": [(0.0, float(onsets[-1] + 1), "AH")]})
            run = _run(tmp_path, story, "", lengths[story], lebel / f"task-{story}_bold.json",
                       session=session)
            warnings = []
            table = annotate_run(run, registry, spec, bids_dir=tmp_path, warnings=warnings)
            n_runs += 1
            assert table["story"].unique().tolist() == [story] and warnings == []
    assert n_runs == sum(len(s) + 1 for s, _ in sessions.values())
    # 'wheretheressmoke' is heard in every session but featurized once
    assert len(registry.stories["wheretheressmoke"].sources) == len(sessions)
    assert len(registry.stories) == len({s for v in sessions.values() for s in v[0] + [v[1]]})


def _lpp_table(readme: str, language: str) -> tuple[list[float], list[int]]:
    lines = readme.splitlines()
    row = next(i for i, line in enumerate(lines) if f"**{language}**" in line)
    numbers = [[float(x) for x in re.findall(r"\d+(?:\.\d+)?", lines[k])] for k in (row - 1, row)]
    return numbers[0], [int(x) for x in numbers[1]]


def test_le_petit_prince_runs_map_to_sections_with_audio_onset(shared_data, tmp_path):
    lpp = shared_data / "openneuro-ds003643-lepetitprince"
    audio, scans = _lpp_table((lpp / "README").read_text(encoding="utf-8"), "EN")
    sidecars = sorted((lpp / "sub-EN057" / "func").glob("*_echo-1_bold.json"),
                      key=lambda p: int(re.search(r"run-(\d+)", p.name).group(1)))
    runs = [re.search(r"run-(\d+)", p.name).group(1) for p in sidecars]
    assert len(runs) == 9
    mapping = {}
    for section, (run, length) in enumerate(zip(runs, audio, strict=True), start=1):
        words, onsets, durs = _words(length)
        write_textgrid(tmp_path / "annotation" / "EN" / f"lppEN_section{section}.TextGrid",
                       {"words": word_intervals(words, onsets, durs)})
        # English raw runs hold 4 volumes (8 s) before the audio starts (README)
        mapping[f"task-lppEN_run-{run}"] = {"file": f"EN/lppEN_section{section}.TextGrid",
                                            "onset": 8.0}
    spec = AnnotationConfig(stimuli_dir="annotation", mapping=mapping)
    registry = StoryRegistry()
    for section, (run, sidecar) in enumerate(zip(runs, sidecars, strict=True), start=1):
        bold = _run(tmp_path, "lppEN", run, scans[section - 1], sidecar)
        warnings = []
        table = annotate_run(bold, registry, spec, bids_dir=tmp_path, warnings=warnings)
        assert warnings == []
        assert table["onset"].min() == pytest.approx(8.3)
        assert table["story"].iloc[0] == f"lppENsection{section}"
    # mapping the longest section to the shortest run is caught, naming both
    wrong = AnnotationConfig(stimuli_dir="annotation", mapping={
        "*": "EN/lppEN_section9.TextGrid"})
    shortest = int(np.argmin(scans))
    with pytest.raises(DatasetError, match=r"lppEN_section9.*ends at"):
        annotate_run(_run(tmp_path, "lppEN", runs[shortest], scans[shortest],
                          sidecars[shortest]), StoryRegistry(), wrong, bids_dir=tmp_path)


def test_smn4lang_story_rows_and_scanner_time(shared_data, tmp_path):
    smn = shared_data / "openneuro-ds004078-smn4lang" / "sub-01" / "func"
    spec = AnnotationConfig(stimuli_dir="derivatives/annotations/time_align", language="zh",
                            mapping={"task-RDR": "word-level/{stim}_word_time.mat"})
    registry = StoryRegistry()
    for number in (1, 10, 33, 60):
        events = smn / f"sub-01_task-RDR_run-{number}_events.tsv"
        first = events.read_text().splitlines()[1].split("\t")
        onset, length = float(first[0]), float(first[1])
        assert first[2] == f"audio/story_{number}.wav" and onset == pytest.approx(10.65)
        n = int(length * 3)
        starts = onset + np.linspace(0.2, length - 0.5, n)  # scanner time, as shipped
        write_mat(tmp_path / "derivatives" / "annotations" / "time_align" / "word-level" /
                  f"story_{number}_word_time.mat", ["今天"] * (n - 1) + [f"第{number}"], starts,
                  starts + 0.25)
        sidecar = smn / f"sub-01_task-RDR_run-{number}_bold.json"
        tr = json.loads(sidecar.read_text())["RepetitionTime"]
        bold = _run(tmp_path, "RDR", str(number), math.ceil((onset + length + 20) / tr),
                    sidecar, events=events)
        table = annotate_run(bold, registry, spec, bids_dir=tmp_path)
        np.testing.assert_allclose(table["onset"], starts)  # 10.65 s not added twice
        assert (table["story_onset"] == onset).all()
        assert table["story"].iloc[0] == f"story{number}"
    assert all(s.separator == "" for s in registry.stories.values())
