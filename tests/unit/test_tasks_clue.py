"""CLUE tasks by name: the reshaped ones, read from datasets written in the Hub's layouts."""

from __future__ import annotations

import pytest

from stimuli_models.errors import TaskDataError
from stimuli_models.tasks import check_task_options, load_task
from stimuli_models.tasks.clue import reshape_c3, reshape_chid, reshape_cluewsc2020

datasets = pytest.importorskip("datasets")

# Features of the four configs as the clue dataset stores them.
_WSC = datasets.Features({
    "idx": datasets.Value("int32"), "text": datasets.Value("string"),
    "label": datasets.ClassLabel(names=["true", "false"]),
    "target": {"span1_text": datasets.Value("string"), "span2_text": datasets.Value("string"),
               "span1_index": datasets.Value("int32"), "span2_index": datasets.Value("int32")}})
_CSL = datasets.Features({
    "idx": datasets.Value("int32"), "corpus_id": datasets.Value("int32"),
    "abst": datasets.Value("string"), "label": datasets.ClassLabel(names=["0", "1"]),
    "keyword": datasets.Sequence(datasets.Value("string"))})
_CHID = datasets.Features({
    "idx": datasets.Value("int32"), "candidates": datasets.Sequence(datasets.Value("string")),
    "content": datasets.Sequence(datasets.Value("string")),
    "answers": datasets.Sequence({"text": datasets.Value("string"),
                                  "candidate_id": datasets.Value("int32")})})
_C3 = datasets.Features({
    "id": datasets.Value("int32"), "context": datasets.Sequence(datasets.Value("string")),
    "question": datasets.Value("string"), "choice": datasets.Sequence(datasets.Value("string")),
    "answer": datasets.Value("string")})


def _save(rows: list[dict], features, tmp_path, name: str, test_rows=None) -> str:
    data = datasets.DatasetDict({
        "train": datasets.Dataset.from_list(rows, features=features),
        "validation": datasets.Dataset.from_list(rows[:2], features=features)})
    if test_rows:
        data["test"] = datasets.Dataset.from_list(test_rows, features=features)
    data.save_to_disk(str(tmp_path / name))
    return str(tmp_path / name)


def _wsc_rows():
    text = "小明把苹果给了小红，因为他吃饱了。"
    rows = []
    for i in range(6):  # span2 '他' (offset 12) refers to span1 '小明' (0) or '小红' (7)
        right = i % 2 == 0
        rows.append({"idx": i, "text": text, "label": 0 if right else 1,
                     "target": {"span1_text": "小明" if right else "小红",
                                "span1_index": 0 if right else 7,
                                "span2_text": "他", "span2_index": 12}})
    return rows


def test_cluewsc2020_marks_both_spans_and_keeps_the_label(tmp_path):
    path = _save(_wsc_rows(), _WSC, tmp_path, "wsc")
    task = load_task("wsc", "", {"hub": "clue", "config": "cluewsc2020", "path": path})
    assert task.type == "sequence-classification" and task.labels == ["true", "false"]
    assert task.train[0] == {"text": "_小明_把苹果给了小红，因为[他]吃饱了。", "label": "true"}
    assert task.train[1] == {"text": "小明把苹果给了_小红_，因为[他]吃饱了。", "label": "false"}
    assert task.metric == "accuracy" and len(task.dev) == 2


def test_cluewsc2020_span_off_its_offset_is_named():
    row = _wsc_rows()[0]
    row["target"] = {**row["target"], "span1_index": 3}
    with pytest.raises(TaskDataError, match="cluewsc2020 row 0: span '小明' is not at offset 3"):
        reshape_cluewsc2020([row])


def test_csl_pairs_the_keywords_with_the_abstract(tmp_path):
    rows = [{"idx": i, "corpus_id": i, "abst": f"本文研究了脑成像第{i}例。",
             "keyword": ["脑成像", "语言模型"], "label": i % 2} for i in range(6)]
    task = load_task("csl", "", {"hub": "clue", "config": "csl",
                                 "path": _save(rows, _CSL, tmp_path, "csl")})
    assert task.type == "sentence-pair-classification" and task.labels == ["0", "1"]
    assert task.train[1] == {"text": "脑成像；语言模型", "text_pair": "本文研究了脑成像第1例。",
                             "label": "1"}


def _chid_rows():
    candidates = [f"成语{k}" for k in range(10)]
    return [{"idx": i, "candidates": candidates,
             "content": ["他做事#idiom000001#，从不#idiom000002#。", "大家都说他#idiom000003#。"],
             "answers": {"text": [candidates[i], candidates[i + 1], candidates[i + 2]],
                         "candidate_id": [i, i + 1, i + 2]}} for i in range(4)]


