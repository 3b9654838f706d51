"""``adapter``: Houlsby bottleneck adapters after attention and feed-forward (Houlsby et al., 2019).

Each adapter is ``x + W_up(gelu(W_down(x)))`` with a bottleneck of
``hidden_size // reduction_factor`` (or ``bottleneck``) units. It is inserted
after the output projection of every attention block and every feed-forward
block, before the residual connection and layer normalisation, exactly where
Houlsby et al. put it. The up-projection starts at zero, so tuning starts from
the pretrained function. Layer normalisations train too (as in the paper) unless
``train_layernorm = false``.
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import SettingsError
from ..tasks.heads import backbone_hidden_size
from ._common import TrainedMethod, count

#: Output projections of attention and feed-forward blocks, per architecture family.
DEFAULT_TARGETS = (
    r"attention\.output\.dense$",  # BERT, RoBERTa, ELECTRA, XLM-R (attention)
    r"layer\.\d+\.output\.dense$",  # BERT-like (feed-forward)
    r"attn\.c_proj$", r"mlp\.c_proj$",  # GPT-2
    r"attention\.out_lin$", r"ffn\.lin2$",  # DistilBERT
    r"self_attn\.o_proj$", r"mlp\.down_proj$",  # Llama, Mistral, Qwen
    r"self_attn\.out_proj$", r"fc2$",  # BART/OPT/Whisper-style
)


class Bottleneck(nn.Module):
    """The adapter: down-projection, GELU, up-projection, residual."""

    def __init__(self, hidden: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)
        self.act = nn.GELU()
        nn.init.normal_(self.down.weight, std=1e-3)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        """``x + up(gelu(down(x)))``."""
        return x + self.up(self.act(self.down(x)))


class WithAdapter(nn.Module):
    """A projection followed by an adapter."""

    def __init__(self, projection: nn.Module, hidden: int, bottleneck: int):
        super().__init__()
        self.projection = projection
        self.adapter = Bottleneck(hidden, bottleneck)

    def forward(self, *args, **kwargs):
        """Project, then adapt."""
        return self.adapter(self.projection(*args, **kwargs))


def _out_features(module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    weight = getattr(module, "weight", None)  # GPT-2 Conv1D stores (in, out)
    if weight is not None and type(module).__name__ == "Conv1D":
        return int(weight.shape[1])
    return None


class Adapter(TrainedMethod):
    """Houlsby adapters."""

    name = "adapter"

    default_learning_rate = 1e-3
    settings_schema = {"reduction_factor": (int, 16), "bottleneck": (int, None),
                       "train_layernorm": (bool, True), "target_modules": (list, None)}

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Insert adapters after every matching projection."""
        patterns = [re.compile(p) for p in (self.settings["target_modules"] or DEFAULT_TARGETS)]

        hidden = backbone_hidden_size(backbone.config)
        size = self.settings["bottleneck"] or max(1, hidden // self.settings["reduction_factor"])
        targets = [(name, module) for name, module in backbone.named_modules()
                   if any(p.search(name) for p in patterns) and _out_features(module) == hidden]
        if not targets:
            raise SettingsError(f"no attention or feed-forward output projection of width "
                                f"{hidden} found in {type(backbone).__name__} for adapters; set "
                                "'target_modules' (regular expressions on module names).")
        for name, module in targets:
            parent_name, _, child = name.rpartition(".")
            parent = backbone.get_submodule(parent_name) if parent_name else backbone
            setattr(parent, child, WithAdapter(module, hidden, size))
        for name, param in backbone.named_parameters():
            is_norm = self.settings["train_layernorm"] and re.search(r"(layer_?norm|ln_\d|ln_f|"
                                                                     r"\bnorm)", name.lower())
            if ".adapter." in name or is_norm:
                param.requires_grad_(True)
        self.n_adapters = len(targets)
        self.adapter_parameters = count(p for n, p in backbone.named_parameters()
                                        if ".adapter." in n)
        return backbone, 0
