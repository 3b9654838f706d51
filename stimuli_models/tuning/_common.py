"""Shared machinery of the methods that train: build, train, save, reload.

A training method only says which parameters train and how the backbone is
changed (:meth:`TrainedMethod.prepare`), and what the featurization model is
(:meth:`TrainedMethod.for_features`). Only the tensors that were trained are
saved (``tuned.safetensors``: the whole backbone for full tuning, the top
layers for partial tuning, biases, adapters or soft prompts otherwise), with the
task head apart (``head.safetensors``); reloading rebuilds the same structure on
the pretrained weights and overwrites the trained tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..cache import atomic_file, atomic_write_json
from ..errors import InvalidModelError, SettingsError
from ..models import check_model_dir, load_model, model_n_layers
from ..story_features import LoadedModel
from ..tasks.encode import encode_examples
from ..tasks.heads import TaskModel, backbone_hidden_size
from ..training import TrainingSettings, TrainReport, curve_table, train
from .base import TuningMethod, TuningResult

WEIGHTS = "tuned.safetensors"
HEAD = "head.safetensors"
METHOD_FILE = "method.json"
CURVE = "training_curve.tsv"


def count(params) -> int:
    """Count the scalars in an iterable of tensors."""
    return int(sum(p.numel() for p in params))


def transformer_layers(model):
    """Find the module list of the transformer blocks and its qualified name.

    It is the largest list of ``num_hidden_layers`` modules.
    """
    from torch import nn

    n_layers = model_n_layers(model.config.to_dict())
    best = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            size = count(module.parameters())
            if best is None or size > best[2]:
                best = (name, module, size)
    if best is None:
        raise InvalidModelError("cannot find the transformer layers of the model "
                                f"({type(model).__name__}).")
    return best[0], best[1]


def _save_tensors(tensors: dict, path: Path) -> None:
    from safetensors.torch import save

    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_file(path) as handle:
        handle.write(save(data))


def _load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


class TrainedMethod(TuningMethod):
    """Base of every method that trains on a task."""

    default_learning_rate = 1e-4
    #: peft prompt-learning methods ignore token type ids
    prompt_learning = False

    @property
    def depends_on_task(self) -> bool:
        """False for an untrained control whose initialisation reads nothing of the task.

        Such a control is the same for every task (same model, settings and seed), so
        :meth:`tune` accepts ``task=None`` for it.
        """
        return not self.settings.get("untrained") or self.initialisation_uses_task()

    # -- what subclasses define -------------------------------------------------
    def initialisation_uses_task(self) -> bool:
        """Whether the trainable tensors start from something the task gives.

        Default False: they start from the seed (and the pretrained weights) alone.
        """
        return False

    def prepare(self, backbone, *, model_dir: Path, tokenizer, task=None):
        """Set ``requires_grad`` and change the backbone; return ``(backbone, n_virtual)``.

        ``task`` is None when rebuilding for featurization (initialisations that
        need the task are then irrelevant: trained tensors are loaded over them) and
        when setting up a control that does not depend on the task.
        """
        raise NotImplementedError

    def for_features(self, backbone):
        """Return the module featurization calls (default: the backbone itself)."""
        return backbone

    def initial_backbone(self, model_dir: Path, *, seed: int, allow_pickle: bool,
                         trust_remote_code: bool):
        """Return the starting model (default: pretrained weights) and the tokenizer."""
        return load_model(model_dir, device="cpu", dtype="float32", allow_pickle=allow_pickle,
                          trust_remote_code=trust_remote_code)

    # -- common implementation ----------------------------------------------------
    def tune(self, model_dir: Path, task, out_dir: Path, *, seed: int, device: str,
             training=None, allow_pickle: bool = False, trust_remote_code: bool = False,
             log=None) -> TuningResult:
        """Train on ``task`` and save the trained tensors, head and curve into ``out_dir``."""
        import torch

        if task is None and self.depends_on_task:
            raise SettingsError(f"tuning method '{self.name}' needs a task; give the variant "
                                "a 'task'.")
        settings = training if isinstance(training, TrainingSettings) else \
            TrainingSettings.from_dict(training)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        base, tokenizer = self.initial_backbone(model_dir, seed=seed, allow_pickle=allow_pickle,
                                                trust_remote_code=trust_remote_code)
        total = count(base.parameters())
        hidden = backbone_hidden_size(base.config)
        use_types = getattr(base.config, "type_vocab_size", 0) > 1 and not self.prompt_learning
        if settings.gradient_checkpointing and getattr(base, "supports_gradient_checkpointing",
                                                       False):
            base.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        for param in base.parameters():
            param.requires_grad_(False)
        torch.manual_seed(seed)
        backbone, n_virtual = self.prepare(base, model_dir=model_dir, tokenizer=tokenizer,
                                           task=task)
        training_params = count(p for p in backbone.parameters() if p.requires_grad)
        trainable = self.feature_parameter_count(backbone, training_params)
        if task is None:  # a task-independent untrained control: the initial tensors only
            return self._save_control(backbone, out_dir, n_virtual, hidden, trainable, total,
                                      training_params)
        torch.manual_seed(seed)
        model = TaskModel(backbone, task.type, task.n_labels, hidden, n_virtual=n_virtual,
                          use_token_types=use_types).to(device)
        max_length = settings.max_length
        limit = getattr(base.config, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0:
            max_length = min(max_length, limit - n_virtual - self.position_offset())
        train_items = encode_examples(task, tokenizer, task.train, max_length=max_length,
                                      train=True)
        dev_items = encode_examples(task, tokenizer, task.dev, max_length=max_length, train=False)
        if self.settings.get("untrained"):  # the control: virtual tokens as initialised

            report = TrainReport()
        else:
            report = train(model, task, train_items, dev_items, settings,
                           learning_rate=self.default_learning_rate, seed=seed, device=device,
                           pad_id=tokenizer.pad_token_id or 0, log=log)
        _save_tensors({n: p for n, p in backbone.named_parameters() if p.requires_grad},
                      out_dir / WEIGHTS)
        _save_tensors(dict(model.head.state_dict()), out_dir / HEAD)
        with atomic_file(out_dir / CURVE, "w") as handle:
            handle.write(curve_table(report))
        atomic_write_json(out_dir / METHOD_FILE, {
            "method": self.name, "settings": self.settings, "n_virtual_tokens": n_virtual,
            "task_type": task.type, "labels": task.labels, "hidden_size": hidden,
            "head_parameters": count(model.head.parameters()),
        })
        return TuningResult(
            method=self.name, trainable_params=trainable, total_params=total,
            dev_metric=report.best_metric, dev_metric_name=report.metric_name,
            steps=report.steps,
            extra={"dev_metrics": report.dev_metrics, "best_step": report.best_step,
                   "train_samples": report.samples, "train_seconds": report.seconds,
                   "stopped_early": report.stopped_early, "n_train": len(train_items),
                   "n_dev": len(dev_items), "learning_rate":
                       settings.learning_rate or self.default_learning_rate,
                   "head_parameters": count(model.head.parameters()),
                   "training_params": training_params},
        )

    def _save_control(self, backbone, out_dir: Path, n_virtual: int, hidden: int,
                      trainable: int, total: int, training_params: int) -> TuningResult:
        """Save an untrained control set up without a task (no head, no training curve)."""
        _save_tensors({n: p for n, p in backbone.named_parameters() if p.requires_grad},
                      out_dir / WEIGHTS)
        with atomic_file(out_dir / CURVE, "w") as handle:
            handle.write(curve_table(TrainReport()))
        atomic_write_json(out_dir / METHOD_FILE, {
            "method": self.name, "settings": self.settings, "n_virtual_tokens": n_virtual,
            "task_type": None, "labels": None, "hidden_size": hidden, "head_parameters": 0,
        })
        return TuningResult(method=self.name, trainable_params=trainable, total_params=total,
                            extra={"head_parameters": 0, "training_params": training_params})

    def feature_parameter_count(self, backbone, trainable: int) -> int:
        """Scalars that define the tuned model at featurization.

        The default is the count trained (``trainable``); a method trained through a
        reparameterisation (prefix tuning's MLP) counts what the tuned model holds.
        """
        return trainable

    def position_offset(self) -> int:
        """Positions a method uses in front of the input without returning them (prefixes)."""
        return 0

    def load_for_features(self, model_dir: Path, variant_dir: Path | None, *, device: str,
                          dtype: str = "float32", allow_pickle: bool = False,
                          trust_remote_code: bool = False) -> LoadedModel:
        """Rebuild the tuned backbone (without head) for featurization."""
        import torch

        if variant_dir is None or not (Path(variant_dir) / WEIGHTS).exists():
            raise InvalidModelError(f"the tuned weights of method '{self.name}' are missing "
                                    f"from '{variant_dir}'; delete that folder to retrain.")
        variant_dir = Path(variant_dir)
        config = check_model_dir(model_dir, allow_pickle=allow_pickle,
                                 trust_remote_code=trust_remote_code)
        base, tokenizer = self.initial_backbone(model_dir, seed=0, allow_pickle=allow_pickle,
                                                trust_remote_code=trust_remote_code)
        for param in base.parameters():
            param.requires_grad_(False)
        torch.manual_seed(0)
        backbone, n_virtual = self.prepare(base, model_dir=model_dir, tokenizer=tokenizer)
        saved = _load_tensors(variant_dir / WEIGHTS)
        params = dict(backbone.named_parameters())
        missing = sorted(set(saved) - set(params))
        if missing:
            raise InvalidModelError(f"'{variant_dir / WEIGHTS}' holds tensors the rebuilt "
                                    f"'{self.name}' model lacks ({missing[:3]}); delete the "
                                    "folder to retrain.")
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)
        model = self.for_features(backbone)
        model.to(device=device, dtype=getattr(torch, dtype)).eval()
        recorded = json.loads((variant_dir / METHOD_FILE).read_text(encoding="utf-8"))
        if recorded.get("n_virtual_tokens", 0) != n_virtual:
            raise InvalidModelError(f"'{variant_dir}' was tuned with different settings; "
                                    "delete the folder to retrain.")
        return LoadedModel(model=model, tokenizer=tokenizer, n_layers=model_n_layers(config),
                           n_virtual_tokens=n_virtual)
