"""An untrained control depends on the task exactly when its initialisation reads the task."""

from __future__ import annotations

import pytest

from stimuli_models.errors import SettingsError
from stimuli_models.tuning import get_method
from tests.helpers.nlu import make_nlu_bert, make_task

TRAINING = {"max_steps": 2, "epochs": 100.0, "eval_every": 2, "batch_size": 8,
            "max_length": 32}
N_VIRTUAL = 4

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def nlu_bert(tmp_path_factory):
    return make_nlu_bert(tmp_path_factory.mktemp("nlu_bert"), hidden=32, layers=2)


@pytest.fixture(scope="module")
def tasks():
    return (make_task("sequence-classification", n_train=8, n_dev=4),
            make_task("token-classification", n_train=8, n_dev=4))


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path / "tuned.safetensors"))


@pytest.mark.parametrize("name, settings", [
    ("prefix", {}), ("ptuning-v2", {}), ("ptuning-v2", {"projection": True}),
    ("prompt", {"init": "vocab"}), ("prompt", {"init": "random"})])
def test_a_seeded_control_is_the_same_for_every_task_and_without_one(nlu_bert, tasks, tmp_path,
                                                                    name, settings):
    import torch

    control = get_method(name, num_virtual_tokens=N_VIRTUAL, untrained=True, **settings)
    assert not control.depends_on_task
    saved = []
    for k, task in enumerate((*tasks, None)):
        result = control.tune(nlu_bert, task, tmp_path / str(k), seed=5, device="cpu",
                              training=TRAINING)
        assert result.steps == 0 and result.dev_metric is None
        saved.append(_tensors(tmp_path / str(k)))
    for other in saved[1:]:
        assert other.keys() == saved[0].keys()
        assert all(torch.equal(other[key], saved[0][key]) for key in saved[0])
    # ... and it depends on the seed: another seed gives other virtual tokens
    control.tune(nlu_bert, None, tmp_path / "seed6", seed=6, device="cpu", training=TRAINING)
    moved = _tensors(tmp_path / "seed6")
    assert any(not torch.equal(moved[key], saved[0][key]) for key in moved)
    # the task-free folder has no head and is featurized like any control
    assert not (tmp_path / "2" / "head.safetensors").exists()
    loaded = control.load_for_features(nlu_bert, tmp_path / "2", device="cpu")
    assert loaded.n_virtual_tokens == (N_VIRTUAL if name == "prompt" else 0)


def test_a_control_from_label_words_depends_on_the_task(nlu_bert, tasks, tmp_path):
    import torch

    control = get_method("prompt", num_virtual_tokens=N_VIRTUAL, untrained=True, init="labels")
    assert control.depends_on_task
    assert tasks[0].labels != tasks[1].labels
    for k, task in enumerate(tasks):
        control.tune(nlu_bert, task, tmp_path / str(k), seed=5, device="cpu",
                     training=TRAINING)
    first, second = _tensors(tmp_path / "0"), _tensors(tmp_path / "1")
    assert any(not torch.equal(first[key], second[key]) for key in first)
    with pytest.raises(SettingsError, match="needs a task"):
        control.tune(nlu_bert, None, tmp_path / "none", seed=5, device="cpu",
                     training=TRAINING)


@pytest.mark.parametrize("name", ["prompt", "prefix", "ptuning-v2", "lora", "full"])
def test_methods_that_train_depend_on_the_task(name):
    assert get_method(name).depends_on_task
    assert not get_method("frozen").depends_on_task
