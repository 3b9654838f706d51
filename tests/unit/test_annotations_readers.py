"""Readers of word-timing files: TextGrid, Gentle, plain tables, MATLAB .mat."""

from __future__ import annotations

import numpy as np
import pytest

from bids_app.errors import DatasetError
from bids_app.io.stimuli import read_annotation, read_segmentation
from bids_app.io.stimuli.gentle import interpolate_missing
from bids_app.io.stimuli.segment import is_no_space, max_match, segment
from tests.helpers.stimuli import (
    write_gentle_csv,
    write_gentle_json,
    write_mat,
    write_table,
    write_textgrid,
)

WORDS = ["Once", "upon", "a", "time", "there", "was", "a", "lighthouse."]
ONSETS = np.array([0.5, 0.9, 1.3, 1.5, 2.2, 2.6, 2.9, 3.1])
DURS = np.array([0.35, 0.3, 0.15, 0.4, 0.3, 0.25, 0.15, 0.6])


def _tiers(labels=None):
    words = labels or [f"{w.upper()} / 1.{i + 1}" for i, w in enumerate(WORDS)]
    items = []
    t = 0.0
    for word, onset, dur in zip(words, ONSETS, DURS, strict=True):
        if onset > t:
            items.append((t, onset, "sp" if len(items) % 2 else ""))
        items.append((onset, onset + dur, word))
        t = onset + dur
    items.append((t, t + 1.0, "{LG}"))
    phones = [(0.0, t + 1.0, "ah")]
    return {"phones": phones, "words": items}


@pytest.mark.parametrize("short", [False, True])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-8-sig"])
def test_textgrid_forms_give_the_same_words(tmp_path, short, encoding):
    path = write_textgrid(tmp_path / "s.TextGrid", _tiers(), short=short, encoding=encoding)
    timings = read_annotation(path)
    assert timings.words == [w.upper() for w in WORDS]  # "WORD / id" -> WORD
    np.testing.assert_allclose(timings.onsets, ONSETS)
    np.testing.assert_allclose(timings.offsets, ONSETS + DURS)
    assert timings.source_text[0] == "ONCE / 1.1"
    assert timings.time_reference == "story" and timings.aligned.all()


def test_textgrid_tier_by_name_and_index(tmp_path):
    path = write_textgrid(tmp_path / "s.TextGrid", _tiers())
    assert read_annotation(path, tier="phones").words == ["ah"]
    assert read_annotation(path, tier=1).words == ["ah"]
    assert len(read_annotation(path, tier=2)) == len(WORDS)
    with pytest.raises(DatasetError, match="no tier named 'syllables'.*'phones', 'words'"):
        read_annotation(path, tier="syllables")
    with pytest.raises(DatasetError, match="has 2 tier"):
        read_annotation(path, tier=3)


def test_textgrid_without_word_tier_or_with_empty_tier(tmp_path):
    tiers = _tiers()
    path = write_textgrid(tmp_path / "a.TextGrid", {"phones": tiers["phones"],
                                                    "syll": tiers["phones"]})
    with pytest.raises(DatasetError, match="no word tier.*annotations.tier"):
        read_annotation(path)
    path = write_textgrid(tmp_path / "b.TextGrid", {"words": [(0, 1, ""), (1, 2, "sil"),
                                                              (2, 3, "<s>")]})
    with pytest.raises(DatasetError, match="holds no words"):
        read_annotation(path)


def test_textgrid_custom_drop_labels_and_separator(tmp_path):
    path = write_textgrid(tmp_path / "s.TextGrid", {"words": [
        (0, 1, "hello|7"), (1, 2, "uh"), (2, 3, "world|8"), (3, 4, "[noise]")]})
    timings = read_annotation(path, drop_labels=["uh"], label_separator="|")
    assert timings.words == ["hello", "world"]
    assert list(timings.source_index) == [0, 2]


def test_textgrid_quotes_escaped_and_truncated(tmp_path):
    path = write_textgrid(tmp_path / "q.TextGrid", {"words": [(0, 1, 'say "hi"')]})
    assert read_annotation(path).words == ['say "hi"']
    text = path.read_text().rsplit("xmax", 1)[0]
    (tmp_path / "t.TextGrid").write_text(text)
    with pytest.raises(DatasetError, match="truncated|ends before"):
        read_annotation(tmp_path / "t.TextGrid")


