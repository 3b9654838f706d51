"""Every registered tuning method on every NLU task type (tiny local model)."""

from __future__ import annotations

import numpy as np
import pytest

from stimuli_models.errors import SettingsError
from stimuli_models.tasks import TASK_TYPES
from stimuli_models.tuning import get_method, registered_methods
from tests.helpers.nlu import CHANCE, make_nlu_bert, make_task

TRAINED = [m for m in registered_methods() if m != "frozen"]
TRAINING = {"max_steps": 60, "epochs": 100.0, "learning_rate": 1e-2, "eval_every": 30,
            "batch_size": 16, "max_length": 48}
#: margin over chance a tuned model must reach on the learnable synthetic tasks
MARGIN = {"sequence-classification": 0.2, "sentence-pair-classification": 0.2,
          "multiple-choice": 0.25, "token-classification": 0.2, "question-answering": 0.2}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def nlu_bert(tmp_path_factory):
    return make_nlu_bert(tmp_path_factory.mktemp("nlu_bert"))


def _cases():
    for task_type in TASK_TYPES:
        for method in TRAINED:
            fast = task_type == "sequence-classification" or method == "lora"
            yield pytest.param(method, task_type, marks=() if fast else pytest.mark.slow,
                               id=f"{method}-{task_type}")


@pytest.mark.parametrize(("method", "task_type"), list(_cases()))
def test_method_beats_chance(nlu_bert, tmp_path, method, task_type):
    task = make_task(task_type, n_train=64, n_dev=32)
    tuner = get_method(method)
    result = tuner.tune(nlu_bert, task, tmp_path, seed=0, device="cpu", training=TRAINING)
    assert result.steps == TRAINING["max_steps"]
    assert result.dev_metric > CHANCE[task_type] + MARGIN[task_type], result.extra
    assert result.trainable_params > 0
    if method != "ptuning-v2":  # its reparameterisation MLP may outgrow a tiny model
        assert result.trainable_params <= result.total_params
    assert (tmp_path / "tuned.safetensors").exists()
    assert (tmp_path / "training_curve.tsv").read_text().count("\n") == 3  # header + 2 evals
    loaded = tuner.load_for_features(nlu_bert, tmp_path, device="cpu")
    import torch

    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.inference_mode():
        out = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           output_hidden_states=True)
    assert len(out.hidden_states) == loaded.n_layers + 1
    assert out.hidden_states[-1].shape[1] == 5 + loaded.n_virtual_tokens
    assert not any(p.requires_grad and "head" in n for n, p in loaded.model.named_parameters())
    if task_type == "sequence-classification":  # featurization sees one vector per word
        from stimuli_models.features import FeatureSettings, compute_features

        words = "the man saw a dog near the old house".split()
        feats = compute_features(words, loaded.model, loaded.tokenizer,
                                 FeatureSettings(layers="all", context_words=3, stride=2),
                                 n_layers=loaded.n_layers,
                                 n_virtual_tokens=loaded.n_virtual_tokens)
        assert feats.features.shape == (loaded.n_layers + 1, len(words), 64)
        assert np.isfinite(feats.features).all()
        assert len({tuple(np.round(v, 4)) for v in feats.features[-1]}) > 1


def test_trainable_shares_are_ordered(nlu_bert, tmp_path):
    task = make_task("sequence-classification", n_train=16, n_dev=8)
    training = {**TRAINING, "max_steps": 1}
    share = {}
    for method in TRAINED:
        share[method] = get_method(method).tune(nlu_bert, task, tmp_path / method, seed=0,
                                                device="cpu", training=training).trainable_share
    for light in ("prefix", "lora", "adapter", "bitfit"):
        assert share["prompt"] < share[light] < share["partial"], (light, share)
    assert share["partial"] < share["full"] == share["scratch"] == 1.0
    frozen = get_method("frozen").tune(nlu_bert, None, tmp_path / "frozen", seed=0, device="cpu")
    assert frozen.trainable_share == 0.0


