"""NLU tasks named as Hugging Face ``datasets`` datasets, and a table of known benchmarks.

A task entry may name a dataset instead of files::

    [[tasks]]
    name = "sst2"
    hub = "glue"
    config = "sst2"

It is read from a folder written by ``datasets.save_to_disk`` (``path``) or from
the local ``datasets`` cache (``cache_dir``, default: the ``datasets`` cache), and
fetched from the Hub only with ``allow_download = true``. Known benchmarks
(:data:`BENCHMARKS`) bring their task type, columns, splits and dev metric, so a
spec needs only the name; any option of the entry overrides them. Class labels
stored as integers (``ClassLabel``) are read as their names, in the dataset's order.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SettingsError, TaskDataError
from .clue import RESHAPERS

#: Options of a task entry that name a ``datasets`` dataset, with their defaults.
HUB_OPTIONS = {"hub": None, "config": None, "path": None, "cache_dir": None,
               "allow_download": False, "revision": None}


@dataclass(frozen=True)
class Benchmark:
    """Type, options and metric of a known benchmark."""

    type: str
    options: dict = field(default_factory=dict)
    metric: str = ""


_SEQ, _PAIR = "sequence-classification", "sentence-pair-classification"
_TOK, _QA = "token-classification", "question-answering"
_MC = "multiple-choice"
_PAIR_COLS = {"text_column": "sentence1", "text_pair_column": "sentence2"}
_SQUAD = Benchmark(_QA, {}, "f1")

#: Known benchmarks: ``(dataset, config)`` -> :class:`Benchmark` (dataset without namespace).
BENCHMARKS: dict[tuple[str, str | None], Benchmark] = {
    ("glue", "cola"): Benchmark(_SEQ, {"text_column": "sentence"}, "matthews"),
    ("glue", "sst2"): Benchmark(_SEQ, {"text_column": "sentence"}, "accuracy"),
    ("glue", "mrpc"): Benchmark(_PAIR, _PAIR_COLS, "f1"),
    ("glue", "qqp"): Benchmark(_PAIR, {"text_column": "question1",
                                       "text_pair_column": "question2"}, "f1"),
    ("glue", "mnli"): Benchmark(_PAIR, {"text_column": "premise",
                                        "text_pair_column": "hypothesis",
                                        "dev_split": "validation_matched"}, "accuracy"),
    ("glue", "qnli"): Benchmark(_PAIR, {"text_column": "question",
                                        "text_pair_column": "sentence"}, "accuracy"),
    ("glue", "rte"): Benchmark(_PAIR, _PAIR_COLS, "accuracy"),
    ("glue", "wnli"): Benchmark(_PAIR, _PAIR_COLS, "accuracy"),
    ("conll2003", None): Benchmark(_TOK, {"tags_column": "ner_tags"}, "f1"),
    ("wnut_17", None): Benchmark(_TOK, {"tags_column": "ner_tags"}, "f1"),
    ("squad", None): _SQUAD,
    ("squad_v2", None): _SQUAD,
    # CLUE (Chinese). cluewsc2020, csl, chid and c3 are reshaped (see stimuli_models.tasks.clue)
    ("clue", "afqmc"): Benchmark(_PAIR, _PAIR_COLS, "accuracy"),
    ("clue", "tnews"): Benchmark(_SEQ, {"text_column": "sentence"}, "accuracy"),
    ("clue", "iflytek"): Benchmark(_SEQ, {"text_column": "sentence"}, "accuracy"),
    ("clue", "cmnli"): Benchmark(_PAIR, _PAIR_COLS, "accuracy"),
    ("clue", "ocnli"): Benchmark(_PAIR, _PAIR_COLS, "accuracy"),
    ("clue", "cmrc2018"): _SQUAD,
    ("clue", "drcd"): _SQUAD,
    ("clue", "cluewsc2020"): Benchmark(_SEQ, {"text_column": "text"}, "accuracy"),
    ("clue", "csl"): Benchmark(_PAIR, _PAIR_COLS, "accuracy"),
    ("clue", "chid"): Benchmark(_MC, {}, "accuracy"),
    ("clue", "c3"): Benchmark(_MC, {}, "accuracy"),
}
#: Hub ids under which a short benchmark name is stored (tried in this order).
ALIASES = {"glue": ("nyu-mll/glue", "glue"), "conll2003": ("eriktks/conll2003", "conll2003"),
           "wnut_17": ("leondz/wnut_17", "wnut_17"), "squad": ("rajpurkar/squad", "squad"),
           "squad_v2": ("rajpurkar/squad_v2", "squad_v2"), "clue": ("clue/clue", "clue")}
#: Revision a download of these Hub repositories reads: their main branch holds a loading
#: script, which ``datasets`` 4 and later refuse; the Hub's Parquet export is on this branch.
DOWNLOAD_REVISIONS = {"eriktks/conll2003": "refs/convert/parquet",
                      "leondz/wnut_17": "refs/convert/parquet"}


def known_benchmark(hub: str, config: str | None) -> Benchmark | None:
    """The table entry of a dataset (``namespace/`` ignored), or None."""
    name = str(hub).rstrip("/").split("/")[-1].lower()
    return BENCHMARKS.get((name, config)) or BENCHMARKS.get((name, None))


def reshape_hub_rows(rows: list[dict], hub: str, config: str | None) -> list[dict]:
    """Rows of a CLUE task stored in a layout of its own, reshaped for its task type.

    Rows of every other dataset are returned unchanged.
    """
    name = str(hub).rstrip("/").split("/")[-1].lower()
    if name == "clue" and config in RESHAPERS:
        return RESHAPERS[config](rows)
    return rows


def download_arguments(options: dict) -> tuple[tuple, dict]:
    """Positional and keyword arguments of ``datasets.load_dataset`` for a task entry.

    A known benchmark named by its short name is fetched from the repository it
    is stored under on the Hub (``glue`` -> ``nyu-mll/glue``), and from the
    Parquet export of repositories whose main branch is a loading script;
    ``revision`` in the entry overrides that.

    Returns
    -------
    args : tuple
        ``(repository, config)``.
    kwargs : dict
        ``cache_dir`` and ``revision``.
    """
    hub = str(options["hub"])
    name = hub.rstrip("/").split("/")[-1].lower()
    repo = ALIASES[name][0] if "/" not in hub and name in ALIASES else hub
    revision = options.get("revision") or DOWNLOAD_REVISIONS.get(repo)
    return (repo, options.get("config")), {"cache_dir": options.get("cache_dir"),
                                           "revision": revision}


def resolve_hub_task(task_type: str, options: dict) -> tuple[str, dict]:
    """Type and options of a task entry, with a known benchmark's defaults filled in.

    Parameters
    ----------
    task_type : str
        ``type`` of the entry ('' to take the benchmark's).
    options : dict
        The entry's options; returned unchanged when there is no ``hub``.

    Returns
    -------
    task_type : str
    options : dict

    Raises
    ------
    SettingsError
        A ``hub`` with files, an unknown dataset without ``type``, or a GLUE/CLUE
        name without ``config``.
    """
    hub = options.get("hub")
    if not hub:
        return task_type, options
    if not isinstance(hub, str):
        raise SettingsError(f"'hub' must be a dataset name such as 'glue'; got {hub!r}.")
    if options.get("train") or options.get("dev"):
        raise SettingsError(f"the task names the dataset '{hub}' and files ('train'/'dev'); "
                            "give one or the other.")
    config = options.get("config")
    benchmark = known_benchmark(hub, config)
    base = hub.rstrip("/").split("/")[-1].lower()
    if benchmark is None and config is None and any(k[0] == base for k in BENCHMARKS):
        configs = sorted(str(k[1]) for k in BENCHMARKS if k[0] == base)
        raise SettingsError(f"the dataset '{hub}' needs a 'config', one of "
                            f"{{{', '.join(repr(c) for c in configs)}}}.")
    if benchmark is None:
        if not task_type:
            raise SettingsError(
                f"'{hub}' (config {config!r}) is not a known benchmark; set 'type' and the "
                "column options of the task entry (see the README's NLU tasks section).")
        return task_type, {"train": None, **options}
    merged = {**benchmark.options, "metric": benchmark.metric, **options}
    return task_type or benchmark.type, merged


def _candidates(hub: str) -> tuple[str, ...]:
    name = hub.rstrip("/").split("/")[-1].lower()
    return tuple(dict.fromkeys((hub, *ALIASES.get(name, ()))))


def _import_datasets(hub: str):
    try:
        import datasets
    except ImportError:
        raise TaskDataError(f"reading the dataset '{hub}' needs the 'datasets' package; "
                            "install it with pip install 'brainenc[hub]' (or pip install "
                            "datasets), or export the data as JSONL files.") from None
    return datasets


def _from_cache(datasets, hub: str, config: str | None, cache_dir: str | None):
    """The dataset as stored in the local ``datasets`` cache (no network), or None."""
    from datasets.packaged_modules.cache.cache import Cache

    root = Path(cache_dir or datasets.config.HF_DATASETS_CACHE).expanduser()
    for name in _candidates(hub):
        parts = name.split("/")
        folder = root / "___".join(parts[:-1] + [parts[-1].lower()])
        if not folder.is_dir():
            continue
        try:
            builder = Cache(cache_dir=str(root), dataset_name=parts[-1], repo_id=name,
                            config_name=config, version="auto", hash="auto")
            return builder.as_dataset()
        except (ValueError, FileNotFoundError, OSError) as exc:
            raise TaskDataError(f"the datasets cache '{folder}' has no usable copy of "
                                f"'{name}' config {config!r} ({exc}).") from None
    return None


def load_hub_dataset(options: dict, base_dir: str | os.PathLike | None = None):
    """Read the ``DatasetDict`` a task entry names, offline unless ``allow_download``.

    Returns
    -------
    datasets.DatasetDict
        Splits of the dataset.

    Raises
    ------
    TaskDataError
        Package absent, folder or cache entry missing, or download failed.
    """
    hub, config = options["hub"], options.get("config")
    datasets = _import_datasets(hub)
    if options.get("path"):
        path = Path(os.path.expanduser(str(options["path"])))
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_dir():
            raise TaskDataError(f"the datasets folder '{path}' (task option 'path') does not "
                                "exist; write it with DatasetDict.save_to_disk or fix 'path'.")
        try:
            data = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as exc:
            raise TaskDataError(f"cannot load the datasets folder '{path}' ({exc}); it must "
                                "be written by save_to_disk.") from None
        # a single Dataset is the training split (dev: a seeded 'dev_fraction')
        return data if isinstance(data, datasets.DatasetDict) else \
            datasets.DatasetDict({"train": data})
    cached = _from_cache(datasets, hub, config, options.get("cache_dir"))
    if cached is not None:
        return cached
    if not options.get("allow_download"):
        raise TaskDataError(
            f"the dataset '{hub}' (config {config!r}) is not in the local datasets cache "
            f"('{options.get('cache_dir') or datasets.config.HF_DATASETS_CACHE}'); download it "
            "once with datasets.load_dataset, give a save_to_disk folder as 'path', or set "
            "allow_download = true in the task entry.")
    with _online(datasets):  # the run sets HF_HUB_OFFLINE; this entry opted in
        try:
            args, kwargs = download_arguments(options)
            return datasets.load_dataset(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - network, hub and format errors of many kinds
            raise TaskDataError(f"cannot download the dataset '{hub}' (config {config!r}): "
                                f"{type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def _online(datasets):
    """Lift the offline mode of ``datasets`` and ``huggingface_hub`` for one download."""
    from huggingface_hub import constants

    saved = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _names(feature):
    """``ClassLabel`` of a column (or of its sequence items), else None."""
    inner = getattr(feature, "feature", None)
    if hasattr(feature, "names") and hasattr(feature, "int2str"):
        return feature, False
    if inner is not None and hasattr(inner, "names") and hasattr(inner, "int2str"):
        return inner, True
    return None, False


def hub_rows(data, split: str, hub: str) -> tuple[list[dict], dict[str, list[str]]]:
    """Rows of one split, class-label integers replaced by their names.

    Returns
    -------
    rows : list of dict
        One per example; rows whose class label is negative (unlabelled test
        examples) are left out.
    label_names : dict
        Column -> names of its ``ClassLabel`` (dataset order).
    """
    if split not in data:
        raise TaskDataError(f"the dataset '{hub}' has no split '{split}' (it has "
                            f"{sorted(data)}); set 'train_split'/'dev_split' in the task entry.")
    table = data[split]
    labels = {}
    for column, feature in table.features.items():
        names, _ = _names(feature)
        if names is not None:
            labels[column] = list(names.names)
    rows = []
    for row in table:
        row = dict(row)
        keep = True
        for column, names in labels.items():
            value = row[column]
            if isinstance(value, list):
                row[column] = [names[v] for v in value]
            elif isinstance(value, int):
                if value < 0:
                    keep = False
                    break
                row[column] = names[value]
        if keep:
            rows.append(row)
    return rows, labels


def check_hub_options(options: dict) -> None:
    """Check the types of the hub options (SettingsError)."""
    for key in ("config", "path", "cache_dir", "revision"):
        value = options.get(key)
        if value is not None and not isinstance(value, str):
            raise SettingsError(f"'{key}' must be a string; got {value!r}.")
    if not isinstance(options.get("allow_download", False), bool):
        raise SettingsError("'allow_download' must be true or false; got "
                            f"{options['allow_download']!r}.")
