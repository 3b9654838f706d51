"""Phone tiers of annotations reach the story records, on the story clock."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from bids_app.errors import DatasetError
from bids_app.io.annotations import StoryRegistry, annotate_run
from bids_app.io.stimuli import read_annotation
from bids_app.plan import check_phones
from bids_app.spec_inputs import AnnotationConfig
from stimuli_models.nuisance import phone_events
from tests.helpers.stimuli import word_intervals, write_textgrid
from tests.unit.test_annotations_runs import DURS, ONSETS, WORDS, make_run


def _phones():
    """Two phones per word (at its onset and 80 ms later), silences between the words."""
    items, t = [], 0.0
    for onset, duration in zip(ONSETS, DURS, strict=True):
        if onset > t:
            items.append((t, float(onset), "sil"))
        items += [(float(onset), float(onset) + 0.08, "AH0"),
                  (float(onset) + 0.08, float(onset + duration), "T")]
        t = float(onset + duration)
    return items


def test_phone_tier_is_read_beside_the_words(tmp_path):
    path = write_textgrid(tmp_path / "a.TextGrid", {
        "words": word_intervals(WORDS, ONSETS, DURS), "phones": _phones()})
    timings = read_annotation(path)
    want = np.sort(np.r_[ONSETS, ONSETS + 0.08])
    np.testing.assert_allclose(timings.phones, want)  # silences left out
    assert any("14 phones from tier 'phones'" in note for note in timings.notes)
    plain = write_textgrid(tmp_path / "b.TextGrid", {"words": word_intervals(WORDS, ONSETS, DURS)})
    assert read_annotation(plain).phones is None


def test_story_record_holds_phones_per_word_on_the_story_clock(tmp_path):
    write_textgrid(tmp_path / "stimuli" / "a.TextGrid", {
        "words": word_intervals(WORDS, ONSETS, DURS), "speaker1 - phones": _phones()})
    write_textgrid(tmp_path / "stimuli" / "b.TextGrid",
                   {"words": word_intervals(WORDS[::-1], ONSETS, DURS)})
    run = make_run(tmp_path, events="onset\tduration\tstim_file\n"
                   "3.0\t3\ta.TextGrid\n20.0\t3\tb.TextGrid\n")
    registry = StoryRegistry()
    table = annotate_run(run, registry, AnnotationConfig(), bids_dir=tmp_path)
    story = registry.stories["a"]
    assert [len(p) for p in story.phones] == [2] * len(WORDS)
    np.testing.assert_allclose(story.phones[1], [0.0, 0.08], atol=1e-9)
    # scanner-time phone onsets: the run's word onsets plus each word's phone offsets
    rows = table[table["story"] == "a"]
    got = phone_events(rows["onset"].to_numpy(), [story.phones[w] for w in rows["word_index"]])
    np.testing.assert_allclose(got, np.sort(np.r_[ONSETS, ONSETS + 0.08]) + 3.0)
    assert registry.stories["b"].phones is None
    with pytest.raises(DatasetError, match=re.escape(
            "the annotation 'stimuli/b.TextGrid' of story 'b' has no phone tier; give a "
            "TextGrid with an IntervalTier named 'phones'")):
        check_phones(registry)
    del registry.stories["b"]
    check_phones(registry)


@pytest.mark.realdata
def test_natural_stories_phones(shared_data):
    path = shared_data / "naturalstories" / "audio" / "1_aligned.TextGrid"
    timings = read_annotation(path)
    text = path.read_text(encoding="utf-8")
    tier = text[text.index('name = "phones"'):]
    labels = re.findall(r'text = "([^"]*)"', tier)
    assert len(labels) == 3779  # the tier's intervals, as the file says
    silences = sum(label.strip().lower() in ("", "sil", "sp") for label in labels)
    assert len(timings.phones) == len(labels) - silences > 3000
    assert np.all(np.diff(timings.phones) > 0) and timings.phones[-1] < 305.18
    # about 3 phones per word of a spoken English story
    per_word = len(timings.phones) / len(timings.words)
    assert 2.5 < per_word < 4.5
    # every phone lies within a second of a word interval
    ends = np.searchsorted(timings.onsets, timings.phones, side="right") - 1
    assert np.all(timings.phones - timings.offsets[np.maximum(ends, 0)] < 1.0)


def _story_dataset(root, phones: bool):
    """The synthetic fMRIPrep dataset with each run's words in a TextGrid (a story row)."""
    from tests.helpers.fmriprep import make_fmriprep_dataset

    synthetic = make_fmriprep_dataset(root, n_volumes=40)
    for k, path in enumerate(sorted(synthetic.bids.glob("sub-01/func/*_events.tsv"))):
        tiers = {"words": word_intervals(WORDS, ONSETS + k, DURS)}
        if phones:
            tiers["phones"] = [(a + k, b + k, label) for a, b, label in _phones()]
        write_textgrid(synthetic.bids / "stimuli" / f"s{k}.TextGrid", tiers)
        path.write_text(f"onset\tduration\tstim_file\n2.0\t3\ts{k}.TextGrid\n",
                        encoding="utf-8")
    return synthetic


