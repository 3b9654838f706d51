"""MATLAB ``.mat`` word- or character-timing files (SMN4Lang style).

SMN4Lang ships ``story_<N>_word_time.mat`` and ``story_<N>_char_time.mat`` with
variables ``start``, ``end`` and ``word`` (or ``char``): times are already in
scanner time (the dataset added the audio's 10.65 s offset), so these timings are
marked ``time_reference = "run"`` and are not shifted again by the story onset.
Variables are found by name, case-insensitively, at the top level or inside one
struct; cell arrays, char matrices and string arrays are all read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ._common import WordTimings, read_bytes

_TEXT = ("word", "words", "char", "chars", "character", "characters", "text", "token", "tokens")
_START = ("start", "starts", "onset", "onsets", "begin", "start_time", "xmin")
_END = ("end", "ends", "offset", "offsets", "stop", "end_time", "xmax")


def _strings(value) -> list[str] | None:
    """Flatten a MATLAB cell/char/string array to a list of str (None if not text)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            got = _strings(item)
            if got is None:
                return None
            out.extend(got if got else [""])
        return out
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "U":
            if value.ndim == 0:
                return [str(value)]
            if value.ndim == 2 and value.shape[0] == 1:
                return [str(v) for v in value[0]]
            return [str(v) for v in value.reshape(-1)]
        if value.dtype.kind == "O":
            return _strings(list(value.reshape(-1)))
        if value.size == 0:
            return []
    return None


def _find(variables: dict, names) -> tuple[str, object] | None:
    lowered = {str(k).lower(): k for k in variables if not str(k).startswith("__")}
    for name in names:
        if name in lowered:
            return lowered[name], variables[lowered[name]]
    return None


def _variables(path: Path) -> dict:
    import io

    import scipy.io

    raw = read_bytes(path)
    if raw[:19] == b"MATLAB 7.3 MAT-file" or raw[:8] == b"\x89HDF\r\n\x1a\n":
        raise DatasetError(f"'{path}' is a MATLAB v7.3 (HDF5) file, which is not read; re-save "
                           "it in MATLAB with save(..., '-v7').")
    try:
        return scipy.io.loadmat(io.BytesIO(raw), simplify_cells=True)
    except Exception as exc:  # scipy raises many types on corrupt files
        raise DatasetError(f"cannot read the MATLAB file '{path}' ({type(exc).__name__}); "
                           "re-save it with MATLAB's save(..., '-v7').") from None


def extract(path: Path) -> dict:
    """Find the text and time variables of a .mat file (runs in a child process).

    Returns
    -------
    dict
        ``names`` (text, start, end variable names), ``words``, ``onsets``, ``offsets``.
    """
    variables = _variables(path)
    scopes = [variables] + [v for k, v in variables.items()
                            if isinstance(v, dict) and not str(k).startswith("__")]
    for scope in scopes:
        text, start, end = _find(scope, _TEXT), _find(scope, _START), _find(scope, _END)
        if text and start and end:
            break
    else:
        names = sorted(k for k in variables if not str(k).startswith("__"))
        raise DatasetError(f"'{path}' has no word/char, start and end variables (it holds "
                           f"{names}); give a word- or character-timing .mat file.")
    words = _strings(text[1])
    if words is None:
        raise DatasetError(f"the variable '{text[0]}' of '{path}' is not text; give the words "
                           "as a cell array or char matrix.")
    try:
        onsets = np.asarray(start[1], dtype=float).reshape(-1)
        offsets = np.asarray(end[1], dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise DatasetError(f"the variables '{start[0]}'/'{end[0]}' of '{path}' are not numeric "
                           "vectors; fix the file.") from None
    return {"names": [str(text[0]), str(start[0]), str(end[0])], "words": words,
            "onsets": [float(x) for x in onsets], "offsets": [float(x) for x in offsets]}


def _child() -> None:  # pragma: no cover - runs in a subprocess
    try:
        result = {"ok": extract(Path(sys.argv[1]))}
    except DatasetError as exc:
        result = {"error": str(exc)}
    sys.stdout.write(json.dumps(result, allow_nan=True))


def _extract_isolated(path: Path, timeout: float = 120.0) -> dict:
    """Run :func:`extract` in a child process: scipy's MAT reader can crash on corrupt files."""
    read_bytes(path)  # missing / unreadable files are reported here
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    code = "from bids_app.io.stimuli.matlab import _child; _child()"
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise DatasetError(f"reading the MATLAB file '{path}' took more than {timeout:.0f} s; "
                           "the file is corrupt or huge, re-save it with save(..., "
                           "'-v7').") from None
    try:
        result = json.loads(done.stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DatasetError(f"cannot read the MATLAB file '{path}' (the reader stopped with code "
                           f"{done.returncode}); the file is corrupt, re-save it with MATLAB's "
                           "save(..., '-v7').") from None
    if "error" in result:
        raise DatasetError(result["error"])
    return result["ok"]


def read_mat(path: Path, *, time_reference: str = "run") -> WordTimings:
    """Read word or character timings from a ``.mat`` file.

    Parameters
    ----------
    path : Path
        A MATLAB v4-v7.2 file holding a text variable (``word``/``char`` ...) and
        ``start``/``end`` (or ``onset``/``offset``) vectors of the same length.
    time_reference : str
        Clock of the times; SMN4Lang files are in scanner time (``run``).

    Returns
    -------
    WordTimings
        One entry per word (or character).

    Notes
    -----
    The file is parsed in a child process, so that a corrupt file cannot crash
    brainenc (scipy's reader is compiled code).
    """
    path = Path(path)
    found = _extract_isolated(path)
    text_name, start_name, end_name = found["names"]
    words = [str(w).strip() for w in found["words"]]
    onsets, offsets = np.asarray(found["onsets"], float), np.asarray(found["offsets"], float)
    if len(onsets) != len(words) or len(offsets) != len(words):
        raise DatasetError(f"'{path}' has {len(words)} entries in '{text_name}' but {len(onsets)} "
                           f"in '{start_name}' and {len(offsets)} in '{end_name}'; they must "
                           "match.")
    keep = [i for i, w in enumerate(words) if w]
    if not keep:
        raise DatasetError(f"the variable '{text_name}' of '{path}' holds no words; fix the file.")
    return WordTimings.build([words[i] for i in keep], onsets[keep], offsets[keep],
                             source=str(path), fmt="mat", source_index=keep,
                             time_reference=time_reference,
                             notes=[f"variables {text_name}/{start_name}/{end_name}"])
