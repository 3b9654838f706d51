"""Learnable synthetic NLU tasks of every type (for tuning tests)."""

from __future__ import annotations

import random

from stimuli_models.tasks.base import TaskData, _label_set

FILLER = ("the man saw a dog near the old house and then walked to the river while "
          "it was raining in the small town").split()
NAMES = ["paris", "london", "berlin", "madrid", "tokyo", "cairo", "lima", "oslo"]
COLORS = ["red", "blue", "green", "yellow", "black", "white"]


def _filler(rng, n):
    return [rng.choice(FILLER) for _ in range(n)]


def make_examples(task_type: str, n: int, seed: int) -> list[dict]:
    """``n`` examples whose label is determined by one marker word."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if task_type == "sequence-classification":
            label = rng.choice(["pos", "neg"])
            words = _filler(rng, 6)
            words.insert(rng.randrange(7), "good" if label == "pos" else "bad")
            out.append({"text": " ".join(words), "label": label})
        elif task_type == "sentence-pair-classification":
            label = rng.choice(["yes", "no"])
            pair = _filler(rng, 4)
            pair.insert(rng.randrange(5), "true" if label == "yes" else "false")
            out.append({"text": " ".join(_filler(rng, 5)), "text_pair": " ".join(pair),
                        "label": label})
        elif task_type == "token-classification":
            tokens = _filler(rng, 8)
            tags = ["O"] * len(tokens)
            for position in rng.sample(range(len(tokens)), 2):
                tokens[position], tags[position] = rng.choice(NAMES), "B-loc"
            out.append({"tokens": tokens, "tags": tags})
        elif task_type == "question-answering":
            color = rng.choice(COLORS)
            words = _filler(rng, 10)
            words.insert(rng.randrange(11), color)
            context = " ".join(words)
            out.append({"question": "which colour is named ?", "context": context,
                        "answers": [{"text": color, "start": context.index(f" {color}") + 1
                                     if not context.startswith(color) else 0}]})
        else:
            choices = [" ".join(_filler(rng, 3)) for _ in range(3)]
            label = rng.randrange(3)
            choices[label] = choices[label] + " correct"
            out.append({"context": " ".join(_filler(rng, 5)), "choices": choices,
                        "label": label})
    return out


def make_task(task_type: str, n_train: int = 96, n_dev: int = 48, seed: int = 0) -> TaskData:
    """A learnable synthetic task of ``task_type``."""
    train = make_examples(task_type, n_train, seed)
    dev = make_examples(task_type, n_dev, seed + 1000)
    opts = {"labels": None}
    labels = _label_set(task_type, train, dev, opts, task_type)
    return TaskData(name=task_type.split("-")[0], type=task_type, train=train, dev=dev,
                    labels=labels, fingerprint=f"synthetic-{task_type}-{seed}")


CHANCE = {"sequence-classification": 0.5, "sentence-pair-classification": 0.5,
          "multiple-choice": 1 / 3, "token-classification": 0.0, "question-answering": 0.0}


def make_nlu_bert(path, *, hidden: int = 64, layers: int = 4, seed: int = 0):
    """A small BERT with a WordPiece vocabulary of the synthetic tasks' words.

    Small enough that every method trains for a hundred steps in about a second.
    """
    from pathlib import Path

    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    corpus = FILLER + NAMES + COLORS + ["good", "bad", "true", "false", "correct", "which",
                                       "colour", "is", "named", "?", "pos", "neg", "yes", "no",
                                       "loc"]
    chars = sorted({c for word in corpus for c in word})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(corpus)) + chars + [
        f"##{c}" for c in chars]
    ids = {token: i for i, token in enumerate(dict.fromkeys(vocab))}
    core = Tokenizer(WordPiece(ids, unk_token="[UNK]"))
    core.normalizer = BertNormalizer(lowercase=True)
    core.pre_tokenizer = BertPreTokenizer()
    core.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]",
                                        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]", model_max_length=128)
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=2 * hidden,
                        max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(path, safe_serialization=True)
    return path


def make_nlu_gpt2(path, *, hidden: int = 64, layers: int = 4, seed: int = 0):
    """A small GPT-2 (decoder) sharing the synthetic tasks' tokenizer."""
    import shutil
    from pathlib import Path

    import torch
    from transformers import GPT2Config, GPT2Model

    path = Path(path)
    source = make_nlu_bert(path.parent / f"{path.name}_tokenizer", hidden=8, layers=1)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, path / name)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=98, n_embd=hidden, n_layer=layers, n_head=4,
                        n_positions=128, bos_token_id=2, eos_token_id=3)
    GPT2Model(config).eval().save_pretrained(path, safe_serialization=True)
    return path
