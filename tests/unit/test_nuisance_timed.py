"""Word-onset and phoneme-rate nuisance bands: each depends on exactly what its name says."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_app.alignment import align_run, bin_features
from bids_app.band_events import band_events
from bids_app.errors import DatasetError
from stimuli_models.nuisance import (
    first_in_volume,
    nuisance_features,
    phone_events,
    phones_per_word,
)

TR = 2.0
TIMES = np.arange(12) * TR + 1.0  # volume i collects onsets in [times[i] - 2, times[i])


def _table(onsets, story="s"):
    onsets = np.asarray(onsets, dtype=float)
    return pd.DataFrame({"onset": onsets, "duration": np.full(len(onsets), 0.2),
                         "story": story, "word_index": np.arange(len(onsets))})


def _binned(band, table, features, phones=None):
    onsets, _, rows = band_events(band, features, table, TIMES, TR, phones=phones)
    return bin_features(onsets, rows, TIMES, TR)[:, 0]


def test_first_in_volume_marks_one_word_per_window():
    # windows: [-1, 1) [1, 3) [3, 5) [5, 7) ...
    onsets = np.array([0.1, 0.5, 1.2, 3.0, 3.1, 3.9, 7.5, -3.0, -2.5])
    first = first_in_volume(onsets, TIMES, TR)
    assert first.tolist() == [1, 0, 1, 1, 0, 0, 1, 1, 0]
    # order of the rows does not matter: the earliest word of a window is marked
    assert first_in_volume(onsets[::-1], TIMES, TR).tolist() == first[::-1].tolist()


def test_word_onset_differs_from_word_rate_exactly_where_volumes_hold_several_words():
    rng = np.random.default_rng(0)
    onsets = np.sort(rng.uniform(-1.0, 22.0, size=30))
    table = _table(onsets)
    ones = {"s": np.ones((len(onsets), 1), dtype=np.float32)}
    rate = _binned("word_rate", table, ones)
    onset = _binned("word_onset", table, ones)
    np.testing.assert_array_equal(onset, (rate > 0).astype(float))
    several = rate >= 2
    assert several.any() and (rate == 1).any() and (rate == 0).any()
    assert np.all(onset[several] < rate[several]) and np.all(onset[~several] == rate[~several])
    # with the HRF, the word-onset band is the HRF of the first word of each volume only
    hrf = {"method": "hrf"}
    got = align_run(*band_events("word_onset", ones, table, TIMES, TR), TIMES, TR, **hrf,
                    zscore=False)
    first = first_in_volume(onsets, TIMES, TR).astype(bool)
    want = align_run(onsets[first], np.full(first.sum(), 0.2), np.ones((first.sum(), 1)),
                     TIMES, TR, **hrf, zscore=False)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    full = align_run(onsets, np.full(len(onsets), 0.2), np.ones((len(onsets), 1)), TIMES, TR,
                     **hrf, zscore=False)
    assert not np.allclose(got, full)


def test_phones_per_word_keeps_every_phone_time():
    words = np.array([0.5, 1.0, 2.0])
    phones = np.array([0.4, 0.5, 0.6, 0.9, 1.0, 1.3, 1.9999999, 2.0, 2.2, 4.0])
    per_word = phones_per_word(words, phones)
    # 1.9999999 is the next word's first phone written with a rounding error
    assert [len(p) for p in per_word] == [4, 2, 4]
    assert per_word[0][0] == pytest.approx(-0.1)  # before the first word: first word's phone
    np.testing.assert_allclose(phone_events(words, per_word), phones, atol=1e-6)
    counts = nuisance_features(["a", "b", "c"], ["phoneme_rate"], phones=per_word)
    assert counts["phoneme_rate"].ravel().tolist() == [4, 2, 4]


def test_phoneme_rate_counts_phone_onsets_per_volume_not_words():
    onsets = np.array([0.2, 1.5, 4.2, 6.0, 9.5])
    ones = {"s": np.ones((5, 1), dtype=np.float32)}
    # same words, different phones: the word rate is unchanged, the phone rate follows phones
    short = {"s": [[0.0], [0.0, 0.1], [0.0], [0.0], [0.0]]}
    long = {"s": [[0.0, 0.1, 0.2], [0.0, 0.1, 2.0], [0.0], [0.0, 0.3, 0.6, 0.9], [0.0]]}
    table = _table(onsets)
    assert np.array_equal(_binned("word_rate", table, ones, short),
                          _binned("word_rate", table, ones, long))
    for phones in (short, long):
        events = phone_events(onsets, phones["s"])
        want = np.histogram(events, bins=np.r_[TIMES[0] - TR, TIMES])[0]
        np.testing.assert_array_equal(_binned("phoneme_rate", table, ones, phones), want)
    # a phone 2 s after its word's onset lands in a later volume than the word
    # volume [3, 5) holds one word (4.2 s) but two phones: 3.5 s (of the word at 1.5 s) and 4.2 s
    assert _binned("word_rate", table, ones)[2] == 1
    assert _binned("phoneme_rate", table, ones, long)[2] == 2
    assert _binned("phoneme_rate", table, ones, short)[2] == 1
    # same phones, other word boundaries: the phone rate is unchanged, the word rate is not
    merged = _table(onsets[[0, 2, 3, 4]])
    merged_phones = {"s": [long["s"][0] + [1.3 + x for x in long["s"][1]], long["s"][2],
                           long["s"][3], long["s"][4]]}
    ones4 = {"s": np.ones((4, 1), dtype=np.float32)}
    np.testing.assert_array_equal(_binned("phoneme_rate", merged, ones4, merged_phones),
                                  _binned("phoneme_rate", table, ones, long))
    assert not np.array_equal(_binned("word_rate", merged, ones4),
                              _binned("word_rate", table, ones))


def test_phoneme_rate_without_phones_names_the_story():
    with pytest.raises(DatasetError, match="story 's' has none; give its annotation a phone"):
        band_events("phoneme_rate", {"s": np.ones((2, 1))}, _table([0.5, 1.0]), TIMES, TR,
                    phones={"s": None})


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    from bids_app.config import default_spec
    from bids_app.io.bids import make_derivative_layouts, make_layout
    from bids_app.plan import make_plan
    from tests.helpers.fmriprep import SPACE, make_fmriprep_dataset

    root = tmp_path_factory.mktemp("timed")
    synthetic = make_fmriprep_dataset(root, n_volumes=60)
    plan = make_plan(make_layout(synthetic.bids), ["01"], default_spec(),
                     work_dir=root / "work", output_dir=root / "out",
                     derivatives=make_derivative_layouts({"fmriprep": synthetic.fmriprep}),
                     space=f"{SPACE}:res-2", bids_dir=synthetic.bids)
    assert not plan.failures
    features = []
    for name, story in zip(plan.story_names, plan.story_files, strict=True):
        n_words = len(json.loads(Path(story).read_text(encoding="utf-8"))["words"])
        path = root / f"{name}_features.npy"
        np.save(path, np.random.default_rng(0).normal(size=(1, n_words, 4)).astype(np.float32))
        features.append(str(path))
    return plan, features, root


def _designs(planned, out, story_files, bands):
    from bids_app.config import default_spec
    from bids_app.participant import build_designs, read_design_sidecar

    plan, features, _ = planned
    spec = default_spec()
    subject = plan.subjects[0]
    alignment = {**dataclasses.asdict(spec.alignment), "method": "fir", "delays": [0]}
    paths = build_designs(subject.runs_json, subject.word_tables, features, plan.story_names, 0,
                          alignment, dataclasses.asdict(spec.bold), str(out),
                          nuisance={"bands": bands, "frequency_file": ""},
                          story_files=story_files)
    return [(np.load(p), read_design_sidecar(p)["bands"]) for p in paths]


def test_designs_hold_phone_and_onset_bands(planned, tmp_path):
    plan, _, _ = planned
    # the synthetic stories have no phone tier: give each word 1 to 4 phones 80 ms apart
    rng = np.random.default_rng(3)
    files = []
    for path in plan.story_files:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        record["phones"] = [[0.08 * k for k in range(rng.integers(1, 5))]
                            for _ in record["words"]]
        target = tmp_path / Path(path).name
        target.write_text(json.dumps(record), encoding="utf-8")
        files.append(str(target))
    designs = _designs(planned, tmp_path / "d", files, ["word_rate", "word_onset",
                                                         "phoneme_rate"])
    for design, bands in designs:
        rate, onset, phone = (design[:, slice(*bands[b])][:, 0]
                              for b in ("word_rate", "word_onset", "phoneme_rate"))
        assert np.corrcoef(rate, phone)[0, 1] < 0.999 and np.corrcoef(rate, onset)[0, 1] < 0.999
        assert np.std(phone) > 0 and np.std(onset) > 0
    with pytest.raises(DatasetError, match="'phoneme_rate' nuisance band needs phone timings"):
        _designs(planned, tmp_path / "e", plan.story_files, ["phoneme_rate"])


def _phone_story(rng, n_volumes=150):
    """One run: words with 1-10 phones each; voxels driven by phone rate or by language."""
    duration = n_volumes * TR
    onsets = np.sort(rng.uniform(0, duration - 10, size=int(duration * 2.2)))
    # phones per word drift slowly (passages of short and of long words), as in real speech
    drift = np.convolve(rng.standard_normal(len(onsets) + 40), np.hanning(41), "valid")
    n_phones = np.clip(np.round(4.5 + 3.0 * drift / drift.std()
                                + rng.standard_normal(len(onsets))), 1, 10).astype(int)
    # language features: 6 smooth random dimensions; the first also tracks the word's phones,
    # as real features track word length
    walk = np.cumsum(rng.standard_normal((len(onsets), 6)), axis=0)
    walk = (walk - walk.mean(0)) / walk.std(0)
    language = walk + rng.standard_normal(walk.shape)
    language[:, 0] += 2.0 * (n_phones - n_phones.mean()) / n_phones.std()
    phones = [list(np.arange(k) * 0.06) for k in n_phones]
    return onsets, phones, language


def test_phoneme_rate_band_takes_phone_driven_variance_from_the_language_band():
    """Voxels driven by phone rate get no unique language variance once phone rate is a band."""
    from bids_app.encoding.engine import cross_validate
    from bids_app.unique_variance import nuisance_candidates, unique_variance

    rng = np.random.default_rng(7)
    alphas, cv = np.logspace(-1, 4, 6), {"outer_cv": "leave-one-run-out", "inner_folds": 3,
                                         "backend": "numpy"}
    times = np.arange(150) * TR + 1.0
    designs, Ys, weights = [], [], rng.standard_normal((6, 8))
    for _ in range(3):
        onsets, phones, language = _phone_story(rng)
        table = _table(onsets)
        blocks = {}
        for band, values in (("L3", language), ("word_rate", np.ones((len(onsets), 1))),
                             ("phoneme_rate", np.ones((len(onsets), 1)))):
            features = {"s": values.astype(np.float32)}
            blocks[band] = align_run(*band_events(band, features, table, times, TR,
                                                  phones={"s": phones}), times, TR)
        phone_signal = blocks["phoneme_rate"] @ np.ones((1, 8))
        language_signal = blocks["L3"][:, 1:] @ weights[1:]  # not the phone-tracking column
        Y = np.hstack([phone_signal, language_signal]) + 1.2 * rng.standard_normal((150, 16))
        Ys.append(((Y - Y.mean(0)) / Y.std(0)).astype(np.float32))
        designs.append(blocks)
    phone_voxels, language_voxels = slice(0, 8), slice(8, 16)
    unique = {}
    for nuisance in (["word_rate"], ["word_rate", "phoneme_rate"]):
        names = ["L3", *nuisance]
        Xs = [np.hstack([d[b] for b in names]).astype(np.float32) for d in designs]
        edges = np.cumsum([0] + [designs[0][b].shape[1] for b in names])
        bands = {b: [int(a), int(z)] for b, a, z in zip(names, edges[:-1], edges[1:],
                                                         strict=True)}
        full = cross_validate(nuisance_candidates(Xs, bands, nuisance), Ys, alphas, **cv)
        unique[len(nuisance)] = unique_variance(Xs, Ys, bands, nuisance, full.r2, alphas, **cv)
    # with word rate alone, the language band's phone-tracking column takes the phone voxels
    assert unique[1][phone_voxels].mean() > 0.05
    # with the phone-rate band, the language band adds (almost) nothing there ...
    assert abs(unique[2][phone_voxels].mean()) < 0.02
    assert unique[2][phone_voxels].mean() < unique[1][phone_voxels].mean() / 3
    # ... and keeps its unique variance in the language voxels
    assert unique[2][language_voxels].mean() > 0.1
    assert abs(unique[2][language_voxels].mean() - unique[1][language_voxels].mean()) < 0.05
