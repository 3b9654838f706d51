"""``lora``: low-rank updates of attention (or chosen) projections (Hu et al., 2022).

Featurization uses the merged weights, so a LoRA variant runs exactly as fast as
the pretrained model.
"""

from __future__ import annotations

from ._common import TrainedMethod
from ._peft import target_list, wrap


class LoRA(TrainedMethod):
    """LoRA with rank ``r``, scaling ``alpha / r``, dropout and target modules."""

    name = "lora"

    default_learning_rate = 5e-4
    settings_schema = {"r": (int, 8), "alpha": ((int, float), 16), "dropout": (float, 0.1),
                       "target_modules": (list, None)}

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Add LoRA matrices (peft's defaults per architecture unless targets are given)."""
        from peft import LoraConfig, TaskType

        config = LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=self.settings["r"],
                            lora_alpha=self.settings["alpha"],
                            lora_dropout=self.settings["dropout"],
                            target_modules=target_list(self.settings["target_modules"]))
        return wrap(backbone, config), 0

    def for_features(self, backbone):
        """Merge the low-rank updates into the weights."""
        return backbone.merge_and_unload()
