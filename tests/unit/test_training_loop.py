"""The training loop of :mod:`stimuli_models.training` on a tiny local BERT."""

from __future__ import annotations

import pytest

from stimuli_models import training
from stimuli_models.tasks.encode import encode_examples
from stimuli_models.tasks.heads import TaskModel
from stimuli_models.training import TrainingSettings, train
from stimuli_models.tuning import get_method
from tests.helpers.nlu import make_task

MAX_LENGTH = 32


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def task():
    return make_task("sequence-classification", n_train=40, n_dev=8)


@pytest.fixture(scope="module")
def items(tiny_bert, task):
    """Encoded train and dev items of ``task`` with the tiny model's tokenizer."""
    from stimuli_models.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_bert)
    return (encode_examples(task, tokenizer, task.train, max_length=MAX_LENGTH, train=True),
            encode_examples(task, tokenizer, task.dev, max_length=MAX_LENGTH, train=False))


def make_model(path, n_labels: int, *, seed: int = 0):
    """Every parameter trainable, no dropout anywhere (backbone and head)."""
    import torch
    from transformers import AutoModel

    backbone = AutoModel.from_pretrained(str(path), local_files_only=True,
                                         hidden_dropout_prob=0.0,
                                         attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return TaskModel(backbone, "sequence-classification", n_labels,
                     backbone.config.hidden_size, dropout=0.0)


def settings(**overrides) -> TrainingSettings:
    """Loop settings of these tests (one evaluation at the end unless told)."""
    values = {"max_steps": 1, "epochs": 0.0, "batch_size": 4, "learning_rate": 1e-3,
              "warmup_ratio": 0.0, "eval_every": 1000, "max_length": MAX_LENGTH}
    return TrainingSettings(**{**values, **overrides})


def state(model) -> dict:
    """Copy of the trainable tensors."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def max_abs_diff(a: dict, b: dict) -> float:
    """Largest absolute difference between two states with the same keys."""
    assert set(a) == set(b)
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def scripted_evaluate(monkeypatch, values):
    """Replace the dev evaluation by a fixed sequence of accuracies.

    Returns the list of trainable states seen at each evaluation.
    """
    values = iter(values)
    seen = []

    def fake(model, task, examples, items, **kwargs):
        seen.append(state(model))
        return {"accuracy": next(values)}

    monkeypatch.setattr(training, "evaluate", fake)
    return seen


def test_early_stopping_after_patience_restores_best(monkeypatch, tiny_bert, task, items):
    seen = scripted_evaluate(monkeypatch, [0.5, 0.8, 0.7, 0.8, 0.6, 0.9, 0.95])
    model = make_model(tiny_bert, task.n_labels)
    report = train(model, task, *items, settings(max_steps=100, eval_every=2,
                                                 early_stopping_patience=3),
                   learning_rate=1e-3, seed=0)
    # evaluations at steps 2, 4, 6, 8, 10: best at 4, then 0.7, 0.8 (a tie is no
    # improvement) and 0.6 -> three evaluations without improvement
    assert report.stopped_early
    assert report.steps == 10
    assert [row["step"] for row in report.curve] == [2, 4, 6, 8, 10]
    assert [row["dev_accuracy"] for row in report.curve] == [0.5, 0.8, 0.7, 0.8, 0.6]
    assert (report.best_step, report.best_metric) == (4, 0.8)
    assert report.dev_metrics == {"accuracy": 0.8}
    assert report.samples == 10 * 4
    final = state(model)
    assert max_abs_diff(final, seen[1]) == 0.0  # the weights of step 4
    assert max_abs_diff(final, seen[-1]) > 1e-4  # not those of the last step


def test_no_early_stopping_without_patience(monkeypatch, tiny_bert, task, items):
    seen = scripted_evaluate(monkeypatch, [0.9, 0.1, 0.2, 0.3, 0.4])
    model = make_model(tiny_bert, task.n_labels)
    report = train(model, task, *items, settings(max_steps=10, eval_every=2),
                   learning_rate=1e-3, seed=0)
    assert not report.stopped_early
    assert report.steps == 10 and len(report.curve) == 5
    assert report.best_step == 2
    assert max_abs_diff(state(model), seen[0]) == 0.0


def test_gradient_accumulation_equals_one_large_batch(tiny_bert, task, items):
    train_items, dev_items = items
    k, micro = 4, 4
    start = state(make_model(tiny_bert, task.n_labels))
    after = {}
    for name, batch_size, accumulation in (("accumulated", micro, k), ("large", k * micro, 1),
                                           ("first_micro_batch", micro, 1)):
        model = make_model(tiny_bert, task.n_labels)
        report = train(model, task, train_items, dev_items,
                       settings(batch_size=batch_size, grad_accumulation=accumulation),
                       learning_rate=1e-3, seed=3)
        assert report.steps == 1
        assert report.samples == batch_size * accumulation
        after[name] = state(model)
    assert max_abs_diff(after["large"], start) > 1e-4  # the step moved the weights
    assert max_abs_diff(after["accumulated"], after["large"]) < 1e-5
    # a single micro-batch gives a different update: the comparison can tell them apart
    assert max_abs_diff(after["first_micro_batch"], after["large"]) > 1e-4


def test_warmup_then_linear_decay(monkeypatch, tiny_bert, task, items):
    used = []
    make_optimizer = training._optimizer

    def recording(model, learning_rate, weight_decay):
        optimizer = make_optimizer(model, learning_rate, weight_decay)
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: used.append([g["lr"] for g in opt.param_groups]))
        return optimizer

    monkeypatch.setattr(training, "_optimizer", recording)
    scripted_evaluate(monkeypatch, [0.5] * 10)
    peak = 1e-2
    report = train(make_model(tiny_bert, task.n_labels), task, *items,
                   settings(max_steps=10, warmup_ratio=0.3, eval_every=1, learning_rate=peak),
                   learning_rate=1.0, seed=0)  # the settings' rate wins over the default
    # 3 warm-up steps rising to the peak, then linear decay to 0 after step 10
    expected = [peak * f for f in (1 / 4, 2 / 4, 3 / 4, 7 / 7, 6 / 7, 5 / 7, 4 / 7, 3 / 7,
                                   2 / 7, 1 / 7)]
    assert len(used) == 10
    for step, (groups, lr) in enumerate(zip(used, expected, strict=True)):
        assert groups == pytest.approx([lr] * len(groups)), step
    # the training curve records the rate each evaluated step trained with
    assert [row["learning_rate"] for row in report.curve] == pytest.approx(expected)


@pytest.mark.parametrize(("n_train", "batch_size", "accumulation", "max_steps", "epochs",
                          "steps"), [
    (20, 4, 1, 100, 2.0, 10),   # 5 batches per epoch, 2 epochs
    (20, 4, 1, 3, 5.0, 3),      # the step cap is smaller
    (20, 4, 2, 100, 2.0, 5),    # 2 forward passes per step
    (20, 4, 1, 100, 0.5, 3),    # half an epoch, rounded up
    (20, 4, 1, 7, 0.0, 7),      # no epoch limit
])
def test_step_and_epoch_limits(monkeypatch, tiny_bert, task, items, n_train, batch_size,
                               accumulation, max_steps, epochs, steps):
    scripted_evaluate(monkeypatch, [0.5] * 20)
    report = train(make_model(tiny_bert, task.n_labels), task, items[0][:n_train], items[1],
                   settings(max_steps=max_steps, epochs=epochs, batch_size=batch_size,
                            grad_accumulation=accumulation),
                   learning_rate=1e-3, seed=0)
    assert report.steps == steps
    assert report.samples == steps * accumulation * batch_size
    assert not report.stopped_early


def test_same_seed_same_bytes_other_seed_other_weights(tiny_bert, task, tmp_path):
    from safetensors.torch import load_file

    options = {"max_steps": 3, "epochs": 0.0, "batch_size": 8, "learning_rate": 1e-2,
               "max_length": MAX_LENGTH}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        get_method("lora").tune(tiny_bert, task, tmp_path / name, seed=seed, device="cpu",
                                training=options)
    weights = {name: (tmp_path / name / "tuned.safetensors").read_bytes() for name in "abc"}
    assert weights["a"] == weights["b"]
    assert (tmp_path / "a" / "head.safetensors").read_bytes() == \
        (tmp_path / "b" / "head.safetensors").read_bytes()
    a, c = (load_file(str(tmp_path / name / "tuned.safetensors")) for name in "ac")
    assert set(a) == set(c) and any("lora_A" in name for name in a)
    assert all(not (a[name] == c[name]).all() for name in a if "lora_A" in name)


def test_prompt_init_from_label_words(tiny_bert, task):
    import torch

    from stimuli_models.models import load_model

    n_virtual = 7
    prompts = {}
    for init in ("labels", "random"):
        base, tokenizer = load_model(tiny_bert)
        for param in base.parameters():
            param.requires_grad_(False)
        torch.manual_seed(0)
        backbone, n = get_method("prompt", init=init, num_virtual_tokens=n_virtual).prepare(
            base, model_dir=tiny_bert, tokenizer=tokenizer, task=task)
        assert n == n_virtual
        prompts[init] = backbone.prompt_encoder["default"].embedding.weight.detach()
        words = base.get_input_embeddings().weight.detach()
    # the label text ("neg pos") tokenized as the model reads it, repeated to fill the prompt
    ids = tokenizer(" ".join(task.labels))["input_ids"]
    expected = words[torch.tensor((ids * n_virtual)[:n_virtual])]
    assert prompts["labels"].shape == (n_virtual, words.shape[1])
    assert torch.equal(prompts["labels"], expected)
    for label in task.labels:
        for token in tokenizer(label, add_special_tokens=False)["input_ids"]:
            assert (prompts["labels"] == words[token]).all(dim=1).any(), label
    assert not torch.allclose(prompts["random"], expected)
