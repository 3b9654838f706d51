"""``prefix``: key/value prefixes at every layer (Li & Liang, 2021), trained directly.

The prefixes are attended to but produce no output positions, so hidden states
stay aligned with the input tokens. Position indices start after the prefix (as
in the backbone's handling of cached keys), so windows are shortened by the
prefix length at featurization.
"""

from __future__ import annotations

import copy

from torch import nn

from ._common import TrainedMethod
from ._peft import n_virtual_default, wrap
from .base import register_method


class PrefixFeatureModel(nn.Module):
    """A prefix-tuned backbone whose ``config`` announces the shorter usable length."""

    def __init__(self, model, n_prefix: int):
        super().__init__()
        self.model = model
        self.config = copy.deepcopy(model.get_base_model().config)
        for name in ("max_position_embeddings", "n_positions"):
            value = getattr(self.config, name, None)
            if isinstance(value, int) and value > n_prefix:
                setattr(self.config, name, value - n_prefix)

    def forward(self, **kwargs):
        """Call the wrapped model."""
        return self.model(**kwargs)


@register_method("prefix")
class PrefixTuning(TrainedMethod):
    """Prefix tuning without reparameterisation."""

    prompt_learning = True
    default_learning_rate = 1e-2
    settings_schema = {"num_virtual_tokens": (int, 20)}
    projection = False

    def __init__(self, **settings):
        super().__init__(**settings)
        n_virtual_default(self.settings)

    def peft_config(self):
        """Build the peft configuration."""
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(task_type=TaskType.FEATURE_EXTRACTION,
                                  num_virtual_tokens=self.settings["num_virtual_tokens"])

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Add the prefixes (no positions are prepended to the output)."""
        return wrap(backbone, self.peft_config()), 0

    def position_offset(self) -> int:
        """Prefix length (positions are shifted by it)."""
        return self.settings["num_virtual_tokens"]

    def for_features(self, backbone):
        """Wrap so that featurization windows leave room for the prefix."""
        return PrefixFeatureModel(backbone, self.settings["num_virtual_tokens"])
