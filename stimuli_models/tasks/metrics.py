"""Dev metrics of NLU tasks: accuracy, entity-level F1, SQuAD exact match and F1."""

from __future__ import annotations

import collections
import re
import string

import numpy as np

#: The metric tuning optimises (early stopping) for each task type.
PRIMARY_METRIC = {
    "sequence-classification": "accuracy",
    "sentence-pair-classification": "accuracy",
    "multiple-choice": "accuracy",
    "token-classification": "f1",
    "question-answering": "f1",
}


def accuracy(predicted, target) -> float:
    """Share of equal entries."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    return float(np.mean(predicted == target)) if len(target) else 0.0


def entity_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """Entities ``(start, end, type)`` of a BIO (or IO/plain) tag sequence."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        head, _, rest = tag.partition("-")
        if tag == "O":
            prefix, label = "O", None
        elif head in ("B", "I") and rest:
            prefix, label = head, rest
        else:
            prefix, label = "I", tag
        if start is not None and (prefix in ("O", "B") or label != kind):
            spans.add((start, i, kind))
            start = None
        if prefix != "O" and start is None:
            start, kind = i, label
    return spans


def entity_f1(predicted: list[list[str]], target: list[list[str]]) -> dict:
    """Micro-averaged entity precision, recall and F1 (exact span and type)."""
    tp = n_pred = n_true = 0
    for p, t in zip(predicted, target, strict=False):
        ps, ts = entity_spans(p), entity_spans(t)
        tp += len(ps & ts)
        n_pred += len(ps)
        n_true += len(ts)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def _normalise_answer(text: str) -> list[str]:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def squad_scores(predicted: list[str], answers: list[list[str]]) -> dict:
    """SQuAD exact match and token F1 (best over the gold answers), in [0, 1]."""
    em = f1 = 0.0
    for pred, golds in zip(predicted, answers, strict=False):
        p = _normalise_answer(pred)
        best_em = best_f1 = 0.0
        for gold in golds:
            g = _normalise_answer(gold)
            best_em = max(best_em, float(p == g))
            common = sum((collections.Counter(p) & collections.Counter(g)).values())
            if common:
                precision, recall = common / len(p), common / len(g)
                best_f1 = max(best_f1, 2 * precision * recall / (precision + recall))
        em += best_em
        f1 += best_f1
    n = max(len(predicted), 1)
    return {"f1": f1 / n, "exact_match": em / n}


def score(task, examples: list[dict], items: list[dict], logits: list) -> dict:
    """Dev metrics from the head's outputs.

    Parameters
    ----------
    task : TaskData
        The task.
    examples : list of dict
        Dev examples.
    items : list of dict
        Their encoded items (see :func:`~stimuli_models.tasks.encode.encode_examples`).
    logits : list of ndarray
        Head output of each item (without batch axis, padding cut off).

    Returns
    -------
    dict
        Metric name -> value; the task type's :data:`PRIMARY_METRIC` is present.
    """
    if task.type == "token-classification":
        predicted, target = [], []
        for item, out in zip(items, logits, strict=False):
            ex = examples[item["example"]]
            tags = ["O"] * len(ex["tokens"])
            previous = None
            for position, word in enumerate(item["word_ids"]):
                if word is not None and word != previous:
                    tags[word] = task.labels[int(np.argmax(out[position]))]
                previous = word
            predicted.append(tags)
            target.append(ex["tags"])
        result = entity_f1(predicted, target)
        flat_p = [t for s in predicted for t in s]
        result["token_accuracy"] = accuracy(flat_p, [t for s in target for t in s])
        return result
    if task.type == "question-answering":
        predicted = [_best_span(item, out, examples[item["example"]]["context"])
                     for item, out in zip(items, logits, strict=False)]
        return squad_scores(predicted, [[a["text"] for a in examples[it["example"]]["answers"]]
                                        for it in items])
    predicted = [int(np.argmax(out)) for out in logits]
    return {"accuracy": accuracy(predicted, [it["labels"] for it in items])}


def _best_span(item: dict, out: np.ndarray, context: str, max_answer: int = 30) -> str:
    offsets = item["offsets"]
    valid = np.array([o is not None and o[1] > o[0] for o in offsets[:len(out)]])
    if not valid.any():
        return ""
    start = np.where(valid, out[:, 0], -np.inf)
    end = np.where(valid, out[:, 1], -np.inf)
    n = len(start)
    scores = start[:, None] + end[None, :]
    allowed = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool),
                                                               k=max_answer)
    scores = np.where(allowed, scores, -np.inf)
    s, e = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return context[offsets[s][0]:offsets[e][1]]
