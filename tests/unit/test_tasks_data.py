"""NLU task readers, train/dev splits, encoding and dev metrics."""

from __future__ import annotations

import json

import pytest

from stimuli_models.errors import SettingsError, TaskDataError
from stimuli_models.tasks import check_task_options, entity_f1, load_task, squad_scores
from stimuli_models.tasks.metrics import entity_spans


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_headerless_tsv_with_seeded_split(tmp_path):
    rows = "".join(f"sentence number {i}\t{i % 2}\n" for i in range(40))
    _write(tmp_path / "s.txt", rows)
    opts = {"train": "s.txt", "format": "tsv", "columns": ["text", "label"],
            "dev_fraction": 0.25}
    a = load_task("sent", "sequence-classification", opts, base_dir=str(tmp_path), seed=3)
    b = load_task("sent", "sequence-classification", opts, base_dir=str(tmp_path), seed=3)
    c = load_task("sent", "sequence-classification", opts, base_dir=str(tmp_path), seed=4)
    assert (len(a.train), len(a.dev)) == (30, 10)
    assert a.labels == ["0", "1"]
    assert a.dev == b.dev and a.fingerprint == b.fingerprint
    assert a.dev != c.dev and a.fingerprint != c.fingerprint
    assert {ex["text"] for ex in a.train}.isdisjoint({ex["text"] for ex in a.dev})


def test_csv_pairs_and_dropped_labels(tmp_path):
    _write(tmp_path / "t.csv", 'p,h,y\n"a, b",c,yes\nd,e,no\nf,g,-\nh,i,yes\n')
    _write(tmp_path / "d.csv", "p,h,y\nj,k,no\n")
    task = load_task("nli", "sentence-pair-classification",
                     {"train": "t.csv", "dev": "d.csv", "text_column": "p",
                      "text_pair_column": "h", "label_column": "y", "drop_labels": ["-"]},
                     base_dir=str(tmp_path))
    assert task.train[0] == {"text": "a, b", "label": "yes", "text_pair": "c"}
    assert len(task.train) == 3 and task.dev[0]["label"] == "no"


def test_jsonl_multiple_choice_and_conll(tmp_path):
    lines = [{"q": f"q{i}", "options": ["x", "y", "z"], "answer": i % 3} for i in range(6)]
    _write(tmp_path / "mc.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n")
    task = load_task("mc", "multiple-choice", {"train": "mc.jsonl", "context_column": "q",
                                               "choices_column": "options",
                                               "label_column": "answer"},
                     base_dir=str(tmp_path))
    assert task.n_labels == 1 and len(task.train[0]["choices"]) == 3
    _write(tmp_path / "n.conll", "Paris\tB-loc\nis\tO\n\nNew\tB-loc\nYork\tI-loc\n\nhi\tO\n")
    ner = load_task("ner", "token-classification", {"train": "n.conll", "dev": "n.conll"},
                    base_dir=str(tmp_path))
    assert ner.train[1] == {"tokens": ["New", "York"], "tags": ["B-loc", "I-loc"]}
    assert ner.labels[0] == "O" and set(ner.labels) == {"O", "B-loc", "I-loc"}


def test_squad_json(tmp_path):
    data = {"data": [{"paragraphs": [{"context": "The cat sat on the mat.", "qas": [
        {"id": "1", "question": "Where?", "answers": [{"text": "the mat", "answer_start": 15}]},
        {"id": "2", "question": "Who?", "answers": [{"text": "The cat", "answer_start": 0}]},
        {"id": "3", "question": "Why?", "answers": []}]}]}]}
    _write(tmp_path / "sq.json", json.dumps(data))
    task = load_task("qa", "question-answering", {"train": "sq.json", "dev": "sq.json"},
                     base_dir=str(tmp_path))
    assert len(task.train) == 2
    assert task.train[0]["answers"] == [{"text": "the mat", "start": 15}]


