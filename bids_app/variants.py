"""From the experiment spec to the list of model variants to compute.

An *extractor* is a model tuned by one method on one task (or frozen): it is
tuned once and featurizes every story once. A *variant* is an extractor read at
one layer; it is what an encoding model is fitted on and what ``desc-<label>``
names in the outputs. A variant whose spec line has ``bands_with`` also reads
the extractors of the variants named there, at the same layers, each layer of
each extractor a band of its design (banded ridge partitions the variance).

Every prompt-family extractor (soft prompts, prefixes, deep prompts) gets an
*untrained control*: the same virtual tokens at their initialisation, not trained,
read at the same layers, so that the tuning effect can be told apart from the
shift the virtual tokens cause by themselves. A control whose initialisation reads
nothing of the task (it starts from the seed) is the same for every task: it is
planned once per model, method and settings, with no task (label
``<model><method><settings>untrained``), and controls the variants of every task.
Only a control that starts from the task (``prompt`` with ``init = 'labels'``) is
planned per extractor (label ``<extractor>untrained``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stimuli_models.errors import StimuliModelsError
from stimuli_models.features import resolve_layers
from stimuli_models.models import check_model_dir, model_n_layers, resolve_model
from stimuli_models.tuning import get_method

from .config import ExperimentSpec, ModelEntry, TaskEntry, VariantEntry
from .errors import UsageError, from_library_error
from .spec_choices import TuningMethodName
from .variant_labels import alnum, check_bands_with, entry_label, settings_tag

__all__ = ["Extractor", "Variant", "check_bands_with", "entry_label", "has_untrained_control",
           "plan_variants", "settings_tag"]


@dataclass
class Extractor:
    """A (tuned) model that produces features."""

    label: str
    model: ModelEntry
    model_dir: str
    method: TuningMethodName
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
    #: Extractors of the variants named by ``bands_with``: their features at the same
    #: layer positions join the design as further bands.
    with_extractors: list = field(default_factory=list)

    @property
    def band_positions(self) -> list[int]:
        """Slices of the feature files that form the design's bands (one when unbanded)."""
        if not self.band_layers:
            return [self.layer_position]
        return [self.extractor.layers.index(layer) for layer in self.band_layers]

    @property
    def sources(self) -> list[Extractor]:
        """The extractors whose features the design holds, its own first."""
        return [self.extractor, *self.with_extractors]

    def bands(self) -> list[tuple[int, int, str]]:
        """Model bands of the design, in column order.

        Returns
        -------
        list of (int, int, str)
            Index in :attr:`sources`, slice of that extractor's feature files and band
            name: ``L<layer>``, or ``<extractor>L<layer>`` when several extractors
            contribute (``stat-r2split<Band>`` names it).
        """
        positions = self.band_positions
        if not self.with_extractors:
            return [(0, p, f"L{self.extractor.layers[p]}") for p in positions]
        return [(k, p, f"{ex.label}L{ex.layers[p]}")
                for k, ex in enumerate(self.sources) for p in positions]

    def description(self) -> str:
        """One line for ``descriptions.tsv``."""
        ex = self.extractor
        task = f" tuned on task '{ex.task.name}'" if ex.task else ""
        method = "pretrained (frozen)" if ex.method == "frozen" else f"{ex.method}-tuned"
        if ex.settings.get("untrained"):
            method = (f"untrained {ex.method} control (virtual tokens at their "
                      "initialisation, not trained)")
            task = (f" set up for task '{ex.task.name}'" if ex.task
                    else ", the same for every task")
        where = (f"hidden layers {', '.join(map(str, self.band_layers))} as bands"
                 if self.band_layers else f"hidden layer {self.layer}")
        line = (f"Encoding model of {method} '{ex.model.name}' ({ex.model.source}){task}, "
                f"{where}")
        if self.with_extractors:
            others = ", ".join(f"'{other.label}'" for other in self.with_extractors)
            line += (f", with the features of {others} at the same layers as further bands "
                     "(banded ridge)")
        return line


def _identity(entry: VariantEntry) -> str:
    return json.dumps([entry.model, entry.method, entry.settings, entry.task], sort_keys=True,
                      default=str)


def _make_extractor(spec: ExperimentSpec, entry: VariantEntry, label: str) -> Extractor:
    """Resolve the model, layers and task of one spec line."""
    base_dir = Path(spec.source_file).parent if spec.source_file else None
    model = spec.model(entry.model)
    try:
        model_dir = resolve_model(model.source, base_dir=base_dir,
                                  allow_download=model.allow_download)
        config = check_model_dir(model_dir, allow_pickle=model.allow_pickle,
                                 trust_remote_code=model.trust_remote_code)
        layers = resolve_layers(spec.features.settings().layers, model_n_layers(config))
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    task = spec.task(entry.task) if entry.task else None
    if task is not None and base_dir is not None:  # task files relative to the spec
        task = TaskEntry(name=task.name, type=task.type,
                         options={**task.options, "base_dir": str(base_dir)})
    return Extractor(label=label, model=model, model_dir=str(model_dir), method=entry.method,
                     settings=dict(entry.settings), task=task, layers=list(layers))


