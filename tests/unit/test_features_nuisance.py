"""Low-level nuisance bands: word rate, length, frequency and sentence boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from stimuli_models.errors import SettingsError
from stimuli_models.nuisance import (
    FrequencyTable,
    normalize_word,
    nuisance_features,
    read_frequency_file,
    unigram_counts,
)

WORDS = ["The", "cat", "sat.", "The", "dog", "barked,", "loudly!", "“Why?”"]


def test_rate_length_and_boundaries():
    bands = nuisance_features(WORDS, ["word_rate", "word_length", "sentence_boundary"])
    assert set(bands) == {"word_rate", "word_length", "sentence_boundary"}
    assert all(b.shape == (len(WORDS), 1) and b.dtype == np.float32 for b in bands.values())
    assert bands["word_rate"].ravel().tolist() == [1.0] * len(WORDS)
    assert bands["word_length"].ravel().tolist() == [3, 3, 3, 3, 3, 6, 6, 3]
    assert bands["sentence_boundary"].ravel().tolist() == [0, 0, 1, 0, 0, 0, 1, 1]


def test_boundaries_follow_the_annotation_and_chinese_lengths():
    words = ["我们", "今天", "去", "公园", "。"]
    bands = nuisance_features(words, ["sentence_boundary", "word_length"],
                              sentences=np.array([0, 0, 1, 1, 1]))
    assert bands["sentence_boundary"].ravel().tolist() == [0, 1, 0, 0, 1]
    assert bands["word_length"].ravel().tolist() == [2, 2, 1, 2, 0]


def test_unigram_zipf_orders_words_by_count():
    counts = unigram_counts([WORDS, ["the", "cat"]])
    assert counts["the"] == 3 and counts["cat"] == 2 and counts["why"] == 1
    table = FrequencyTable(counts)
    zipf = table(["THE", "cat", "dog", "unseen"])
    assert zipf[0] > zipf[1] > zipf[2] > zipf[3]
    total = sum(counts.values()) + len(counts) + 1
    np.testing.assert_allclose(zipf[0], np.log10(4 / total) + 9, rtol=1e-6)


@pytest.mark.parametrize("suffix, sep, column", [(".tsv", "\t", "count"),
                                                 (".csv", ",", "frequency"),
                                                 (".tsv", "\t", "zipf")])
def test_frequency_file(tmp_path, suffix, sep, column):
    path = tmp_path / f"freq{suffix}"
    values = {"zipf": ["7.0", "5.5", "3.0"]}.get(column, ["1000", "200", "5"])
    pairs = zip(["the", "cat", "dog"], values, strict=True)
    lines = [f"word{sep}{column}"] + [f"{w}{sep}{v}" for w, v in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_frequency_file(path)
    zipf = nuisance_features(["The", "cat", "dog.", "zebra"], ["word_frequency"],
                             frequencies=table)["word_frequency"].ravel()
    assert zipf[0] > zipf[1] > zipf[2] >= zipf[3]
    if column == "zipf":
        assert zipf.tolist() == [7.0, 5.5, 3.0, 3.0]
    if column == "frequency":  # relative frequencies: scale-free
        np.testing.assert_allclose(zipf[0] - zipf[1], np.log10(5), rtol=1e-6)


def test_frequency_file_errors_name_the_file(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        read_frequency_file(tmp_path / "none.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("token\tn\nthe\t3\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="'word' column"):
        read_frequency_file(bad)
    bad.write_text("word\tcount\nthe\tmany\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="line 2 .* non-numeric"):
        read_frequency_file(bad)


def test_unknown_band_and_missing_table():
    with pytest.raises(SettingsError, match="'nuisance' must be one of"):
        nuisance_features(WORDS, ["pitch"])
    with pytest.raises(SettingsError, match="frequency table"):
        nuisance_features(WORDS, ["word_frequency"])


def test_normalize_word():
    assert normalize_word("“Why?”") == "why"
    assert normalize_word("don't,") == "don't"
    assert normalize_word("...") == ""
