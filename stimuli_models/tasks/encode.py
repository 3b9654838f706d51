"""Tokenize task examples into model inputs, and pad them into batches.

Encoded items are dictionaries of Python lists (``input_ids``, ``token_type_ids``
and the type's targets); :func:`collate` pads a list of items into tensors.
Targets: ``labels`` (class index; per-token indices with -100 for positions that
are not scored; index of the right choice) or ``start_positions`` /
``end_positions`` (question answering).
"""

from __future__ import annotations

IGNORE = -100


def _pair_ids(tokenizer, text, pair, max_length, truncation=True, **kwargs):
    enc = tokenizer(text, pair, truncation=truncation, max_length=max_length,
                    return_token_type_ids=True, **kwargs)
    return enc


def encode_examples(task, tokenizer, examples: list[dict], *, max_length: int,
                    train: bool) -> list[dict]:
    """Encode the examples of a :class:`~stimuli_models.tasks.base.TaskData`.

    Parameters
    ----------
    task : TaskData
        Gives the type and label vocabulary.
    tokenizer : PreTrainedTokenizerFast
        The model's tokenizer.
    examples : list of dict
        ``task.train`` or ``task.dev``.
    max_length : int
        Maximum tokens per sequence (including special tokens).
    train : bool
        For question answering, training drops questions whose answer falls
        outside the truncated context; dev keeps them (they count as misses).

    Returns
    -------
    list of dict
        One item per example (index in ``example``).
    """
    label_index = {label: i for i, label in enumerate(task.labels)}
    items = []
    for index, ex in enumerate(examples):
        if task.type in ("sequence-classification", "sentence-pair-classification"):
            enc = _pair_ids(tokenizer, ex["text"], ex.get("text_pair"), max_length)
            items.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                          "labels": label_index[ex["label"]], "example": index})
        elif task.type == "token-classification":
            enc = tokenizer(ex["tokens"], is_split_into_words=True, truncation=True,
                            max_length=max_length, return_token_type_ids=True)
            labels, previous = [], None
            for word in enc.word_ids():
                scored = word is not None and word != previous
                labels.append(label_index[ex["tags"][word]] if scored else IGNORE)
                previous = word
            items.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                          "labels": labels, "word_ids": enc.word_ids(), "example": index})
        elif task.type == "multiple-choice":
            encs = [_pair_ids(tokenizer, ex["context"], choice, max_length)
                    for choice in ex["choices"]]
            items.append({"input_ids": [e["input_ids"] for e in encs],
                          "token_type_ids": [e["token_type_ids"] for e in encs],
                          "labels": int(ex["label"]), "example": index})
        else:
            item = _encode_qa(tokenizer, ex, max_length, train)
            if item is not None:
                item["example"] = index
                items.append(item)
    return items


def _encode_qa(tokenizer, ex, max_length, train):
    enc = tokenizer(ex["question"], ex["context"], truncation="only_second",
                    max_length=max_length, return_offsets_mapping=True,
                    return_token_type_ids=True)
    sequence = enc.sequence_ids()
    offsets = [tuple(o) if s == 1 else None
               for o, s in zip(enc["offset_mapping"], sequence, strict=False)]
    answer = ex["answers"][0]
    a0, a1 = answer["start"], answer["start"] + len(answer["text"])
    start = end = None
    for position, span in enumerate(offsets):
        if span is None or span[1] <= span[0]:
            continue
        if start is None and span[0] <= a0 < span[1] or start is None and span[0] >= a0:
            start = position
        if span[0] < a1:
            end = position
    reachable = start is not None and end is not None and end >= start and \
        offsets[end] is not None and offsets[end][1] >= a1
    if train and not reachable:
        return None
    return {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
            "start_positions": start if reachable else 0,
            "end_positions": end if reachable else 0, "offsets": offsets}


def collate(items: list[dict], pad_id: int):
    """Pad encoded items into a batch of tensors.

    Returns
    -------
    dict of Tensor
        ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape
        (batch, length) — (batch, choices, length) for multiple choice, ``choices``
        the most any item has (the others' missing choices are masked out) — and
        the targets present in the items.
    """
    import torch

    def pad(rows, value, width):
        return [r + [value] * (width - len(r)) for r in rows]

    first = items[0]["input_ids"]
    if first and isinstance(first[0], list):  # multiple choice
        width = max(len(seq) for it in items for seq in it["input_ids"])
        # items with fewer choices get empty ones (all-zero mask), which the head never picks
        n_choices = max(len(it["input_ids"]) for it in items)
        empty = [[]] * n_choices
        ids = [pad(it["input_ids"] + empty[len(it["input_ids"]):], pad_id, width)
               for it in items]
        types = [pad(it["token_type_ids"] + empty[len(it["input_ids"]):], 0, width)
                 for it in items]
        mask = [pad([[1] * len(s) for s in it["input_ids"]] + empty[len(it["input_ids"]):], 0,
                    width) for it in items]
    else:
        width = max(len(it["input_ids"]) for it in items)
        ids = pad([it["input_ids"] for it in items], pad_id, width)
        types = pad([it["token_type_ids"] for it in items], 0, width)
        mask = pad([[1] * len(it["input_ids"]) for it in items], 0, width)
    batch = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
             "token_type_ids": torch.tensor(types)}
    if "labels" in items[0]:
        labels = [it["labels"] for it in items]
        if isinstance(labels[0], list):
            labels = pad(labels, IGNORE, width)
        batch["labels"] = torch.tensor(labels)
    if "start_positions" in items[0]:
        batch["start_positions"] = torch.tensor([it["start_positions"] for it in items])
        batch["end_positions"] = torch.tensor([it["end_positions"] for it in items])
    return batch
