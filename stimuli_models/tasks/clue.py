"""Reshaping of the CLUE tasks whose rows do not fit a task type as they are.

The ``clue`` dataset stores four of its tasks in layouts of their own. Each
function here turns the rows of one split (as :func:`stimuli_models.tasks.hub.hub_rows`
gives them, class labels as names) into rows with the columns of one of the
project's task types:

- ``cluewsc2020`` (pronoun resolution, ``text``, ``target`` spans, ``true``/``false``):
  sequence classification of the text with the candidate noun marked ``_..._``
  and the pronoun marked ``[...]`` at their character offsets, so the model
  sees which two spans the label is about;
- ``csl`` (``abst``, ``keyword`` list, ``0``/``1``: whether every keyword is a
  real keyword of the abstract): sentence-pair classification of the keywords
  (joined by ``；``) and the abstract;
- ``chid`` (idiom cloze: ``content`` passages with ``#idiom<n>#`` blanks, 10
  ``candidates``, ``answers`` in blank order): one multiple-choice example per
  blank, the blank shown as ``[MASK]`` and the passage's other blanks as ``…``;
- ``c3`` (``context`` lines, ``question``, ``choice`` list, ``answer`` text):
  multiple choice over ``choice``, the context lines and the question joined
  into the context; unlabelled rows (the test split's empty answers) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import TaskDataError

#: The blank of a ChID passage.
IDIOM_BLANK = re.compile(r"#idiom\d*#")
#: What a ChID example shows in place of the blank it asks about.
CHID_MASK = "[MASK]"


def reshape_cluewsc2020(rows: list[dict]) -> list[dict]:
    """Rows ``text``/``label`` with the two spans of ``target`` marked in the text.

    Parameters
    ----------
    rows : list of dict
        Rows with ``text``, ``label`` and ``target`` (``span1_text``,
        ``span1_index``, ``span2_text``, ``span2_index``; indexes are character
        offsets into ``text``).

    Returns
    -------
    list of dict
        ``{"text": marked text, "label": label}`` per row.

    Raises
    ------
    TaskDataError
        A span that is not at its offset in the text.
    """
    out = []
    for row in rows:
        text, target = str(row["text"]), row["target"]
        spans = [(int(target["span1_index"]), str(target["span1_text"]), "_", "_"),
                 (int(target["span2_index"]), str(target["span2_text"]), "[", "]")]
        for start, span, _, _ in spans:
            if text[start:start + len(span)] != span:
                raise TaskDataError(
                    f"cluewsc2020 row {row.get('idx', '?')}: span {span!r} is not at offset "
                    f"{start} of its text; the dataset copy is damaged.")
        for start, span, left, right in sorted(spans, reverse=True):  # later offset first
            text = text[:start] + left + span + right + text[start + len(span):]
        out.append({"text": text, "label": row["label"]})
    return out


def reshape_csl(rows: list[dict]) -> list[dict]:
    """Rows ``sentence1`` (the keywords) / ``sentence2`` (the abstract) / ``label``."""
    return [{"sentence1": "；".join(str(k) for k in row["keyword"]),
             "sentence2": str(row["abst"]), "label": row["label"]} for row in rows]


def _answers(row: dict) -> list[int]:
    answers = row.get("answers") or {}
    if isinstance(answers, dict):  # datasets stores a sequence of records as lists
        return [int(i) for i in answers.get("candidate_id", [])]
    return [int(a["candidate_id"]) for a in answers]


def reshape_chid(rows: list[dict]) -> list[dict]:
    """One ``context``/``choices``/``label`` row per idiom blank.

    Raises
    ------
    TaskDataError
        A labelled row whose number of answers differs from its number of blanks.
    """
    out = []
    for row in rows:
        candidates = [str(c) for c in row["candidates"]]
        answers = _answers(row)
        passages = [str(p) for p in row["content"]]
        n_blanks = sum(len(IDIOM_BLANK.findall(p)) for p in passages)
        if not answers:  # unlabelled (test split)
            continue
        if len(answers) != n_blanks:
            raise TaskDataError(f"chid row {row.get('idx', '?')} has {n_blanks} blanks but "
                                f"{len(answers)} answers; the dataset copy is damaged.")
        answer = iter(answers)
        for passage in passages:
            blanks = list(IDIOM_BLANK.finditer(passage))
            for asked in range(len(blanks)):
                pieces, end = [], 0
                for i, blank in enumerate(blanks):
                    pieces += [passage[end:blank.start()], CHID_MASK if i == asked else "…"]
                    end = blank.end()
                out.append({"context": "".join(pieces) + passage[end:],
                            "choices": candidates, "label": next(answer)})
    return out


def reshape_c3(rows: list[dict]) -> list[dict]:
    """Rows ``context`` (lines and question) / ``choices`` / ``label`` (index of the answer).

    Raises
    ------
    TaskDataError
        An answer that is not one of the row's choices.
    """
    out = []
    for row in rows:
        answer = str(row.get("answer") or "")
        if not answer:  # the test split has no answers
            continue
        choices = [str(c) for c in row["choice"]]
        if answer not in choices:
            raise TaskDataError(f"c3 row {row.get('id', '?')}: the answer {answer!r} is not "
                                f"one of its choices {choices}.")
        context = "\n".join(str(line) for line in row["context"])
        out.append({"context": f"{context}\n{row['question']}", "choices": choices,
                    "label": choices.index(answer)})
    return out


#: CLUE config -> function turning its rows into rows of the task type the table gives it.
RESHAPERS: dict[str, Callable[[list[dict]], list[dict]]] = {
    "cluewsc2020": reshape_cluewsc2020, "csl": reshape_csl, "chid": reshape_chid,
    "c3": reshape_c3}
