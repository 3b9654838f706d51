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
_CLASSIFICATION = ("accuracy", "f1", "macro_f1", "matthews")
#: Dev metrics each task type reports (a task's ``metric`` option picks one).
METRICS = {
    "sequence-classification": _CLASSIFICATION,
    "sentence-pair-classification": _CLASSIFICATION,
    "multiple-choice": ("accuracy",),
    "token-classification": ("f1", "precision", "recall", "token_accuracy"),
    "question-answering": ("f1", "exact_match"),
}


def accuracy(predicted, target) -> float:
    """Share of equal entries."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    return float(np.mean(predicted == target)) if len(target) else 0.0


def class_f1(predicted, target, label: int) -> float:
    """F1 of one class (``label``) against the rest."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    tp = float(np.sum((predicted == label) & (target == label)))
    n_pred, n_true = float(np.sum(predicted == label)), float(np.sum(target == label))
    return 2 * tp / (n_pred + n_true) if n_pred + n_true else 0.0


def matthews(predicted, target) -> float:
    """Matthews correlation coefficient (multi-class form; 0 when undefined)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    classes = np.union1d(predicted, target)
    confusion = np.array([[np.sum((target == t) & (predicted == p)) for p in classes]
                          for t in classes], dtype=float)
    n, correct = confusion.sum(), np.trace(confusion)
    p_sum, t_sum = confusion.sum(axis=0), confusion.sum(axis=1)
    denominator = np.sqrt((n ** 2 - p_sum @ p_sum) * (n ** 2 - t_sum @ t_sum))
    return float((correct * n - t_sum @ p_sum) / denominator) if denominator else 0.0


def classification_scores(predicted, target, n_labels: int) -> dict:
    """Accuracy, F1 of label 1 (binary tasks) or macro F1, macro F1 and Matthews r."""
    macro = float(np.mean([class_f1(predicted, target, k) for k in range(n_labels)])) \
        if n_labels else 0.0
    return {"accuracy": accuracy(predicted, target),
            "f1": class_f1(predicted, target, 1) if n_labels == 2 else macro,
            "macro_f1": macro, "matthews": matthews(predicted, target)}


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
    target = [it["labels"] for it in items]
    if task.type == "multiple-choice":
        return {"accuracy": accuracy(predicted, target)}
    return classification_scores(predicted, target, len(task.labels))


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