def test_chid_gives_one_multiple_choice_example_per_blank(tmp_path):
    test_row = {**_chid_rows()[0], "answers": {"text": [], "candidate_id": []}}
    path = _save(_chid_rows(), _CHID, tmp_path, "chid", test_rows=[test_row])
    task = load_task("chid", "", {"hub": "clue", "config": "chid", "path": path})
    assert task.type == "multiple-choice" and len(task.train) == 12  # 4 rows x 3 blanks
    first = task.train[:3]
    assert [ex["context"] for ex in first] == ["他做事[MASK]，从不…。", "他做事…，从不[MASK]。",
                                               "大家都说他[MASK]。"]
    assert [ex["label"] for ex in task.train[3:6]] == [1, 2, 3]
    assert all(len(ex["choices"]) == 10 for ex in task.train)
    # the answer chosen is the candidate the dataset names for that blank
    assert task.train[4]["choices"][task.train[4]["label"]] == "成语2"


def test_chid_blank_count_must_match_the_answers():
    row = {**_chid_rows()[0], "answers": {"text": ["成语0"], "candidate_id": [0]}}
    with pytest.raises(TaskDataError, match="chid row 0 has 3 blanks but 1 answers"):
        reshape_chid([row])


def test_c3_joins_context_and_question_and_indexes_the_answer(tmp_path):
    rows = [{"id": i, "context": ["男：你几点下班？", "女：六点。"], "question": "女的几点下班？",
             "choice": ["五点", "六点", "七点", "八点"][: 3 + i % 2], "answer": "六点"}
            for i in range(5)]
    path = _save(rows, _C3, tmp_path, "c3", test_rows=[{**rows[0], "answer": ""}])
    task = load_task("c3", "", {"hub": "clue", "config": "c3", "path": path})
    assert task.type == "multiple-choice"
    assert task.train[0] == {"context": "男：你几点下班？\n女：六点。\n女的几点下班？",
                             "choices": ["五点", "六点", "七点"], "label": 1}
    assert len(task.train[1]["choices"]) == 4
    with pytest.raises(TaskDataError, match="the answer '九点' is not one of its choices"):
        reshape_c3([{**rows[0], "answer": "九点"}])
    assert reshape_c3([{**rows[0], "answer": ""}]) == []  # unlabelled rows are left out


@pytest.mark.parametrize(("config", "task_type", "columns"), [
    ("afqmc", "sentence-pair-classification", ("sentence1", "sentence2")),
    ("tnews", "sequence-classification", ("sentence",)),
    ("iflytek", "sequence-classification", ("sentence",)),
    ("cmnli", "sentence-pair-classification", ("sentence1", "sentence2")),
    ("ocnli", "sentence-pair-classification", ("sentence1", "sentence2")),
    ("cmrc2018", "question-answering", ()),
    ("drcd", "question-answering", ()),
    ("cluewsc2020", "sequence-classification", ("text",)),
    ("csl", "sentence-pair-classification", ("sentence1", "sentence2")),
    ("chid", "multiple-choice", ()),
    ("c3", "multiple-choice", ())])
def test_every_clue_task_has_a_type_and_the_dataset_columns(config, task_type, columns):
    options = check_task_options("", {"hub": "clue", "config": config})
    assert options["type"] == task_type and options["metric"]
    keys = {"sentence-pair-classification": ("text_column", "text_pair_column"),
            "sequence-classification": ("text_column",)}.get(task_type, ())
    assert tuple(options[k] for k in keys) == columns


def test_c3_questions_with_fewer_choices_are_batched_and_never_pick_a_padded_choice(
        tmp_path, tiny_bert):
    """C3 has 2 to 4 choices per question: a batch pads the choices, the head masks them."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from stimuli_models.tasks.encode import collate, encode_examples
    from stimuli_models.tasks.heads import TaskModel

    rows = [{"id": i, "context": ["the man saw a dog"], "question": "what did he see",
             "choice": ["a dog", "a cat", "a bird", "a fish"][: 2 + i % 3], "answer": "a dog"}
            for i in range(6)]
    task = load_task("c3", "", {"hub": "clue", "config": "c3",
                                "path": _save(rows, _C3, tmp_path, "c3")})
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    items = encode_examples(task, tokenizer, task.train, max_length=32, train=True)
    batch = collate(items[:3], tokenizer.pad_token_id)  # 2, 3 and 4 choices
    assert batch["input_ids"].shape[:2] == (3, 4)
    assert batch["attention_mask"][0, 2:].sum() == 0 and batch["attention_mask"][1, 3].sum() == 0
    backbone = AutoModel.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    model = TaskModel(backbone, task.type, task.n_labels, backbone.config.hidden_size)
    loss, logits = model(**batch)
    assert logits.shape == (3, 4) and torch.isfinite(loss)
    assert (logits[0, 2:] == -1e4).all() and (logits[1, 3] == -1e4) and (logits[2] > -1e4).all()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the padded choices change nothing: the 2-choice item alone gives the same logits
    model.eval()
    with torch.no_grad():
        alone = model(**collate(items[:1], tokenizer.pad_token_id))[1]
        together = model(**batch)[1]
    assert torch.allclose(alone[0], together[0, :2], atol=1e-5)