def plan_variants(spec: ExperimentSpec) -> tuple[list[Extractor], list[Variant]]:
    """Resolve models and layers and name every extractor and variant.

    Spec lines that differ only in ``bands_with`` share one extractor (tuned and
    featurized once). A line with ``bands_with`` and no ``label`` is labelled
    ``<label>with<other labels>`` so that it can sit beside the plain line.

    Returns
    -------
    extractors : list of Extractor
        One per distinct model x method x settings x task.
    variants : list of Variant
        One per spec line and layer, labels unique.
    """
    extractors, owners = {}, {}
    for entry in spec.variants:
        label = entry_label(entry)
        if label not in extractors:
            extractors[label] = _make_extractor(spec, entry, label)
            owners[label] = _identity(entry)
        elif owners[label] != _identity(entry):
            raise UsageError(f"two variants are both labelled '{label}'; give them distinct "
                             "'label's in the spec.")
    controls = _controls(extractors)
    variants, labels = [], set()
    for i, entry in enumerate(spec.variants):
        extractor = extractors[entry_label(entry)]
        others = [extractors[name] for name in entry.bands_with]
        for other in others:
            if len(other.layers) != len(extractor.layers):
                raise UsageError(
                    f"'variants[{i}].bands_with' names '{other.label}', read at layers "
                    f"{other.layers}, but this variant is read at layers {extractor.layers}; "
                    "use [features] layers that give every model as many layers (relative "
                    "depths or indices rather than 'all').")
        base = entry.label or extractor.label + ("with" + "".join(entry.bands_with)
                                                 if others else "")
        for variant in _layer_variants(spec, base, extractor):
            if variant.label in labels:
                raise UsageError(f"two variants are both labelled '{variant.label}'; give "
                                 "them distinct 'label's in the spec.")
            labels.add(variant.label)
            variant.with_extractors = others
            variants.append(variant)
        control = controls.get(extractor.label)
        if control is not None and not others:  # beside the variants it controls
            for variant in _layer_variants(spec, control.label, control):
                if variant.label not in labels:
                    labels.add(variant.label)
                    variants.append(variant)
    return list(extractors.values()), variants


def has_untrained_control(method: str, settings: dict) -> bool:
    """Whether variants of ``method`` get an untrained control (prompt-family methods)."""
    tuner = get_method(method, **settings)
    return bool(getattr(tuner, "prompt_learning", False)) and not tuner.settings.get("untrained")


def _control(extractor: Extractor, extractors: dict) -> Extractor | None:
    """The untrained control of a prompt-family extractor (None for other methods).

    The control has no task (and a label without one) when its initialisation does
    not read the task; ``extractors`` holds the spec's own lines, whose labels win.
    """
    settings = {**extractor.settings, "untrained": True}
    try:
        if not has_untrained_control(extractor.method, extractor.settings):
            return None
        per_task = get_method(extractor.method, **settings).depends_on_task
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    label = (f"{extractor.label}untrained" if per_task or extractor.task is None else
             alnum(extractor.model.name + extractor.method + settings_tag(extractor.settings))
             + "untrained")
    if label in extractors:
        return None
    return Extractor(label=label, model=extractor.model, model_dir=extractor.model_dir,
                     method=extractor.method, settings=settings,
                     task=extractor.task if per_task else None, layers=list(extractor.layers))


def _controls(extractors: dict) -> dict:
    """Add the untrained controls to ``extractors``; return extractor label -> its control.

    Extractors of several tasks share one task-independent control.
    """
    controls, shared = {}, {}
    for label, extractor in list(extractors.items()):
        control = _control(extractor, extractors)
        if control is None:
            continue
        first = shared.setdefault(control.label, control)
        if first.to_json() != control.to_json():
            raise UsageError(f"the untrained controls of variants '{label}' and of another "
                             f"model or settings would both be labelled '{control.label}'; give "
                             "the spec's [[models]] names that differ in letters or digits.")
        controls[label] = first
    extractors.update(shared)
    return controls


def _layer_variants(spec: ExperimentSpec, base: str, extractor: Extractor) -> list[Variant]:
    """One variant per layer, or one with every layer a band (``[features] bands``)."""
    layers = extractor.layers
    if spec.features.bands and len(layers) > 1:
        contiguous = list(layers) == list(range(layers[0], layers[-1] + 1))
        tag = (f"L{layers[0]}to{layers[-1]}" if contiguous
               else "".join(f"L{layer}" for layer in layers))
        return [Variant(label=f"{base}{tag}", extractor=extractor, layer=layers[-1],
                        layer_position=len(layers) - 1, band_layers=list(layers))]
    return [Variant(label=f"{base}L{layer}", extractor=extractor, layer=layer,
                    layer_position=position) for position, layer in enumerate(layers)]
