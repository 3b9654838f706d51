"""Sections of the experiment spec that say how the dataset is read.

``[annotations]`` (word timings, :class:`AnnotationConfig`), ``[bold]`` (cleaning
and timing of the volumes, :class:`BoldConfig`) and ``[inputs]`` (preprocessed
BOLD outside BIDS-Derivatives, :class:`InputsConfig`). Like every section of
:class:`bids_app.config.ExperimentSpec`, each field carries its help and range
(:func:`bids_app.spec_types.setting`) and choices are ``Literal`` types
(:mod:`bids_app.spec_choices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .spec_choices import ConfoundStrategy, RegressionMode
from .spec_types import setting

__all__ = ["AnnotationConfig", "BoldConfig", "InputsConfig"]


@dataclass
class AnnotationConfig:
    """How word timings are read from the dataset (see ``bids_app.io.stimuli``)."""

    text_column: str = setting("word", help="Column of events.tsv holding the words.")
    separator: str = setting("auto", help="How words are joined into text: the separator "
                             "itself, or 'auto' (none for languages written without spaces, "
                             "else a space).")
    lowercase: bool = setting(False, help="Lowercase the words.")
    strip_punctuation: bool = setting(False, help="Remove punctuation from the words.")
    numbers: Literal["keep", "spell", "drop"] = setting(
        "keep", help="'spell' writes digits as English words, 'drop' removes number words.")
    stimuli_dir: str = setting("stimuli", help="Folder of the mapped files (relative to "
                               "BIDS_DIR, or absolute).")
    mapping: dict = setting(default_factory=dict, help="Run selector → file pattern(s) of "
                            "word timings kept outside BIDS (see above).")
    tier: str | int = setting("", help="TextGrid tier of the words, by name or 1-based index "
                              "(empty: the tier named like 'words').")
    drop_labels: list[str] = setting(default_factory=lambda: [
        "", "sp", "sil", "sil.", "spn", "pau", "silence", "#", "<s>", "</s>", "<sil>", "<unk>",
        "{SL}", "{LG}", "{NS}", "{BR}", "{CG}", "{LS}"], help="TextGrid labels that are "
        "silences (as is any label in {}, <> or []).")
    label_separator: str = setting(" / ", help="A TextGrid label keeps the text "
                                 "before it ('YOU / 1.2' reads 'YOU').")
    interpolate_unaligned: bool = setting(True, help="Words Gentle could not align "
                                          "get interpolated times (false: they are dropped).")
    time_reference: Literal["auto", "story", "run"] = setting(
        "auto", help="Whether annotation times count from the story's start (the story onset "
        "is added) or the run's; 'auto': 'run' for .mat files, 'story' otherwise.")
    clock: Literal["events", "scanner"] = setting(
        "events", help="'scanner': times count from the scanner's first (discarded) volume, "
        "so NumberOfVolumesDiscardedByScanner x TR is subtracted.")
    language: str = setting("", help="Language code; zh, ja, th … join words without "
                            "spaces.")
    segmentation: Literal["none", "characters", "file", "dictionary"] = setting(
        "none", help="'characters' (one word per character), 'file' (segmentation_file: a "
        "pattern like mapping, e.g. SMN4Lang's word-level file beside the character-level one) "
        "or 'dictionary' (forward maximum matching on dictionary, unknown characters stay "
        "single): character timings are pooled into words (first onset, last offset).")
    segmentation_file: str = setting("", help="Pattern of the word-level file (segmentation = "
                                     "'file').")
    dictionary: str = setting("", help="Word list, one word per line (segmentation = "
                              "'dictionary').")
    end_tolerance: float = setting(5.0, help="Seconds a story may end after its run; words "
                                   "after the run are reported, more than this is an error.",
                                   minimum=0)
    strict: bool = setting(False, help="Refuse an annotation with a known defect (below) "
                           "instead of repairing it.")
    sentence_column: str = setting("", help="Column of events.tsv (one word per row) "
                                   "whose value changes where a sentence starts.")
    sentence_tier: str = setting("", help="TextGrid tier of sentences (empty: one named like "
                                 "'sentence', 'phrase' or 'utterance').")
    transcript: str = setting("", help="Punctuated transcript (a pattern under stimuli_dir, "
                              "placeholders as in mapping).")
    sentence_fallback: Literal["none", "pause", "chunks"] = setting(
        "none", help="Only when asked, sentences where no source has them: 'pause' (a "
        "sentence ends at a silence ≥ sentence_gap s) or 'chunks' (sentence_chunk words each).")
    sentence_gap: float = setting(0.5, help="Silence (s) that ends a sentence (sentence_fallback "
                                  "= 'pause').")
    sentence_chunk: int = setting(12, help="Words per sentence (sentence_fallback = 'chunks').")


@dataclass
class BoldConfig:
    """BOLD preparation: cleaning and timing of the volumes."""

    detrend: bool = setting(True, help="Remove a linear trend from each run.")
    standardize: bool = setting(True, help="Z-score each voxel within each run.")
    high_pass: float = setting(0.0, help="High-pass cut-off in Hz (0 disables).")
    dummy_scans: int = setting(0, help="Non-steady-state volumes to drop at the start of each "
                               "run.", minimum=0)
    slice_time_ref: float = setting(0.5, help="When a volume is sampled within its TR, as a "
                                    "fraction of the TR, where the sidecar has no StartTime.")
    confounds: ConfoundStrategy = setting(
        "", help="fMRIPrep confound strategy: one of nilearn's load_confounds_strategy, or "
        "'custom' (components in confound_options.strategy); empty: none.")
    confound_options: dict = setting(default_factory=dict, help="Options of the confound "
                                     "strategy (nilearn's load_confounds_strategy).")
    confound_regression: RegressionMode = setting(
        "fold", help="'fold': motion and tissue confounds share coefficients fitted on the "
        "training runs; 'run': every confound regressed within its own run.")
    voxel_batch: int = setting(20000, help="Voxels cleaned at a time.")


@dataclass
class InputsConfig:
    """Where preprocessed BOLD is found when it is not BIDS-Derivatives (HCP pipelines)."""

    layout: Literal["bids", "hcp"] = setting("bids", help="'hcp': read the path patterns below.")
    root: str = setting("derivatives/preprocessed_data", help="Folder of the patterns "
                        "(relative to BIDS_DIR; -d hcp=PATH overrides it).")
    volume: str = setting("", help="Pattern of volumetric BOLD files.")
    cifti: str = setting("", help="Pattern of CIFTI dtseries files.")
    mask: str = setting("", help="Pattern of brain masks.")
    space: str = setting("MNI152NLin6Asym", help="Template space of the volumes.")
    resolution: str = setting("", help="Resolution label of the volumes.")
    density: str = setting("91k", help="Density of the CIFTI files.")
