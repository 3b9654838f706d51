"""Guards on the designs of every variant, run before any fit.

Per run: columns with zero variance, numerical rank, share of volumes with words.
A degenerate design (rank below 2 in a run, or every column constant within
every run) measures nothing but the word rate, or nothing at all, so the fit of
that participant stops with a clear message. Across variants: a variant whose
features are identical to another's by construction (a layer below the top ``k``
layers that ``partial`` tunes; a second untrained control of the same model,
method and settings whose virtual tokens start from the seed, whatever its task)
is flagged in the reports and kept out of comparisons, and the spec check warns
about it. The controls the planner adds are never such duplicates: one
task-independent control serves every task (:mod:`bids_app.variants`).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from stimuli_models.errors import StimuliModelsError
from stimuli_models.models import check_model_dir, model_n_layers
from stimuli_models.tuning import get_method

from ..errors import DatasetError

#: Singular values below this fraction of the largest count as zero.
RANK_TOLERANCE = 1e-6


def run_summary(design: np.ndarray, with_words: float, *, block: int | None = None) -> dict:
    """Checks of one run's design.

    Parameters
    ----------
    design : ndarray of shape (n_volumes, n_columns)
        The run's design.
    with_words : float
        Share of the run's volumes during which at least one word starts.
    block : int, optional
        Columns of one delay (or HRF basis function) of the model features, the
        first ones of the design: the rank is that of this block, so that words
        sharing one vector give rank 1 whatever the delays. Default: all columns.

    Returns
    -------
    dict
        ``n_volumes``, ``n_columns``, ``zero_variance`` (columns constant in the
        run), ``rank`` (numerical rank of the block) and ``volumes_with_words``.
    """
    full = np.asarray(design, dtype=np.float64)
    n_columns = int(full.shape[1])
    spread = full.max(axis=0, initial=-np.inf) - full.min(axis=0, initial=np.inf) \
        if len(full) else np.zeros(n_columns)
    scale = np.abs(full).max(axis=0, initial=0.0) if len(full) else np.zeros(n_columns)
    constant = spread <= 1e-7 * np.maximum(scale, 1e-30)
    x = full[:, :block or n_columns]
    centred = x - x.mean(axis=0, keepdims=True) if len(x) else x
    rank = 0
    if len(x) and x.shape[1]:
        singular = np.linalg.svd(centred, compute_uv=False)
        if singular[0] > 0:
            rank = int((singular > RANK_TOLERANCE * float(singular[0])).sum())
    return {"n_volumes": int(full.shape[0]), "n_columns": n_columns,
            "zero_variance": int(constant.sum()), "rank": rank,
            "volumes_with_words": round(float(with_words), 4)}


def check_designs(summaries: list[dict], runs: list[str], variant: str) -> None:
    """Stop when the design of a variant is degenerate.

    Parameters
    ----------
    summaries : list of dict
        From :func:`run_summary`, one per run.
    runs : list of str
        Run names (for the message).
    variant : str
        Variant label (for the message).

    Raises
    ------
    DatasetError
        When every column is constant within every run, or a run's design has
        numerical rank below 2.
    """
    if summaries and all(s["zero_variance"] == s["n_columns"] for s in summaries):
        raise DatasetError(
            f"the design of variant '{variant}' is constant within every run (all "
            f"{summaries[0]['n_columns']} columns), so there is nothing to fit; check that the "
            "runs' words overlap their volumes (onsets, events clock) and that the features "
            "vary from word to word.")
    for name, summary in zip(runs, summaries, strict=True):
        if summary["rank"] < 2:
            raise DatasetError(
                f"the design of variant '{variant}' has numerical rank {summary['rank']} in run "
                f"'{name}' ({summary['n_columns']} columns, words in "
                f"{summary['volumes_with_words']:.0%} of its volumes): every word gets the same "
                "features, so the fit would measure only when words are heard; with "
                "features.unit = 'sentence' give sentence boundaries ([annotations] "
                "sentence_column, sentence_tier, transcript or sentence_fallback), otherwise "
                "use features.unit = 'word'.")


def volumes_with_words(onsets: np.ndarray, times: np.ndarray, tr: float) -> float:
    """Share of volumes during whose acquisition (``[t - TR, t)``) at least one word starts."""
    times = np.asarray(times, dtype=float)
    if not len(times):
        return 0.0
    onsets = np.sort(np.asarray(onsets, dtype=float))
    first = np.searchsorted(onsets, times - tr, side="left")
    last = np.searchsorted(onsets, times, side="left")
    return float((last > first).mean())


def feature_digest(arrays) -> str:
    """Hash of feature arrays (equal digests: identical features)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _n_layers(extractor) -> int | None:
    try:
        config = check_model_dir(extractor.model_dir, allow_pickle=extractor.model.allow_pickle,
                                 trust_remote_code=extractor.model.trust_remote_code)
        return int(model_n_layers(config))
    except (StimuliModelsError, OSError, ValueError):
        return None


