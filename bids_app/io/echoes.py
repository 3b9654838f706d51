"""Multi-echo BOLD: one series per run.

brainenc fits one BOLD series per run. Raw multi-echo runs (``_echo-<n>_bold``
files with otherwise equal entities) are refused with the two ways to get one
series: a ``--bids-filter-file`` keeping one echo, or fMRIPrep's optimally
combined output, which is chosen (with a warning) when echo-wise outputs sit
beside it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DatasetError


def _echo_key(value: str) -> tuple:
    return (0, int(value), "") if str(value).isdigit() else (1, 0, str(value))


def refuse_echoes(runs: list) -> None:
    """Stop on a multi-echo run (several ``echo-`` files with otherwise equal entities).

    Parameters
    ----------
    runs : list of BoldRun
        Runs of one participant.

    Raises
    ------
    DatasetError
        Naming the run, its echoes and the two ways to give one series per run.
    """
    groups: dict = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    for name, group in groups.items():
        echoes = sorted({str(r.entities.get("echo")) for r in group
                         if r.entities.get("echo") not in (None, "")}, key=_echo_key)
        if len(group) < 2 or len(echoes) < 2:
            continue
        raise DatasetError(
            f"'{name}' is a multi-echo run (echoes {', '.join(echoes)}: "
            f"{', '.join(sorted(r.bold_file.name for r in group))}), but brainenc fits one BOLD "
            "series per run; choose one echo with a --bids-filter-file holding "
            f'{{"bold": {{"echo": {echoes[len(echoes) // 2]}}}}} (the middle echo is the most '
            "BOLD-sensitive), or preprocess with fMRIPrep, whose default output is the "
            "optimally combined series, and give it with -d fmriprep=PATH.")


def prefer_combined(found: list, subject: str) -> list:
    """Keep fMRIPrep's optimally combined series where echo-wise outputs sit beside it.

    Parameters
    ----------
    found : list of tuple
        ``(BIDSFile, entities, kind)`` of the preprocessed BOLD candidates.
    subject : str
        Participant label (for messages).

    Returns
    -------
    list of tuple
        The candidates without the echo-wise files that have a combined series.

    Raises
    ------
    DatasetError
        For echo-wise files of one run without a combined series (one series per run).
    """

    def key(entities):
        return tuple(sorted((k, str(v)) for k, v in entities.items() if k != "echo"))

    combined = {key(e) for _, e, _ in found if e.get("echo") in (None, "")}
    kept = [x for x in found if x[1].get("echo") in (None, "") or key(x[1]) not in combined]
    if len(kept) < len(found):
        logging.getLogger("brainenc").warning(
            "sub-%s: fMRIPrep's optimally combined BOLD is used; its %d echo-wise output(s) "
            "are ignored.", subject, len(found) - len(kept))
    echoes: dict = {}
    for item, entities, _ in kept:
        if entities.get("echo") not in (None, ""):
            echoes.setdefault(key(entities), []).append(Path(item.path).name)
    for names in echoes.values():
        if len(names) > 1:
            raise DatasetError(
                f"the preprocessed run {', '.join(sorted(names))} of sub-{subject} is split "
                "into echoes and no optimally combined series is beside them; choose one echo "
                'with a --bids-filter-file holding {"bold": {"echo": 2}}, or give fMRIPrep\'s '
                "default (combined) output.")
    return kept
