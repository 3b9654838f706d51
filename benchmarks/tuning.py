"""Training throughput: brainenc's tuning loop vs a bare torch + peft loop.

Both alternatives train a LoRA model (r = 8, alpha = 16, dropout 0.1 on the
query/value projections; dropout 0.1 and a linear head on the mean-pooled last
states) on the same tokenized examples, in the same batch order, from the same
initial weights, in one process:

(a) brainenc: the ``lora`` method of :mod:`stimuli_models.tuning` builds the
    model (``initial_backbone`` -> ``prepare`` -> ``TaskModel``, as ``tune``
    does) and :func:`stimuli_models.training.train` trains it: AdamW with
    parameter groups, warm-up then linear decay, gradient clipping, loss
    logging, its own collation, one dev evaluation at the last step and a copy
    of the best trainable state;
(b) bare: ``transformers.AutoModel`` + ``peft.LoraConfig`` / ``get_peft_model``
    + an ``nn.Linear`` head written here, padded with ``pad_sequence``, and a
    plain ``forward -> backward -> AdamW.step`` loop, then the same dev
    evaluation (accuracy over the same dev examples and batch size), so that
    both timings hold the same work.

Only the training call is timed (model loading and tokenization are not). Each
alternative runs ``steps`` optimiser steps; one warm-up round, then ``repeats``
rounds with (a) and (b) alternating; medians are reported, with the time per
1,000 training samples and the throughput ratio (a)/(b) (target >= 0.9), also
as the median of the per-round ratios (less sensitive to slow drifts of load)
and as a ratio of process CPU time (less sensitive to other jobs on a shared
machine when torch runs one thread). A float32 GEMM probe at the start and end
records what the shared machine gave.
Correctness gates (untimed): both models hold the same number of trainable
parameters and give the same loss on the first batch before training, the first
padded batch of (b) equals brainenc's collation, both trained the same number of
samples, and the loss on that batch went down in both.

Sizes: ``small`` is a tiny locally built BERT on a synthetic sentiment task (a
few seconds; run by the test suite); ``full`` is the packaged MiniLM model
(all-MiniLM-L6-v2) on the Yelp sentences of ``../shared/data`` (the synthetic
task when that folder is absent).

Usage::

    python benchmarks/tuning.py --size small
    python benchmarks/tuning.py --size full --threads 1 --out benchmarks/tuning_cpu.json
    python benchmarks/tuning.py --size full --device cuda --out benchmarks/tuning_cuda.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTIMENT = Path(__file__).resolve().parents[2] / "shared" / "data" / \
    "nlu-sentiment-labelled-sentences"
SIZES = {
    "small": {"steps": 8, "repeats": 3, "batch_size": 8, "dev": 16, "max_length": 32,
              "learning_rate": 1e-2},
    "full": {"steps": 15, "repeats": 3, "batch_size": 16, "dev": 32, "max_length": 64,
             "learning_rate": 5e-4},
}
LORA = {"r": 8, "alpha": 16, "dropout": 0.1}
HEAD_DROPOUT = 0.1


def gemm_probe(size: int = 1024, repeats: int = 5) -> float:
    """Return the float32 GEMM throughput (GFLOP/s) of torch on this machine right now."""
    import torch

    a = torch.randn(size, size)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def load_data(size: str, seed: int, workdir: Path):
    """Return ``(model_dir, task, description)`` of a benchmark size."""
    from tests.helpers.nlu import make_nlu_bert, make_task

    if size == "small":
        model_dir = make_nlu_bert(workdir / "tiny_bert")
        return model_dir, make_task("sequence-classification", n_train=96, n_dev=32,
                                    seed=seed), "synthetic sentiment, tiny BERT (4 x 64)"
    from stimuli_models.tasks import load_task
    from tests.helpers.models import minilm_dir

    if SENTIMENT.is_dir():
        task = load_task("sentiment", "sequence-classification", {
            "train": [str(SENTIMENT / "yelp_labelled.txt")], "format": "tsv",
            "columns": ["text", "label"]}, seed=seed)
        return minilm_dir(), task, "Yelp sentiment sentences, all-MiniLM-L6-v2 (packaged)"
    return minilm_dir(), make_task("sequence-classification", n_train=400, n_dev=64,
                                   seed=seed), "synthetic sentiment, all-MiniLM-L6-v2 (packaged)"


# -- (a) brainenc -----------------------------------------------------------------
def build_brainenc(model_dir: Path, task, seed: int, device: str):
    """LoRA task model built by brainenc's ``lora`` method (as ``tune`` builds it)."""
    import torch

    from stimuli_models.tasks.heads import TaskModel, backbone_hidden_size
    from stimuli_models.tuning import get_method

    method = get_method("lora", **LORA)
    base, tokenizer = method.initial_backbone(model_dir, seed=seed, allow_pickle=False,
                                              trust_remote_code=False)
    for param in base.parameters():
        param.requires_grad_(False)
    torch.manual_seed(seed)
    backbone, n_virtual = method.prepare(base, model_dir=model_dir, tokenizer=tokenizer,
                                         task=task)
    torch.manual_seed(seed)
    model = TaskModel(backbone, task.type, task.n_labels, backbone_hidden_size(base.config),
                      n_virtual=n_virtual, dropout=HEAD_DROPOUT).to(device)
    return model, tokenizer, method.default_learning_rate


