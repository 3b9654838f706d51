"""Interfaces of a participant's computation: clean BOLD, designs, cross-validated fits.

Each step reads files and writes its results into its own node folder; nothing
here writes to OUTPUT_DIR (see :mod:`bids_app.interfaces.derivatives` and
:mod:`bids_app.interfaces.sinks`).
"""

from __future__ import annotations

import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    TraitedSpec,
    traits,
)

from ..participant import build_designs, compare_encodings, fit_encoding, prepare_bold
from ..threads import limit_threads
from .base import BrainencInterface, read_settings


class _PrepareBoldInput(BaseInterfaceInputSpec):
    runs_json = File(exists=True, mandatory=True, desc="runs of the participant")
    bold_file = File(exists=True, mandatory=True, desc="[bold] of the spec")


class _PrepareBoldOutput(TraitedSpec):
    mask_file = File(exists=True, desc="analysis mask")
    bold_files = traits.List(File(exists=True), desc="cleaned runs (.npy)")
    info_file = File(exists=True, desc="what was removed from each run (JSON)")


class PrepareBold(BrainencInterface):
    """Mask, clean and z-score runs: :func:`bids_app.participant.prepare_bold`."""

    input_spec = _PrepareBoldInput
    output_spec = _PrepareBoldOutput

    def _compute(self, runtime) -> None:
        mask, files, info = prepare_bold(self.inputs.runs_json,
                                         read_settings(self.inputs.bold_file), runtime.cwd)
        self._results.update(mask_file=mask, bold_files=files, info_file=info)

    def methods(self) -> str:
        """Dummy scans, detrending, high-pass, confounds and z-scoring of the runs."""
        bold = read_settings(self.inputs.bold_file)
        steps = ["masked"]
        if bold.get("dummy_scans"):
            steps.append(f"stripped of their first {bold['dummy_scans']} volumes")
        if bold.get("detrend"):
            steps.append("linearly detrended")
        if bold.get("high_pass"):
            steps.append(f"high-pass filtered at {bold['high_pass']:g} Hz")
        if bold.get("confounds"):
            where = ("with coefficients fitted on the training runs of each outer fold"
                     if bold.get("confound_regression", "fold") == "fold" else "within each run")
            steps.append(f"cleaned of the confounds '{bold['confounds']}' {where}")
        if bold.get("standardize"):
            steps.append("z-scored")
        return f"BOLD time series were {', '.join(steps)} within each run."


class _DesignInput(BaseInterfaceInputSpec):
    runs_json = File(exists=True, mandatory=True, desc="runs of the participant")
    word_tables = InputMultiObject(File(exists=True), mandatory=True, desc="words of each run")
    feature_files = InputMultiObject(File(exists=True), mandatory=True, desc="story features")
    story_names = traits.List(traits.Str, mandatory=True, desc="stories, as featurized")
    layer_position = traits.Int(mandatory=True, desc="position of the layer in the features")
    alignment_file = File(exists=True, mandatory=True, desc="[alignment] of the spec")
    bold_file = File(exists=True, mandatory=True, desc="[bold] of the spec")
    band_positions = traits.List(traits.Int, desc="feature slices used together, a band each")
    band_names = traits.List(traits.Str, desc="names of those bands")
    band_sources = traits.List(traits.Int, desc="extractor of each band (feature_files groups)")
    nuisance_file = File(exists=True, desc="nuisance bands (featurization.nuisance_settings)")
    story_files = traits.List(File(exists=True), desc="story JSON files (nuisance bands)")


class _DesignOutput(TraitedSpec):
    design_files = traits.List(File(exists=True), desc="design of each run (.npy)")


class BuildDesigns(BrainencInterface):
    """Align features to volumes: :func:`bids_app.participant.build_designs`."""

    input_spec = _DesignInput
    output_spec = _DesignOutput

    def _nuisance(self) -> dict:
        if not self.inputs.nuisance_file:
            return {}
        return read_settings(self.inputs.nuisance_file)

    def _compute(self, runtime) -> None:
        self._results["design_files"] = build_designs(
            self.inputs.runs_json, list(self.inputs.word_tables), list(self.inputs.feature_files),
            list(self.inputs.story_names), self.inputs.layer_position,
            read_settings(self.inputs.alignment_file), read_settings(self.inputs.bold_file),
            runtime.cwd, band_positions=list(self.inputs.band_positions) or None,
            band_names=list(self.inputs.band_names) or None,
            band_sources=list(self.inputs.band_sources) or None,
            nuisance=self._nuisance() or None,
            story_files=list(self.inputs.story_files) or None)

    def methods(self) -> str:
        """How word features became volume-wise regressors."""
        align = read_settings(self.inputs.alignment_file)
        how = {
            "hrf": f"convolved with the {align.get('hrf_model')} haemodynamic response "
                   f"function (words as {align.get('word_duration')}), sampled at each "
                   "volume's acquisition time",
            "fir": f"summed within each volume and stacked at delays of {align.get('delays')} "
                   "volumes",
            "lanczos": "Lanczos-resampled to the volume times and stacked at delays of "
                       f"{align.get('delays')} volumes",
        }.get(align.get("method"), f"aligned by {align.get('method')}")
        bands = list(self.inputs.band_names or [])
        nuisance = list(self._nuisance().get("bands") or [])
        text = f"Word features were {how}, and z-scored within each run"
        if len(bands) > 1:
            text += f"; the bands {', '.join(bands)} were set side by side"
        if nuisance:
            text += f"; nuisance bands ({', '.join(nuisance)}) were added to each design"
        return text + "."


