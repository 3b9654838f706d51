"""NLU tasks named as ``datasets`` datasets: save_to_disk folders, the local cache, the table."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from stimuli_models.errors import SettingsError, TaskDataError
from stimuli_models.tasks import check_task_options, load_task
from stimuli_models.tasks.hub import BENCHMARKS, known_benchmark
from stimuli_models.tasks.metrics import classification_scores, matthews

datasets = pytest.importorskip("datasets")


def _sst2():
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"]),
                                  "idx": datasets.Value("int32")})
    rows = {"sentence": [f"review number {i}" for i in range(30)],
            "label": [i % 2 for i in range(30)], "idx": list(range(30))}
    test = {"sentence": ["unlabelled"] * 3, "label": [-1] * 3, "idx": [0, 1, 2]}
    return datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(rows, features=features),
        "validation": datasets.Dataset.from_dict(
            {k: v[:10] + test[k] for k, v in rows.items()}, features=features)})


def _conll():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = datasets.Features({
        "id": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=tags))})
    rows = {"id": [str(i) for i in range(12)],
            "tokens": [["Anna", "Berg", "visited", "Oslo"]] * 12,
            "ner_tags": [[1, 2, 0, 3]] * 12}
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features),
                                 "validation": datasets.Dataset.from_dict(rows,
                                                                          features=features)})


def _write_cache(data, cache_dir, repo_id: str, config: str, tmp_path):
    """Store ``data`` where ``datasets`` keeps a Hub download: <ns>___<name>/<config>/<v>/<hash>."""
    from datasets.packaged_modules.json import json as json_builder

    files = {}
    for split, table in data.items():
        files[split] = str(tmp_path / f"{split}.jsonl")
        table.to_json(files[split])
    name = repo_id.split("/")[-1]
    scratch = tmp_path / "scratch"
    builder = json_builder.Json(cache_dir=str(scratch), dataset_name=name, config_name=config,
                                data_files=files, features=data["train"].features)
    builder.download_and_prepare()
    target = cache_dir / repo_id.replace("/", "___") / config / "0.0.0" / "f00dcafe"
    shutil.copytree(builder.cache_dir, target)
    info = json.loads((target / "dataset_info.json").read_text(encoding="utf-8"))
    info["config_name"] = config
    (target / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")


def test_glue_task_by_name_from_a_save_to_disk_folder(tmp_path):
    _sst2().save_to_disk(str(tmp_path / "sst2"))
    task = load_task("sst2", "", {"hub": "glue", "config": "sst2", "path": "sst2"},
                     base_dir=str(tmp_path))
    assert task.type == "sequence-classification" and task.metric == "accuracy"
    assert task.labels == ["negative", "positive"]  # class names, in the dataset's order
    assert task.train[1] == {"text": "review number 1", "label": "positive"}
    assert len(task.train) == 30 and len(task.dev) == 10  # unlabelled (-1) rows left out


def test_a_single_saved_dataset_is_the_training_split(tmp_path):
    _sst2()["train"].save_to_disk(str(tmp_path / "one"))
    task = load_task("sst2", "", {"hub": "glue", "config": "sst2", "path": str(tmp_path / "one"),
                                  "dev_fraction": 0.2})
    assert (len(task.train), len(task.dev)) == (24, 6)


def test_conll_task_from_the_local_cache_under_its_hub_namespace(tmp_path):
    cache = tmp_path / "cache"
    _write_cache(_conll(), cache, "eriktks/conll2003", "conll2003", tmp_path)
    task = load_task("ner", "", {"hub": "conll2003", "config": "conll2003",
                                 "cache_dir": str(cache)})
    assert task.type == "token-classification" and task.metric == "f1"
    assert task.train[0] == {"tokens": ["Anna", "Berg", "visited", "Oslo"],
                             "tags": ["B-PER", "I-PER", "O", "B-LOC"]}
    assert task.labels[0] == "O"
    again = load_task("ner", "", {"hub": "eriktks/conll2003", "config": "conll2003",
                                  "cache_dir": str(cache)})
    assert again.train == task.train and again.fingerprint == task.fingerprint


def test_fingerprint_follows_the_data_not_the_location(tmp_path):
    _sst2().save_to_disk(str(tmp_path / "a"))
    _sst2().save_to_disk(str(tmp_path / "b"))
    changed = _sst2()
    changed["train"] = changed["train"].map(lambda r: {"sentence": r["sentence"] + "!"})
    changed.save_to_disk(str(tmp_path / "c"))
    prints = [load_task("s", "", {"hub": "glue", "config": "sst2", "path": str(tmp_path / d)})
              .fingerprint for d in "abc"]
    assert prints[0] == prints[1] != prints[2]


def test_offline_by_default(tmp_path):
    with pytest.raises(TaskDataError, match="not in the local datasets cache.*allow_download"):
        load_task("sst2", "", {"hub": "glue", "config": "sst2",
                               "cache_dir": str(tmp_path / "empty")})


def test_table_and_messages():
    assert check_task_options("", {"hub": "nyu-mll/glue", "config": "mnli"})["dev_split"] == \
        "validation_matched"
    assert known_benchmark("glue", "cola").metric == "matthews"
    assert {k[0] for k in BENCHMARKS} >= {"glue", "conll2003", "wnut_17", "squad", "clue"}
    assert check_task_options("", {"hub": "clue", "config": "cmrc2018"})["type"] == \
        "question-answering"
    with pytest.raises(SettingsError, match="needs a 'config', one of .*'sst2'"):
        check_task_options("", {"hub": "glue"})
    with pytest.raises(SettingsError, match="not a known benchmark; set 'type'"):
        check_task_options("", {"hub": "someone/reviews"})
    opts = check_task_options("sequence-classification", {"hub": "someone/reviews",
                                                          "text_column": "body"})
    assert opts["type"] == "sequence-classification" and opts["text_column"] == "body"
    with pytest.raises(SettingsError, match="'metric' must be one of"):
        check_task_options("", {"hub": "glue", "config": "sst2", "metric": "bleu"})
    with pytest.raises(SettingsError, match="dataset 'glue' and files"):
        check_task_options("", {"hub": "glue", "config": "sst2", "train": "x.tsv"})


def test_missing_package_names_pip_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(TaskDataError, match=r"pip install 'brainenc\[hub\]'"):
        load_task("sst2", "", {"hub": "glue", "config": "sst2", "path": str(tmp_path)})


def test_classification_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, 200)
    predicted = np.where(rng.random(200) < 0.8, target, 1 - target)
    from sklearn.metrics import f1_score, matthews_corrcoef

    scores = classification_scores(predicted, target, 2)
    assert scores["matthews"] == pytest.approx(matthews_corrcoef(target, predicted))
    assert scores["f1"] == pytest.approx(f1_score(target, predicted))
    assert scores["macro_f1"] == pytest.approx(f1_score(target, predicted, average="macro"))
    assert matthews(target, 1 - target) == pytest.approx(-1.0)


def test_spec_names_a_benchmark_only(tmp_path):
    from bids_app.config import load_spec

    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('[[tasks]]\nname = "sst2"\nhub = "glue"\nconfig = "sst2"\n'
                         'path = "saved/sst2"\n\n[[variants]]\nmethod = "lora"\ntask = "sst2"\n',
                         encoding="utf-8")
    spec = load_spec(spec_file)
    assert spec.tasks[0].type == "sequence-classification"
    from bids_app.config import spec_with_absolute_paths

    saved = spec_with_absolute_paths(spec)["tasks"][0]
    assert saved["path"] == str((tmp_path / "saved" / "sst2").resolve())


def test_download_only_when_the_entry_opts_in(tmp_path, monkeypatch):
    from huggingface_hub import constants

    calls = []

    def fake_load_dataset(name, config, **kwargs):
        calls.append((name, config, datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE))
        return _sst2()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    options = {"hub": "glue", "config": "sst2", "cache_dir": str(tmp_path / "empty")}
    with pytest.raises(TaskDataError, match="allow_download"):
        load_task("sst2", "", options)
    assert calls == []
    task = load_task("sst2", "", {**options, "allow_download": True})
    assert calls == [("nyu-mll/glue", "sst2", False, False)] and len(task.train) == 30
    assert datasets.config.HF_HUB_OFFLINE is True  # restored after the download


@pytest.mark.parametrize(("hub", "config", "repo", "revision"), [
    ("glue", "sst2", "nyu-mll/glue", None),
    ("nyu-mll/glue", "sst2", "nyu-mll/glue", None),
    ("wnut_17", None, "leondz/wnut_17", "refs/convert/parquet"),
    ("conll2003", None, "eriktks/conll2003", "refs/convert/parquet"),
    ("clue", "tnews", "clue/clue", None),
    ("someone/reviews", None, "someone/reviews", None)])
def test_download_arguments_name_the_hub_repository(hub, config, repo, revision):
    from stimuli_models.tasks.hub import download_arguments

    args, kwargs = download_arguments({"hub": hub, "config": config, "cache_dir": "/c"})
    assert args == (repo, config) and kwargs == {"cache_dir": "/c", "revision": revision}
    # a revision in the entry wins
    assert download_arguments({"hub": hub, "config": config, "revision": "v1"})[1]["revision"] \
        == "v1"


def test_download_calls_load_dataset_as_a_real_download_needs(tmp_path, monkeypatch):
    """The exact call, and the copy it leaves in the cache read offline by the next run."""
    import inspect

    cache = tmp_path / "cache"
    calls = []

    def fake_load_dataset(*args, **kwargs):
        # every argument is one the real function takes (no trust_remote_code, removed in 4.0)
        inspect.signature(real_load_dataset).bind(*args, **kwargs)
        calls.append((args, kwargs, datasets.config.HF_HUB_OFFLINE))
        data = _conll()
        _write_cache(data, cache, "leondz/wnut_17", "wnut_17", tmp_path)
        return data

    real_load_dataset = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    options = {"hub": "wnut_17", "cache_dir": str(cache), "allow_download": True}
    task = load_task("wnut17", "", options)
    assert calls == [(("leondz/wnut_17", None),
                      {"cache_dir": str(cache), "revision": "refs/convert/parquet"}, False)]
    assert task.type == "token-classification" and task.train[0]["tags"][:2] == ["B-PER", "I-PER"]
    again = load_task("wnut17", "", {**options, "allow_download": False})  # as the spec names it
    assert len(calls) == 1 and again.fingerprint == task.fingerprint


def test_offline_by_default_never_calls_load_dataset(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_dataset called without allow_download")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    for hub, config in (("glue", "sst2"), ("wnut_17", None), ("clue", "c3")):
        with pytest.raises(TaskDataError, match="not in the local datasets cache"):
            load_task("t", "", {"hub": hub, "config": config,
                                "cache_dir": str(tmp_path / "empty")})
        with pytest.raises(TaskDataError, match="not in the local datasets cache"):
            load_task("t", "", {"hub": hub, "config": config, "allow_download": False,
                                "cache_dir": str(tmp_path / "empty")})
