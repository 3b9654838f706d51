"""Readers of NLU task data: CSV/TSV/JSONL tables, CoNLL, SQuAD JSON, HF ``datasets``.

Every reader returns a list of plain dictionaries (one per example); the task
type decides which keys are read from them (see :mod:`stimuli_models.tasks.base`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from ..errors import TaskDataError, check_choice

FORMATS = ("auto", "csv", "tsv", "jsonl", "conll", "squad", "hf")
_SUFFIX_FORMAT = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".conll": "conll",
                  ".json": "squad"}


def guess_format(path: str | os.PathLike) -> str:
    """Format of a task file from its name (a folder is a ``datasets`` directory).

    Raises
    ------
    TaskDataError
        When the suffix is not one of ``.csv .tsv .jsonl .conll .json``.
    """
    path = Path(path)
    if path.is_dir():
        return "hf"
    fmt = _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise TaskDataError(
            f"cannot tell the format of task file '{path}' from its suffix; set 'format' to "
            f"one of {{{', '.join(repr(f) for f in FORMATS[1:])}}} in the task entry."
        )
    return fmt


def read_table(path: str | os.PathLike, fmt: str, columns: list[str] | None = None) -> list[dict]:
    """Read a CSV, TSV or JSONL file into a list of row dictionaries.

    Parameters
    ----------
    path : path-like
        The file.
    fmt : {'csv', 'tsv', 'jsonl'}
        Its format.
    columns : list of str, optional
        Column names of a CSV/TSV file *without* a header row.

    Returns
    -------
    list of dict
        One dictionary per row.
    """
    check_choice("format", fmt, ("csv", "tsv", "jsonl"))
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if fmt == "jsonl":
                rows = []
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise TaskDataError(f"line {number} of '{path}' is not valid JSON "
                                            f"({exc.msg}); fix or remove it.") from None
                    if not isinstance(rows[-1], dict):
                        raise TaskDataError(f"line {number} of '{path}' is not a JSON object; "
                                            "write one example per line, e.g. "
                                            '{"text": "...", "label": "..."}.')
                return rows
            delimiter = "," if fmt == "csv" else "\t"
            quoting = csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE
            if columns:
                reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
                rows = []
                for number, values in enumerate(reader, start=1):
                    if not values or not any(v.strip() for v in values):
                        continue
                    if len(values) != len(columns):
                        raise TaskDataError(
                            f"line {number} of '{path}' has {len(values)} fields but 'columns' "
                            f"names {len(columns)}; fix the file or the 'columns' option.")
                    rows.append(dict(zip(columns, values, strict=False)))
                return rows
            return list(csv.DictReader(handle, delimiter=delimiter, quoting=quoting))
    except FileNotFoundError:
        raise TaskDataError(f"the task file '{path}' does not exist; check the task entry "
                            "of the spec.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TaskDataError(f"cannot read the task file '{path}' ({exc}).") from None


def read_conll(path: str | os.PathLike, token_column: int = 0,
               tag_column: int = -1) -> list[dict]:
    """Read a CoNLL file (one ``token ... tag`` per line, blank line between sentences).

    Returns
    -------
    list of dict
        ``{'tokens': [...], 'tags': [...]}`` per sentence.
    """
    path = Path(path)
    sentences, tokens, tags = [], [], []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\n").rstrip("\r")
                if not line.strip() or line.startswith("-DOCSTART-"):
                    if tokens:
                        sentences.append({"tokens": tokens, "tags": tags})
                    tokens, tags = [], []
                    continue
                fields = line.split("\t") if "\t" in line else line.split()
                if len(fields) < 2:
                    raise TaskDataError(f"line {number} of '{path}' has no tag column "
                                        f"({line!r}); CoNLL lines are 'token<TAB>tag'.")
                tokens.append(fields[token_column])
                tags.append(fields[tag_column])
    except FileNotFoundError:
        raise TaskDataError(f"the task file '{path}' does not exist; check the task entry "
                            "of the spec.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskDataError(f"cannot read the task file '{path}' ({exc}).") from None
    if tokens:
        sentences.append({"tokens": tokens, "tags": tags})
    return sentences


def read_squad(path: str | os.PathLike) -> list[dict]:
    """Read a SQuAD (v1.1/v2.0) JSON file.

    Returns
    -------
    list of dict
        ``{'id', 'question', 'context', 'answers': [{'text', 'start'}]}`` per
        question; unanswerable v2.0 questions are skipped.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskDataError(f"the task file '{path}' does not exist; check the task entry "
                            "of the spec.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaskDataError(f"cannot read the SQuAD file '{path}' ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise TaskDataError(f"'{path}' is not SQuAD JSON (no top-level 'data' list).")
    rows = []
    try:
        for article in data["data"]:
            for paragraph in article.get("paragraphs", []):
                context = paragraph["context"]
                for qa in paragraph.get("qas", []):
                    answers = [{"text": a["text"], "start": int(a["answer_start"])}
                               for a in qa.get("answers", [])]
                    texts = [context, qa["question"], *(a["text"] for a in answers)]
                    if not all(isinstance(t, str) for t in texts):
                        raise TypeError("a context, question or answer text is not a string")
                    if answers:
                        rows.append({"id": qa.get("id"), "question": qa["question"],
                                     "context": context, "answers": answers})
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise TaskDataError(
            f"'{path}' is not SQuAD JSON ({type(exc).__name__}: {exc}); each paragraph needs "
            "'context' and 'qas', each question 'question' and 'answers' with 'text' and "
            "'answer_start'."
        ) from None
    return rows


def read_hf_dir(path: str | os.PathLike, split: str) -> list[dict]:
    """Read one split of a dataset saved with ``datasets.save_to_disk``.

    Needs the optional ``datasets`` package.
    """
    try:
        import datasets
    except ImportError:
        raise TaskDataError(f"reading the datasets folder '{path}' needs the 'datasets' "
                            "package; install it (pip install datasets) or export the data "
                            "as JSONL.") from None
    try:
        data = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise TaskDataError(f"cannot load the datasets folder '{path}' ({exc}).") from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise TaskDataError(f"the datasets folder '{path}' has no split '{split}' "
                                f"(it has {sorted(data)}); set 'train_split'/'dev_split'.")
        data = data[split]
    return [dict(row) for row in data]
