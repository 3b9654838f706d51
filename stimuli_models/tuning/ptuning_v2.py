"""``ptuning-v2``: deep prompts at every layer with a reparameterisation MLP (Liu et al., 2022).

As prefix tuning, but the per-layer key/value prompts are produced from
``num_virtual_tokens`` embeddings by a two-layer MLP of width
``projection_size`` while training; the method the original study used. The
trainable count includes the MLP.
"""

from __future__ import annotations

from ..errors import SettingsError
from .base import register_method
from .prefix import PrefixTuning


@register_method("ptuning-v2")
class PTuningV2(PrefixTuning):
    """Deep prompt tuning with reparameterisation."""

    default_learning_rate = 5e-3
    settings_schema = {"num_virtual_tokens": (int, 20), "projection_size": (int, 512)}

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.settings["projection_size"] < 1:
            raise SettingsError("'projection_size' of tuning method 'ptuning-v2' must be at "
                                f"least 1; got {self.settings['projection_size']}.")

    def peft_config(self):
        """Prefix tuning with ``prefix_projection``."""
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(task_type=TaskType.FEATURE_EXTRACTION,
                                  num_virtual_tokens=self.settings["num_virtual_tokens"],
                                  prefix_projection=True,
                                  encoder_hidden_size=self.settings["projection_size"])
