"""Nipype interfaces: thin wrappers around the plain functions of :mod:`bids_app`.

Each interface passes file paths in and out; the work is done by functions that
can be called and tested without nipype. Interfaces that may use the GPU have a
``use_gpu`` input, which nipype's MultiProc plugin reads to give each GPU job its
own slot (``n_gpu_procs``).
"""

from __future__ import annotations

import json
import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)


class _TuneInput(BaseInterfaceInputSpec):
    extractor_json = traits.Str(mandatory=True, desc="serialised Extractor")
    output_dir = traits.Str(mandatory=True, desc="OUTPUT_DIR")
    seed = traits.Int(0, usedefault=True)
    device = traits.Str("cpu", usedefault=True)
    training = traits.Dict(desc="training settings")
    task_files = InputMultiObject(File(exists=True), desc="task data (hashed for reruns)")
    story_files = InputMultiObject(File(exists=True), desc="stories (for the CKA drift)")
    feature_settings = traits.Dict(desc="[features] of the spec (for the CKA drift)")
    use_gpu = traits.Bool(False, usedefault=True)


class _TuneOutput(TraitedSpec):
    tuning_json = File(exists=True)


class TuneModel(SimpleInterface):
    """Tune (or reuse) one extractor's model: :func:`bids_app.tuning.tune_extractor`."""

    input_spec = _TuneInput
    output_spec = _TuneOutput

    def _run_interface(self, runtime):
        from ..tuning import tune_extractor

        self._results["tuning_json"] = tune_extractor(
            self.inputs.extractor_json, self.inputs.output_dir, seed=self.inputs.seed,
            device=self.inputs.device, training=dict(self.inputs.training or {}),
            story_files=list(self.inputs.story_files or []),
            feature_settings=dict(self.inputs.feature_settings or {}))
        return runtime


class _FeaturizeInput(BaseInterfaceInputSpec):
    extractor_json = traits.Str(mandatory=True)
    tuning_json = File(exists=True, mandatory=True)
    story_files = InputMultiObject(File(exists=True), mandatory=True)
    output_dir = traits.Str(mandatory=True)
    feature_settings = traits.Dict(mandatory=True)
    device = traits.Str("cpu", usedefault=True)
    use_gpu = traits.Bool(False, usedefault=True)


class _FeaturizeOutput(TraitedSpec):
    feature_files = traits.List(File(exists=True))


class FeaturizeStories(SimpleInterface):
    """Features of every story: :func:`bids_app.featurization.featurize_extractor`."""

    input_spec = _FeaturizeInput
    output_spec = _FeaturizeOutput

    def _run_interface(self, runtime):
        from ..featurization import featurize_extractor

        self._results["feature_files"] = featurize_extractor(
            self.inputs.extractor_json, self.inputs.tuning_json, list(self.inputs.story_files),
            self.inputs.output_dir, feature_settings=dict(self.inputs.feature_settings),
            device=self.inputs.device)
        return runtime


class _PrepareBoldInput(BaseInterfaceInputSpec):
    runs_json = File(exists=True, mandatory=True)
    bold_spec = traits.Dict(mandatory=True)


class _PrepareBoldOutput(TraitedSpec):
    mask_file = File(exists=True)
    bold_files = traits.List(File(exists=True))
    info_file = File(exists=True)


class PrepareBold(SimpleInterface):
    """Mask, clean and z-score runs: :func:`bids_app.participant.prepare_bold`."""

    input_spec = _PrepareBoldInput
    output_spec = _PrepareBoldOutput

    def _run_interface(self, runtime):
        from ..participant import prepare_bold

        mask, files, info = prepare_bold(self.inputs.runs_json, dict(self.inputs.bold_spec),
                                         runtime.cwd)
        self._results.update(mask_file=mask, bold_files=files, info_file=info)
        return runtime


class _CleanBoldInput(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True)
    bids_dir = traits.Str(mandatory=True)
    runs_json = File(exists=True, mandatory=True)
    bold_files = traits.List(File(exists=True), mandatory=True)
    mask_file = File(exists=True, mandatory=True)
    bold_spec = traits.Dict(mandatory=True)
    encoding = traits.Dict(mandatory=True, desc="[encoding] (outer_cv, trim_edges)")
    statistics = traits.Dict(mandatory=True, desc="[statistics] (noise_ceiling, dtype)")
    word_tables = InputMultiObject(File(exists=True), desc="story labels of the runs")


