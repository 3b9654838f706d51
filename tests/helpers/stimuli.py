"""Writers of annotation files in the forms real story datasets use (for tests)."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def _q(text: str) -> str:
    return '"' + str(text).replace('"', '""') + '"'


def textgrid_text(tiers: dict, *, short: bool = False, xmax: float | None = None) -> str:
    """A TextGrid with IntervalTiers ``{name: [(xmin, xmax, label), ...]}``."""
    end = xmax if xmax is not None else max(i[1] for items in tiers.values() for i in items)
    if short:
        lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", str(end),
                 "<exists>", str(len(tiers))]
        for name, items in tiers.items():
            lines += ['"IntervalTier"', _q(name), "0", str(end), str(len(items))]
            for start, stop, label in items:
                lines += [repr(float(start)), repr(float(stop)), _q(label)]
        return "\n".join(lines) + "\n"
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
             f"xmax = {end}", "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for k, (name, items) in enumerate(tiers.items(), start=1):
        lines += [f"    item [{k}]:", '        class = "IntervalTier"',
                  f"        name = {_q(name)}",
                  "        xmin = 0", f"        xmax = {end}",
                  f"        intervals: size = {len(items)}"]
        for j, (start, stop, label) in enumerate(items, start=1):
            lines += [f"        intervals [{j}]:", f"            xmin = {float(start)!r}",
                      f"            xmax = {float(stop)!r}", f"            text = {_q(label)}"]
    return "\n".join(lines) + "\n"


def word_intervals(words, onsets, durations, *, silence: bool = True) -> list:
    """Contiguous intervals with empty (silence) labels between the words."""
    items, t = [], 0.0
    for word, onset, duration in zip(words, onsets, durations, strict=True):
        if silence and onset > t:
            items.append((t, float(onset), ""))
        items.append((float(onset), float(onset + duration), word))
        t = float(onset + duration)
    return items


def write_textgrid(path: Path, tiers: dict, *, short: bool = False,
                   encoding: str = "utf-8") -> Path:
    """Write a TextGrid (``encoding`` 'utf-16' writes a BOM, like Praat)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(textgrid_text(tiers, short=short).encode(encoding))
    return path


def write_gentle_json(path: Path, words, onsets, durations, missing=()) -> Path:
    """Gentle's align.json; indices in ``missing`` are 'not-found-in-audio'."""
    entries = []
    for i, (word, onset, duration) in enumerate(zip(words, onsets, durations, strict=True)):
        if i in missing:
            entries.append({"case": "not-found-in-audio", "word": word})
        else:
            entries.append({"alignedWord": word.lower(), "case": "success", "word": word,
                            "start": float(onset), "end": float(onset + duration)})
    entries.insert(1, {"case": "not-found-in-transcript", "word": "um", "alignedWord": "um",
                       "start": 0.0, "end": 0.1})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"transcript": " ".join(words), "words": entries}),
                          encoding="utf-8")
    return Path(path)


def write_gentle_csv(path: Path, words, onsets, durations, missing=()) -> Path:
    """Gentle's align.csv (no header; unaligned rows have no times)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for i, (word, onset, duration) in enumerate(zip(words, onsets, durations, strict=True)):
            if i in missing:
                writer.writerow([word, "", "", ""])
            else:
                writer.writerow([word, word.lower(), f"{onset:.3f}", f"{onset + duration:.3f}"])
    return Path(path)


def write_table(path: Path, words, onsets, durations, *, sep: str = "\t",
                offset: bool = False) -> Path:
    """A plain table with onset and duration (or offset) and word columns."""
    last = "offset" if offset else "duration"
    rows = [sep.join(["onset", last, "word"])]
    for word, onset, duration in zip(words, onsets, durations, strict=True):
        value = onset + duration if offset else duration
        rows.append(sep.join([f"{onset:.3f}", f"{value:.3f}", word]))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Path(path)


def write_mat(path: Path, units, onsets, offsets, *, key: str = "word") -> Path:
    """An SMN4Lang-style .mat file (``word``/``char``, ``start``, ``end``)."""
    import numpy as np
    import scipy.io

    cells = np.empty((len(units), 1), dtype=object)
    for i, unit in enumerate(units):
        cells[i, 0] = unit
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {key: cells, "start": np.asarray(onsets, float)[None, :],
                            "end": np.asarray(offsets, float)[None, :]})
    return Path(path)