def test_partial_k_and_share(nlu_bert):
    from stimuli_models.models import load_model

    model, _ = load_model(nlu_bert)
    shares = []
    for k in (1, 2, 4):
        for p in model.parameters():
            p.requires_grad_(False)
        backbone, _ = get_method("partial", k=k).prepare(model, model_dir=nlu_bert,
                                                          tokenizer=None)
        trained = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
        shares.append(trained / sum(p.numel() for p in backbone.parameters()))
    assert shares[0] < shares[1] < shares[2]
    by_share = get_method("partial", share=shares[1] + 0.01)
    assert by_share.n_top_layers(model) == 2
    with pytest.raises(SettingsError, match="'k' or 'share', not both"):
        get_method("partial", k=1, share=0.5)
    with pytest.raises(SettingsError, match="has 4 layers"):
        get_method("partial", k=9).n_top_layers(model)


def test_settings_are_checked():
    with pytest.raises(SettingsError, match="'method' must be one of"):
        get_method("lorra")
    with pytest.raises(SettingsError, match="unknown setting"):
        get_method("lora", rank=4)
    with pytest.raises(SettingsError, match="must be of type int"):
        get_method("lora", r="8")
    with pytest.raises(SettingsError, match="'init' must be one of"):
        get_method("prompt", init="words")
    assert get_method("ptuning_v2").name == "ptuning-v2"


def test_tuning_is_deterministic_under_seed(nlu_bert, tmp_path):
    from safetensors.torch import load_file

    task = make_task("sequence-classification", n_train=32, n_dev=16)
    training = {**TRAINING, "max_steps": 8, "eval_every": 4}
    runs = [get_method("lora").tune(nlu_bert, task, tmp_path / str(i), seed=s, device="cpu",
                                    training=training) for i, s in enumerate((5, 5, 6))]
    a, b, c = (load_file(str(tmp_path / str(i) / "tuned.safetensors")) for i in range(3))
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)
    assert runs[0].dev_metric == runs[1].dev_metric


def test_lora_features_use_merged_weights(nlu_bert, tmp_path):
    """Merged LoRA features equal the unmerged tuned backbone's states."""
    import torch

    task = make_task("sequence-classification", n_train=32, n_dev=16)
    tuner = get_method("lora", dropout=0.0)
    tuner.tune(nlu_bert, task, tmp_path, seed=0, device="cpu",
               training={**TRAINING, "max_steps": 10})
    merged = tuner.load_for_features(nlu_bert, tmp_path, device="cpu").model
    frozen = get_method("frozen").load_for_features(nlu_bert, None, device="cpu").model
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.inference_mode():
        tuned_states = merged(input_ids=ids).last_hidden_state
        base_states = frozen(input_ids=ids).last_hidden_state
    assert type(merged).__name__ == "BertModel"
    assert not torch.allclose(tuned_states, base_states, atol=1e-5)


def test_method_needs_task(nlu_bert, tmp_path):
    with pytest.raises(SettingsError, match="needs a task"):
        get_method("full").tune(nlu_bert, None, tmp_path, seed=0, device="cpu")


@pytest.mark.slow
def test_every_method_on_a_decoder(tmp_path):
    """GPT-2 blocks: adapters on c_proj, partial with ln_f, prompts and prefixes."""
    from stimuli_models.features import FeatureSettings, compute_features
    from tests.helpers.nlu import make_nlu_gpt2

    model = make_nlu_gpt2(tmp_path / "gpt2")
    task = make_task("sequence-classification", n_train=32, n_dev=16)
    words = "the man saw a dog near the old house".split()
    for method in TRAINED:
        tuner = get_method(method)
        result = tuner.tune(model, task, tmp_path / method, seed=0, device="cpu",
                            training={**TRAINING, "max_steps": 2})
        assert result.trainable_params > 0, method
        loaded = tuner.load_for_features(model, tmp_path / method, device="cpu")
        feats = compute_features(words, loaded.model, loaded.tokenizer,
                                 FeatureSettings(layers=(-1,)), n_layers=loaded.n_layers,
                                 n_virtual_tokens=loaded.n_virtual_tokens)
        assert feats.features.shape == (1, len(words), 64), method


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["full", "lora", "prompt", "ptuning-v2"])
def test_mixed_precision_on_gpu(nlu_bert, tmp_path, method):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    task = make_task("sequence-classification", n_train=64, n_dev=32)
    tuner = get_method(method)
    result = tuner.tune(nlu_bert, task, tmp_path, seed=0, device="cuda",
                        training={**TRAINING, "mixed_precision": "bf16",
                                  "gradient_checkpointing": True})
    assert result.dev_metric > 0.7
    loaded = tuner.load_for_features(nlu_bert, tmp_path, device="cuda", dtype="bfloat16")
    assert next(loaded.model.parameters()).device.type == "cuda"
