"""Interfaces of the subject-independent stage: tune each model, featurize each story.

Their results belong to OUTPUT_DIR's content-addressed stores (``models/<label>``
and ``stimuli/features``, see :mod:`bids_app.io.store`), which every participant job
sharing OUTPUT_DIR reuses. These steps only read the stores: what a store lacks
is built in the node folder (``<node folder>/derivatives``, shaped like
OUTPUT_DIR) and a :class:`~bids_app.interfaces.sinks.StoreSink` publishes it.
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

from ..featurization import stage_features
from ..tuning import stage_tuned
from ..variants import Extractor
from .base import BrainencInterface, read_settings, staged_dir


def _extractor(path: str) -> Extractor:
    return Extractor.from_json(Path(path).read_text(encoding="utf-8"))


class _TuneInput(BaseInterfaceInputSpec):
    extractor_file = File(exists=True, mandatory=True, desc="extractor (JSON, see Extractor)")
    store_dir = Directory(mandatory=True,
                          desc="OUTPUT_DIR (its models/ store is read; locks and claims only)")
    seed = traits.Int(0, usedefault=True, desc="random seed of the tuning")
    device = traits.Enum("cpu", "cuda", usedefault=True, desc="torch device")
    training_file = File(exists=True, mandatory=True, desc="[training] of the spec")
    task_files = InputMultiObject(File(exists=True), desc="task data (hashed for reruns)")
    story_files = InputMultiObject(File(exists=True), desc="stories (for the CKA drift)")
    features_file = File(exists=True, mandatory=True,
                         desc="[features] of the spec (for the CKA drift)")
    use_gpu = traits.Bool(False, usedefault=True, desc="run in MultiProc's GPU slot")


class _StoreStepOutput(TraitedSpec):
    """Output of a step that stages what a store lacks, read by a ``StoreSink``."""

    entries = traits.List(traits.Str, desc="its store paths (tuning record or .npy per story), "
                                           "present once published")
    staged_dir = Directory(exists=True, desc="what the store lacks, shaped like OUTPUT_DIR")
    out_files = traits.List(File(exists=True), desc="the staged files (may be none)")


class TuneModel(BrainencInterface):
    """Stage an extractor's tuned model unless stored: :func:`bids_app.tuning.stage_tuned`."""

    input_spec = _TuneInput
    output_spec = _StoreStepOutput

    def _compute(self, runtime) -> None:
        folder = staged_dir(runtime)
        record, staged = stage_tuned(
            Path(self.inputs.extractor_file).read_text(encoding="utf-8"),
            self.inputs.store_dir, folder, seed=self.inputs.seed, device=self.inputs.device,
            training=read_settings(self.inputs.training_file),
            story_files=list(self.inputs.story_files or []),
            feature_settings=read_settings(self.inputs.features_file))
        self._results.update(entries=[record], staged_dir=str(folder), out_files=staged)

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
    tuning_json = File(exists=True, mandatory=True, desc="published tuning record of the extractor")
    story_files = InputMultiObject(File(exists=True), mandatory=True, desc="story files")
    store_dir = Directory(mandatory=True,
                          desc="OUTPUT_DIR (its features store is read; locks and claims only)")
    features_file = File(exists=True, mandatory=True, desc="[features] of the spec")
    device = traits.Enum("cpu", "cuda", usedefault=True, desc="torch device")
    use_gpu = traits.Bool(False, usedefault=True, desc="run in MultiProc's GPU slot")


class FeaturizeStories(BrainencInterface):
    """Stage the story features the store lacks: :func:`bids_app.featurization.stage_features`."""

    input_spec = _FeaturizeInput
    output_spec = _StoreStepOutput

    def _compute(self, runtime) -> None:
        folder = staged_dir(runtime)
        finals, staged = stage_features(
            Path(self.inputs.extractor_file).read_text(encoding="utf-8"),
            self.inputs.tuning_json, list(self.inputs.story_files), self.inputs.store_dir,
            folder, feature_settings=read_settings(self.inputs.features_file),
            device=self.inputs.device)
        self._results.update(entries=finals, staged_dir=str(folder), out_files=staged)

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
