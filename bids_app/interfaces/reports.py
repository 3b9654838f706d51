"""Interface of the participant report, rendered in its node folder.

The report reads the maps the sinks published (so its figures show what
OUTPUT_DIR holds) and carries the Methods text the workflow generated from its
steps; a :class:`~bids_app.interfaces.sinks.DerivativesSink` publishes it.
"""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    traits,
)

from ..config import load_spec
from ..errors import ProcessingError
from ..outputs import variant_maps
from ..participant import load_runs
from ..reports.participant import write_participant_report
from .base import BrainencInterface, StagedOutputSpec, staged_dir, staged_results


class _ReportInput(BaseInterfaceInputSpec):
    output_dir = Directory(mandatory=True, desc="OUTPUT_DIR (logs, stimuli)")
    subject = traits.Str(mandatory=True, desc="participant label")
    runs_json = File(exists=True, mandatory=True, desc="runs of the participant")
    word_tables = InputMultiObject(File(exists=True), mandatory=True, desc="words of each run")
    bold_info = File(exists=True, mandatory=True, desc="record of PrepareBold")
    variants = traits.List(traits.Str, mandatory=True, desc="variant labels, in report order")
    derivative_files = traits.List(File(exists=True), mandatory=True,
                                   desc="published maps and scores of the variants")
    spec_file = File(exists=True, mandatory=True, desc="the resolved spec")
    warnings = traits.List(traits.Str, desc="warnings of the run's planning")
    methods = traits.Str("", usedefault=True, desc="Methods text generated from the workflow")


class ParticipantReport(BrainencInterface):
    """HTML report: :func:`bids_app.reports.participant.write_participant_report`."""

    input_spec = _ReportInput
    output_spec = StagedOutputSpec

    def _compute(self, runtime) -> None:
        files = list(self.inputs.derivative_files)
        outputs = {}
        for label in self.inputs.variants:
            maps = variant_maps(files, label)
            if maps is None:
                raise ProcessingError(f"the maps of variant '{label}' were not published in "
                                      f"'{self.inputs.output_dir}'; rerun the same command.")
            outputs[label] = maps
        folder = staged_dir(runtime)
        write_participant_report(
            self.inputs.output_dir, self.inputs.subject, load_runs(self.inputs.runs_json),
            list(self.inputs.word_tables), self.inputs.bold_info, outputs,
            load_spec(self.inputs.spec_file), list(self.inputs.warnings or []),
            methods=self.inputs.methods, out_dir=str(folder))
        self._results.update(staged_results(folder))