class _CleanBoldOutput(TraitedSpec):
    out_files = traits.List(traits.Str)


class WriteCleanBold(SimpleInterface):
    """Cleaned held-out BOLD to OUTPUT_DIR: :func:`bids_app.clean_bold.write_clean_bold`."""

    input_spec = _CleanBoldInput
    output_spec = _CleanBoldOutput

    def _run_interface(self, runtime):
        from ..clean_bold import write_clean_bold

        self._results["out_files"] = write_clean_bold(
            self.inputs.output_dir, self.inputs.bids_dir, self.inputs.runs_json,
            list(self.inputs.bold_files), self.inputs.mask_file, dict(self.inputs.bold_spec),
            dict(self.inputs.encoding), dict(self.inputs.statistics),
            list(self.inputs.word_tables or []))
        return runtime


class _DesignInput(BaseInterfaceInputSpec):
    runs_json = File(exists=True, mandatory=True)
    word_tables = InputMultiObject(File(exists=True), mandatory=True)
    feature_files = InputMultiObject(File(exists=True), mandatory=True)
    story_names = traits.List(traits.Str, mandatory=True)
    layer_position = traits.Int(mandatory=True)
    alignment = traits.Dict(mandatory=True)
    bold_spec = traits.Dict(mandatory=True)
    band_positions = traits.List(traits.Int, desc="feature slices used together, a band each")
    band_names = traits.List(traits.Str, desc="names of those bands")
    band_sources = traits.List(traits.Int, desc="extractor of each band (feature_files groups)")
    nuisance = traits.Dict(desc="nuisance bands (bids_app.featurization.nuisance_settings)")
    story_files = traits.List(File(exists=True), desc="story JSON files (nuisance bands)")


class _DesignOutput(TraitedSpec):
    design_files = traits.List(File(exists=True))


class BuildDesigns(SimpleInterface):
    """Align features to volumes: :func:`bids_app.participant.build_designs`."""

    input_spec = _DesignInput
    output_spec = _DesignOutput

    def _run_interface(self, runtime):
        from ..participant import build_designs

        self._results["design_files"] = build_designs(
            self.inputs.runs_json, list(self.inputs.word_tables), list(self.inputs.feature_files),
            list(self.inputs.story_names), self.inputs.layer_position,
            dict(self.inputs.alignment), dict(self.inputs.bold_spec), runtime.cwd,
            band_positions=list(self.inputs.band_positions) or None,
            band_names=list(self.inputs.band_names) or None,
            band_sources=list(self.inputs.band_sources) or None,
            nuisance=dict(self.inputs.nuisance) or None,
            story_files=list(self.inputs.story_files) or None)
        return runtime


class _FitInput(BaseInterfaceInputSpec):
    design_files = InputMultiObject(File(exists=True), mandatory=True)
    bold_files = InputMultiObject(File(exists=True), mandatory=True)
    encoding = traits.Dict(mandatory=True)
    backend = traits.Str("torch", usedefault=True)
    omp_nthreads = traits.Int(0, usedefault=True)
    use_gpu = traits.Bool(False, usedefault=True)


class _FitOutput(TraitedSpec):
    result_file = File(exists=True)


class FitEncoding(SimpleInterface):
    """Cross-validated ridge: :func:`bids_app.participant.fit_encoding`."""

    input_spec = _FitInput
    output_spec = _FitOutput

    def _run_interface(self, runtime):
        from ..participant import fit_encoding
        from ..threads import limit_threads

        with limit_threads(self.inputs.omp_nthreads):
            self._results["result_file"] = fit_encoding(
                list(self.inputs.design_files), list(self.inputs.bold_files),
                dict(self.inputs.encoding), self.inputs.backend,
                os.path.join(runtime.cwd, "encoding_result.npz"))
        return runtime


class _WriteInput(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True)
    bids_dir = traits.Str(mandatory=True)
    runs_json = File(exists=True, mandatory=True)
    result_file = File(exists=True, mandatory=True)
    mask_file = File(exists=True, mandatory=True)
    tuning_json = File(exists=True, mandatory=True)
    metadata = traits.Dict(mandatory=True, desc="variant provenance without tuning record")