@pytest.mark.parametrize("writer", [write_gentle_json, write_gentle_csv])
def test_gentle_unaligned_words_are_interpolated_and_flagged(tmp_path, writer):
    name = "align.json" if writer is write_gentle_json else "align.csv"
    path = writer(tmp_path / name, WORDS, ONSETS, DURS, missing={0, 3, 4, 7})
    timings = read_annotation(path)
    assert timings.words == WORDS  # 'not-found-in-transcript' entries are skipped
    assert list(np.flatnonzero(~timings.aligned)) == [0, 3, 4, 7]
    np.testing.assert_allclose(timings.onsets[timings.aligned], ONSETS[timings.aligned])
    # interpolated words fill the gap between aligned neighbours, in order
    assert timings.onsets[3] == pytest.approx(ONSETS[2] + DURS[2])
    assert timings.offsets[4] == pytest.approx(ONSETS[5])
    assert np.all(np.diff(timings.onsets) >= 0)
    assert "interpolated" in timings.notes[0]
    dropped = read_annotation(path, interpolate=False)
    assert len(dropped) == len(WORDS) - 4 and dropped.aligned.all()


def test_gentle_with_nothing_aligned(tmp_path):
    path = write_gentle_json(tmp_path / "align.json", WORDS[:2], ONSETS[:2], DURS[:2],
                             missing={0, 1})
    with pytest.raises(DatasetError, match="aligned none"):
        read_annotation(path)


def test_interpolation_at_the_edges():
    on, off = interpolate_missing(np.array([0, 2.0, 0]), np.array([0, 2.5, 0]),
                                  np.array([False, True, False]))
    assert on[0] == pytest.approx(1.5) and off[0] == pytest.approx(2.0)
    assert on[2] == pytest.approx(2.5) and off[2] == pytest.approx(3.0)


@pytest.mark.parametrize("sep,name,offset", [("\t", "w.tsv", False), (",", "w.csv", True),
                                             ("\t", "w.txt", True)])
def test_plain_tables(tmp_path, sep, name, offset):
    path = write_table(tmp_path / name, WORDS, ONSETS, DURS, sep=sep, offset=offset)
    timings = read_annotation(path)
    assert timings.words == WORDS and timings.fmt == "table"
    np.testing.assert_allclose(timings.offsets, ONSETS + DURS, atol=1e-3)


def test_table_errors_name_the_file(tmp_path):
    path = tmp_path / "w.tsv"
    path.write_text("start\tword\n0.1\thi\n")
    with pytest.raises(DatasetError, match="w.tsv.*offset or duration"):
        read_annotation(path)
    path.write_text("onset\tduration\tword\nsoon\t0.1\thi\n")
    with pytest.raises(DatasetError, match="line 2 column 'onset' is not a number"):
        read_annotation(path)


def test_mat_word_and_char_files_in_scanner_time(tmp_path):
    words = ["今天", "天气", "很好"]
    path = write_mat(tmp_path / "story_1_word_time.mat", words, [10.65, 11.0, 11.4],
                     [11.0, 11.4, 11.9])
    timings = read_annotation(path)
    assert timings.words == words and timings.time_reference == "run"
    np.testing.assert_allclose(timings.onsets, [10.65, 11.0, 11.4])
    chars = write_mat(tmp_path / "story_1_char_time.mat", list("今天天气很好"),
                      np.arange(6) * 0.2 + 10.65, np.arange(6) * 0.2 + 10.8, key="char")
    pooled = segment(read_annotation(chars), "file", given=read_segmentation(path), origin="w")
    assert pooled.words == words
    np.testing.assert_allclose(pooled.onsets, [10.65, 11.05, 11.45])
    np.testing.assert_allclose(pooled.offsets, [11.0, 11.4, 11.8])


def test_mat_errors(tmp_path):
    import scipy.io

    scipy.io.savemat(tmp_path / "x.mat", {"foo": np.arange(3)})
    with pytest.raises(DatasetError, match="no word/char, start and end"):
        read_annotation(tmp_path / "x.mat")
    write_mat(tmp_path / "y.mat", ["a", "b"], [0.0, 1.0], [0.5, 1.5, 2.5])
    with pytest.raises(DatasetError, match="2 entries.*3"):
        read_annotation(tmp_path / "y.mat")
    (tmp_path / "z.mat").write_bytes(b"MATLAB 7.3 MAT-file, HDF5" + bytes(200))
    with pytest.raises(DatasetError, match="v7.3"):
        read_annotation(tmp_path / "z.mat")


