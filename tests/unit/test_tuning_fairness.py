"""Tuning comparisons that mean what they say: names, parameter counts, targets, controls."""

from __future__ import annotations

import pytest

from stimuli_models.tuning import get_method
from tests.helpers.nlu import make_nlu_bert, make_task

TRAINING = {"max_steps": 3, "epochs": 100.0, "learning_rate": 1e-2, "eval_every": 3,
            "batch_size": 8, "max_length": 32}
HIDDEN, LAYERS, N_VIRTUAL = 64, 4, 6

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def nlu_bert(tmp_path_factory):
    return make_nlu_bert(tmp_path_factory.mktemp("nlu_bert"), hidden=HIDDEN, layers=LAYERS)


@pytest.fixture(scope="module")
def task():
    return make_task("sequence-classification", n_train=16, n_dev=8)


def _prepared(nlu_bert, method):
    from stimuli_models.models import load_model

    model, tokenizer = load_model(nlu_bert)
    for param in model.parameters():
        param.requires_grad_(False)
    backbone, _ = method.prepare(model, model_dir=nlu_bert, tokenizer=tokenizer)
    return backbone


@pytest.mark.parametrize("name, settings, mlp", [
    ("prefix", {}, True),                      # Li & Liang: reparameterised prefixes
    ("ptuning-v2", {}, False),                 # Liu et al.: deep prompts, MLP optional
    ("ptuning-v2", {"projection": True}, True),
])
def test_prefix_family_names_follow_the_papers(nlu_bert, name, settings, mlp):
    method = get_method(name, num_virtual_tokens=N_VIRTUAL, **settings)
    backbone = _prepared(nlu_bert, method)
    assert backbone.peft_config["default"].prefix_projection is mlp
    trained = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert any("transform" in n for n in trained) is mlp  # peft's MLP is prefix_encoder.transform


@pytest.mark.parametrize("name, settings", [("prefix", {}), ("ptuning-v2", {}),
                                            ("ptuning-v2", {"projection": True})])
def test_trainable_count_is_what_the_tuned_model_holds(nlu_bert, task, tmp_path, name,
                                                       settings):
    method = get_method(name, num_virtual_tokens=N_VIRTUAL, **settings)
    result = method.tune(nlu_bert, task, tmp_path, seed=0, device="cpu", training=TRAINING)
    prefixes = N_VIRTUAL * LAYERS * 2 * HIDDEN  # a key and a value vector per layer and token
    assert result.trainable_params == prefixes
    backbone = _prepared(nlu_bert, method)
    trained_at_training = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    assert result.extra["training_params"] == trained_at_training
    if method.reparameterised():  # embeddings + MLP train; the prefixes they give define it
        assert trained_at_training > 10 * prefixes
    else:
        assert trained_at_training == prefixes


def test_ia3_targets_follow_liu_et_al(nlu_bert):
    backbone = _prepared(nlu_bert, get_method("ia3"))
    scaled = sorted(n.split("base_model.model.")[1].rsplit(".ia3_l", 1)[0]
                    for n, p in backbone.named_parameters() if p.requires_grad)
    expected = sorted(f"encoder.layer.{i}.{m}" for i in range(LAYERS)
                      for m in ("attention.self.key", "attention.self.value", "output.dense"))
    assert scaled == expected  # keys, values and the FFN down projection; not attention output
    assert not any("attention.output" in n for n in scaled)
    config = backbone.peft_config["default"]
    assert sorted(config.feedforward_modules) == [f"encoder.layer.{i}.output.dense"
                                                  for i in range(LAYERS)]


def test_ia3_targets_from_the_spec_win(nlu_bert):
    backbone = _prepared(nlu_bert, get_method("ia3", target_modules=["query", "value"],
                                              feedforward_modules=[]))
    scaled = {n.split(".")[-3] for n, p in backbone.named_parameters() if p.requires_grad}
    assert scaled == {"query", "value"}


