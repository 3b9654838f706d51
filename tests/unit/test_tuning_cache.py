"""Tuned variants in OUTPUT_DIR/models: hash, reuse, one training for concurrent jobs, CKA."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from bids_app.config import ModelEntry, TaskEntry
from bids_app.tuning import ensure_tuned, tune_extractor
from bids_app.variants import Extractor
from stimuli_models.similarity import layerwise_cka, linear_cka
from tests.helpers.nlu import make_examples, make_nlu_bert

TRAINING = {"max_steps": 6, "epochs": 100.0, "learning_rate": 1e-2, "eval_every": 3,
            "max_length": 32}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def nlu_bert(tmp_path_factory):
    return make_nlu_bert(tmp_path_factory.mktemp("nlu_bert"))


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("task") / "sent.tsv"
    rows = make_examples("sequence-classification", 48, seed=0)
    path.write_text("".join(f"{r['text']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    return path


def _extractor(model, task_file, method="lora", settings=None, label="nlulorasent"):
    task = TaskEntry(name="sent", type="sequence-classification",
                     options={"train": str(task_file), "format": "tsv",
                              "columns": ["text", "label"]})
    return Extractor(label=label, model=ModelEntry(name="nlu", source=str(model)),
                     model_dir=str(model), method=method, settings=settings or {}, task=task,
                     layers=[2]).to_json()


def test_second_run_reuses_and_seed_retrains(nlu_bert, task_file, tmp_path):
    ex = _extractor(nlu_bert, task_file)
    record, trained = ensure_tuned(ex, str(tmp_path), seed=0, device="cpu", training=TRAINING)
    assert trained
    folder = record.parent
    assert folder == tmp_path / "models" / "nlulorasent"
    data = json.loads(record.read_text())
    assert data["steps"] == 6 and data["task_type"] == "sequence-classification"
    assert 0 < data["trainable_share"] < 0.2 and data["dev_metric_name"] == "accuracy"
    assert data["variant_dir"] == str(folder) and data["fingerprint"] == data["tuning_hash"]
    for name in ("tuned.safetensors", "head.safetensors", "training_curve.tsv",
                 "resolved_config.json", "method.json"):
        assert (folder / name).exists(), name
    stamp = (folder / "tuned.safetensors").stat().st_mtime_ns
    again, trained = ensure_tuned(ex, str(tmp_path), seed=0, device="cpu", training=TRAINING)
    assert not trained and again == record
    assert (folder / "tuned.safetensors").stat().st_mtime_ns == stamp
    _, trained = ensure_tuned(ex, str(tmp_path), seed=1, device="cpu", training=TRAINING)
    assert trained
    assert json.loads(record.read_text())["tuning_hash"] != data["tuning_hash"]
    assert not list((tmp_path / "models").glob(".*tmp")) and not list(
        (tmp_path / "models").glob(".*old"))


def test_changed_task_data_retrains(nlu_bert, task_file, tmp_path):
    copy = tmp_path / "sent.tsv"
    copy.write_bytes(task_file.read_bytes())
    ex = _extractor(nlu_bert, copy)
    ensure_tuned(ex, str(tmp_path), seed=0, device="cpu", training=TRAINING)
    copy.write_text(copy.read_text() + "one more good line\tpos\n")
    _, trained = ensure_tuned(ex, str(tmp_path), seed=0, device="cpu", training=TRAINING)
    assert trained


def _worker(args):
    ex, out, queue = args
    import torch

    torch.set_num_threads(1)
    _, trained = ensure_tuned(ex, out, seed=0, device="cpu", training=TRAINING)
    queue.put(trained)


def test_two_processes_train_once(nlu_bert, task_file, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    ex = _extractor(nlu_bert, task_file)
    procs = [ctx.Process(target=_worker, args=((ex, str(tmp_path), queue),)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == [False, True]


def test_record_carries_cka_per_layer(nlu_bert, task_file, tmp_path):
    from stimuli_models.story_features import Story
    from tests.helpers.nlu import FILLER

    story = tmp_path / "story.json"
    Story(name="s", words=(FILLER * 3)[:60]).to_json(story)
    features = {"context_words": 5, "stride": 4}
    full = _extractor(nlu_bert, task_file, method="full", label="nlufullsent")
    record = json.loads(open(tune_extractor(full, str(tmp_path), seed=0, device="cpu",
                                            training={**TRAINING, "max_steps": 20},
                                            story_files=[str(story)],
                                            feature_settings=features)).read())
    cka = record["cka"]
    assert sorted(cka, key=int) == ["0", "1", "2", "3", "4"]
    assert all(0.0 <= v <= 1.0 + 1e-6 for v in cka.values())
    assert min(cka.values()) < 0.999  # full tuning moved the representation
    assert (tmp_path / "models" / "nlufullsent" / "cka.tsv").exists()
    frozen = Extractor(label="nlufrozen", model=ModelEntry(name="nlu", source=str(nlu_bert)),
                       model_dir=str(nlu_bert), method="frozen", layers=[2]).to_json()
    record = json.loads(open(tune_extractor(frozen, str(tmp_path), seed=0, device="cpu",
                                            story_files=[str(story)],
                                            feature_settings=features)).read())
    assert set(record["cka"].values()) == {1.0} and record["variant_dir"] is None


def test_sidecar_keys_from_record():
    from bids_app.outputs import tuning_sidecar

    record = {"settings": {"k": 2}, "task": "sst2", "task_type": "sequence-classification",
              "dev_metric": 0.9, "dev_metric_name": "accuracy", "trainable_params": 10,
              "trainable_share": 0.1, "tuning_hash": "ab", "cka": {"3": 0.7}}
    side = tuning_sidecar(record, 3)
    assert side["DevMetric"] == {"accuracy": 0.9} and side["CKA"] == 0.7
    assert side["TaskType"] == "sequence-classification" and side["TuningHash"] == "ab"
    assert side["TrainableParameterShare"] == 0.1 and side["TuningSettings"] == {"k": 2}


def test_linear_cka_invariances():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 10))
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    assert linear_cka(x, 3.0 * x @ q + 1.0) == pytest.approx(1.0)
    assert linear_cka(x, rng.standard_normal((200, 10))) < 0.15
    wide = rng.standard_normal((20, 50))
    assert linear_cka(wide, wide * 2) == pytest.approx(1.0)
    mixed = linear_cka(x, x + rng.standard_normal((200, 10)))
    assert 0.3 < mixed < 0.95
    stack = np.stack([x, x])
    np.testing.assert_allclose(layerwise_cka(stack, stack), [1.0, 1.0])
