"""Word features of a story: brainenc's featurizer vs a bare forward vs one forward per word.

All alternatives run in one process on the same story text (the demo story
generator, ``bids_app.demo_text``) with the packaged MiniLM model (6 layers),
every hidden layer kept, word = mean of its sub-tokens, each word given the 128
tokens before it as context:

(a) brainenc: ``stimuli_models.features.compute_features`` with
    ``context_unit='tokens'``, ``context_words=128`` and ``--stride`` target
    words per window (tokenization, window planning, batching, pooling);
(b) a bare ``transformers`` forward pass over exactly the same token windows,
    batched the same way (sorted by length, same batch size), hidden states
    computed and nothing else: the ceiling of (a);
(c) the naive approach: one forward pass per word over that word and its 128
    preceding tokens (batch of one), timed on words from the middle of the story
    (its cost per word is then constant) and reported per word;
(d) the price of exact causality: a bare forward over *shared* windows of
    ``--stride`` target words after 128 context tokens (the cheaper plan in
    which earlier targets of a window see the later ones, and context varies
    with a word's place in its window). In causal mode brainenc gives each word
    a window of its own, so (a) runs about ``stride`` times more windows.

Throughput is words/s and model tokens/s (tokens run through the model). Each
timing is the median of ``--repeats`` runs after one warm-up, (a) and (b)
alternating run by run so that changes in machine load hit both; a float32 GEMM
probe at the start and at the end gives the machine's throughput in this run. A
correctness gate checks that (a) with ``stride=1`` reproduces (c) on the naive
words (a slice of the story that starts early enough to hold their context).

Usage::

    python benchmarks/features.py --size small                  # < 1 min
    python benchmarks/features.py --size full --out benchmarks/features_full.json
    python benchmarks/features.py --size full --device cuda     # GPU, bfloat16
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {
    "small": {"words": 100, "naive_words": 4, "repeats": 2},
    "full": {"words": 3000, "naive_words": 100, "repeats": 3},
}
CONTEXT = 128


def gemm_probe(size: int = 1024) -> float:
    """Return the float32 GEMM throughput (GFLOP/s) of torch on this machine right now."""
    import torch

    a = torch.randn(size, size)
    a @ a
    start = time.perf_counter()
    for _ in range(5):
        a @ a
    return 5 * 2 * size ** 3 / (time.perf_counter() - start) / 1e9


def story(n_words: int) -> list[str]:
    """Return the demo story text, at least ``n_words`` words."""
    from bids_app.demo_text import story_words

    return story_words("lighthouse", n_words, seed=42)


def timed(fn, repeats: int):
    """Run ``fn`` once to warm up, then ``repeats`` times; median seconds and last result."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def _sync(device):
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_brainenc(words, model, tokenizer, settings, device):
    from stimuli_models.features import compute_features

    out = compute_features(words, model, tokenizer, settings, n_layers=6, device=device)
    _sync(device)
    return out


def bare_batches(words, tokenizer, settings, max_len):
    """The token windows brainenc runs, as padded batches (built outside the timing)."""
    import torch

    from stimuli_models.windows import (
        group_windows,
        plan_windows,
        special_tokens,
        tokenize_words,
    )

    ids, token_word = tokenize_words(tokenizer, words)
    prefix, suffix = special_tokens(tokenizer)
    groups = group_windows(plan_windows(token_word, len(words), settings, max_len),
                           causal_model=False)
    groups.sort(key=lambda g: g[1] - g[0])
    batches = []
    for b0 in range(0, len(groups), settings.batch_size):
        seqs = [prefix + ids[t0:t1].tolist() + suffix
                for t0, t1, _ in groups[b0:b0 + settings.batch_size]]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        batches.append((input_ids, mask))
    return batches


