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
    file_hash,
    follow_umask,
    locked,
    stable_hash,
    temp_prefix,
)
from stimuli_models.errors import StimuliModelsError
from stimuli_models.features import resolve_layers
from stimuli_models.models import check_model_dir, hash_model_dir, model_n_layers
from stimuli_models.similarity import representation_drift
from stimuli_models.story_features import Story
from stimuli_models.tasks import load_task
from stimuli_models.training import TrainingSettings
from stimuli_models.tuning import get_method

from .config import FeatureConfig
from .errors import UsageError, from_library_error
from .variants import Extractor

LOGGER = logging.getLogger("brainenc.tuning")
RECORD = "tuning.json"


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


def ensure_tuned(extractor_json: str, output_dir: str, *, seed: int, device: str,
                 training: dict | None = None) -> tuple[Path, bool]:
    """Tune an extractor unless a variant folder with the same hash exists.

    Returns
    -------
    record : Path
        ``models/<label>/tuning.json``.
    trained : bool
        Whether this call trained (False when the folder was reused).
    """
    extractor = Extractor.from_json(extractor_json)
    model_dir = Path(extractor.model_dir)
    folder = Path(output_dir) / "models" / extractor.label
    method = get_method(extractor.method, **extractor.settings)
    if method.depends_on_task and extractor.task is None:
        raise UsageError(f"variant '{extractor.label}' uses tuning method '{method.name}', which "
                         "trains on a task; give it a 'task' from the spec's [[tasks]].")
    settings = TrainingSettings.from_dict(training)
    key, task, model_hash = tuning_key(extractor, seed=seed, training=training)
    record = _read_record(folder)
    if record and record.get("tuning_hash") == key:
        return folder / RECORD, False
    with locked(folder):
        record = _read_record(folder)
        if record and record.get("tuning_hash") == key:  # published by a concurrent job
            return folder / RECORD, False
        folder.parent.mkdir(parents=True, exist_ok=True)
        # named like every temporary, so a killed run's leftovers are removed on rerun
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(folder), suffix=".tmp", dir=folder.parent))
        try:
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
                "training_params": result.extra.get("training_params",
                                                    result.trainable_params),
                "total_params": result.total_params,
                "trainable_share": result.trainable_share,
                "head_params": result.extra.get("head_parameters", 0),
                "dev_metric": result.dev_metric,
                "dev_metric_name": result.dev_metric_name,
                "dev_metrics": result.extra.get("dev_metrics", {}),
                "steps": result.steps,
                "train_seconds": result.extra.get("train_seconds"),
                "variant_dir": str(folder) if trained else None,
                "fingerprint": key if trained else model_hash,
                "cka": {},
            }
            atomic_write_json(tmp / RECORD, record)
            _publish(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder / RECORD, True


def record_drift(record_path: Path, extractor: Extractor, story_files: list[str],
                 feature_settings: dict | None, device: str) -> None:
    """Add linear CKA per layer (tuned vs pretrained, on the story words) to the record."""
    record = json.loads(record_path.read_text(encoding="utf-8"))
    stories_hash = stable_hash(sorted(file_hash(p) for p in story_files))
    if record.get("cka_stories") == stories_hash:
        return
    with locked(record_path):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("cka_stories") == stories_hash:
            return
        settings = FeatureConfig.from_dict(feature_settings).settings()
        settings = settings.__class__(**{**settings.to_dict(), "layers": "all",
                                         "dtype": "float32"})

        if record["variant_dir"] is None:  # frozen: the pretrained model itself

            n = model_n_layers(check_model_dir(extractor.model_dir,
                                               allow_pickle=extractor.model.allow_pickle,
                                               trust_remote_code=extractor.model.trust_remote_code))
            cka = {layer: 1.0 for layer in resolve_layers("all", n)}
        else:
            opts = {"device": device, "dtype": "float32",
                    "allow_pickle": extractor.model.allow_pickle,
                    "trust_remote_code": extractor.model.trust_remote_code}
            tuned = get_method(extractor.method, **extractor.settings).load_for_features(
                Path(extractor.model_dir), Path(record["variant_dir"]), **opts)
            pretrained = get_method("frozen").load_for_features(Path(extractor.model_dir), None,
                                                                **opts)
            stories = [Story.from_json(p) for p in story_files]
            cka = representation_drift(tuned, pretrained, stories, settings, device=device)
        record["cka"] = {str(k): round(float(v), 6) for k, v in cka.items()}
        record["cka_stories"] = stories_hash
        atomic_write_json(record_path, record)
        lines = ["layer\tcka"] + [f"{k}\t{v:.6f}" for k, v in sorted(cka.items())]
        (record_path.parent / "cka.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


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