def test_chinese_segmentation_dictionary_and_characters():
    from bids_app.io.stimuli import WordTimings

    chars = WordTimings.build(list("我们今天去北京。"), np.arange(8.0), np.arange(8.0) + 0.8,
                              source="c", fmt="mat")
    words = segment(chars, "dictionary", dictionary={"我们", "今天", "北京"}, origin="d")
    assert words.words == ["我们", "今天", "去", "北京"]  # punctuation is not spoken
    np.testing.assert_allclose(words.onsets, [0, 2, 4, 5])
    np.testing.assert_allclose(words.offsets, [1.8, 3.8, 4.8, 6.8])
    per_char = segment(chars, "characters")
    assert len(per_char) == 7
    with pytest.raises(DatasetError, match="does not match the characters"):
        segment(chars, "file", given=["我们", "明天"], origin="'seg.txt'")
    assert max_match("北京大学", {"北京", "北京大学", "大学"}) == ["北京大学"]
    assert is_no_space("zh-Hans") and is_no_space("ja") and not is_no_space("en")


def test_unknown_format(tmp_path):
    (tmp_path / "s.docx").write_text("x")
    with pytest.raises(DatasetError, match="not a known annotation format"):
        read_annotation(tmp_path / "s.docx")
    with pytest.raises(DatasetError, match="does not exist"):
        read_annotation(tmp_path / "missing.TextGrid")


@pytest.mark.realdata
def test_natural_stories_textgrids(shared_data):
    import pandas as pd

    tokens = pd.read_csv(shared_data / "naturalstories" / "words.tsv", sep="\t", header=None,
                         names=["code", "text"], keep_default_na=False, quoting=3)
    for path in sorted((shared_data / "naturalstories" / "audio").glob("*_aligned.TextGrid")):
        story = path.name.split("_")[0]
        timings = read_annotation(path)
        assert len(timings) > 900
        assert not any(w.startswith(("<", "{")) or w == "" for w in timings.words)
        assert np.all(np.diff(timings.onsets) >= -1e-9) and timings.onsets[0] >= 0
        assert np.all(timings.offsets >= timings.onsets)
        # every label's token id is a token of that story, and the words match its text
        ids = [".".join(t.split(" / ")[1].strip().split(".")[:2]) for t in timings.source_text]
        whole = tokens[tokens["code"].str.endswith(".whole")]
        text = dict(zip(whole["code"].str.rsplit(".", n=1).str[0], whole["text"], strict=True))
        known = [i for i in ids if i in text]
        assert all(i.startswith(f"{story}.") for i in ids)
        assert len(set(known)) / len([c for c in text if c.startswith(f"{story}.")]) > 0.98
        same = np.mean([timings.words[k].lower() == text[i].lower().strip(".,;:!?\"'")
                        for k, i in enumerate(ids) if i in text])
        assert same > 0.8


def _one_sentence(message: str) -> bool:
    body = message.replace("e.g.", "eg")
    return body.endswith(".") and ". " not in body and "\n" not in body


@pytest.mark.parametrize("name", ["story.TextGrid", "align.json", "align.csv", "words.tsv",
                                  "story_1_word_time.mat"])
def test_unreadable_annotation_names_the_file_and_the_fix(tmp_path, monkeypatch, name):
    """Every reader reports a file it may not open in one sentence (tests run as root)."""
    import errno
    import os
    from pathlib import Path

    path = tmp_path / name
    if name.endswith(".TextGrid"):
        write_textgrid(path, _tiers())
    elif name.endswith(".json"):
        write_gentle_json(path, WORDS, ONSETS, DURS)
    elif name.endswith(".csv"):
        write_gentle_csv(path, WORDS, ONSETS, DURS)
    elif name.endswith(".tsv"):
        write_table(path, WORDS, ONSETS, DURS)
    else:
        write_mat(path, WORDS, ONSETS, ONSETS + DURS)
    assert len(read_annotation(path).words) == len(WORDS)  # readable: read as usual
    real = Path.read_bytes

    def refuse(self):
        if os.path.abspath(self) == str(path):  # as after chmod 000 for a user other than root
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DatasetError) as info:
        read_annotation(path)
    message = info.value.message
    assert message == (f"the annotation '{path}' is not readable (permission denied); fix its "
                       "permissions (e.g. chmod a+r).")
    assert _one_sentence(message)


def test_annotation_that_is_a_folder(tmp_path):
    (tmp_path / "story.TextGrid").mkdir()
    with pytest.raises(DatasetError) as info:
        read_annotation(tmp_path / "story.TextGrid")
    message = info.value.message
    assert "story.TextGrid' is a folder; name the annotation file" in message
    assert _one_sentence(message)
