"""Wire :mod:`stimuli_models.tuning` into the BIDS-App (``OUTPUT_DIR/models/<label>``).

Tuning is subject-independent: it runs once per extractor and dataset, and its
result is reused by every participant job (also by jobs in other processes).
A variant folder holds the trained tensors (``tuned.safetensors``, the task
head apart), ``resolved_config.json``, ``training_curve.tsv`` and
``tuning.json`` (method, settings, task, dev metric, trainable count and share,
the content hash of everything the result depends on, and the representation
drift as linear CKA per layer). A folder whose hash matches is reused without a
single training step; the folder is built under a temporary name and published
by renaming while holding a file lock, so concurrent jobs train it once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from stimuli_models.cache import (
    atomic_write_json,
    follow_umask,
    locked,
    stable_hash,
    temp_prefix,
)
from stimuli_models.errors import StimuliModelsError
from stimuli_models.models import hash_model_dir
from stimuli_models.tasks import load_task
from stimuli_models.training import TrainingSettings
from stimuli_models.tuning import get_method

from .errors import ProcessingError, UsageError, from_library_error
from .io.derivatives import copy_file
from .io.store import claim, claimed_copy, copy_staged, publish_folder, release
from .model_drift import RECORD, layer_drift, record_drift, stories_hash, write_drift
from .variants import Extractor

LOGGER = logging.getLogger("brainenc.tuning")


def _read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _publish(tmp: Path, folder: Path) -> None:
    """Replace ``folder`` by ``tmp`` with renames (readers never see a half folder)."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
        os.replace(folder, old / folder.name)
    os.replace(tmp, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _load_task(extractor: Extractor, seed: int):
    entry = extractor.task
    options = dict(entry.options)
    base_dir = options.pop("base_dir", None)
    return load_task(entry.name, entry.type, options, base_dir=base_dir, seed=seed)


def tuning_key(extractor: Extractor, *, seed: int, training: dict | None = None):
    """Content hash of everything a tuned model depends on (reads the task data).

    Returns
    -------
    key : str
        The hash; ``models/<label>/tuning.json`` holding it is reused as is.
    task : TaskData or None
        The task's data (None for methods that do not train).
    model_hash : str
        Hash of the pretrained model's files.
    """
    method = get_method(extractor.method, **extractor.settings)
    settings = TrainingSettings.from_dict(training)
    task = _load_task(extractor, seed) if method.needs_task and extractor.task else None
    model_hash = hash_model_dir(Path(extractor.model_dir))
    key = stable_hash({"model": model_hash, "method": method.name, "settings": method.settings,
                       "task": task.fingerprint if task else None, "seed": seed,
                       "training": settings.to_dict() if task else None})
    return key, task, model_hash


def cached_record(output_dir: str | os.PathLike, label: str, key: str) -> dict | None:
    """The ``tuning.json`` of ``models/<label>`` when it holds ``key`` (else None)."""
    record = _read_record(Path(output_dir) / "models" / label)
    return record if record and record.get("tuning_hash") == key else None


def _check_extractor(extractor_json: str):
    """The extractor, its tuning method, and the task check every path shares."""
    extractor = Extractor.from_json(extractor_json)
    method = get_method(extractor.method, **extractor.settings)
    if method.depends_on_task and extractor.task is None:
        raise UsageError(f"variant '{extractor.label}' uses tuning method '{method.name}', which "
                         "trains on a task; give it a 'task' from the spec's [[tasks]].")
    return extractor, method


def _tune_into(tmp: Path, extractor: Extractor, method, *, key: str, task, model_hash: str,
               final: Path, seed: int, device: str, training: dict | None) -> dict:
    """Tune into the empty folder ``tmp``; write its record as if published at ``final``."""
    settings = TrainingSettings.from_dict(training)
    model_dir = Path(extractor.model_dir)
    follow_umask(tmp, directory=True)
    result = method.tune(model_dir, task, tmp, seed=seed, device=device,
                         training=settings, allow_pickle=extractor.model.allow_pickle,
                         trust_remote_code=extractor.model.trust_remote_code,
                         log=LOGGER.info)
    resolved = {"model": extractor.model.source, "model_dir": str(model_dir),
                "method": method.name, "settings": method.settings,
                "task": None if task is None else {
                    "name": task.name, "type": task.type, **extractor.task.options},
                "training": settings.to_dict(), "seed": seed, "device": device}
    atomic_write_json(tmp / "resolved_config.json", resolved)
    trained = method.needs_task
    record = {
        "tuning_hash": key,
        "label": extractor.label,
        "model": extractor.model.source,
        "model_dir": str(model_dir),
        "model_sha256": model_hash,
        "method": method.name,
        "settings": method.settings,
        "task": task.name if task else None,
        "task_type": task.type if task else None,
        "task_sha256": task.fingerprint if task else None,
        "n_train": result.extra.get("n_train"),
        "n_dev": result.extra.get("n_dev"),
        "seed": seed,
        "training": settings.to_dict() if task else None,
        "trainable_params": result.trainable_params,
        "training_params": result.extra.get("training_params", result.trainable_params),
        "total_params": result.total_params,
        "trainable_share": result.trainable_share,
        "head_params": result.extra.get("head_parameters", 0),
        "dev_metric": result.dev_metric,
        "dev_metric_name": result.dev_metric_name,
        "dev_metrics": result.extra.get("dev_metrics", {}),
        "steps": result.steps,
        "train_seconds": result.extra.get("train_seconds"),
        "variant_dir": str(final) if trained else None,
        "fingerprint": key if trained else model_hash,
        "cka": {},
    }
    atomic_write_json(tmp / RECORD, record)
    return record


def ensure_tuned(extractor_json: str, output_dir: str, *, seed: int, device: str,
                 training: dict | None = None) -> tuple[Path, bool]:
    """Tune an extractor straight into the store unless its entry is there already.

    This is the path of :mod:`bids_app.api` (a notebook's cache folder); the
    workflow stages the entry in its node folder instead (:func:`stage_tuned`).

    Returns
    -------
    record : Path
        ``models/<label>/tuning.json``.
    trained : bool
        Whether this call trained (False when the folder was reused).
    """
    extractor, method = _check_extractor(extractor_json)
    folder = Path(output_dir) / "models" / extractor.label
    key, task, model_hash = tuning_key(extractor, seed=seed, training=training)
    if cached_record(output_dir, extractor.label, key):
        return folder / RECORD, False
    with locked(folder):
        if cached_record(output_dir, extractor.label, key):  # published by a concurrent job
            return folder / RECORD, False
        folder.parent.mkdir(parents=True, exist_ok=True)
        # named like every temporary, so a killed run's leftovers are removed on rerun
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(folder), suffix=".tmp", dir=folder.parent))
        try:
            _tune_into(tmp, extractor, method, key=key, task=task, model_hash=model_hash,
                       final=folder, seed=seed, device=device, training=training)
            _publish(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder / RECORD, True


def stage_tuned(extractor_json: str, output_dir: str, stage_root: str | os.PathLike, *,
                seed: int, device: str, training: dict | None = None,
                story_files: list[str] | None = None,
                feature_settings: dict | None = None) -> tuple[str, list[str]]:
    """Stage the tuned model of one extractor in a node folder, unless the store has it.

    The store (``OUTPUT_DIR/models/<label>``) is only read. On a miss the model is
    tuned into ``<stage_root>/models/<label>`` (or copied from a concurrent job's
    finished staged copy, see :mod:`bids_app.io.store`); when the story set changed,
    a new record with the CKA drift on these stories is staged beside it.
    :func:`publish_tuned` publishes what was staged.

    Parameters
    ----------
    extractor_json : str
        Serialised :class:`~bids_app.variants.Extractor`.
    output_dir : str
        The BIDS-App's OUTPUT_DIR (holding the store).
    stage_root : path
        The node's staging folder (shaped like OUTPUT_DIR).
    seed : int
        Random seed.
    device : str
        Torch device.
    training : dict, optional
        Training-loop settings (``[training]`` of the spec).
    story_files : list of str, optional
        Story JSON files for the CKA drift.
    feature_settings : dict, optional
        ``[features]`` of the spec (context and pooling used for the CKA).

    Returns
    -------
    record : str
        ``OUTPUT_DIR/models/<label>/tuning.json``, as published.
    staged : list of str
        The staged files (empty when the store holds the entry as it should be).
    """
    try:
        extractor, method = _check_extractor(extractor_json)
        final = Path(output_dir) / "models" / extractor.label
        stage = Path(stage_root) / "models" / extractor.label
        key, task, model_hash = tuning_key(extractor, seed=seed, training=training)
        with locked(final):
            record, tensors = cached_record(output_dir, extractor.label, key), final
            if record is None:
                other = claimed_copy(final, key)
                if other is not None:  # finished by a concurrent job, not yet published
                    copy_staged(other, stage)
                else:
                    stage.parent.mkdir(parents=True, exist_ok=True)
                    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(stage), suffix=".tmp",
                                                dir=stage.parent))
                    try:
                        _tune_into(tmp, extractor, method, key=key, task=task,
                                   model_hash=model_hash, final=final, seed=seed,
                                   device=device, training=training)
                    except BaseException:
                        shutil.rmtree(tmp, ignore_errors=True)
                        raise
                    os.replace(tmp, stage)
                record, tensors = _read_record(stage), stage
            wanted = stories_hash(list(story_files)) if story_files else None
            if wanted is not None and record.get("cka_stories") != wanted:
                cka = layer_drift(record, tensors, extractor, list(story_files),
                                  feature_settings, device)
                stage.mkdir(parents=True, exist_ok=True)
                write_drift(stage, record, cka, wanted)
            if stage.exists():
                claim(final, stage, key)
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    return str(final / RECORD), sorted(str(p) for p in stage.rglob("*") if p.is_file())


