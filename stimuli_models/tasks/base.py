"""NLU task types, their options, and loading task data into train/dev examples.

A task is a type plus options (the keys of a ``[[tasks]]`` entry of the spec).
Loading gives a :class:`TaskData` whose examples are plain dictionaries with
type-specific keys:

- ``sequence-classification``: ``text``, ``label``
- ``sentence-pair-classification``: ``text``, ``text_pair``, ``label``
- ``token-classification``: ``tokens`` (list), ``tags`` (list, BIO or plain)
- ``question-answering``: ``question``, ``context``, ``answers`` ([{text, start}])
- ``multiple-choice``: ``context``, ``choices`` (list), ``label`` (index)
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import file_hash, stable_hash
from ..errors import SettingsError, TaskDataError, check_choice
from .hub import (
    HUB_OPTIONS,
    check_hub_options,
    hub_rows,
    load_hub_dataset,
    reshape_hub_rows,
    resolve_hub_task,
)
from .metrics import METRICS
from .readers import FORMATS, guess_format, read_conll, read_hf_dir, read_squad, read_table

TASK_TYPES = ("sequence-classification", "sentence-pair-classification",
              "token-classification", "question-answering", "multiple-choice")
#: Options every task accepts, with their defaults.
COMMON_OPTIONS = {
    "train": None, "dev": None, "format": "auto", "columns": None, "dev_fraction": 0.1,
    "max_train": 0, "max_dev": 0, "drop_labels": [], "labels": None,
    "train_split": "train", "dev_split": "validation", "metric": "", **HUB_OPTIONS,
}
TYPE_OPTIONS = {
    "sequence-classification": {"text_column": "text", "label_column": "label"},
    "sentence-pair-classification": {"text_column": "sentence1",
                                     "text_pair_column": "sentence2",
                                     "label_column": "label"},
    "token-classification": {"tokens_column": "tokens", "tags_column": "tags",
                             "token_index": 0, "tag_index": -1},
    "question-answering": {"question_column": "question", "context_column": "context",
                           "answers_column": "answers"},
    "multiple-choice": {"context_column": "context", "choices_column": "choices",
                        "choice_columns": None, "label_column": "label"},
}


@dataclass
class TaskData:
    """Examples of a task, split into train and dev.

    Attributes
    ----------
    name, type : str
        Task name and type.
    train, dev : list of dict
        Examples (keys depend on the type, see the module docstring).
    labels : list of str
        Label vocabulary (classification and token tagging), empty otherwise.
    metric : str
        Dev metric tuning optimises ('' for the type's, see ``metrics.PRIMARY_METRIC``).
    fingerprint : str
        Hash of the task files' bytes and options (part of the tuning cache key).
    """

    name: str
    type: str
    train: list
    dev: list
    labels: list = field(default_factory=list)
    fingerprint: str = ""
    metric: str = ""

    @property
    def n_labels(self) -> int:
        """Outputs of the task head (labels, or 1 for QA and multiple choice)."""
        return len(self.labels) if self.labels else 1


def check_task_options(task_type: str, options: dict) -> dict:
    """Validate task options and fill in defaults.

    A task naming a ``hub`` dataset takes the type and options of a known
    benchmark (see :mod:`stimuli_models.tasks.hub`) where the entry leaves them out.

    Returns
    -------
    dict
        All options, with ``type`` (the resolved task type) added.

    Raises
    ------
    SettingsError
        Unknown type or option, or no training file.
    """
    task_type, options = resolve_hub_task(task_type, options)
    check_choice("type", task_type, TASK_TYPES)
    allowed = {**COMMON_OPTIONS, **TYPE_OPTIONS[task_type]}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SettingsError(f"unknown option(s) {unknown} for a '{task_type}' task; allowed: "
                            f"{', '.join(sorted(allowed))}.")
    resolved = {**allowed, **options}
    if not resolved["train"] and not resolved["hub"]:
        raise SettingsError(f"a '{task_type}' task needs a 'train' file (or list of files) "
                            "or a 'hub' dataset.")
    check_hub_options(resolved)
    if resolved["metric"]:
        check_choice("metric", resolved["metric"], METRICS[task_type])
    check_choice("format", resolved["format"], FORMATS)
    fraction = resolved["dev_fraction"]
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise SettingsError(f"'dev_fraction' must be in (0, 1); got {fraction!r}.")
    return {**resolved, "type": task_type}


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _files(value, base_dir: Path | None) -> list[Path]:
    out = []
    for item in _as_list(value):
        path = Path(os.path.expanduser(str(item)))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.exists():
            raise TaskDataError(f"the task file '{path}' does not exist; check 'train'/'dev' "
                                "of the task entry (relative paths start at the spec's folder).")
        out.append(path)
    return out


def _read(paths: list[Path], opts: dict, split: str) -> list[dict]:
    rows = []
    for path in paths:
        fmt = opts["format"] if opts["format"] != "auto" else guess_format(path)
        if fmt == "conll":
            rows += read_conll(path, opts.get("token_index", 0), opts.get("tag_index", -1))
        elif fmt == "squad":
            rows += read_squad(path)
        elif fmt == "hf":
            rows += read_hf_dir(path, opts[f"{split}_split"])
        else:
            rows += read_table(path, fmt, opts["columns"])
    return rows


def _get(row: dict, opts: dict, option: str, where: str):
    column = opts[option]
    if column not in row:
        raise TaskDataError(f"{where} has no column '{column}' (columns: {sorted(row)}); set "
                            f"'{option}' in the task entry.")
    return row[column]


def normalise(rows: list[dict], task_type: str, opts: dict, where: str) -> list[dict]:
    """Turn raw rows into examples with the task type's keys (drops ``drop_labels``)."""
    drop = {str(v) for v in opts["drop_labels"]}
    out = []
    for row in rows:
        if task_type == "token-classification":
            tokens = _get(row, opts, "tokens_column", where)
            tags = _get(row, opts, "tags_column", where)
            if len(tokens) != len(tags):
                raise TaskDataError(f"{where} has a sentence with {len(tokens)} tokens but "
                                    f"{len(tags)} tags; fix the file.")
            out.append({"tokens": [str(t) for t in tokens], "tags": [str(t) for t in tags]})
        elif task_type == "question-answering":
            answers = _get(row, opts, "answers_column", where)
            if isinstance(answers, dict):  # HF squad layout
                answers = [{"text": t, "start": int(s)}
                           for t, s in zip(answers["text"], answers["answer_start"], strict=False)]
            if not answers:
                continue
            out.append({"question": str(_get(row, opts, "question_column", where)),
                        "context": str(_get(row, opts, "context_column", where)),
                        "answers": [{"text": a["text"], "start": int(a["start"])}
                                    for a in answers]})
        elif task_type == "multiple-choice":
            if opts["choice_columns"]:
                choices = [str(_get(row, {"choice_columns": c}, "choice_columns", where))
                           for c in opts["choice_columns"]]
            else:
                choices = [str(c) for c in _get(row, opts, "choices_column", where)]
            label = _get(row, opts, "label_column", where)
            try:
                label = int(label)
            except (TypeError, ValueError):
                raise TaskDataError(f"{where}: multiple-choice label {label!r} must be the "
                                    "index of the right choice.") from None
            out.append({"context": str(_get(row, opts, "context_column", where)),
                        "choices": choices, "label": label})
        else:
            label = str(_get(row, opts, "label_column", where)).strip()
            if label in drop:
                continue
            example = {"text": str(_get(row, opts, "text_column", where)), "label": label}
            if task_type == "sentence-pair-classification":
                example["text_pair"] = str(_get(row, opts, "text_pair_column", where))
            out.append(example)
    return out


def load_task(name: str, task_type: str, options: dict, *, base_dir: str | None = None,
              seed: int = 0) -> TaskData:
    """Read a task's data and split it into train and dev.

    Parameters
    ----------
    name : str
        Task name (for messages).
    task_type : str
        One of :data:`TASK_TYPES`.
    options : dict
        Options of the task entry (see :data:`COMMON_OPTIONS`, :data:`TYPE_OPTIONS`).
    base_dir : str, optional
        Folder relative file names start from.
    seed : int
        Seed of the train/dev split (when no dev file is given) and of subsampling.

    Returns
    -------
    TaskData
    """
    opts = check_task_options(task_type, options)
    task_type = opts.pop("type")
    base = Path(base_dir) if base_dir else None
    if opts["hub"]:
        train, dev, hashes = _read_hub(name, task_type, opts, base)
        train_files = dev_files = []
    else:
        train_files = _files(opts["train"], base)
        dev_files = _files(opts["dev"], base)
        train = normalise(_read(train_files, opts, "train"), task_type, opts,
                          f"task '{name}' ({train_files[0].name})")
        dev = normalise(_read(dev_files, opts, "dev"), task_type, opts,
                        f"task '{name}' ({dev_files[0].name})") if dev_files else None
    rng = random.Random(seed)
    if dev is None:  # no dev file or split: a seeded share of the training examples
        rng.shuffle(train)
        n_dev = max(1, int(round(opts["dev_fraction"] * len(train))))
        dev, train = train[:n_dev], train[n_dev:]
    if opts["max_train"] and len(train) > opts["max_train"]:
        train = random.Random(seed + 1).sample(train, opts["max_train"])
    if opts["max_dev"] and len(dev) > opts["max_dev"]:
        dev = random.Random(seed + 2).sample(dev, opts["max_dev"])
    if len(train) < 2 or not dev:
        raise TaskDataError(f"task '{name}' has {len(train)} training and {len(dev)} dev "
                            "examples after reading; it needs at least 2 and 1.")
    labels = _label_set(task_type, train, dev, opts, name)
    if not opts["hub"]:
        hashes = [file_hash(p) if p.is_file() else stable_hash(sorted(
            (str(f.relative_to(p)), file_hash(f)) for f in p.rglob("*") if f.is_file()))
            for p in train_files + dev_files]
    # where the data came from is left out: its content is hashed
    ignored = ("train", "dev", *HUB_OPTIONS)
    fingerprint = stable_hash({"type": task_type, "files": hashes, "seed": seed,
                               "options": {k: v for k, v in opts.items() if k not in ignored}})
    return TaskData(name=name, type=task_type, train=train, dev=dev, labels=labels,
                    fingerprint=fingerprint, metric=opts["metric"])


def _read_hub(name: str, task_type: str, opts: dict, base: Path | None):
    """Train and dev examples of a ``hub`` task, and the hash of their content."""
    data = load_hub_dataset(opts, base)
    where = f"task '{name}' (dataset '{opts['hub']}')"
    train_rows, names = hub_rows(data, opts["train_split"], opts["hub"])
    dev_rows = hub_rows(data, opts["dev_split"], opts["hub"])[0] if \
        opts["dev_split"] in data else None
    label_column = opts.get("label_column")
    if opts["labels"] is None and label_column in names:  # the dataset's label order
        opts["labels"] = names[label_column]
    train_rows = reshape_hub_rows(train_rows, opts["hub"], opts["config"])
    if dev_rows is not None:
        dev_rows = reshape_hub_rows(dev_rows, opts["hub"], opts["config"])
    train = normalise(train_rows, task_type, opts, where)
    dev = None if dev_rows is None else normalise(dev_rows, task_type, opts, where)
    return train, dev, [stable_hash(train), stable_hash(dev or [])]


def _label_set(task_type, train, dev, opts, name) -> list:
    if task_type in ("question-answering", "multiple-choice"):
        return []
    if task_type == "token-classification":
        seen = {t for ex in train + dev for t in ex["tags"]}
        return sorted(seen, key=lambda t: (t != "O", t[2:] if t[:2] in ("B-", "I-") else t, t))
    seen = sorted({ex["label"] for ex in train})
    labels = [str(v) for v in opts["labels"]] if opts["labels"] else seen
    unknown = sorted({ex["label"] for ex in train + dev} - set(labels))
    if unknown:
        raise TaskDataError(f"task '{name}' has labels {unknown} that are not in 'labels' "
                            f"{labels}; add them or list them in 'drop_labels'.")
    if len(labels) < 2:
        raise TaskDataError(f"task '{name}' has a single label {labels}; a classification "
                            "task needs at least two.")
    return labels