class _FitInput(BaseInterfaceInputSpec):
    design_files = InputMultiObject(File(exists=True), mandatory=True, desc="design per run")
    bold_files = InputMultiObject(File(exists=True), mandatory=True, desc="BOLD per run")
    encoding_file = File(exists=True, mandatory=True, desc="[encoding] of the spec")
    statistics_file = File(exists=True, mandatory=True, desc="[statistics] of the spec")
    variant = traits.Str(mandatory=True, desc="variant label")
    seed = traits.Int(0, usedefault=True, desc="random seed")
    mem_gb = traits.Float(2.0, usedefault=True, desc="memory budget of the fit (GB)")
    banded = traits.Bool(False, usedefault=True,
                         desc="banded ridge whatever [encoding] banded says")
    nuisance_bands = traits.List(traits.Str, desc="bands fitted jointly as nuisance")
    save_predictions = traits.Bool(False, usedefault=True,
                                   desc="keep held-out predictions (comparisons)")
    backend = traits.Str("torch", usedefault=True, desc="himalaya backend")
    omp_nthreads = traits.Int(0, usedefault=True, desc="threads of the fit (0: default)")
    use_gpu = traits.Bool(False, usedefault=True, desc="run in MultiProc's GPU slot")


class _FitOutput(TraitedSpec):
    result_file = File(exists=True, desc="EncodingResult (.npz)")


class FitEncoding(BrainencInterface):
    """Cross-validated ridge: :func:`bids_app.participant.fit_encoding`."""

    input_spec = _FitInput
    output_spec = _FitOutput

    def settings(self) -> dict:
        """The ``encoding`` mapping :func:`~bids_app.participant.fit_encoding` reads."""
        encoding = read_settings(self.inputs.encoding_file)
        encoding.update(statistics=read_settings(self.inputs.statistics_file),
                        mem_gb=self.inputs.mem_gb, seed=self.inputs.seed,
                        variant=self.inputs.variant,
                        save_predictions=bool(self.inputs.save_predictions))
        if self.inputs.banded:
            encoding["banded"] = True
        if self.inputs.nuisance_bands:
            encoding["nuisance_bands"] = list(self.inputs.nuisance_bands)
        return encoding

    def _compute(self, runtime) -> None:
        with limit_threads(self.inputs.omp_nthreads):
            self._results["result_file"] = fit_encoding(
                list(self.inputs.design_files), list(self.inputs.bold_files), self.settings(),
                self.inputs.backend, os.path.join(runtime.cwd, "encoding_result.npz"))

    def methods(self) -> str:
        """Ridge type, outer folds, alpha grid and the held-out test."""
        enc = self.settings()
        stats = enc["statistics"]
        alphas = [float(a) for a in enc.get("alphas") or []]
        grid = (f"among {len(alphas)} values ({min(alphas):g} to {max(alphas):g})"
                if alphas else "")
        kind = "Banded ridge regression" if enc.get("banded") else "Ridge regression"
        text = (f"{kind} of '{enc['variant']}' was cross-validated voxel-wise with "
                f"{enc.get('outer_cv')} outer folds; the regularisation was chosen {grid} "
                f"by {enc.get('inner_folds')}-fold inner cross-validation over whole training "
                "runs. Prediction accuracy is the Pearson correlation between predicted and "
                "held-out BOLD, averaged over outer folds")
        if stats.get("heldout_permutations"):
            text += (f"; voxel-wise p-values come from {stats['heldout_permutations']} "
                     f"{stats.get('permutation', 'mismatched')} permutations of the held-out "
                     f"test, FDR-corrected at q < {stats.get('fdr_alpha', 0.05):g}")
        return text + "."


class _CompareInput(BaseInterfaceInputSpec):
    result_a = File(exists=True, mandatory=True, desc="fit of the first variant")
    result_b = File(exists=True, mandatory=True, desc="fit of the second variant")
    statistics_file = File(exists=True, mandatory=True, desc="[statistics] of the spec")
    pair = traits.List(traits.Str, minlen=2, maxlen=2, mandatory=True,
                       desc="variant labels (first minus second)")


class _CompareOutput(TraitedSpec):
    comparison_file = File(exists=True, desc="r difference and its test (.npz)")


class CompareVariants(BrainencInterface):
    """Voxel-wise r difference of two variants: :func:`bids_app.participant.compare_encodings`."""

    input_spec = _CompareInput
    output_spec = _CompareOutput

    def _compute(self, runtime) -> None:
        self._results["comparison_file"] = compare_encodings(
            self.inputs.result_a, self.inputs.result_b,
            read_settings(self.inputs.statistics_file),
            os.path.join(runtime.cwd, "comparison.npz"))

    def methods(self) -> str:
        """Which variants were compared, and with how many null draws."""
        first, second = self.inputs.pair
        n_null = read_settings(self.inputs.statistics_file).get("n_bootstrap", 1000)
        return (f"The held-out r of '{first}' minus that of '{second}' was tested voxel-wise "
                f"against {n_null} paired mismatched-window null draws.")
