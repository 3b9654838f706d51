"""Measured costs behind the time estimate of ``--dry-run``.

Each cost is either read from what earlier runs recorded in OUTPUT_DIR (seconds
per training step in ``models/*/tuning.json``) or measured by a short
calibration on the chosen device: two training steps of the model on a batch
of the task's typical length, featurizing the first words of a story, and a
ridge cross-validation on random data of a participant's run lengths for a few
hundred voxels. Every figure says where it comes from.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stimuli_models.features import compute_features
from stimuli_models.tuning import get_method

from .encoding.engine import cross_validate
from .io.bold import compute_brain_mask

#: Voxel counts of the encoding calibration (two, to separate per-voxel and fixed costs).
CALIBRATION_VOXELS = (200, 1200)
#: Words of the featurization calibration.
CALIBRATION_WORDS = 120


@dataclass
class Cost:
    """Seconds per unit, and where the figure comes from."""

    seconds: float
    unit: str
    source: str


def recorded_step_cost(output_dir: Path) -> Cost | None:
    """Mean seconds per training step recorded by earlier runs in ``output_dir``."""
    per_step = []
    for path in sorted(Path(output_dir).glob("models/*/tuning.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        seconds, steps = record.get("train_seconds"), record.get("steps")
        if seconds and steps:
            per_step.append(float(seconds) / float(steps))
    if not per_step:
        return None
    return Cost(float(np.mean(per_step)), "training step",
                f"recorded by {len(per_step)} earlier tuning run(s) in OUTPUT_DIR")


def calibrate_step(model_dir: str, *, batch_size: int, n_tokens: int, device: str,
                   trust_remote_code: bool = False) -> Cost:
    """Seconds of one full fine-tuning step (forward and backward) on the device."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir, trust_remote_code=trust_remote_code).to(device)
    model.train()
    vocab = int(getattr(model.config, "vocab_size", 1000))
    ids = torch.randint(5, max(vocab - 1, 6), (batch_size, n_tokens), device=device)
    mask = torch.ones_like(ids)

    def step():
        out = model(input_ids=ids, attention_mask=mask)
        out.last_hidden_state.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(2):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / 2
    return Cost(seconds, "training step",
                f"calibrated: 2 full fine-tuning steps of {batch_size} x {n_tokens} tokens on "
                f"{device}")


def calibrate_words(model_dir: str, story, settings, *, device: str, allow_pickle: bool,
                    trust_remote_code: bool) -> Cost:
    """Seconds per story word of featurization with the pretrained model."""
    loaded = get_method("frozen").load_for_features(
        Path(model_dir), None, device=device, dtype=settings.dtype, allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code)
    n = min(CALIBRATION_WORDS, len(story.words))
    sentences = None if story.sentences is None else np.asarray(story.sentences)[:n]
    started = time.perf_counter()
    compute_features(story.words[:n], loaded.model, loaded.tokenizer, settings,
                     n_layers=loaded.n_layers, separator=story.separator, sentences=sentences,
                     n_virtual_tokens=loaded.n_virtual_tokens, device=device)
    seconds = (time.perf_counter() - started) / max(n, 1)
    return Cost(seconds, "story word", f"calibrated: featurizing the first {n} words of "
                f"'{story.name}' on {device}")


def calibrate_voxels(run_lengths: list[int], n_features: int, spec,
                     backend: str) -> tuple[Cost, float]:
    """Seconds per voxel, and fixed seconds, of one variant's ridge cross-validation.

    Ridge CV on random data of the run lengths and feature count, timed for two
    numbers of voxels: the difference gives the cost per voxel, the rest is the
    per-fit cost (decompositions of the design) that does not grow with voxels.
    """
    rng = np.random.default_rng(0)
    Xs = [rng.standard_normal((n, n_features)).astype("float32") for n in run_lengths]
    encoding, stats = spec.encoding, spec.statistics
    timings = []
    for n_voxels in CALIBRATION_VOXELS:
        Ys = [rng.standard_normal((n, n_voxels)).astype("float32") for n in run_lengths]
        started = time.perf_counter()
        cross_validate(Xs, Ys, encoding.alphas, outer_cv=encoding.outer_cv,
                       inner_folds=encoding.inner_folds, backend=backend,
                       run_labels=[str(i) for i in range(len(Xs))],
                       n_permutations=stats.heldout_permutations,
                       permutation=stats.permutation, block_length=stats.block_length)
        timings.append(time.perf_counter() - started)
    (n1, n2), (t1, t2) = CALIBRATION_VOXELS, timings
    per_voxel = max((t2 - t1) / (n2 - n1), t2 / n2 * 0.1)
    fixed = max(t1 - per_voxel * n1, 0.0)
    return Cost(per_voxel, "voxel", f"calibrated: ridge CV over {len(run_lengths)} runs "
                f"({sum(run_lengths)} volumes, {n_features} features) for {n1} and {n2} "
                f"random voxels, backend {backend}; {fixed:.1f} s per fit besides"), fixed


def count_voxels(run) -> tuple[int, str]:
    """Voxels (or vertices) of a run as the encoding reads them, and how they were counted."""
    import nibabel as nib

    if getattr(run, "kind", "volume") == "volume":
        mask = compute_brain_mask([run.bold_file], [getattr(run, "mask_file", None)])
        how = "shipped brain mask" if getattr(run, "mask_file", None) else "EPI mask"
        return int(np.count_nonzero(np.asanyarray(mask.dataobj))), how
    shape = nib.load(str(run.bold_file)).shape
    if getattr(run, "kind", "") == "surface":
        return int(shape[0]) * 2 if shape else 0, "vertices of both hemispheres"
    return int(shape[-1]) if shape else 0, "grayordinates"


def format_seconds(seconds: float) -> str:
    """``'42 s'``, ``'7.5 min'`` or ``'2.3 h'``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
