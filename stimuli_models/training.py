"""A plain training loop shared by every tuning method.

AdamW (no decay on biases and normalisation weights), linear warm-up then
linear decay, gradient accumulation, evaluation on the dev set every
``eval_every`` optimiser steps with early stopping on the task's primary metric
(the best weights are restored at the end), a cap in steps and/or epochs,
mixed precision on GPU only and optional gradient checkpointing. Runs are
deterministic under a seed on CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Literal, get_args

import numpy as np

from .errors import SettingsError, check_choice
from .tasks.encode import collate
from .tasks.metrics import PRIMARY_METRIC, score

MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
PRECISIONS = get_args(MixedPrecision)


def _help(default, text: str, **kwargs):
    """A field with its help text beside it (``metadata['help']``)."""
    return field(default=default, metadata={"help": text, **kwargs})


@dataclass(frozen=True)
class TrainingSettings:
    """Settings of the training loop.

    Each field's meaning is its ``help`` (``dataclasses.fields(TrainingSettings)``),
    which also feeds the README's table of ``[training]`` settings.
    """

    max_steps: int = _help(200, "Cap on optimiser steps (0: no cap, epochs decides).",
                           minimum=0)
    epochs: float = _help(1.0, "Passes over the training set (the smaller of the two limits "
                          "wins).", minimum=0)
    batch_size: int = _help(16, "Examples per forward pass.", minimum=1)
    learning_rate: float = _help(0.0, "Peak learning rate; 0 uses the method's default.",
                                 minimum=0)
    warmup_ratio: float = _help(0.1, "Share of steps of linear warm-up (then linear decay "
                                "to 0), in [0, 1).", minimum=0)
    weight_decay: float = _help(0.01, "AdamW decoupled weight decay (not applied to biases "
                                "and norms).", minimum=0)
    grad_accumulation: int = _help(1, "Forward passes per optimiser step.", minimum=1)
    early_stopping_patience: int = _help(0, "Stop after this many evaluations without "
                                         "improvement (0: never).", minimum=0)
    eval_every: int = _help(50, "Optimiser steps between dev evaluations (the last step is "
                            "always evaluated).", minimum=1)
    max_length: int = _help(128, "Maximum tokens per sequence.", minimum=1)
    gradient_checkpointing: bool = _help(False, "Recompute activations in the backward pass "
                                         "(less memory, slower).")
    mixed_precision: MixedPrecision = _help("auto", "Autocast on GPU ('auto': bf16 on GPU); "
                                            "always float32 on CPU.")

    def __post_init__(self):
        check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        for name in ("batch_size", "grad_accumulation", "eval_every", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingsError(f"'training.{name}' must be a positive integer; got {value!r}.")
        if self.max_steps < 0 or self.epochs < 0 or (self.max_steps == 0 and self.epochs == 0):
            raise SettingsError("'training.max_steps' and 'training.epochs' must be >= 0 and "
                                "not both 0.")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise SettingsError(f"'training.warmup_ratio' must be in [0, 1); got "
                                f"{self.warmup_ratio!r}.")

    @classmethod
    def from_dict(cls, data: dict | None) -> TrainingSettings:
        """Build from a ``[training]`` table (unknown keys are refused)."""
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SettingsError(f"unknown training setting(s) {unknown}; allowed: "
                                f"{', '.join(sorted(names))}.")
        return cls(**data)

    def to_dict(self) -> dict:
        """Plain dictionary (for hashing and records)."""
        return asdict(self)


@dataclass
class TrainReport:
    """What a training run did."""

    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
    metric_name: str = ""
    best_metric: float | None = None
    best_step: int = 0
    dev_metrics: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)
    stopped_early: bool = False


def _optimizer(model, learning_rate, weight_decay):
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        plain = param.ndim < 2 or "norm" in name.lower() or name.endswith("bias")
        (no_decay if plain else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)


def _autocast(device: str, precision: str):
    import contextlib

    import torch

    if not str(device).startswith("cuda") or precision == "no":
        return contextlib.nullcontext(), None
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return torch.autocast(device_type="cuda", dtype=dtype), scaler


def evaluate(model, task, examples, items, *, batch_size: int, device: str, pad_id: int,
             precision: str = "auto") -> dict:
    """Dev metrics of a :class:`~stimuli_models.tasks.heads.TaskModel`."""
    import torch

    model.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
            context, _ = _autocast(device, precision)
            with context:
                _, logits = model(batch["input_ids"], batch["attention_mask"],
                                  batch["token_type_ids"])
            logits = logits.float().cpu().numpy()
            for row, item in enumerate(chunk):
                out = logits[row]
                if task.type in ("token-classification", "question-answering"):
                    out = out[:len(item["input_ids"])]
                outputs.append(out)
    model.train()
    return score(task, examples, items, outputs)


def train(model, task, train_items: list[dict], dev_items: list[dict], settings:
          TrainingSettings, *, learning_rate: float, seed: int, device: str = "cpu",
          pad_id: int = 0, log=None) -> TrainReport:
    """Train the trainable parameters of ``model`` on a task.

    Parameters
    ----------
    model : TaskModel
        Backbone (with the method's trainable parameters) and head, on ``device``.
    task : TaskData
        The task (dev examples are ``task.dev``).
    train_items, dev_items : list of dict
        Encoded examples (see :func:`stimuli_models.tasks.encode.encode_examples`).
    settings : TrainingSettings
        Loop settings.
    learning_rate : float
        Peak learning rate (the method's default unless the settings give one).
    seed : int
        Seeds the batch order, dropout and any other randomness.
    device : str
        Torch device.
    pad_id : int
        Padding token id.
    log : callable, optional
        Called with one line per evaluation.

    Returns
    -------
    TrainReport
    """
    import torch

    if not train_items:
        raise SettingsError(f"task '{task.name}' has no usable training example after encoding.")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    metric = getattr(task, "metric", "") or PRIMARY_METRIC[task.type]
    lr = settings.learning_rate or learning_rate
    batches_per_epoch = math.ceil(len(train_items) / settings.batch_size)
    by_epochs = math.ceil(settings.epochs * batches_per_epoch / settings.grad_accumulation)
    total = min(s for s in (settings.max_steps, by_epochs) if s > 0) if settings.epochs else \
        settings.max_steps
    total = max(total, 1)
    warmup = int(settings.warmup_ratio * total)
    optimizer = _optimizer(model, lr, settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup
        else max(0.0, (total - s) / max(1, total - warmup)))
    context, scaler = _autocast(device, settings.mixed_precision)
    trainable = [p for p in model.parameters() if p.requires_grad]
    report = TrainReport(metric_name=metric)
    best_state, bad_evals, running, n_running = None, 0, 0.0, 0
    started = time.perf_counter()
    model.train()
    order: list[int] = []
    step = 0
    while step < total:
        optimizer.zero_grad(set_to_none=True)
        for _ in range(settings.grad_accumulation):
            if len(order) < settings.batch_size:
                order += torch.randperm(len(train_items), generator=generator).tolist()
            chunk = [train_items[i] for i in order[:settings.batch_size]]
            del order[:settings.batch_size]
            batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
            with context:
                loss, _ = model(**batch)
            loss = loss / settings.grad_accumulation
            (scaler.scale(loss) if scaler else loss).backward()
            running += float(loss.detach()) * settings.grad_accumulation
            n_running += 1
            report.samples += len(chunk)
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        step_lr = scheduler.get_last_lr()[0]  # the rate this step trained with
        scheduler.step()
        step += 1
        if step % settings.eval_every == 0 or step == total:
            metrics = evaluate(model, task, task.dev, dev_items, batch_size=settings.batch_size,
                               device=device, pad_id=pad_id, precision=settings.mixed_precision)
            value = metrics[metric]
            report.curve.append({"step": step, "epoch": step * settings.grad_accumulation /
                                 batches_per_epoch, "train_loss": running / max(n_running, 1),
                                 "learning_rate": step_lr, **{
                                     f"dev_{k}": v for k, v in metrics.items()}})
            running, n_running = 0.0, 0
            if log:
                log(f"step {step}/{total}: dev {metric} = {value:.4f}")
            if report.best_metric is None or value > report.best_metric:
                report.best_metric, report.best_step, report.dev_metrics = value, step, metrics
                best_state = {n: p.detach().clone() for n, p in model.named_parameters()
                              if p.requires_grad}
                bad_evals = 0
            else:
                bad_evals += 1
                if settings.early_stopping_patience and \
                        bad_evals >= settings.early_stopping_patience:
                    report.stopped_early = True
                    break
    report.steps = step
    report.seconds = time.perf_counter() - started
    if best_state is not None and report.best_step != step:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in best_state.items():
                params[name].copy_(value)
    model.eval()
    return report


def curve_table(report: TrainReport) -> str:
    """Format the training curve as TSV text (one row per evaluation)."""
    if not report.curve:
        return ""
    columns = list(report.curve[0])
    lines = ["\t".join(columns)]
    for row in report.curve:
        lines.append("\t".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])
                               for c in columns))
    return "\n".join(lines) + "\n"


def count_parameters(parameters) -> int:
    """Count the scalar values in an iterable of tensors."""
    return int(np.sum([p.numel() for p in parameters])) if parameters else 0