def test_errors_name_the_file_and_fix(tmp_path):
    with pytest.raises(SettingsError, match="'type' must be one of"):
        check_task_options("summarisation", {"train": "x"})
    with pytest.raises(SettingsError, match="unknown option"):
        check_task_options("sequence-classification", {"train": "x", "txt_column": "a"})
    with pytest.raises(TaskDataError, match="does not exist"):
        load_task("t", "sequence-classification", {"train": "nope.csv"}, base_dir=str(tmp_path))
    _write(tmp_path / "t.csv", "sentence,label\na,1\nb,0\nc,1\n")
    with pytest.raises(TaskDataError, match="no column 'text'.*text_column"):
        load_task("t", "sequence-classification", {"train": "t.csv"}, base_dir=str(tmp_path))
    _write(tmp_path / "t.dat", "a")
    with pytest.raises(TaskDataError, match="set 'format'"):
        load_task("t", "sequence-classification", {"train": "t.dat"}, base_dir=str(tmp_path))


def test_entity_f1_and_spans():
    assert entity_spans(["B-per", "I-per", "O", "B-loc", "B-loc"]) == {
        (0, 2, "per"), (3, 4, "loc"), (4, 5, "loc")}
    gold = [["B-per", "I-per", "O", "B-loc"]]
    assert entity_f1(gold, gold)["f1"] == 1.0
    half = entity_f1([["B-per", "O", "O", "B-loc"]], gold)
    assert half["precision"] == 0.5 and half["recall"] == 0.5
    assert entity_f1([["O"] * 4], gold)["f1"] == 0.0


def test_squad_scores_normalise_answers():
    scores = squad_scores(["The Mat!", "a dog"], [["the mat"], ["big dog", "cat"]])
    assert scores["exact_match"] == 0.5
    assert scores["f1"] == pytest.approx((1.0 + 2 * 0.5 * 1.0 / 1.5) / 2)


def test_qa_encoding_finds_answer_tokens(tiny_bert):
    from stimuli_models.models import load_tokenizer
    from stimuli_models.tasks.base import TaskData
    from stimuli_models.tasks.encode import encode_examples
    from stimuli_models.tasks.metrics import score

    tokenizer = load_tokenizer(tiny_bert)
    context = "the keeper walked to the harbour and found a wooden box"
    ex = {"question": "what was found ?", "context": context,
          "answers": [{"text": "a wooden box", "start": context.index("a wooden")}]}
    task = TaskData("qa", "question-answering", [ex, ex], [ex])
    item = encode_examples(task, tokenizer, [ex], max_length=64, train=True)[0]
    s, e = item["start_positions"], item["end_positions"]
    assert context[item["offsets"][s][0]:item["offsets"][e][1]] == "a wooden box"
    import numpy as np

    logits = np.full((len(item["input_ids"]), 2), -5.0)
    logits[s, 0] = logits[e, 1] = 5.0
    assert score(task, [ex], [item], [logits])["exact_match"] == 1.0
    short = encode_examples(task, tokenizer, [ex], max_length=12, train=True)
    assert short == []  # answer truncated away: not a training item


@pytest.mark.realdata
def test_real_task_files(shared_data):
    ner = load_task("wnut17", "token-classification",
                    {"train": str(shared_data / "nlu-wnut17-ner" / "wnut17train.conll"),
                     "dev": str(shared_data / "nlu-wnut17-ner" / "emerging.dev.conll")})
    assert len(ner.train) == 3394 and len(ner.dev) == 1009
    assert {lab[2:] for lab in ner.labels if lab != "O"} == {
        "person", "location", "corporation", "product", "creative-work", "group"}
    snli = load_task("snli", "sentence-pair-classification",
                     {"train": str(shared_data / "nlu-snli-test-partial" / "snli_1.0_test.jsonl"),
                      "label_column": "gold_label", "drop_labels": ["-"]}, seed=0)
    counts = {}
    for ex in snli.train + snli.dev:
        counts[ex["label"]] = counts.get(ex["label"], 0) + 1
    assert counts == {"neutral": 429, "contradiction": 420, "entailment": 405}  # '-' dropped
    assert snli.labels == ["contradiction", "entailment", "neutral"]
    squad = load_task("squad", "question-answering",
                      {"train": str(shared_data / "nlu-squad-v1.1-dev-split" / "dev-v1.1.json")})
    assert len(squad.train) + len(squad.dev) == 4961
    folder = shared_data / "nlu-sentiment-labelled-sentences"
    sentiment = load_task("sentiment", "sequence-classification",
                          {"train": [str(folder / f"{s}_labelled.txt")
                                     for s in ("amazon_cells", "imdb", "yelp")],
                           "format": "tsv", "columns": ["text", "label"]})
    assert len(sentiment.train) + len(sentiment.dev) == 3000
    assert sentiment.labels == ["0", "1"]