def shared_batches(words, tokenizer, settings, max_len):
    """Windows of ``settings.stride`` target words after the context tokens, as batches.

    This is the plan causal mode does not use (earlier targets see later words);
    it is timed only to state the price of one window per word.
    """
    import torch

    from stimuli_models.windows import special_tokens, tokenize_words, word_token_bounds

    ids, token_word = tokenize_words(tokenizer, words)
    prefix, suffix = special_tokens(tokenizer)
    start, end = word_token_bounds(token_word, len(words))
    spans = []
    for s in range(0, len(words), settings.stride):
        e = min(s + settings.stride, len(words))
        t1 = int(end[e - 1])
        t0 = max(0, int(start[s]) - settings.context_words, t1 - max_len)
        spans.append((t0, t1))
    spans.sort(key=lambda span: span[1] - span[0])
    batches, processed = [], sum(t1 - t0 for t0, t1 in spans)
    for b0 in range(0, len(spans), settings.batch_size):
        seqs = [prefix + ids[t0:t1].tolist() + suffix
                for t0, t1 in spans[b0:b0 + settings.batch_size]]
        width = max(len(q) for q in seqs)
        input_ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        batches.append((input_ids, mask))
    return batches, processed


def run_bare(model, batches, device):
    import torch

    with torch.inference_mode():
        for input_ids, mask in batches:
            model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                  output_hidden_states=True)
    _sync(device)


def run_naive(words, model, tokenizer, first, n_words, device):
    """One forward pass per word: the word and its CONTEXT preceding tokens (batch of one).

    Words ``first .. first + n_words`` are featurized.
    """
    import torch

    from stimuli_models.windows import special_tokens, tokenize_words, word_token_bounds

    ids, token_word = tokenize_words(tokenizer, words)
    prefix, suffix = special_tokens(tokenizer)
    start, end = word_token_bounds(token_word, len(words))
    out, processed = [], 0
    with torch.inference_mode():
        for w in range(first, first + n_words):
            t0 = max(0, start[w] - CONTEXT)
            seq = torch.tensor([prefix + ids[t0:end[w]].tolist() + suffix], device=device)
            states = model(input_ids=seq, output_hidden_states=True).hidden_states
            pos = slice(len(prefix) + start[w] - t0, len(prefix) + end[w] - t0)
            out.append(torch.stack([h[0, pos].float().mean(0) for h in states]).cpu().numpy())
            processed += int(end[w] - t0)
    _sync(device)
    return np.stack(out, axis=1), processed


