"""Task heads on top of any Hugging Face backbone that returns hidden states.

:class:`TaskModel` pairs a backbone (possibly wrapped by a tuning method) with a
small head: a linear classifier on the mean of the sequence's token states
(sequence and sentence-pair classification, multiple choice), a per-token
classifier (token classification) or start/end logits (question answering).
Positions a soft-prompt method prepends (``n_virtual``) are dropped before the
head, so the head sees the same positions for every method.
"""

from __future__ import annotations

import torch
from torch import nn

from .encode import IGNORE


def backbone_hidden_size(config) -> int:
    """Hidden size of a transformers config (``hidden_size``, ``n_embd`` or ``d_model``)."""
    for name in ("hidden_size", "n_embd", "d_model", "dim"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ValueError("cannot tell the hidden size of the model from its config")


class TaskModel(nn.Module):
    """A backbone and a task head.

    Parameters
    ----------
    backbone : nn.Module
        Returns ``last_hidden_state`` of shape (batch, n_virtual + length, hidden).
    task_type : str
        One of :data:`stimuli_models.tasks.base.TASK_TYPES`.
    n_labels : int
        Classes (1 for question answering and multiple choice).
    hidden_size : int
        Width of the backbone's states.
    n_virtual : int
        Soft-prompt positions the backbone prepends to its output.
    use_token_types : bool
        Pass ``token_type_ids`` to the backbone (models with segment embeddings).
    dropout : float
        Dropout before the head.
    """

    def __init__(self, backbone: nn.Module, task_type: str, n_labels: int, hidden_size: int,
                 *, n_virtual: int = 0, use_token_types: bool = True, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.task_type = task_type
        self.n_virtual = n_virtual
        self.use_token_types = use_token_types
        self.dropout = nn.Dropout(dropout)
        outputs = 2 if task_type == "question-answering" else n_labels
        self.head = nn.Linear(hidden_size, outputs)

    def _states(self, input_ids, attention_mask, token_type_ids):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.use_token_types and token_type_ids is not None:
            if self.n_virtual:
                zeros = token_type_ids.new_zeros(token_type_ids.shape[0], self.n_virtual)
                token_type_ids = torch.cat([zeros, token_type_ids], dim=1)
            kwargs["token_type_ids"] = token_type_ids
        out = self.backbone(**kwargs)
        states = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return states[:, self.n_virtual:]

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None,
                start_positions=None, end_positions=None):
        """Logits and (when targets are given) the loss.

        Returns
        -------
        loss : Tensor or None
        logits : Tensor
            (batch, n_labels), (batch, length, n_labels), (batch, choices) or
            (batch, length, 2) for question answering.
        """
        choices = valid = None
        if input_ids.dim() == 3:  # multiple choice: (batch, choices, length)
            choices = input_ids.shape[1]
            valid = attention_mask.sum(-1) > 0  # choices padded by collate have no tokens
            input_ids = input_ids.flatten(0, 1)
            attention_mask = attention_mask.flatten(0, 1).clone()
            attention_mask[~valid.flatten(), 0] = 1  # finite states for padded rows
            token_type_ids = token_type_ids.flatten(0, 1) if token_type_ids is not None else None
        states = self._states(input_ids, attention_mask, token_type_ids)
        if self.task_type in ("token-classification", "question-answering"):
            logits = self.head(self.dropout(states))
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.head(self.dropout(pooled))
            if choices is not None:  # padded choices can be neither chosen nor learnt
                logits = logits.view(-1, choices).masked_fill(~valid, -1e4)
        loss = None
        if self.task_type == "question-answering":
            if start_positions is not None:
                blocked = attention_mask == 0
                start = logits[..., 0].float().masked_fill(blocked, -1e4)
                end = logits[..., 1].float().masked_fill(blocked, -1e4)
                loss = (nn.functional.cross_entropy(start, start_positions)
                        + nn.functional.cross_entropy(end, end_positions)) / 2
        elif labels is not None:
            loss = nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                               labels.reshape(-1), ignore_index=IGNORE)
        return loss, logits
