"""``prefix``: prefix tuning (Li & Liang, 2021), reparameterised by an MLP while training.

Every layer gets ``num_virtual_tokens`` key/value prefixes. As in the paper they
are produced from ``num_virtual_tokens`` embeddings by a two-layer MLP of width
``projection_size`` while training (the reparameterisation that makes training
stable); once trained, the model is defined by the prefixes alone, which is what
the trainable count reports (``trainable_params``; the embeddings and MLP trained
are ``training_params``). The prefixes are attended to but produce no output
positions, so hidden states stay aligned with the input tokens. Position indices
start after the prefix (as in the backbone's handling of cached keys), so
windows are shortened by the prefix length at featurization. ``untrained = true``
is the control: the same prefixes at their initialisation, not trained.
"""

from __future__ import annotations

import copy

from torch import nn

from ..errors import SettingsError
from ._common import TrainedMethod
from ._peft import n_virtual_default, wrap


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


class PrefixTuning(TrainedMethod):
    """Prefix tuning with the MLP reparameterisation of Li & Liang (2021)."""

    name = "prefix"

    prompt_learning = True
    default_learning_rate = 5e-3
    settings_schema = {"num_virtual_tokens": (int, 20), "projection_size": (int, 512),
                       "untrained": (bool, False)}

    def __init__(self, **settings):
        super().__init__(**settings)
        n_virtual_default(self.settings)
        if self.settings["projection_size"] < 1:
            raise SettingsError(f"'projection_size' of tuning method '{self.name}' must be at "
                                f"least 1; got {self.settings['projection_size']}.")

    def reparameterised(self) -> bool:
        """Whether an MLP produces the prefixes while training."""
        return True

    def peft_config(self):
        """Build the peft configuration."""
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(task_type=TaskType.FEATURE_EXTRACTION,
                                  num_virtual_tokens=self.settings["num_virtual_tokens"],
                                  prefix_projection=self.reparameterised(),
                                  encoder_hidden_size=self.settings["projection_size"])

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Add the prefixes (no positions are prepended to the output)."""
        return wrap(backbone, self.peft_config()), 0

    def feature_parameter_count(self, backbone, trainable: int) -> int:
        """Scalars of the key/value prefixes of every layer (what the tuned model holds)."""
        config = backbone.peft_config["default"]
        return int(config.num_virtual_tokens * config.num_layers * 2 * config.token_dim)

    def position_offset(self) -> int:
        """Prefix length (positions are shifted by it)."""
        return self.settings["num_virtual_tokens"]

    def for_features(self, backbone):
        """Wrap so that featurization windows leave room for the prefix."""
        return PrefixFeatureModel(backbone, self.settings["num_virtual_tokens"])
