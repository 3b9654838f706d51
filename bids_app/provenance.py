"""What produced a variant's maps: the sidecar provenance and its settings hash.

Every participant output of a variant records ``SettingsHash``: a short hash of
every spec setting that changes its maps (model, tuning method, settings and
task, layer, feature, annotation, alignment, BOLD preparation, encoding and
held-out-statistics settings, and the training settings of tuned variants).
Settings that only change how fast or where the work runs (batch sizes, backend,
``[statistics]`` read by the group stage) are left out, so that a rerun on
another machine gives the same hash. The group stage compares these hashes to
refuse maps of one label made under different settings.
"""

from __future__ import annotations

import hashlib
import json

from .config import spec_from_dict, spec_with_absolute_paths
from .outputs import variant_metadata
from .unique_variance import NUISANCE_WEIGHTS

#: Sidecar keys whose values change a variant's maps.
MAP_SETTING_KEYS = ("Model", "TuningMethod", "TaskName", "TaskType", "TuningSettings",
                    "Layer", "Layers", "Features", "Annotations", "Alignment",
                    "BoldPreparation", "Encoding", "Statistics", "BandsWith", "Training")

#: Keys of sidecar sections that do not change the maps (speed, memory, device).
EXECUTION_ONLY = {
    "Features": ("batch_size",),
    "BoldPreparation": ("voxel_batch",),
    "Encoding": ("backend", "n_targets_batch", "estimator"),
}

#: ``[statistics]`` keys that change a participant's maps (held-out permutation test);
#: the others are read by the group stage or name comparisons, not these maps.
PARTICIPANT_STATISTICS = ("heldout_permutations", "permutation", "heldout_p", "block_length")


def map_settings(metadata: dict) -> dict:
    """The part of a sidecar (or of variant metadata) that determines the maps.

    Parameters
    ----------
    metadata : dict
        A ``stat-*`` sidecar, or the metadata given to the writer of the maps.

    Returns
    -------
    dict
        JSON-compatible settings, execution-only keys removed.
    """
    data = json.loads(json.dumps({k: metadata[k] for k in MAP_SETTING_KEYS if k in metadata},
                                 default=str))
    for section, keys in EXECUTION_ONLY.items():
        if isinstance(data.get(section), dict):
            for key in keys:
                data[section].pop(key, None)
    if isinstance(data.get("Statistics"), dict):
        data["Statistics"] = {k: v for k, v in data["Statistics"].items()
                              if k in PARTICIPANT_STATISTICS}
    if data.get("TaskName") is None:  # left out of sidecars when None
        data.pop("TaskName", None)
    return _canonical(data)


def _canonical(value):
    """Numbers as floats (a spec saved and read back may write ``10`` as ``10.0``)."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def settings_hash(metadata: dict) -> str:
    """Hash (12 hex digits) of :func:`map_settings` of a sidecar or of variant metadata."""
    text = json.dumps(map_settings(metadata), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def settings_differences(first: dict, second: dict) -> list[str]:
    """Dotted names of the map settings that differ between two sidecars.

    Returns
    -------
    list of str
        E.g. ``['Encoding.alphas', 'Features.context_words']``, sorted.
    """
    a, b = map_settings(first), map_settings(second)
    names = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) or isinstance(y, dict):
            x, y = x if isinstance(x, dict) else {}, y if isinstance(y, dict) else {}
            names += [f"{key}.{sub}" for sub in sorted(set(x) | set(y)) if x.get(sub) != y.get(sub)]
        elif x != y:
            names.append(key)
    return names


def variant_sidecar_metadata(variant, spec, seed: int, backend: str) -> dict:
    """Sidecar provenance of one variant, its layer bands and the extractors it bands with.

    ``SettingsHash`` is computed with the files the spec names made absolute, as in
    the spec saved in OUTPUT_DIR, so that the group stage finds the same hash from it.

    Parameters
    ----------
    variant : Variant
        From :func:`bids_app.variants.plan_variants`.
    spec : ExperimentSpec
        The experiment spec.
    seed : int
        Random seed of the run.
    backend : str
        himalaya backend.

    Returns
    -------
    dict
        Metadata shared by every sidecar of the variant, with ``SettingsHash``.
    """
    metadata = _metadata(variant, spec, seed, backend)
    absolute = _absolute_spec(spec)
    hashed = metadata if absolute is spec else _metadata(
        _with_models(variant, absolute), absolute, seed, backend)
    metadata["SettingsHash"] = settings_hash(hashed)
    return metadata


def _absolute_spec(spec):
    """The spec with the files it names made absolute (as :func:`save_spec` writes it)."""
    if not spec.source_file:
        return spec
    return spec_from_dict(spec_with_absolute_paths(spec), source_file=spec.source_file)


def _with_models(variant, spec):
    """``variant`` whose extractors name their models as ``spec`` does."""
    import dataclasses

    def swap(extractor):
        return dataclasses.replace(extractor, model=spec.model(extractor.model.name))

    return dataclasses.replace(variant, extractor=swap(variant.extractor),
                               with_extractors=[swap(e) for e in variant.with_extractors])


def _metadata(variant, spec, seed: int, backend: str) -> dict:
    import dataclasses

    metadata = variant_metadata(variant.label, variant.extractor, variant.layer, spec, seed,
                                backend)
    if variant.extractor.method != "frozen":  # training settings change tuned models
        metadata["Training"] = dataclasses.asdict(spec.training)
    if variant.band_layers:  # several layers, one band each
        metadata["Layers"] = list(variant.band_layers)
        metadata["Features"] = {**metadata["Features"], "layers": list(variant.band_layers)}
    if spec.features.nuisance:  # fitted jointly with the language bands

        metadata["NuisanceBands"] = list(spec.features.nuisance)
        if not spec.encoding.banded and not variant.with_extractors:
            metadata["Encoding"] = {
                **metadata["Encoding"], "nuisance_weights": list(NUISANCE_WEIGHTS),
                "estimator": "banded ridge by grid search: nuisance columns weighted by one of "
                             f"{list(NUISANCE_WEIGHTS)} and alpha chosen per voxel on the inner "
                             "folds (eigendecomposition ridge solver on himalaya's backend)"}
    if variant.with_extractors:
        metadata["BandsWith"] = [
            {"Extractor": ex.label, "Model": ex.model.source, "ModelName": ex.model.name,
             "TuningMethod": ex.method, "TaskName": ex.task.name if ex.task else None,
             "TuningSettings": dict(ex.settings),
             "Layers": [ex.layers[p] for p in variant.band_positions]}
            for ex in variant.with_extractors]
        metadata["Encoding"] = {**metadata["Encoding"], "banded": True,
                                "estimator": "himalaya banded ridge "
                                             "(BandedRidgeCV/MultipleKernelRidgeCV)"}
    return metadata
