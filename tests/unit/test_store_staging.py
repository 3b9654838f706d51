"""Shared stores: compute steps stage in their node folder, sinks publish, claims dedupe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bids_app.config import ModelEntry, TaskEntry
from bids_app.featurization import publish_features, stage_features
from bids_app.io.store import CLAIMS, claim_file, claimed_copy
from bids_app.tuning import publish_tuned, stage_tuned
from bids_app.variants import Extractor
from stimuli_models import story_features, tuning
from stimuli_models.story_features import Story
from tests.helpers.nlu import FILLER, make_examples, make_nlu_bert

TRAINING = {"max_steps": 4, "epochs": 100.0, "learning_rate": 1e-2, "eval_every": 2,
            "max_length": 32}
FEATURES = {"context_words": 5, "stride": 4}

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def nlu_bert(tmp_path_factory):
    return make_nlu_bert(tmp_path_factory.mktemp("nlu_bert"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    task = folder / "sent.tsv"
    rows = make_examples("sequence-classification", 32, seed=0)
    task.write_text("".join(f"{r['text']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    stories = []
    for index in range(2):
        path = folder / f"story{index}.json"
        Story(name=f"s{index}", words=(FILLER * 3)[index:index + 50]).to_json(path)
        stories.append(str(path))
    return task, stories


def _extractor(model, task_file) -> str:
    task = TaskEntry(name="sent", type="sequence-classification",
                     options={"train": str(task_file), "format": "tsv",
                              "columns": ["text", "label"]})
    return Extractor(label="nlulorasent", model=ModelEntry(name="nlu", source=str(model)),
                     model_dir=str(model), method="lora", settings={}, task=task,
                     layers=[1, 2]).to_json()


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _count_calls(monkeypatch) -> dict:
    calls = {"tune": 0, "features": 0}
    get_method, compute = tuning.get_method, story_features.compute_features

    def counted_method(*args, **kwargs):
        method = get_method(*args, **kwargs)
        tune = method.tune

        def counted(*a, **k):
            calls["tune"] += 1
            return tune(*a, **k)

        method.tune = counted
        return method

    def counted_features(*args, **kwargs):
        calls["features"] += 1
        return compute(*args, **kwargs)

    monkeypatch.setattr("bids_app.tuning.get_method", counted_method)
    monkeypatch.setattr(story_features, "compute_features", counted_features)
    return calls


def test_steps_stage_in_their_folder_and_sinks_publish(nlu_bert, inputs, tmp_path, monkeypatch):
    task, stories = inputs
    calls = _count_calls(monkeypatch)
    out, stage = tmp_path / "out", tmp_path / "node_a" / "derivatives"
    extractor = _extractor(nlu_bert, task)
    record, staged = stage_tuned(extractor, str(out), stage, seed=0, device="cpu",
                                 training=TRAINING, story_files=stories,
                                 feature_settings=FEATURES)
    assert calls["tune"] == 1
    # OUTPUT_DIR holds only the entry's lock and claim: no derivative yet
    assert _files(out) == ["models/.claims/nlulorasent.json", "models/nlulorasent.lock"]
    assert Path(record) == out / "models" / "nlulorasent" / "tuning.json"
    assert not Path(record).exists()
    assert {Path(p).name for p in staged} >= {"tuning.json", "cka.tsv", "tuned.safetensors"}
    staged_record = json.loads((stage / "models" / "nlulorasent" / "tuning.json").read_text())
    assert staged_record["variant_dir"] == str(out / "models" / "nlulorasent")
    assert publish_tuned(record, stage, out) == len(staged)
    assert _files(out / "models" / "nlulorasent") == _files(stage / "models" / "nlulorasent")
    assert not (out / "models" / CLAIMS).exists()  # released
    assert publish_tuned(record, stage, out) == 0  # idempotent

    finals, staged = stage_features(extractor, record, stories, str(out), stage,
                                    feature_settings=FEATURES, device="cpu")
    assert calls["features"] == 2 and len(staged) == 2
    assert not any(Path(f).exists() for f in finals)
    assert sorted(p.name for p in (out / "stimuli" / "features").iterdir()) == sorted(
        [f"{Path(f).name}.lock" for f in finals] + [CLAIMS])
    assert publish_features(staged, stage, out) == 2
    for final, source in zip(finals, staged, strict=True):
        np.testing.assert_array_equal(np.load(final), np.load(source))
        assert Path(final).with_suffix(".json").is_file()
    assert not (out / "stimuli" / "features" / CLAIMS).exists()

    # a later job finds both in the store: nothing computed, nothing staged
    stage_b = tmp_path / "node_b" / "derivatives"
    record_b, staged_b = stage_tuned(extractor, str(out), stage_b, seed=0, device="cpu",
                                     training=TRAINING, story_files=stories,
                                     feature_settings=FEATURES)
    finals_b, features_b = stage_features(extractor, record_b, stories, str(out), stage_b,
                                          feature_settings=FEATURES, device="cpu")
    assert (record_b, staged_b, finals_b, features_b) == (record, [], finals, [])
    assert calls == {"tune": 1, "features": 2}


def test_a_concurrent_job_copies_a_finished_claimed_copy(nlu_bert, inputs, tmp_path,
                                                         monkeypatch):
    """Job B misses the store while job A's staged copy awaits publication."""
    task, stories = inputs
    calls = _count_calls(monkeypatch)
    out = tmp_path / "out"
    extractor = _extractor(nlu_bert, task)
    stage_a, stage_b = tmp_path / "a" / "derivatives", tmp_path / "b" / "derivatives"
    record, staged_a = stage_tuned(extractor, str(out), stage_a, seed=0, device="cpu",
                                   training=TRAINING)
    _, staged_b = stage_tuned(extractor, str(out), stage_b, seed=0, device="cpu",
                              training=TRAINING)
    assert calls["tune"] == 1
    assert [Path(p).relative_to(stage_b) for p in staged_b] == [
        Path(p).relative_to(stage_a) for p in staged_a]
    # both sinks run: the first publishes, the second keeps what is there
    assert publish_tuned(record, stage_b, out) > 0
    assert publish_tuned(record, stage_a, out) == 0
    finals, features_a = stage_features(extractor, record, stories, str(out), stage_a,
                                        feature_settings=FEATURES, device="cpu")
    _, features_b = stage_features(extractor, record, stories, str(out), stage_b,
                                   feature_settings=FEATURES, device="cpu")
    assert calls["features"] == 2 and len(features_b) == 2
    assert publish_features(features_a, stage_a, out) == 2
    assert publish_features(features_b, stage_b, out) == 0
    assert all(Path(f).is_file() for f in finals)


