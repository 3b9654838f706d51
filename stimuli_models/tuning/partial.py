"""``partial``: fine-tune only the top ``k`` transformer layers (and the head).

``k`` sets the number of layers; alternatively ``share`` asks for the top
layers whose parameters make up (closest to) that share of the model, which is
the "proportion of tuned parameters" axis of a sweep. Normalisation modules that
follow the layer stack (``ln_f`` of GPT-2, a final ``norm``) train with them.
"""

from __future__ import annotations

from ..errors import SettingsError
from ._common import TrainedMethod, count, transformer_layers


class Partial(TrainedMethod):
    """Top-k layer fine-tuning."""

    name = "partial"

    default_learning_rate = 1e-4
    settings_schema = {"k": (int, None), "share": (float, None)}

    def __init__(self, **settings):
        super().__init__(**settings)
        k, share = self.settings["k"], self.settings["share"]
        if k is not None and share is not None:
            raise SettingsError("tuning method 'partial' takes 'k' or 'share', not both.")
        if k is None and share is None:
            self.settings["k"] = 2
        if k is not None and k < 1:
            raise SettingsError(f"'k' of tuning method 'partial' must be at least 1; got {k}.")
        if share is not None and not 0.0 < share <= 1.0:
            raise SettingsError(f"'share' of tuning method 'partial' must be in (0, 1]; "
                                f"got {share}.")

    def n_top_layers(self, backbone) -> int:
        """Count the top layers that train."""
        _, layers = transformer_layers(backbone)
        if self.settings["k"] is not None:
            if self.settings["k"] > len(layers):
                raise SettingsError(f"'k' of tuning method 'partial' is {self.settings['k']} "
                                    f"but the model has {len(layers)} layers.")
            return self.settings["k"]
        total = count(backbone.parameters())
        target = self.settings["share"] * total
        sizes = [count(layer.parameters()) for layer in reversed(layers)]
        cumulative, best, best_gap = 0, 1, None
        for k, size in enumerate(sizes, start=1):
            cumulative += size
            gap = abs(cumulative - target)
            if best_gap is None or gap < best_gap:
                best, best_gap = k, gap
        return best

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Unfreeze the top layers and any final normalisation after them."""
        _, layers = transformer_layers(backbone)
        k = self.n_top_layers(backbone)
        for layer in list(layers)[len(layers) - k:]:
            for param in layer.parameters():
                param.requires_grad_(True)
        for module_name, module in backbone.named_children():
            if "norm" in module_name.lower() or module_name == "ln_f":
                for param in module.parameters():
                    param.requires_grad_(True)
        return backbone, 0