def run_brainenc(model, task, train_items, dev_items, params, seed, device, pad_id):
    """Train with :func:`stimuli_models.training.train`.

    Returns
    -------
    seconds : tuple of float
        Wall and CPU (process) seconds of the call.
    stats : dict
        Samples, steps, mean training loss and dev accuracy.
    """
    from stimuli_models.training import TrainingSettings, train

    precision = "bf16" if device.startswith("cuda") else "no"
    settings = TrainingSettings(max_steps=params["steps"], epochs=0.0,
                                batch_size=params["batch_size"], eval_every=params["steps"],
                                learning_rate=params["learning_rate"],
                                max_length=params["max_length"], mixed_precision=precision)
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    report = train(model, task, train_items, dev_items, settings,
                   learning_rate=params["learning_rate"], seed=seed, device=device,
                   pad_id=pad_id)
    _sync(device)
    seconds = (time.perf_counter() - start, time.process_time() - cpu_start)
    return seconds, {"samples": report.samples, "steps": report.steps,
                     "mean_train_loss": report.curve[-1]["train_loss"],
                     "dev_accuracy": report.dev_metrics["accuracy"]}


# -- (b) bare torch + peft --------------------------------------------------------
def build_bare(model_dir: Path, n_labels: int, seed: int, device: str):
    """Plain ``transformers`` backbone + peft LoRA + a linear head on mean-pooled states."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from torch import nn
    from transformers import AutoModel

    class Classifier(nn.Module):
        def __init__(self, backbone, hidden, n_out):
            super().__init__()
            self.backbone = backbone
            self.dropout = nn.Dropout(HEAD_DROPOUT)
            self.head = nn.Linear(hidden, n_out)

        def forward(self, input_ids, attention_mask, token_type_ids):
            states = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    base = AutoModel.from_pretrained(str(model_dir), local_files_only=True,
                                     dtype=torch.float32)
    for param in base.parameters():
        param.requires_grad_(False)
    torch.manual_seed(seed)
    config = LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=LORA["r"],
                        lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                        target_modules=["query", "value"])
    backbone = get_peft_model(base, config)
    torch.manual_seed(seed)
    return Classifier(backbone, base.config.hidden_size, n_labels).to(device)


def pad_batch(items: list[dict], pad_id: int) -> dict:
    """Pad tokenized items with ``torch.nn.utils.rnn.pad_sequence``."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    ids = [torch.tensor(it["input_ids"]) for it in items]
    return {"input_ids": pad_sequence(ids, batch_first=True, padding_value=pad_id),
            "attention_mask": pad_sequence([torch.ones_like(i) for i in ids], batch_first=True),
            "token_type_ids": pad_sequence([torch.tensor(it["token_type_ids"]) for it in items],
                                           batch_first=True),
            "labels": torch.tensor([it["labels"] for it in items])}


