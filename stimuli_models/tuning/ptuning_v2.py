"""``ptuning-v2``: deep prompt tuning (Liu et al., 2022, P-tuning v2).

Trainable key/value prompts at every layer, as prefix tuning, trained directly by
default; the MLP reparameterisation is optional (``projection = true``, width
``projection_size``), as in the paper, which found it helps on some tasks only.
The trainable count is that of the prompts the tuned model holds (with the MLP,
the training-time count is reported apart as ``training_params``).
"""

from __future__ import annotations

from .prefix import PrefixTuning


class PTuningV2(PrefixTuning):
    """Deep prompt tuning; reparameterisation optional."""

    name = "ptuning-v2"

    default_learning_rate = 1e-2
    settings_schema = {"num_virtual_tokens": (int, 20), "projection": (bool, False),
                       "projection_size": (int, 512), "untrained": (bool, False)}

    def reparameterised(self) -> bool:
        """The ``projection`` setting."""
        return bool(self.settings["projection"])
