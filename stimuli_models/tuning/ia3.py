"""``ia3``: learned rescaling of keys, values and feed-forward activations (Liu et al., 2022).

(IA)^3 multiplies the attention keys and values and the inner activation of
each feed-forward block by trained vectors. By default the targets are found
in the model as the paper names them: the key and value projections and the
feed-forward block's second (down) projection, whose *input* is rescaled. The
attention output projection is not a target (peft's defaults for BERT-like models
also rescale it, through the shared name ``output.dense``). Models whose keys
and values come from one fused projection (GPT-2's ``c_attn``) use peft's
defaults for the architecture; ``target_modules`` and ``feedforward_modules``
override both.
"""

from __future__ import annotations

from ._common import TrainedMethod, transformer_layers
from ._peft import target_list, wrap

#: Ends of module names: keys, values and feed-forward down projections.
KEY_NAMES = ("attention.self.key", "self_attn.k_proj", "attention.k_lin", "SelfAttention.k",
             "attn.k_proj", "attention.key")
VALUE_NAMES = ("attention.self.value", "self_attn.v_proj", "attention.v_lin",
               "SelfAttention.v", "attn.v_proj", "attention.value")
FEEDFORWARD_NAMES = ("output.dense", "mlp.down_proj", "ffn.lin2", "DenseReluDense.wo",
                     "mlp.fc2", "mlp.dense_4h_to_h", "intermediate.output.dense")


def liu_targets(model) -> tuple[list[str], list[str]] | None:
    """Key, value and feed-forward down-projection modules of a model, as in Liu et al.

    Parameters
    ----------
    model : torch.nn.Module
        The backbone.

    Returns
    -------
    (list of str, list of str) or None
        Target module names and the feed-forward ones among them; None when the
        model has no separate key, value and feed-forward projections in every layer.
    """
    from torch import nn

    base, layers = transformer_layers(model)
    targets, feedforward = [], []
    for index, layer in enumerate(layers):
        names = [n for n, m in layer.named_modules() if isinstance(m, nn.Linear)]
        keys = [n for n in names if n.endswith(KEY_NAMES)]
        values = [n for n in names if n.endswith(VALUE_NAMES)]
        ffn = [n for n in names if n.endswith(FEEDFORWARD_NAMES) and "attention" not in n
               and "attn" not in n.lower()]
        if len(keys) != 1 or len(values) != 1 or len(ffn) != 1:
            return None
        prefix = f"{base}.{index}." if base else f"{index}."
        targets += [prefix + keys[0], prefix + values[0], prefix + ffn[0]]
        feedforward.append(prefix + ffn[0])
    return targets, feedforward


class IA3(TrainedMethod):
    """(IA)^3 on keys, values and feed-forward activations unless the targets are given."""

    name = "ia3"

    default_learning_rate = 3e-3
    settings_schema = {"target_modules": (list, None), "feedforward_modules": (list, None)}

    def prepare(self, backbone, *, model_dir, tokenizer, task=None):
        """Add the rescaling vectors."""
        from peft import IA3Config, TaskType

        targets = target_list(self.settings["target_modules"])
        feedforward = target_list(self.settings["feedforward_modules"])
        if targets is None and feedforward is None:
            found = liu_targets(backbone)
            if found is not None:
                targets, feedforward = found
        config = IA3Config(task_type=TaskType.FEATURE_EXTRACTION, target_modules=targets,
                           feedforward_modules=feedforward)
        return wrap(backbone, config), 0

    def for_features(self, backbone):
        """Fold the scaling vectors into the weights."""
        return backbone.merge_and_unload()
