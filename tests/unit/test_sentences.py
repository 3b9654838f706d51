"""Sentence boundaries from real sources: punctuation, events column, TextGrid tier, transcript."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from bids_app.errors import EXIT_DATASET, DatasetError, UsageError
from bids_app.io.annotations import StoryRegistry, annotate_run
from bids_app.io.stimuli import read_annotation
from bids_app.io.stimuli.sentences import (
    align_transcript,
    find_sentences,
    from_chunks,
    from_pauses,
    implausible,
    story_sentences,
)
from bids_app.plan import check_sentences
from bids_app.spec_inputs import AnnotationConfig
from tests.helpers.stimuli import word_intervals, write_textgrid
from tests.unit.test_annotations_runs import make_run

TEXT = ("The keeper lit the lamp. A storm came over the sea! Was anyone out there? "
        "Nobody answered, so he waited.")
PUNCTUATED = TEXT.split()
BARE = [re.sub(r"[^\w']", "", w).upper() for w in PUNCTUATED]
TRUE_IDS = np.array([0] * 5 + [1] * 6 + [2] * 4 + [3] * 5)


def _times(n, pause_after=(), rate=0.3, pause=0.8):
    onsets, t = [], 1.0
    for i in range(n):
        onsets.append(t)
        t += rate + (pause if i in pause_after else 0.0)
    onsets = np.array(onsets)
    return onsets, onsets + 0.25


ONSETS, OFFSETS = _times(len(BARE), pause_after=(4, 10, 14))


def _long_story(n=200):
    words = [BARE[i % len(BARE)] for i in range(n)]
    onsets, offsets = _times(n)
    return words, onsets, offsets


def test_punctuation_comes_first():
    found = find_sentences(PUNCTUATED, ONSETS, OFFSETS, column=["x"] * 20)
    assert found.source == "punctuation"
    np.testing.assert_array_equal(found.ids, TRUE_IDS)


def test_unpunctuated_words_are_one_implausible_sentence():
    words, onsets, offsets = _long_story()
    assert "200 words" in implausible(np.zeros(200, int), onsets, offsets)
    long = [w + "." if i == 199 else w for i, w in enumerate(words)]  # one final full stop
    assert find_sentences(long, onsets, offsets).tried[0].startswith(
        "punctuation (1 sentence(s), the longest 200 words")
    found = find_sentences(words, onsets, offsets)
    assert found.ids is None
    assert found.tried[0] == "punctuation (no sentence ends in the 200 words)"
    assert any("sentence_column not set" in t for t in found.tried)
    assert any("transcript not set" in t for t in found.tried)


def test_a_few_long_sentences_are_tolerated_but_not_many():
    ids = np.r_[np.zeros(70, int), np.repeat(np.arange(1, 70), 10)]  # 70 of 760 words
    onsets = np.arange(len(ids)) * 0.3
    assert implausible(ids, onsets, onsets + 0.2) == ""
    ids = np.r_[np.zeros(200, int), np.repeat(np.arange(1, 50), 10)]
    onsets = np.arange(len(ids)) * 0.3
    assert "200 words" in implausible(ids, onsets, onsets + 0.2)
    # too long in time, not in words: 20 words over 38 s
    ids = np.repeat(np.arange(10), 20)
    onsets = np.arange(200) * 2.0
    assert "20 words over 38 s" in implausible(ids, onsets, onsets + 0.2)


def test_events_sentence_column(tmp_path):
    words, onsets, offsets = _long_story(60)
    labels = np.repeat(np.arange(6), 10)
    rows = "onset\tduration\tword\tsentence\n" + "".join(
        f"{o:.2f}\t0.25\t{w}\ts{k}\n" for w, o, k in zip(words, onsets, labels, strict=True))
    run = make_run(tmp_path, events=rows, n_volumes=30)
    registry = StoryRegistry()
    annotate_run(run, registry, AnnotationConfig(sentence_column="sentence"), bids_dir=tmp_path)
    story = next(iter(registry.stories.values()))
    assert story.sentences == labels.tolist()
    assert story.meta["sentences"]["SentenceSource"] == "events.tsv column 'sentence'"
    with pytest.raises(DatasetError, match="no column 'sent'.*sentence_column"):
        annotate_run(run, StoryRegistry(), AnnotationConfig(sentence_column="sent"),
                     bids_dir=tmp_path)


def test_textgrid_sentence_tier(tmp_path):
    durations = OFFSETS - ONSETS
    starts = np.r_[0, np.flatnonzero(np.diff(TRUE_IDS)) + 1]
    ends = np.r_[starts[1:], len(BARE)]
    phrases = [(ONSETS[a] - 0.05, OFFSETS[b - 1] + 0.05, " ".join(BARE[a:b]))
               for a, b in zip(starts, ends, strict=True)]
    path = write_textgrid(tmp_path / "s.TextGrid", {
        "words": word_intervals(BARE, ONSETS, durations), "Phrase": phrases})
    timings = read_annotation(path)
    found = story_sentences(timings, AnnotationConfig(), path=path)
    assert found.source == "TextGrid tier 'Phrase'"
    np.testing.assert_array_equal(found.ids, TRUE_IDS)
    named = story_sentences(timings, AnnotationConfig(sentence_tier="phrase"), path=path)
    np.testing.assert_array_equal(named.ids, TRUE_IDS)
    with pytest.raises(DatasetError, match="no tier named 'clauses'.*sentence_tier"):
        story_sentences(timings, AnnotationConfig(sentence_tier="clauses"), path=path)


def test_transcript_alignment_tolerates_case_punctuation_and_a_few_differences():
    timed = list(BARE)
    timed[3:4] = ["THE", "UH"]        # an extra spoken word
    del timed[9]                      # a word the aligner missed ("over")
    transcript = TEXT.replace("Nobody", "Nobody,")
    ids, coverage = align_transcript(timed, transcript)
    assert coverage == pytest.approx((len(timed) - 1) / len(timed))
    # the sentence of every matched word is that of the transcript
    expected = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3]
    np.testing.assert_array_equal(ids, expected)


def test_transcript_joins_contractions_split_differently():
    ids, coverage = align_transcript(["HE", "CA", "N'T", "GO", "SHE", "CAN"],
                                     "He can't go. She can.")
    assert coverage == 1.0
    np.testing.assert_array_equal(ids, [0, 0, 0, 0, 1, 1])


def test_fallbacks_only_when_asked():
    words, onsets, offsets = _long_story(120)
    onsets, offsets = _times(120, pause_after=range(9, 120, 10))
    assert find_sentences(words, onsets, offsets).ids is None
    paused = find_sentences(words, onsets, offsets, fallback="pause", gap=0.5)
    assert paused.source == "pauses of at least 0.5 s"
    np.testing.assert_array_equal(paused.ids, np.arange(120) // 10)
    np.testing.assert_array_equal(from_pauses(onsets, offsets, 0.5), np.arange(120) // 10)
    chunked = find_sentences(words, onsets, offsets, fallback="chunks", chunk=7)
    np.testing.assert_array_equal(chunked.ids, from_chunks(120, 7))
    assert chunked.ids.max() == 17


def test_fallback_settings_are_checked():
    from bids_app.config import ExperimentSpec, validate_spec

    with pytest.raises(UsageError, match="'annotations.sentence_fallback' must be one of"):
        validate_spec(ExperimentSpec(annotations=AnnotationConfig(sentence_fallback="silence")))
    with pytest.raises(UsageError, match="'annotations.sentence_gap' must be a positive"):
        validate_spec(ExperimentSpec(annotations=AnnotationConfig(sentence_gap=0)))


def test_sentence_unit_without_a_source_stops_with_exit_3(tmp_path):
    words, onsets, _ = _long_story(90)
    rows = "onset\tduration\tword\n" + "".join(
        f"{o:.2f}\t0.25\t{w}\n" for w, o in zip(words, onsets, strict=True))
    run = make_run(tmp_path, events=rows, n_volumes=30)
    registry = StoryRegistry()
    annotate_run(run, registry, AnnotationConfig(), bids_dir=tmp_path)
    with pytest.raises(DatasetError) as error:
        check_sentences(registry)
    message = str(error.value)
    assert error.value.exit_code == EXIT_DATASET == 3
    assert message.startswith("no sentence boundaries for story 'storyrun1'")
    for source in ("punctuation (no sentence ends in the 90 words)", "sentence_column",
                   "TextGrid", "transcript", "sentence_fallback", "features.unit = 'word'"):
        assert source in message
    assert message.count(". ") == 0  # one sentence


# --- real word timings: Natural Stories TextGrids (no punctuation), read in place ----------


def _story_text(shared_data, item: int) -> str:
    with open(shared_data / "naturalstories" / "all_stories.tok", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return " ".join(r["word"] for r in rows if r["item"] == str(item))


@pytest.mark.realdata
@pytest.mark.parametrize("item", [1, 4, 7])
def test_natural_stories_textgrids_have_no_sentences_of_their_own(shared_data, item):
    path = shared_data / "naturalstories" / "audio" / f"{item}_aligned.TextGrid"
    timings = read_annotation(path)
    found = story_sentences(timings, AnnotationConfig(), path=path)
    assert found.ids is None
    assert found.tried[0].startswith("punctuation (no sentence ends in the")
    assert "none among the tiers 'words', 'phones'" in found.tried[2]


@pytest.mark.realdata
@pytest.mark.parametrize("item", [1, 4, 7])
def test_natural_stories_sentences_from_the_punctuated_transcript(shared_data, tmp_path, item):
    path = shared_data / "naturalstories" / "audio" / f"{item}_aligned.TextGrid"
    text = _story_text(shared_data, item)
    transcript = tmp_path / "story.txt"
    transcript.write_text(text, encoding="utf-8")
    timings = read_annotation(path)
    found = story_sentences(timings, AnnotationConfig(), path=path, transcript=transcript)
    assert found.source.startswith("transcript 'story.txt'")
    assert found.coverage > 0.97
    n_sentences = sum(w.rstrip("\"'”’)").endswith((".", "!", "?")) for w in text.split())
    assert abs(int(found.ids.max()) + 1 - n_sentences) <= 2
    # every sentence is plausible, and sentences start where the transcript's do
    starts = np.r_[0, np.flatnonzero(np.diff(found.ids)) + 1]
    assert np.diff(np.r_[starts, len(found.ids)]).max() <= 70
    firsts = {re.sub(r"\W", "", timings.words[s]).lower() for s in starts[1:]}
    transcript_firsts = {re.sub(r"\W", "", b).lower() for a, b in
                         zip(text.split()[:-1], text.split()[1:], strict=True)
                         if a.rstrip("\"'”’)").endswith((".", "!", "?"))}
    assert len(firsts & transcript_firsts) >= 0.9 * len(firsts)
    record = found.record()
    assert json.loads(json.dumps(record))["SentenceCount"] == int(found.ids.max()) + 1


def test_a_sentence_column_for_words_from_a_textgrid_is_reported_as_not_applicable(tmp_path):
    words, onsets, offsets = _long_story(80)
    path = write_textgrid(tmp_path / "w.TextGrid",
                          {"words": word_intervals(words, onsets, offsets - onsets)})
    found = story_sentences(read_annotation(path), AnnotationConfig(sentence_column="sent"),
                            path=path)
    assert found.ids is None
    assert ("events.tsv sentence column (the words do not come from word rows of events.tsv)"
            in found.tried)
