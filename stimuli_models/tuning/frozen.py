"""``frozen``: the pretrained model as it is (probing baseline, no training)."""

from __future__ import annotations

from pathlib import Path

from ..models import check_model_dir, load_model, model_n_layers
from ..story_features import LoadedModel
from .base import TuningMethod, TuningResult


class Frozen(TuningMethod):
    """No tuning: features come from the pretrained weights."""

    name = "frozen"

    needs_task = False
    settings_schema: dict = {}

    def tune(self, model_dir: Path, task, out_dir: Path, *, seed: int, device: str,
             training=None, **kwargs) -> TuningResult:
        """Count parameters; nothing is trained or saved."""
        import torch  # noqa: F401
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        with torch.device("meta"):
            model = AutoModel.from_config(config)
        total = sum(p.numel() for p in model.parameters())
        return TuningResult(method=self.name, trainable_params=0, total_params=int(total))

    def load_for_features(self, model_dir: Path, variant_dir: Path | None, *, device: str,
                          dtype: str = "float32", allow_pickle: bool = False,
                          trust_remote_code: bool = False) -> LoadedModel:
        """Load the pretrained model."""
        config = check_model_dir(model_dir, allow_pickle=allow_pickle,
                                 trust_remote_code=trust_remote_code)
        model, tokenizer = load_model(model_dir, device=device, dtype=dtype,
                                      allow_pickle=allow_pickle,
                                      trust_remote_code=trust_remote_code)
        return LoadedModel(model=model, tokenizer=tokenizer, n_layers=model_n_layers(config))