def batch_order(n_items: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Indices of each batch: seeded permutations, refilled when fewer than a batch remain."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    batches = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(n_items, generator=generator).tolist()
        batches.append(order[:batch_size])
        del order[:batch_size]
    return batches


def run_bare(model, train_items, dev_items, params, seed, device, pad_id):
    """Train with a plain AdamW loop, then score the dev items.

    Returns
    -------
    seconds : tuple of float
        Wall and CPU (process) seconds of training and evaluation.
    stats : dict
        Samples, steps, mean training loss and dev accuracy.
    """
    import contextlib

    import torch
    from torch.nn.functional import cross_entropy

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") \
        else contextlib.nullcontext()
    batches = batch_order(len(train_items), params["batch_size"], params["steps"], seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=params["learning_rate"], weight_decay=0.01)
    samples, running = 0, 0.0
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.train()
    for indices in batches:
        batch = {k: v.to(device) for k, v in
                 pad_batch([train_items[i] for i in indices], pad_id).items()}
        labels = batch.pop("labels")
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = model(**batch)
        loss = cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        running += float(loss.detach())
        samples += len(indices)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for first in range(0, len(dev_items), params["batch_size"]):
            chunk = dev_items[first:first + params["batch_size"]]
            batch = {k: v.to(device) for k, v in pad_batch(chunk, pad_id).items()}
            labels = batch.pop("labels")
            with autocast:
                logits = model(**batch)
            correct += int((logits.float().argmax(-1) == labels).sum().cpu())
    _sync(device)
    seconds = (time.perf_counter() - start, time.process_time() - cpu_start)
    return seconds, {"samples": samples, "steps": len(batches),
                     "mean_train_loss": running / len(batches),
                     "dev_accuracy": correct / len(dev_items)}


# -- gates --------------------------------------------------------------------------
def probe_loss(model, batch: dict, *, brainenc: bool) -> float:
    """Loss of a model on one batch in evaluation mode (no gradient)."""
    import torch
    from torch.nn.functional import cross_entropy

    model.eval()
    with torch.inference_mode():
        if brainenc:
            loss, _ = model(**batch)
        else:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            loss = cross_entropy(model(**inputs).float(), batch["labels"])
    return float(loss)


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def initial_state_diff(model_dir: Path, task, seed: int) -> float:
    """Largest difference between the two models' initial trainable tensors (same names)."""
    ours, _, _ = build_brainenc(model_dir, task, seed, "cpu")
    bare = build_bare(model_dir, task.n_labels, seed, "cpu")
    a = {n: p for n, p in ours.named_parameters() if p.requires_grad}
    b = {n: p for n, p in bare.named_parameters() if p.requires_grad}
    if set(a) != set(b):
        return float("inf")
    return max(float((a[n] - b[n]).detach().abs().max()) for n in a)


def benchmark(size: str = "small", *, device: str = "cpu", repeats: int | None = None,
              steps: int | None = None, seed: int = 0) -> dict:
    """Run both loops side by side and return the report (see the module docstring)."""
    import torch

    from stimuli_models.tasks.encode import collate, encode_examples

    if size not in SIZES:
        raise SystemExit(f"'--size' must be one of {sorted(SIZES)}; got '{size}'.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("'--device cuda' was given but torch sees no CUDA device; "
                         "use '--device cpu'.")
    params = dict(SIZES[size])
    params["repeats"] = repeats or params["repeats"]
    params["steps"] = steps or params["steps"]
    report = {"size": size, "device": device, "torch_threads": torch.get_num_threads(),
              "gemm_gflops_start": gemm_probe()}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, task, description = load_data(size, seed, Path(tmp))
        task.dev = task.dev[:params["dev"]]
        _, tokenizer, _ = build_brainenc(model_dir, task, seed, "cpu")
        pad_id = tokenizer.pad_token_id or 0
        train_items = encode_examples(task, tokenizer, task.train,
                                      max_length=params["max_length"], train=True)
        dev_items = encode_examples(task, tokenizer, task.dev, max_length=params["max_length"],
                                    train=False)
        first = [train_items[i] for i in batch_order(len(train_items), params["batch_size"], 1,
                                                     seed)[0]]
        ours_batch = collate(first, pad_id)
        bare_batch = pad_batch(first, pad_id)
        same_batch = all(torch.equal(ours_batch[k], bare_batch[k]) for k in bare_batch)
        probe_ours = {k: v.to(device) for k, v in ours_batch.items()}
        times = {"brainenc": [], "bare": []}
        cpu_times = {"brainenc": [], "bare": []}
        stats = {}
        gates = {"same_first_batch": same_batch,
                 "initial_trainable_max_abs_diff": initial_state_diff(model_dir, task, seed)}
        for round_ in range(params["repeats"] + 1):
            names = ("brainenc", "bare") if round_ % 2 == 0 else ("bare", "brainenc")
            for name in names:
                if name == "brainenc":
                    model, _, _ = build_brainenc(model_dir, task, seed, device)
                else:
                    model = build_bare(model_dir, task.n_labels, seed, device)
                is_ours = name == "brainenc"
                before = probe_loss(model, probe_ours, brainenc=is_ours)
                if is_ours:
                    seconds, run = run_brainenc(model, task, train_items, dev_items, params,
                                                seed, device, pad_id)
                else:
                    seconds, run = run_bare(model, train_items, dev_items, params, seed,
                                            device, pad_id)
                run.update(trainable_params=_trainable(model), first_batch_loss_before=before,
                           first_batch_loss_after=probe_loss(model, probe_ours,
                                                             brainenc=is_ours))
                stats[name] = run
                if round_:  # round 0 is the warm-up
                    times[name].append(seconds[0])
                    cpu_times[name].append(seconds[1])
                del model
    report["gemm_gflops_end"] = gemm_probe()
    ours, bare = stats["brainenc"], stats["bare"]
    gates.update(
        same_samples=ours["samples"] == bare["samples"],
        same_trainable_params=ours["trainable_params"] == bare["trainable_params"],
        initial_loss_abs_diff=abs(ours["first_batch_loss_before"]
                                  - bare["first_batch_loss_before"]),
        loss_decreased=all(s["first_batch_loss_after"] < s["first_batch_loss_before"]
                           for s in (ours, bare)))
    methods = {}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        cpu_median = statistics.median(cpu_times[name])
        methods[name] = {**stats[name], "seconds": seconds, "median_seconds": median,
                         "seconds_per_1k_samples": median / stats[name]["samples"] * 1000,
                         "samples_per_second": stats[name]["samples"] / median,
                         "cpu_seconds": cpu_times[name], "median_cpu_seconds": cpu_median,
                         "cpu_seconds_per_1k_samples": cpu_median / stats[name]["samples"]
                         * 1000}
    report.update(
        data=description, n_train=len(train_items),
        n_dev=len(dev_items), lora=LORA, **params, methods=methods, gates=gates,
        throughput_ratio_brainenc_over_bare=methods["brainenc"]["samples_per_second"]
        / methods["bare"]["samples_per_second"],
        paired_ratio_median=statistics.median(
            b / a for a, b in zip(times["brainenc"], times["bare"], strict=True)),
        cpu_time_ratio_brainenc_over_bare=methods["bare"]["median_cpu_seconds"]
        / methods["brainenc"]["median_cpu_seconds"],
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if device.startswith("cuda"):
        report["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return report


def print_table(report: dict) -> None:
    """Print the timings as a small table."""
    print(f"{report['data']}; {report['steps']} steps x {report['batch_size']} examples, "
          f"{report['repeats']} repeats; device {report['device']}, "
          f"{report['torch_threads']} thread(s); GEMM probe "
          f"{report['gemm_gflops_start']:.0f} / {report['gemm_gflops_end']:.0f} GFLOP/s")
    print(f"{'loop':<10}{'median s':>10}{'s / 1k samples':>16}{'CPU s / 1k':>12}"
          f"{'samples/s':>11}")
    for name, row in report["methods"].items():
        print(f"{name:<10}{row['median_seconds']:>10.2f}{row['seconds_per_1k_samples']:>16.2f}"
              f"{row['cpu_seconds_per_1k_samples']:>12.2f}{row['samples_per_second']:>11.1f}")
    print(f"brainenc / bare throughput: {report['throughput_ratio_brainenc_over_bare']:.3f} "
          f"(median of rounds {report['paired_ratio_median']:.3f}, CPU time "
          f"{report['cpu_time_ratio_brainenc_over_bare']:.3f})")
    print(f"gates: {report['gates']}")


def main(argv=None) -> dict:
    """Command-line entry point; returns the report it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (after warm-up)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: 1 for the small size, torch's default otherwise)")
    parser.add_argument("--out", default=None, help="JSON file (default: benchmarks/"
                        "tuning_<size>_<device>.json)")
    args = parser.parse_args(argv)

    import torch

    if args.threads or args.size == "small":  # a tiny model runs fastest on one thread
        torch.set_num_threads(args.threads or 1)
    report = benchmark(args.size, device=args.device, repeats=args.repeats, steps=args.steps)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / \
        f"tuning_{args.size}_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    return report


if __name__ == "__main__":
    main()
