"""From the experiment spec to the list of model variants to compute.

An *extractor* is a model tuned by one method on one task (or frozen): it is
tuned once and featurizes every story once. A *variant* is an extractor read at
one layer; it is what an encoding model is fitted on and what ``desc-<label>``
names in the outputs.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import ExperimentSpec, ModelEntry, TaskEntry
from .errors import UsageError, from_library_error

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


@dataclass
class Extractor:
    """A (tuned) model that produces features."""

    label: str
    model: ModelEntry
    model_dir: str
    method: str
    settings: dict = field(default_factory=dict)
    task: TaskEntry | None = None
    layers: list = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise (for nipype inputs)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Extractor:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["model"] = ModelEntry(**data["model"])
        data["task"] = TaskEntry(**data["task"]) if data.get("task") else None
        return cls(**data)


@dataclass
class Variant:
    """An extractor read at one hidden layer."""

    label: str
    extractor: Extractor
    layer: int
    layer_position: int
    #: Hidden layers used together, one band each (``[features] bands = true``);
    #: ``layer`` is then the deepest of them.
    band_layers: list = field(default_factory=list)

    @property
    def band_positions(self) -> list[int]:
        """Slices of the feature files that form the design's bands (one when unbanded)."""
        if not self.band_layers:
            return [self.layer_position]
        return [self.extractor.layers.index(layer) for layer in self.band_layers]

    def description(self) -> str:
        """One line for ``descriptions.tsv``."""
        ex = self.extractor
        task = f" tuned on task '{ex.task.name}'" if ex.task else ""
        method = "pretrained (frozen)" if ex.method == "frozen" else f"{ex.method}-tuned"
        where = (f"hidden layers {', '.join(map(str, self.band_layers))} as bands"
                 if self.band_layers else f"hidden layer {self.layer}")
        return (f"Encoding model of {method} '{ex.model.name}' ({ex.model.source}){task}, "
                f"{where}")


def _alnum(text: str) -> str:
    return _NON_ALNUM.sub("", text)


def settings_tag(settings: dict) -> str:
    """Short alphanumeric tag of method settings.

    ``{'k': 2}`` gives ``'k2'``; keys with underscores are cut to their initials
    (``{'num_virtual_tokens': 4}`` gives ``'nvt4'``).
    """
    parts = []
    for key in sorted(settings):
        value = settings[key]
        if isinstance(value, (list, tuple)):
            value = "".join(str(v) for v in value)
        short = "".join(w[0] for w in key.split("_")) if "_" in key else key
        parts.append(f"{short}{value}")
    return _alnum("".join(parts))


def plan_variants(spec: ExperimentSpec) -> tuple[list[Extractor], list[Variant]]:
    """Resolve models and layers and name every extractor and variant.

    Returns
    -------
    extractors : list of Extractor
    variants : list of Variant
        One per extractor and layer, labels unique.
    """
    from stimuli_models.errors import StimuliModelsError
    from stimuli_models.features import resolve_layers
    from stimuli_models.models import check_model_dir, model_n_layers, resolve_model

    base_dir = Path(spec.source_file).parent if spec.source_file else None
    feature_settings = spec.features.settings()
    extractors, variants, labels = [], [], set()
    for entry in spec.variants:
        model = spec.model(entry.model)
        try:
            model_dir = resolve_model(model.source, base_dir=base_dir,
                                      allow_download=model.allow_download)
            config = check_model_dir(model_dir, allow_pickle=model.allow_pickle,
                                     trust_remote_code=model.trust_remote_code)
            layers = resolve_layers(feature_settings.layers, model_n_layers(config))
        except StimuliModelsError as exc:
            raise from_library_error(exc) from None
        task = spec.task(entry.task) if entry.task else None
        if task is not None and base_dir is not None:  # task files relative to the spec
            task = TaskEntry(name=task.name, type=task.type,
                             options={**task.options, "base_dir": str(base_dir)})
        base = entry.label or _alnum(model.name + entry.method + settings_tag(entry.settings)
                                     + (task.name if task else ""))
        if base in labels:
            raise UsageError(f"two variants are both labelled '{base}'; give them distinct "
                             "'label's in the spec.")
        labels.add(base)
        extractor = Extractor(label=base, model=model, model_dir=str(model_dir),
                              method=entry.method, settings=dict(entry.settings), task=task,
                              layers=list(layers))
        extractors.append(extractor)
        if spec.features.bands and len(layers) > 1:
            contiguous = list(layers) == list(range(layers[0], layers[-1] + 1))
            tag = (f"L{layers[0]}to{layers[-1]}" if contiguous
                   else "".join(f"L{layer}" for layer in layers))
            variants.append(Variant(label=f"{base}{tag}", extractor=extractor, layer=layers[-1],
                                    layer_position=len(layers) - 1, band_layers=list(layers)))
            continue
        for position, layer in enumerate(layers):
            variants.append(Variant(label=f"{base}L{layer}", extractor=extractor,
                                    layer=layer, layer_position=position))
    return extractors, variants
