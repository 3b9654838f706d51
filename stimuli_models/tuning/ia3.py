"""``ia3``: learned rescaling of keys, values and feed-forward activations (Liu et al., 2022)."""

from __future__ import annotations

from ._common import TrainedMethod
from ._peft import target_list, wrap
from .base import register_method


@register_method("ia3")
class IA3(TrainedMethod):
    """(IA)^3 with peft's default target modules unless given."""

    default_learning_rate = 3e-3
    settings_schema = {"target_modules": (list, None), "feedforward_modules": (list, None)}

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Add the rescaling vectors."""
        from peft import IA3Config, TaskType

        config = IA3Config(task_type=TaskType.FEATURE_EXTRACTION,
                           target_modules=target_list(self.settings["target_modules"]),
                           feedforward_modules=target_list(self.settings["feedforward_modules"]))
        return wrap(backbone, config), 0

    def for_features(self, backbone):
        """Fold the scaling vectors into the weights."""
        return backbone.merge_and_unload()