def publish_tuned(record_file: str | os.PathLike, stage_root: str | os.PathLike,
                  output_dir: str | os.PathLike) -> int:
    """Publish the model :func:`stage_tuned` staged, if any, in the store.

    A store entry with another key is replaced whole (by renames). One with the
    same key keeps its tensors (first publication wins) and only takes a newer
    record and ``cka.tsv`` when the staged ones measured the drift on other stories.

    Parameters
    ----------
    record_file : path
        ``OUTPUT_DIR/models/<label>/tuning.json`` (what :func:`stage_tuned` returned).
    stage_root : path
        The staging folder of the step that staged it.
    output_dir : path
        OUTPUT_DIR.

    Returns
    -------
    int
        Files written.
    """
    final = Path(record_file).parent
    stage = Path(stage_root) / final.relative_to(output_dir)
    if not stage.exists():
        return 0
    new = _read_record(stage)
    if new is None:
        raise ProcessingError(f"the staged model '{stage}' has no {RECORD}; rerun the same "
                              "command to tune it again.")
    with locked(final):
        old = _read_record(final)
        if old is None or old.get("tuning_hash") != new.get("tuning_hash"):
            publish_folder(stage, final)
            written = sum(1 for p in stage.rglob("*") if p.is_file())
        elif "cka_stories" in new and old.get("cka_stories") != new["cka_stories"]:
            written = sum(copy_file(stage / name, final / name)
                          for name in ("cka.tsv", RECORD) if (stage / name).is_file())
        else:
            written = 0
        release(final)
    return written


def tune_extractor(extractor_json: str, output_dir: str, *, seed: int, device: str,
                   training: dict | None = None, story_files: list[str] | None = None,
                   feature_settings: dict | None = None) -> str:
    """Tune (or reuse) the model of one extractor and record its drift.

    Parameters
    ----------
    extractor_json : str
        Serialised :class:`~bids_app.variants.Extractor`.
    output_dir : str
        The BIDS-App's OUTPUT_DIR.
    seed : int
        Random seed.
    device : str
        Torch device.
    training : dict, optional
        Training-loop settings (``[training]`` of the spec).
    story_files : list of str, optional
        Story JSON files; when given, linear CKA between each layer of the tuned
        and the pretrained model on their words is added to the record.
    feature_settings : dict, optional
        ``[features]`` of the spec (context and pooling used for the CKA).

    Returns
    -------
    str
        Path of ``models/<label>/tuning.json``.
    """
    try:
        record, _ = ensure_tuned(extractor_json, output_dir, seed=seed, device=device,
                                 training=training)
        if story_files:
            record_drift(record, Extractor.from_json(extractor_json), list(story_files),
                         feature_settings, device)
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    return str(record)
