"""``scratch``: the same architecture, randomly initialised, trained on the task."""

from __future__ import annotations

from ..models import check_model_dir, load_tokenizer, quiet_transformers
from .full import Full


class Scratch(Full):
    """Train from scratch: the pretrained model's config, none of its weights.

    The initialisation is the architecture's own (``_init_weights``) under the
    tuning seed, so the baseline is reproducible.
    """

    name = "scratch"

    default_learning_rate = 1e-4
    settings_schema: dict = {}

    def initial_backbone(self, model_dir, *, seed, allow_pickle, trust_remote_code):
        """Random weights from the model's config; the pretrained tokenizer."""
        import torch
        from transformers import AutoConfig, AutoModel

        check_model_dir(model_dir, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        quiet_transformers()
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True,
                                            trust_remote_code=trust_remote_code)
        torch.manual_seed(seed)
        model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
        return model.float().eval(), load_tokenizer(model_dir,
                                                    trust_remote_code=trust_remote_code)