def test_story_json_of_a_plan_carries_phones(tmp_path):
    from bids_app.config import default_spec, spec_from_dict
    from bids_app.io.bids import make_derivative_layouts, make_layout
    from bids_app.plan import make_plan
    from tests.helpers.fmriprep import SPACE

    synthetic = _story_dataset(tmp_path, phones=True)
    with_phones = spec_from_dict({"features": {"nuisance": ["word_rate", "phoneme_rate"]}})
    for spec, work in ((with_phones, "work"), (default_spec(), "work_default")):
        plan = make_plan(make_layout(synthetic.bids), ["01"], spec,
                         work_dir=tmp_path / work, output_dir=tmp_path / "out",
                         derivatives=make_derivative_layouts({"fmriprep": synthetic.fmriprep}),
                         space=f"{SPACE}:res-2", bids_dir=synthetic.bids)
        assert not plan.failures, plan.failures
        for story_file in plan.story_files:
            record = json.loads(open(story_file, encoding="utf-8").read())
            if work == "work":
                assert len(record["phones"]) == len(record["words"])
                assert all(len(p) == 2 and p[0] == 0.0 for p in record["phones"])
            else:  # without the band the story records are as before
                assert "phones" not in record


def test_phoneme_rate_without_phone_tier_exits_3_naming_the_file(tmp_path, capfd):
    from bids_app.cli import main
    from tests.helpers.fmriprep import SPACE

    synthetic = _story_dataset(tmp_path, phones=False)
    spec = tmp_path / "spec.toml"
    spec.write_text('[features]\nnuisance = ["word_rate", "phoneme_rate"]\n', encoding="utf-8")
    code = main([str(synthetic.bids), str(tmp_path / "out"), "participant",
                 "-d", f"fmriprep={synthetic.fmriprep}", "--space", f"{SPACE}:res-2",
                 "--config-file", str(spec), "-w", str(tmp_path / "work")])
    seen = capfd.readouterr()
    assert code == 3
    assert "the annotation 'stimuli/s0.TextGrid' of story 's0' has no phone tier" in seen.err
    assert "Traceback" not in seen.err + seen.out


def test_gentle_json_phones_start_at_each_word(tmp_path):
    entries = [
        {"case": "success", "word": "the", "start": 0.5, "end": 0.62,
         "phones": [{"phone": "dh_B", "duration": 0.05}, {"phone": "ah_E", "duration": 0.07}]},
        {"case": "not-found-in-audio", "word": "old"},
        {"case": "success", "word": "lamp", "start": 1.0, "end": 1.4,
         "phones": [{"phone": "l_B", "duration": 0.1}, {"phone": "ae_I", "duration": 0.1},
                    {"phone": "m_I", "duration": 0.1}, {"phone": "p_E", "duration": 0.1}]},
    ]
    path = tmp_path / "align.json"
    path.write_text(json.dumps({"transcript": "the old lamp", "words": entries}))
    timings = read_annotation(path)
    np.testing.assert_allclose(timings.phones, [0.5, 0.55, 1.0, 1.1, 1.2, 1.3])
    assert any("6 phones" in note for note in timings.notes)
    for entry in entries:
        entry.pop("phones", None)
    path.write_text(json.dumps({"transcript": "the old lamp", "words": entries}))
    assert read_annotation(path).phones is None


@pytest.mark.realdata
def test_natural_stories_phone_rate_is_not_word_rate(shared_data):
    """On a real story the three controls are related but distinct regressors (TR 2 s)."""
    from bids_app.alignment import align_run, frame_times
    from bids_app.band_events import band_events
    from stimuli_models.nuisance import phones_per_word

    timings = read_annotation(shared_data / "naturalstories" / "audio" / "3_aligned.TextGrid")
    tr = 2.0
    times = frame_times(int(timings.offsets.max() / tr) + 10, tr, reference=1.0)
    table = pd.DataFrame({"onset": timings.onsets, "duration": timings.offsets - timings.onsets,
                          "story": "s", "word_index": np.arange(len(timings.words))})
    ones = {"s": np.ones((len(timings.words), 1), dtype=np.float32)}
    phones = {"s": phones_per_word(timings.onsets, timings.phones)}
    rate, onset, phone = (align_run(*band_events(b, ones, table, times, tr, phones=phones),
                                    times, tr, zscore=False)[:, 0]
                          for b in ("word_rate", "word_onset", "phoneme_rate"))
    every_phone = align_run(timings.phones, np.zeros(len(timings.phones)),
                            np.ones((len(timings.phones), 1)), times, tr, zscore=False)[:, 0]
    np.testing.assert_allclose(phone, every_phone, rtol=1e-5, atol=1e-6)
    assert 0.5 < np.corrcoef(rate, phone)[0, 1] < 0.95
    assert 0.5 < np.corrcoef(rate, onset)[0, 1] < 0.95