@pytest.mark.parametrize("name", ["prompt", "prefix", "ptuning-v2"])
def test_untrained_control_keeps_the_initial_virtual_tokens(nlu_bert, task, tmp_path, name):
    from safetensors.torch import load_file

    trained = get_method(name, num_virtual_tokens=N_VIRTUAL)
    control = get_method(name, num_virtual_tokens=N_VIRTUAL, untrained=True)
    result = control.tune(nlu_bert, task, tmp_path / "control", seed=3, device="cpu",
                          training=TRAINING)
    assert result.steps == 0 and result.dev_metric is None
    assert result.trainable_params == trained.tune(
        nlu_bert, task, tmp_path / "trained", seed=3, device="cpu",
        training=TRAINING).trainable_params
    saved = load_file(str(tmp_path / "control" / "tuned.safetensors"))
    tuned = load_file(str(tmp_path / "trained" / "tuned.safetensors"))
    assert saved.keys() == tuned.keys()
    import torch

    # what training started from: the same seed, the same initialisation
    start = {n: p.detach() for n, p in _prepared_with_task(nlu_bert, trained, task)}
    for key, value in saved.items():
        assert torch.equal(value, start[key]), key  # the control is the untrained start
        assert not torch.equal(value, tuned[key]), key  # training moved the tokens
    loaded = control.load_for_features(nlu_bert, tmp_path / "control", device="cpu")
    assert loaded.n_virtual_tokens == (N_VIRTUAL if name == "prompt" else 0)


def _prepared_with_task(nlu_bert, method, task):
    from stimuli_models.models import load_model

    model, tokenizer = load_model(nlu_bert, device="cpu", dtype="float32")
    for param in model.parameters():
        param.requires_grad_(False)
    import torch

    torch.manual_seed(3)
    backbone, _ = method.prepare(model, model_dir=nlu_bert, tokenizer=tokenizer, task=task)
    return [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]


def _features(method, nlu_bert, variant_dir):
    from stimuli_models.features import FeatureSettings, compute_features

    loaded = method.load_for_features(nlu_bert, variant_dir, device="cpu")
    words = "the keeper lit the lamp and the ship saw the light at dusk".split()
    feats = compute_features(words, loaded.model, loaded.tokenizer,
                             FeatureSettings(layers="all", context_words=4, stride=1),
                             n_layers=loaded.n_layers, n_virtual_tokens=loaded.n_virtual_tokens)
    return feats.features, loaded.n_virtual_tokens


@pytest.mark.parametrize("name", ["prompt", "prefix", "ptuning-v2"])
def test_untrained_control_separates_the_position_shift_from_training(nlu_bert, task, tmp_path,
                                                                      name):
    """Frozen vs control: the virtual tokens' shift; control vs trained: training only."""
    import numpy as np

    trained = get_method(name, num_virtual_tokens=N_VIRTUAL)
    control = get_method(name, num_virtual_tokens=N_VIRTUAL, untrained=True)
    trained.tune(nlu_bert, task, tmp_path / "trained", seed=3, device="cpu", training=TRAINING)
    control.tune(nlu_bert, task, tmp_path / "control", seed=3, device="cpu", training=TRAINING)
    frozen, _ = _features(get_method("frozen"), nlu_bert, None)
    untrained, n_control = _features(control, nlu_bert, tmp_path / "control")
    tuned, n_tuned = _features(trained, nlu_bert, tmp_path / "trained")
    assert n_control == n_tuned  # same virtual tokens, so the same positions
    # layer 0 (embeddings): the control already differs from frozen (the position shift) ...
    assert np.abs(untrained[0] - frozen[0]).max() > 1e-2
    # ... and equals the trained variant, which cannot differ before any attention layer
    np.testing.assert_allclose(tuned[0], untrained[0], atol=1e-6)
    # deeper layers: the trained variant differs from its control ...
    assert np.abs(tuned[-1] - untrained[-1]).max() > 1e-3
    # ... only through the trained weights: the control's weights in the trained method's
    # model give the control's features at every layer
    swapped, _ = _features(trained, nlu_bert, tmp_path / "control")
    np.testing.assert_allclose(swapped, untrained, atol=1e-6)
