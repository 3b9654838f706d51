"""``full``: fine-tune every parameter of the backbone (and the task head)."""

from __future__ import annotations

from ._common import TrainedMethod


class Full(TrainedMethod):
    """Full fine-tuning (share of trained parameters: 1)."""

    name = "full"

    default_learning_rate = 5e-5
    settings_schema: dict = {}

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Every parameter trains."""
        for param in backbone.parameters():
            param.requires_grad_(True)
        return backbone, 0
