"""Interfaces of the subject-independent stage: tune each model, featurize each story.

These two steps keep their results in OUTPUT_DIR's content-addressed stores
(``models/<label>`` and ``stimuli/features``), published atomically under a lock:
every participant job that shares OUTPUT_DIR reuses one tuned model and one set
of features instead of computing its own. Their node folders hold only the
paths to those stores.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    TraitedSpec,
    traits,
)

from ..featurization import featurize_extractor
from ..tuning import tune_extractor
from ..variants import Extractor
from .base import BrainencInterface, read_settings


def _extractor(path: str) -> Extractor:
    return Extractor.from_json(Path(path).read_text(encoding="utf-8"))


class _TuneInput(BaseInterfaceInputSpec):
    extractor_file = File(exists=True, mandatory=True, desc="extractor (JSON, see Extractor)")
    output_dir = Directory(mandatory=True, desc="OUTPUT_DIR (models/<label> store)")
    seed = traits.Int(0, usedefault=True, desc="random seed of the tuning")
    device = traits.Enum("cpu", "cuda", usedefault=True, desc="torch device")
    training_file = File(exists=True, mandatory=True, desc="[training] of the spec")
    task_files = InputMultiObject(File(exists=True), desc="task data (hashed for reruns)")
    story_files = InputMultiObject(File(exists=True), desc="stories (for the CKA drift)")
    features_file = File(exists=True, mandatory=True,
                         desc="[features] of the spec (for the CKA drift)")
    use_gpu = traits.Bool(False, usedefault=True, desc="run in MultiProc's GPU slot")


class _TuneOutput(TraitedSpec):
    tuning_json = File(exists=True, desc="tuning record of the extractor")


class TuneModel(BrainencInterface):
    """Tune (or reuse) one extractor's model: :func:`bids_app.tuning.tune_extractor`."""

    input_spec = _TuneInput
    output_spec = _TuneOutput

    def _compute(self, runtime) -> None:
        self._results["tuning_json"] = tune_extractor(
            Path(self.inputs.extractor_file).read_text(encoding="utf-8"),
            self.inputs.output_dir, seed=self.inputs.seed, device=self.inputs.device,
            training=read_settings(self.inputs.training_file),
            story_files=list(self.inputs.story_files or []),
            feature_settings=read_settings(self.inputs.features_file))

    def methods(self) -> str:
        """Model, tuning method, task and the training settings that matter."""
        extractor = _extractor(self.inputs.extractor_file)
        source = extractor.model.source
        if extractor.settings.get("untrained"):
            task = f"set up for task '{extractor.task.name}'" if extractor.task else \
                "the same for every task"
            return (f"The untrained {extractor.method} control of {source} "
                    f"('{extractor.label}', {task}) kept its virtual tokens at their "
                    f"initialisation (random seed {self.inputs.seed}), without training.")
        if extractor.task is None or extractor.method == "frozen":
            return (f"The pretrained model {source} ('{extractor.label}') was used without "
                    "tuning.")
        training = read_settings(self.inputs.training_file)
        return (f"The model {source} was tuned with {extractor.method} on the "
                f"{extractor.task.type or 'NLU'} task '{extractor.task.name}' "
                f"('{extractor.label}'; at most {training.get('max_steps')} steps, batch size "
                f"{training.get('batch_size')}, weight decay {training.get('weight_decay')}, "
                f"random seed {self.inputs.seed}).")


class _FeaturizeInput(BaseInterfaceInputSpec):
    extractor_file = File(exists=True, mandatory=True, desc="extractor (JSON, see Extractor)")
    tuning_json = File(exists=True, mandatory=True, desc="tuning record of the extractor")
    story_files = InputMultiObject(File(exists=True), mandatory=True, desc="story files")
    output_dir = Directory(mandatory=True, desc="OUTPUT_DIR (stimuli/features store)")
    features_file = File(exists=True, mandatory=True, desc="[features] of the spec")
    device = traits.Enum("cpu", "cuda", usedefault=True, desc="torch device")
    use_gpu = traits.Bool(False, usedefault=True, desc="run in MultiProc's GPU slot")


class _FeaturizeOutput(TraitedSpec):
    feature_files = traits.List(File(exists=True), desc="features of each story (.npy)")


class FeaturizeStories(BrainencInterface):
    """Features of every story: :func:`bids_app.featurization.featurize_extractor`."""

    input_spec = _FeaturizeInput
    output_spec = _FeaturizeOutput

    def _compute(self, runtime) -> None:
        self._results["feature_files"] = featurize_extractor(
            Path(self.inputs.extractor_file).read_text(encoding="utf-8"),
            self.inputs.tuning_json, list(self.inputs.story_files), self.inputs.output_dir,
            feature_settings=read_settings(self.inputs.features_file),
            device=self.inputs.device)

    def methods(self) -> str:
        """Units, pooling, context and layers of the word features."""
        feat = read_settings(self.inputs.features_file)
        extractor = _extractor(self.inputs.extractor_file)
        layers = ", ".join(str(layer) for layer in extractor.layers)
        return (f"Features of '{extractor.label}' ({feat.get('unit')} units, sub-tokens "
                f"pooled by {feat.get('pooling')}, {feat.get('direction')} context of "
                f"{feat.get('context_words')} {feat.get('context_unit', 'words')}, windows of "
                f"{feat.get('stride')} target words) were read from hidden layer(s) {layers} "
                f"of the {len(self.inputs.story_files)} stories.")