def test_a_claim_whose_copy_is_gone_is_ignored(nlu_bert, inputs, tmp_path, monkeypatch):
    """A deleted work folder (or another host's) leaves a claim nobody can use."""
    import shutil

    task, _ = inputs
    calls = _count_calls(monkeypatch)
    out = tmp_path / "out"
    extractor = _extractor(nlu_bert, task)
    record, _ = stage_tuned(extractor, str(out), tmp_path / "a", seed=0, device="cpu",
                            training=TRAINING)
    final = Path(record).parent
    key = json.loads(claim_file(final).read_text())["key"]
    assert claimed_copy(final, key) is not None
    assert claimed_copy(final, "another key") is None
    shutil.rmtree(tmp_path / "a")
    assert claimed_copy(final, key) is None
    _, staged = stage_tuned(extractor, str(out), tmp_path / "b", seed=0, device="cpu",
                            training=TRAINING)
    assert calls["tune"] == 2 and staged
    assert publish_tuned(record, tmp_path / "b", out) > 0
    assert json.loads(Path(record).read_text())["tuning_hash"] == key


def test_new_stories_update_only_the_drift(nlu_bert, inputs, tmp_path, monkeypatch):
    task, stories = inputs
    calls = _count_calls(monkeypatch)
    out = tmp_path / "out"
    extractor = _extractor(nlu_bert, task)
    record, _ = stage_tuned(extractor, str(out), tmp_path / "a", seed=0, device="cpu",
                            training=TRAINING, story_files=stories[:1],
                            feature_settings=FEATURES)
    publish_tuned(record, tmp_path / "a", out)
    tensors = Path(record).parent / "tuned.safetensors"
    stamp = tensors.stat().st_mtime_ns
    first = json.loads(Path(record).read_text())
    _, staged = stage_tuned(extractor, str(out), tmp_path / "b", seed=0, device="cpu",
                            training=TRAINING, story_files=stories, feature_settings=FEATURES)
    assert calls["tune"] == 1
    assert sorted(Path(p).name for p in staged) == ["cka.tsv", "tuning.json"]
    assert publish_tuned(record, tmp_path / "b", out) == 2
    second = json.loads(Path(record).read_text())
    assert second["cka_stories"] != first["cka_stories"]
    assert second["tuning_hash"] == first["tuning_hash"]
    assert tensors.stat().st_mtime_ns == stamp  # the tensors were kept