def untrained_layer(variant, n_layers: int | None) -> bool:
    """Whether a ``partial`` variant reads a hidden layer its tuning leaves untouched.

    ``partial`` with ``k`` trains the top ``k`` of ``n_layers`` layers (and what
    follows them), so hidden states ``0 .. n_layers - k`` equal the pretrained
    model's.
    """
    extractor = variant.extractor
    k = (extractor.settings or {}).get("k")
    if extractor.method != "partial" or n_layers is None or variant.with_extractors:
        return False
    if k is None and not (extractor.settings or {}).get("share"):
        k = 2  # the method's default
    if not isinstance(k, int):
        return False
    layers = variant.band_layers or [variant.layer]
    return max(layers) <= n_layers - k


def duplicate_controls(variants) -> dict[str, str]:
    """Untrained controls identical to an earlier one whatever the task they name.

    A control whose initialisation reads nothing of the task (it starts from the
    seed) gives the same features for every task: spec lines that differ only in
    the task of such a control duplicate the first of them.

    Returns
    -------
    dict
        Label -> label of the first control of the same model, method, settings and
        layer(s).
    """
    first, out = {}, {}
    for variant in variants:
        ex = variant.extractor
        if not (ex.settings or {}).get("untrained") or variant.with_extractors:
            continue
        try:
            if get_method(ex.method, **ex.settings).depends_on_task:
                continue
        except StimuliModelsError:
            continue
        key = json.dumps([ex.model_dir, ex.method, ex.settings,
                          variant.band_layers or [variant.layer]], sort_keys=True, default=str)
        if first.setdefault(key, variant.label) != variant.label:
            out[variant.label] = first[key]
    return out


def identical_by_construction(variants) -> dict[str, str]:
    """Variants whose features equal another's by construction.

    Returns
    -------
    dict
        Label -> label of the frozen variant of the same model and layer(s), or
        ``'pretrained <model> L<layer>'`` when the spec has no such variant (a
        ``partial`` variant read below its tuned layers); or -> label of the first
        of duplicate untrained controls (:func:`duplicate_controls`).
    """
    cache: dict = {}
    frozen = {}
    for variant in variants:
        if variant.extractor.method == "frozen" and not variant.with_extractors:
            key = (variant.extractor.model.source, tuple(variant.band_layers or [variant.layer]))
            frozen.setdefault(key, variant.label)
    out = {}
    for variant in variants:
        ex = variant.extractor
        if ex.method != "partial":
            continue
        if ex.model_dir not in cache:
            cache[ex.model_dir] = _n_layers(ex)
        if untrained_layer(variant, cache[ex.model_dir]):
            layers = tuple(variant.band_layers or [variant.layer])
            out[variant.label] = frozen.get(
                (ex.model.source, layers),
                f"pretrained {ex.model.name} L{'-'.join(map(str, layers))}")
    return {**out, **duplicate_controls(variants)}


def identical_warnings(variants) -> list[str]:
    """One warning per variant identical to another by construction, saying why."""
    controls = duplicate_controls(variants)
    return [f"variant '{label}' is an untrained control whose virtual tokens start from the "
            f"seed whatever the task, so its features are identical to {other!r} by "
            "construction; it is kept out of comparisons (drop the line: every prompt-family "
            "variant gets its untrained control without one)." if label in controls else
            f"variant '{label}' reads a layer below the top layers that 'partial' tunes, so its "
            f"features are identical to {other!r} by construction; it is kept out of "
            "comparisons (raise 'k' or choose deeper [features] layers to compare tuning)."
            for label, other in identical_by_construction(variants).items()]
