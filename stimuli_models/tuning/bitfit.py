"""``bitfit``: train only the bias terms of the backbone (Ben Zaken et al., 2022)."""

from __future__ import annotations

from ._common import TrainedMethod


class BitFit(TrainedMethod):
    """Bias-only fine-tuning."""

    name = "bitfit"

    default_learning_rate = 1e-3
    settings_schema: dict = {}

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Every parameter named ``*bias`` trains."""
        for name, param in backbone.named_parameters():
            if name.endswith("bias"):
                param.requires_grad_(True)
        return backbone, 0
