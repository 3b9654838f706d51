"""Interfaces that render results as BIDS-Derivatives inside their node folder.

Each writes the files, under their final BIDS names, into ``<node folder>/derivatives``
(a tree shaped like OUTPUT_DIR) and returns that folder; a
:class:`~bids_app.interfaces.sinks.DerivativesSink` then copies the tree into
OUTPUT_DIR. Rendering and publishing are separate steps, so a step interrupted
while rendering leaves nothing in OUTPUT_DIR.
"""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    traits,
)

from ..clean_bold import write_clean_bold
from ..outputs import tuning_sidecar, write_comparison_outputs, write_mask, write_variant_outputs
from ..participant import load_runs
from .base import (
    BrainencInterface,
    StagedOutputSpec,
    read_settings,
    staged_dir,
    staged_results,
)


class _CleanBoldInput(BaseInterfaceInputSpec):
    bids_dir = Directory(mandatory=True, desc="BIDS_DIR (Sources URIs)")
    runs_json = File(exists=True, mandatory=True, desc="runs of the participant")
    bold_files = traits.List(File(exists=True), mandatory=True, desc="cleaned runs (.npy)")
    mask_file = File(exists=True, mandatory=True, desc="analysis mask")
    bold_file = File(exists=True, mandatory=True, desc="[bold] of the spec")
    outer_cv = traits.Str("leave-one-run-out", usedefault=True, desc="outer folds")
    trim_edges = traits.List(traits.Int, minlen=2, maxlen=2, value=[0, 0], usedefault=True,
                             desc="volumes trimmed at each run's start and end")
    clean_bold_dtype = traits.Enum("int16", "float32", usedefault=True,
                                   desc="data type of the written BOLD")
    word_tables = InputMultiObject(File(exists=True), desc="story labels of the runs")


class WriteCleanBold(BrainencInterface):
    """Cleaned held-out BOLD as derivatives: :func:`bids_app.clean_bold.write_clean_bold`."""

    input_spec = _CleanBoldInput
    output_spec = StagedOutputSpec

    def _compute(self, runtime) -> None:
        folder = staged_dir(runtime)
        write_clean_bold(
            str(folder), self.inputs.bids_dir, self.inputs.runs_json,
            list(self.inputs.bold_files), self.inputs.mask_file,
            read_settings(self.inputs.bold_file),
            {"outer_cv": self.inputs.outer_cv, "trim_edges": list(self.inputs.trim_edges)},
            {"noise_ceiling": True, "clean_bold_dtype": self.inputs.clean_bold_dtype},
            list(self.inputs.word_tables or []))
        self._results.update(staged_results(folder))

    def methods(self) -> str:
        """What the group level's noise ceiling reads."""
        return (f"The cleaned held-out BOLD of each run was saved ({self.inputs.clean_bold_dtype})"
                " for the group-level noise ceiling.")


class _WriteInput(BaseInterfaceInputSpec):
    bids_dir = Directory(mandatory=True, desc="BIDS_DIR (Sources URIs)")
    runs_json = File(exists=True, mandatory=True, desc="runs of the participant")
    result_file = File(exists=True, mandatory=True, desc="EncodingResult (.npz)")
    mask_file = File(exists=True, mandatory=True, desc="analysis mask")
    tuning_json = File(exists=True, mandatory=True, desc="tuning record of the extractor")
    metadata_file = File(exists=True, mandatory=True,
                         desc="variant provenance without tuning record (JSON)")


class WriteVariant(BrainencInterface):
    """Maps, sidecars and scores of a variant: :func:`bids_app.outputs.write_variant_outputs`."""

    input_spec = _WriteInput
    output_spec = StagedOutputSpec

    def _compute(self, runtime) -> None:
        folder = staged_dir(runtime)
        runs = load_runs(self.inputs.runs_json)
        tuning = json.loads(Path(self.inputs.tuning_json).read_text(encoding="utf-8"))
        metadata = read_settings(self.inputs.metadata_file)
        metadata.update(tuning_sidecar(tuning, metadata.get("Layer")))
        write_mask(folder, runs, self.inputs.mask_file, Path(self.inputs.bids_dir))
        write_variant_outputs(str(folder), self.inputs.bids_dir, runs, self.inputs.result_file,
                              self.inputs.mask_file, metadata)
        self._results.update(staged_results(folder))


class _WriteComparisonInput(BaseInterfaceInputSpec):
    bids_dir = Directory(mandatory=True, desc="BIDS_DIR (Sources URIs)")
    runs_json = File(exists=True, mandatory=True, desc="runs of the participant")
    comparison_file = File(exists=True, mandatory=True, desc="from CompareVariants")
    mask_file = File(exists=True, mandatory=True, desc="analysis mask")
    pair = traits.List(traits.Str, minlen=2, maxlen=2, mandatory=True,
                       desc="variant labels (first minus second)")
    statistics_file = File(exists=True, mandatory=True, desc="[statistics] of the spec")


class WriteComparison(BrainencInterface):
    """``stat-rdiff*`` maps of two variants: :func:`bids_app.outputs.write_comparison_outputs`."""

    input_spec = _WriteComparisonInput
    output_spec = StagedOutputSpec

    def _compute(self, runtime) -> None:
        folder = staged_dir(runtime)
        write_comparison_outputs(str(folder), self.inputs.bids_dir,
                                 load_runs(self.inputs.runs_json), self.inputs.comparison_file,
                                 self.inputs.mask_file, list(self.inputs.pair),
                                 read_settings(self.inputs.statistics_file))
        self._results.update(staged_results(folder))