def benchmark(size: str = "small", *, stride: int = 32, batch_size: int = 16,
              device: str = "cpu", repeats: int | None = None) -> dict:
    """Run the three alternatives; return a report with times, throughputs and ratios."""
    import torch

    from stimuli_models.features import FeatureSettings, resolve_dtype
    from stimuli_models.models import DEFAULT_MODEL, load_model, resolve_model

    cfg = SIZES[size]
    repeats = repeats or cfg["repeats"]
    words = story(cfg["words"])
    dtype = resolve_dtype("auto", device)
    model, tokenizer = load_model(resolve_model(DEFAULT_MODEL), device=device, dtype=dtype)
    settings = FeatureSettings(layers="all", context_words=CONTEXT, context_unit="tokens",
                               stride=stride, batch_size=batch_size, dtype=dtype)
    report = {"size": size, "device": device, "dtype": dtype, "model": DEFAULT_MODEL,
              "n_words": len(words), "context_tokens": CONTEXT, "stride": stride,
              "batch_size": batch_size, "repeats": repeats,
              "torch_threads": torch.get_num_threads(), "gemm_gflops_start": gemm_probe()}
    result = run_brainenc(words, model, tokenizer, settings, device)  # warm-up
    processed = result.info["tokens_processed"]
    batches = bare_batches(words, tokenizer, settings, result.info["max_window_tokens"])
    run_bare(model, batches, device)  # warm-up
    ours, bare = [], []
    for _ in range(repeats):  # interleaved, so that load changes hit both alike
        start = time.perf_counter()
        run_brainenc(words, model, tokenizer, settings, device)
        middle = time.perf_counter()
        run_bare(model, batches, device)
        ours.append(middle - start)
        bare.append(time.perf_counter() - middle)
    t_ours, t_bare = float(np.median(ours)), float(np.median(bare))
    shared, shared_tokens = shared_batches(words, tokenizer, settings,
                                           result.info["max_window_tokens"])
    t_shared, _ = timed(lambda: run_bare(model, shared, device), repeats)
    # naive words from the middle of the story, where every word has its full context
    n_naive = min(cfg["naive_words"], len(words) // 2)
    first = len(words) // 2
    t_naive, (naive, naive_tokens) = timed(
        lambda: run_naive(words, model, tokenizer, first, n_naive, device), repeats)
    exact = FeatureSettings(**{**settings.to_dict(), "stride": 1})
    lead = min(first, CONTEXT + 8)  # words enough for CONTEXT tokens before the first one
    check = run_brainenc(words[first - lead:first + n_naive], model, tokenizer, exact, device)
    report["methods"] = {
        "brainenc": {"seconds": t_ours, "words_per_s": len(words) / t_ours,
                     "tokens_per_s": processed / t_ours, "tokens_processed": processed,
                     "n_windows": result.info["n_windows"],
                     "story_tokens": result.info["n_tokens"]},
        "bare_forward": {"seconds": t_bare, "words_per_s": len(words) / t_bare,
                         "tokens_per_s": processed / t_bare, "tokens_processed": processed},
        "shared_windows_bare": {"seconds": t_shared, "words_per_s": len(words) / t_shared,
                                "tokens_per_s": shared_tokens / t_shared,
                                "tokens_processed": shared_tokens},
        "naive_per_word": {"seconds": t_naive, "words_timed": n_naive,
                           "words_per_s": n_naive / t_naive,
                           "tokens_per_s": naive_tokens / t_naive,
                           "tokens_processed": naive_tokens},
    }
    m = report["methods"]
    report["ratios"] = {
        "brainenc_vs_bare_throughput": m["brainenc"]["tokens_per_s"]
        / m["bare_forward"]["tokens_per_s"],
        "brainenc_vs_naive_speedup": m["brainenc"]["words_per_s"]
        / m["naive_per_word"]["words_per_s"],
        # what one window per word costs against shared windows (time and tokens)
        "causal_price_time": t_ours / t_shared,
        "causal_price_tokens": processed / shared_tokens,
    }
    report["gates"] = {"stride1_vs_naive_max_abs_diff": float(
        np.abs(check.features[:, lead:] - naive).max())}
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        report["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    report["gemm_gflops_end"] = gemm_probe()
    return report


def print_table(report: dict) -> None:
    """Print the report as a small table."""
    print(f"{report['n_words']} words, MiniLM ({report['dtype']}, {report['device']}, "
          f"{report['torch_threads']} threads), context {report['context_tokens']} tokens, "
          f"stride {report['stride']}; GEMM probe {report['gemm_gflops_start']:.0f} / "
          f"{report['gemm_gflops_end']:.0f} GFLOP/s")
    for name, entry in report["methods"].items():
        print(f"  {name:16s} {entry['seconds']:8.2f} s  {entry['words_per_s']:9.1f} words/s  "
              f"{entry['tokens_per_s']:9.0f} tokens/s")
    ratios = report["ratios"]
    print(f"  brainenc / bare throughput: {ratios['brainenc_vs_bare_throughput']:.2f}  "
          f"brainenc vs naive: {ratios['brainenc_vs_naive_speedup']:.1f}x faster  "
          f"stride-1 gate max |diff|: {report['gates']['stride1_vs_naive_max_abs_diff']:.1e}")
    print(f"  price of exact causality vs shared windows of {report['stride']} words: "
          f"{ratios['causal_price_time']:.1f}x time, {ratios['causal_price_tokens']:.1f}x tokens")


def main(argv=None) -> dict:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    report = benchmark(args.size, stride=args.stride, batch_size=args.batch_size,
                       device=args.device, repeats=args.repeats)
    print_table(report)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
