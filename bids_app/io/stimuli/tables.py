"""The canonical word table of each story, written beside the outputs.

``OUTPUT_DIR/stimuli/stim-<story>_annot-words_events.tsv`` lists every word used,
with its time from the story start, its position in the story and in the source
file; the JSON sidecar describes the columns and records the source files and
the text normalisation, so a user can see exactly what the models were given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ...errors import DatasetError
from ..derivatives import write_text

COLUMNS = ["onset", "duration", "word", "word_index", "source_index", "source_text", "aligned"]
DESCRIPTIONS = {
    "onset": {"Description": "Word onset from the start of the story (for stories timed on the "
                             "run's clock: from the story onset in its first run)", "Units": "s"},
    "duration": {"Description": "Spoken duration of the word", "Units": "s"},
    "word": {"Description": "The word given to the language models (after normalisation)"},
    "word_index": {"Description": "Position of the word in the story (0-based)"},
    "source_index": {"Description": "Position of the word's entry in the source annotation "
                                    "(interval, row or array index; 0-based)"},
    "source_text": {"Description": "The label as written in the source annotation"},
    "aligned": {"Description": "Whether the time comes from the alignment (1) or was "
                               "interpolated (0)", "Levels": {"1": "aligned", "0": "interpolated"}},
}


def story_table(story) -> pd.DataFrame:
    """Build the canonical table of a registered story (n/a times when none are known)."""
    if story.timings is not None:
        frame = story.timings.copy()
        frame["word"] = story.words
        frame["word_index"] = range(len(story.words))
        return frame[COLUMNS]
    n = len(story.words)
    return pd.DataFrame({"onset": ["n/a"] * n, "duration": ["n/a"] * n, "word": story.words,
                         "word_index": range(n), "source_index": range(n),
                         "source_text": story.words, "aligned": [1] * n})[COLUMNS]


def _clean(value: str) -> str:
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ") or "n/a"


def _tsv(frame: pd.DataFrame) -> str:
    """Format a TSV without quoting (BIDS tables are not quoted; tabs were replaced)."""
    def fmt(value) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if value == value else "n/a"
        return str(value)

    lines = ["\t".join(frame.columns)]
    lines += ["\t".join(fmt(v) for v in row) for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def record_words(words) -> tuple:
    """The words of a story as its record in OUTPUT_DIR lists them."""
    return tuple(_clean(word) for word in words)


def _record_path(output_dir: Path, name: str) -> Path:
    return Path(output_dir) / "stimuli" / f"stim-{name}_annot-words_events.tsv"


def recorded_stories(output_dir: Path) -> dict:
    """Words of the stories recorded in ``OUTPUT_DIR/stimuli`` by earlier jobs.

    Returns
    -------
    dict
        Story name -> tuple of its words (unreadable records are skipped: rewritten).
    """
    found = {}
    for path in sorted((Path(output_dir) / "stimuli").glob("stim-*_annot-words_events.tsv")):
        words = _recorded_words(path)
        if words is not None:
            found[path.name[len("stim-"):-len("_annot-words_events.tsv")]] = words
    return found


def _recorded_words(path: Path) -> tuple | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or "word" not in lines[0].split("\t"):
        return None
    column = lines[0].split("\t").index("word")
    rows = [line.split("\t") for line in lines[1:] if line]
    if any(len(row) <= column for row in rows):
        return None
    return tuple(row[column] for row in rows)


def write_story_table(output_dir: Path, story) -> Path:
    """Write the TSV and JSON of one story (only when their content changed).

    Raises
    ------
    DatasetError
        When another job recorded other words under the same story name since this
        job started (a rerun records this story under a new name).
    """
    frame = story_table(story)
    for column in ("word", "source_text"):
        frame[column] = frame[column].map(_clean)
    target = _record_path(output_dir, story.name)
    earlier = _recorded_words(target) if target.exists() else None
    if earlier is not None and earlier != tuple(frame["word"]):
        raise DatasetError(
            f"'{target}' was written meanwhile by another job with other words for story "
            f"'{story.name}'; rerun this command to record this job's words under a new name.")
    text = _tsv(frame)
    sidecar = dict(DESCRIPTIONS)
    sidecar.update({
        "Sources": list(dict.fromkeys(story.sources)),
        "AnnotationFormat": story.meta.get("format", ""),
        "TimeReference": story.meta.get("time_reference", ""),
        "Separator": story.separator,
        "Normalisation": story.meta.get("normalisation", {}),
        "Notes": story.meta.get("notes", []),
        "Repairs": story.meta.get("repairs", []),
        **story.meta.get("sentences", {}),
    })
    payload = json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n"
    for path, content in ((target, text), (target.with_suffix(".json"), payload)):
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            write_text(path, content)
    return target
