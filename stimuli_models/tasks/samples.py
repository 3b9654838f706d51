"""Small NLU sample sets written by a seeded generator (no third-party data).

They stand in for real benchmarks where none is at hand (the reduced paper
design of ``make paper-demo``, tests): short English sentences built from
templates, each labelled by construction, so a model can learn them in a few
dozen steps. One set per task type:

- ``token-classification``: CoNLL (``token<TAB>tag``), BIO tags of WNUT-17's
  entity types (person, location, corporation, product, group);
- ``sequence-classification``: TSV ``text<TAB>label``, sentiment ``0``/``1``;
- ``sentence-pair-classification``: TSV ``sentence1<TAB>sentence2<TAB>label``,
  whether the second sentence follows from the first (``entailment`` or
  ``contradiction``).
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

#: Task types with a sample set, and the options a ``[[tasks]]`` entry needs to read it.
SAMPLE_OPTIONS = {
    "token-classification": {"format": "conll"},
    "sequence-classification": {"format": "tsv", "columns": ["text", "label"]},
    "sentence-pair-classification": {"format": "tsv",
                                     "columns": ["sentence1", "sentence2", "label"]},
}
_SUFFIX = {"token-classification": "conll", "sequence-classification": "tsv",
           "sentence-pair-classification": "tsv"}

_ENTITIES = {
    "person": ["Anna Berg", "Tomas", "Mira Olsen", "Jonah", "Priya Shah", "Leo", "Sofia Marin",
               "Daniel Okafor", "Hana", "Marcus Lee"],
    "location": ["Oslo", "the harbour of Brest", "Lisbon", "Nairobi", "the Alps", "Kyoto",
                 "Glasgow", "Lake Como", "Quebec"],
    "corporation": ["Nordwind Foods", "Acme Rail", "Blue Finch Media", "Kestrel Bank"],
    "product": ["the Lumen X2", "a Falcon bike", "Starlight tea", "the Orbit phone"],
    "group": ["the city choir", "the Harbour Rovers", "the night shift", "the chess club"],
}
_NER_TEMPLATES = [
    "{person} flew to {location} on Monday .",
    "{person} works for {corporation} in {location} .",
    "yesterday {group} played a concert in {location} !",
    "{person} bought {product} from {corporation} .",
    "why did {person} leave {group} so early ?",
    "{corporation} will open a shop in {location} next spring .",
    "my sister loves {product} , says {person} .",
    "{group} met {person} near {location} after lunch .",
]
_SUBJECTS = ["the film", "this hotel", "the soup", "the new phone", "our guide", "the concert",
             "the book", "this laptop", "the service", "the train ride", "the museum"]
_POSITIVE = ["wonderful", "great", "excellent", "lovely", "delightful", "superb", "charming"]
_NEGATIVE = ["awful", "terrible", "boring", "dreadful", "disappointing", "poor", "rude"]
_SENTIMENT_TEMPLATES = ["{subject} was {adjective} .", "honestly , {subject} is {adjective} .",
                        "i found {subject} {adjective} from start to finish .",
                        "{subject} felt {adjective} and i would say so again ."]
_PAIRS = [("{person} is sleeping in {location} .", "{person} is in {location} .",
           "{person} has never been to {location} ."),
          ("{person} bought {product} .", "{person} owns {product} .",
           "{person} has no {product_bare} ."),
          ("{group} sang in {location} last night .", "{group} performed last night .",
           "{group} stayed silent all night .")]


def _ner_sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    template = rng.choice(_NER_TEMPLATES).split()
    tokens, tags = [], []
    for piece in template:
        if piece.startswith("{") and piece.endswith("}"):
            kind = piece[1:-1]
            words = rng.choice(_ENTITIES[kind]).split()
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(piece)
            tags.append("O")
    return tokens, tags


def _sentiment(rng: random.Random) -> tuple[str, str]:
    label = rng.randrange(2)
    adjective = rng.choice(_POSITIVE if label else _NEGATIVE)
    text = rng.choice(_SENTIMENT_TEMPLATES).format(subject=rng.choice(_SUBJECTS),
                                                   adjective=adjective)
    return text[0].upper() + text[1:], str(label)


def _pair(rng: random.Random) -> tuple[str, str, str]:
    premise, follows, contradicts = rng.choice(_PAIRS)
    product = rng.choice(_ENTITIES["product"])
    fill = {"person": rng.choice(_ENTITIES["person"]), "location": rng.choice(
        _ENTITIES["location"]), "group": rng.choice(_ENTITIES["group"]),
        "product": product, "product_bare": product.split(" ", 1)[-1]}
    label = rng.choice(["entailment", "contradiction"])
    second = follows if label == "entailment" else contradicts
    return premise.format(**fill), second.format(**fill), label


def _write(path: Path, task_type: str, rows: list) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        if task_type == "token-classification":
            for tokens, tags in rows:
                handle.write("".join(f"{t}\t{g}\n" for t, g in zip(tokens, tags, strict=True)))
                handle.write("\n")
        else:
            writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE,
                                lineterminator="\n")
            writer.writerows(rows)


def write_sample_task(task_type: str, out_dir: str | os.PathLike, *, n_train: int = 240,
                      n_dev: int = 60, seed: int = 0) -> dict:
    """Write a train and a dev file of a sample set for ``task_type``.

    Parameters
    ----------
    task_type : str
        One of the keys of :data:`SAMPLE_OPTIONS`.
    out_dir : path-like
        Folder for ``train.<ext>`` and ``dev.<ext>`` (created).
    n_train, n_dev : int
        Number of examples (sentences) in each file.
    seed : int
        Seed of the generator: the same seed writes the same bytes.

    Returns
    -------
    dict
        Options of a ``[[tasks]]`` entry that reads the files (``type``, ``train``,
        ``dev`` and the format options).

    Raises
    ------
    ValueError
        For a task type without a sample set.
    """
    if task_type not in SAMPLE_OPTIONS:
        shown = "{" + ", ".join(repr(t) for t in SAMPLE_OPTIONS) + "}"
        raise ValueError(f"'task_type' must be one of {shown} for a sample set; got "
                         f"'{task_type}'.")
    make = {"token-classification": _ner_sentence, "sequence-classification": _sentiment,
            "sentence-pair-classification": _pair}[task_type]
    rng = random.Random(f"{task_type}:{seed}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (("train", n_train), ("dev", n_dev)):
        files[split] = out / f"{split}.{_SUFFIX[task_type]}"
        _write(files[split], task_type, [make(rng) for _ in range(n)])
    return {"type": task_type, "train": str(files["train"]), "dev": str(files["dev"]),
            **SAMPLE_OPTIONS[task_type]}