class _WriteOutput(TraitedSpec):
    out_files = traits.List(traits.Str)
    outputs_json = traits.Str(desc="JSON: variant label -> written maps and scores")


class WriteVariant(SimpleInterface):
    """Write maps and sidecars: :func:`bids_app.outputs.write_variant_outputs`."""

    input_spec = _WriteInput
    output_spec = _WriteOutput

    def _run_interface(self, runtime):
        from pathlib import Path

        from ..outputs import tuning_sidecar, write_mask, write_variant_outputs
        from ..participant import load_runs

        runs = load_runs(self.inputs.runs_json)
        tuning = json.loads(Path(self.inputs.tuning_json).read_text(encoding="utf-8"))
        metadata = dict(self.inputs.metadata)
        metadata.update(tuning_sidecar(tuning, metadata.get("Layer")))
        write_mask(Path(self.inputs.output_dir), runs, self.inputs.mask_file,
                   Path(self.inputs.bids_dir))
        files = write_variant_outputs(self.inputs.output_dir, self.inputs.bids_dir, runs,
                                      self.inputs.result_file, self.inputs.mask_file, metadata)
        outputs = {"r": files[0], "r2": files[1], "alpha": files[2],
                   "scores": next(f for f in files if f.endswith("_scores.tsv"))}
        for stat in ("p", "q"):  # permutation test maps, when computed
            found = next((f for f in files if f"_stat-{stat}_" in os.path.basename(f)), None)
            if found:
                outputs[stat] = found
        self._results["out_files"] = files
        self._results["outputs_json"] = json.dumps({metadata["variant"]: outputs})
        return runtime


class _CompareInput(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True)
    bids_dir = traits.Str(mandatory=True)
    runs_json = File(exists=True, mandatory=True)
    result_a = File(exists=True, mandatory=True)
    result_b = File(exists=True, mandatory=True)
    mask_file = File(exists=True, mandatory=True)
    pair = traits.List(traits.Str, mandatory=True, desc="variant labels (first minus second)")
    statistics = traits.Dict(mandatory=True)


class _CompareOutput(TraitedSpec):
    out_files = traits.List(traits.Str)


class CompareVariants(SimpleInterface):
    """Voxel-wise r difference of two variants: :func:`bids_app.participant.compare_encodings`."""

    input_spec = _CompareInput
    output_spec = _CompareOutput

    def _run_interface(self, runtime):
        from ..outputs import write_comparison_outputs
        from ..participant import compare_encodings, load_runs

        out = compare_encodings(self.inputs.result_a, self.inputs.result_b,
                                dict(self.inputs.statistics),
                                os.path.join(runtime.cwd, "comparison.npz"))
        self._results["out_files"] = write_comparison_outputs(
            self.inputs.output_dir, self.inputs.bids_dir, load_runs(self.inputs.runs_json),
            out, self.inputs.mask_file, list(self.inputs.pair), dict(self.inputs.statistics))
        return runtime


class _ReportInput(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True)
    subject = traits.Str(mandatory=True)
    runs_json = File(exists=True, mandatory=True)
    word_tables = InputMultiObject(File(exists=True), mandatory=True)
    bold_info = File(exists=True, mandatory=True)
    variant_outputs = traits.List(traits.Str, mandatory=True)
    spec_file = File(exists=True, mandatory=True)
    warnings = traits.List(traits.Str)


class _ReportOutput(TraitedSpec):
    report = traits.Str()


class ParticipantReport(SimpleInterface):
    """HTML report: :func:`bids_app.reports.participant.write_participant_report`."""

    input_spec = _ReportInput
    output_spec = _ReportOutput

    def _run_interface(self, runtime):
        from ..config import load_spec
        from ..participant import load_runs
        from ..reports.participant import write_participant_report

        outputs = {}
        for item in self.inputs.variant_outputs:
            outputs.update(json.loads(item))
        self._results["report"] = write_participant_report(
            self.inputs.output_dir, self.inputs.subject, load_runs(self.inputs.runs_json),
            list(self.inputs.word_tables), self.inputs.bold_info, outputs,
            load_spec(self.inputs.spec_file), list(self.inputs.warnings or []))
        return runtime
