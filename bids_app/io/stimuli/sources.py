"""Which annotation files hold the stories of a run, and where each story starts.

The spec's ``[annotations] mapping`` maps run selectors to file patterns under
``stimuli_dir`` (relative to the dataset root unless absolute)::

    [annotations.mapping]
    "*" = "{task}.TextGrid"                                  # LeBel: one story per task
    "task-lppEN" = "EN/lppEN_section{run_int}.TextGrid"      # Le Petit Prince: one per run
    "task-RDR" = "word-level/{stim}_word_time.mat"           # SMN4Lang: from events stim_file
    "task-two_run-1" = [{file = "a.TextGrid", onset = 0.0}, {file = "b.TextGrid", onset = 300}]
    "*" = {file = "gentle/{task}/align.csv", trial_type = "story"}  # Narratives: story rows
    "task-lppEN_run-15" = {file = "EN/lppEN_word_information.csv", rows = {section = 1}}

A selector is ``*`` or ``key-value`` pairs joined by ``_`` (``sub``, ``ses``,
``task``, ``acq``, ``run``; values may use ``*``/``?`` wildcards; run numbers
compare as integers); the most specific match wins. Placeholders: ``{subject}``,
``{session}``, ``{task}``, ``{acquisition}``, ``{run}``, ``{run_int}`` and, for
patterns applied to the story rows of ``events.tsv`` (rows whose ``stim_file``
is audio or an annotation), ``{stim}`` (the file name without extension) with
the row's ``onset`` as the story onset. An entry with ``trial_type`` takes its
onset (and ``{stim}``) from the rows of ``events.tsv`` of that ``trial_type`` only
(Narratives names the same audio file in its ``music`` and ``story`` rows). An
entry with ``rows`` keeps the rows of a table with those column values (one
section of a table holding a whole book).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DatasetError, UsageError
from ..events import numeric_column, read_tsv, read_word_events, story_label
from . import (
    AUDIO_EXTENSIONS,
    WordTimings,
    is_annotation,
    read_annotation,
    read_segmentation,
    resolve_under,
    segment,
)
from .segment import load_dictionary
from .sentences import Sentences, story_sentences

_KEYS = {"sub": "subject", "ses": "session", "task": "task", "acq": "acquisition", "run": "run"}
_FIELDS = ("subject", "session", "task", "acquisition", "run", "run_int", "stim")


@dataclass
class StorySource:
    """One story heard in a run: its timings, its onset (events clock), name and sentences."""

    name: str
    timings: WordTimings
    onset: float
    label: str
    sentences: Sentences | None = None


def _entities(run) -> dict:
    entities = {k: str(v) for k, v in (run.entities or {}).items()}
    entities.setdefault("subject", run.subject)
    entities.setdefault("session", run.session)
    entities.setdefault("task", run.task)
    entities.setdefault("run", run.run)
    return entities


def _matches(selector: str, entities: dict) -> int | None:
    selector = selector.strip()
    if selector in ("*", ""):
        return 0
    score = 0
    for part in selector.split("_"):
        key, sep, value = part.partition("-")
        if not sep or key not in _KEYS:
            raise UsageError(f"the annotations.mapping selector '{selector}' must be '*' or "
                             "key-value pairs joined by '_' (keys: sub, ses, task, acq, run).")
        have = entities.get(_KEYS[key], "")
        if key == "run" and value.isdigit() and str(have).isdigit():
            ok = int(value) == int(have)
        else:
            ok = fnmatch.fnmatchcase(str(have), value)
        if not ok:
            return None
        score += 1
    return score


def _entries(value, selector: str) -> list[dict]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            item = {"file": item}
        if not isinstance(item, dict) or not isinstance(item.get("file"), str) or set(item) - {
                "file", "onset", "story", "trial_type", "rows"}:
            raise UsageError(f"annotations.mapping['{selector}'] must be a file pattern, a table "
                             "{file, onset, story, trial_type, rows} or a list of them; got "
                             f"{value!r}.")
        if not isinstance(item.get("rows", {}), dict):
            raise UsageError(f"annotations.mapping['{selector}'] rows must be a table of column "
                             f"values, e.g. {{section = 1}}; got {item['rows']!r}.")
        if not isinstance(item.get("trial_type", ""), str):
            raise UsageError(f"annotations.mapping['{selector}'] trial_type must be a string "
                             f"(a value of the events' trial_type column); got "
                             f"{item['trial_type']!r}.")
        onset = item.get("onset", 0.0)
        if not isinstance(onset, (int, float)) or isinstance(onset, bool):
            raise UsageError(f"annotations.mapping['{selector}'] onset must be a number of "
                             f"seconds; got {onset!r}.")
        out.append({"file": item["file"], "onset": float(onset), "story": item.get("story", ""),
                    "trial_type": item.get("trial_type", ""), "rows": item.get("rows", {})})
    return out


def mapped_entries(run, mapping: dict) -> list[dict]:
    """Entries of the mapping that apply to a run (most specific selector)."""
    best, chosen = -1, []
    entities = _entities(run)
    for selector, value in (mapping or {}).items():
        score = _matches(selector, entities)
        if score is not None and score > best:
            best, chosen = score, _entries(value, selector)
    return chosen


def _fill(pattern: str, run, stim: str | None) -> str:
    entities = _entities(run)
    run_label = entities.get("run", "")
    values = {"subject": entities.get("subject", ""), "session": entities.get("session", ""),
              "task": entities.get("task", ""), "acquisition": entities.get("acquisition", ""),
              "run": run_label,
              "run_int": str(int(run_label)) if run_label.isdigit() else run_label}
    if stim is not None:
        values["stim"] = stim
    try:
        return pattern.format_map(values)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise UsageError(f"the annotation pattern '{pattern}' cannot be filled for '{run.name}' "
                         f"({type(exc).__name__}: {exc}); use placeholders among "
                         f"{{{', '.join(_FIELDS)}}} ({{stim}} only with story rows).") from None


_MEDIA = AUDIO_EXTENSIONS + (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".svg", ".tif", ".tiff",
                            ".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")


def story_rows(events_file: Path, *, annotations_only: bool = False,
               text_column: str = "word", trial_type: str = "") -> list[tuple[float, str]]:
    """``(onset, stim_file)`` of the story rows of an events file.

    With ``trial_type``, every row of that ``trial_type`` (its ``stim_file``, if
    any, gives ``{stim}``). With ``annotations_only``, rows naming annotation files,
    and (when the file has no word column) rows naming anything that is not audio,
    image or video. Otherwise, rows naming audio or annotation files.
    """
    frame = read_tsv(events_file)
    if trial_type:
        return _typed_rows(frame, events_file, trial_type)
    if "stim_file" not in frame.columns or "onset" not in frame.columns:
        return []
    onsets = numeric_column(frame, "onset", events_file)
    unknown_ok = annotations_only and text_column not in frame.columns
    rows = []
    for onset, value in zip(onsets, frame["stim_file"], strict=True):
        value = str(value).strip()
        if value in ("", "n/a"):
            continue
        suffix = Path(value).suffix.lower()
        if (is_annotation(value) or (not annotations_only and suffix in AUDIO_EXTENSIONS)
                or (unknown_ok and suffix not in _MEDIA)):
            if not np.isfinite(onset):
                raise DatasetError(f"the story row '{value}' of '{events_file}' has no onset; "
                                   "give the time the story starts.")
            rows.append((float(onset), value))
    return rows


def _typed_rows(frame, events_file: Path, trial_type: str) -> list[tuple[float, str]]:
    if "trial_type" not in frame.columns or "onset" not in frame.columns:
        raise DatasetError(f"'{events_file}' has no 'trial_type' (or 'onset') column, which the "
                           f"annotations.mapping entry with trial_type = '{trial_type}' needs; "
                           "add it or remove trial_type from the mapping.")
    keep = (frame["trial_type"].str.strip() == trial_type).to_numpy()
    if not keep.any():
        found = sorted(set(frame["trial_type"]))
        raise DatasetError(f"'{events_file}' has no row of trial_type '{trial_type}' (found: "
                           f"{', '.join(found)}); fix the mapping's trial_type.")
    onsets = numeric_column(frame, "onset", events_file)[keep]
    stims = (frame["stim_file"].to_numpy()[keep] if "stim_file" in frame.columns
             else [""] * int(keep.sum()))
    if not np.isfinite(onsets).all():
        raise DatasetError(f"a '{trial_type}' row of '{events_file}' has no onset; give the "
                           "time the story starts.")
    return [(float(o), "" if str(s).strip() in ("", "n/a") else str(s).strip())
            for o, s in zip(onsets, stims, strict=True)]


def _root(bids_dir: Path, stimuli_dir: str) -> Path:
    folder = Path(stimuli_dir or "stimuli")
    return folder if folder.is_absolute() else Path(bids_dir) / folder


def _relative(path: Path, bids_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(bids_dir).resolve()))
    except (ValueError, OSError):
        return str(path)


def _read(path: Path, spec, run, stim, root, bids_dir, rows=None) -> WordTimings:
    timings = read_annotation(path, rows=rows, tier=spec.tier if spec.tier != "" else None,
                              drop_labels=spec.drop_labels, label_separator=spec.label_separator,
                              text_column=spec.text_column,
                              interpolate=spec.interpolate_unaligned,
                              time_reference=spec.time_reference,
                              strict=getattr(spec, "strict", False))
    repairs, phones = list(timings.repairs), timings.phones
    timings = _segment(timings, spec, run, stim, root, bids_dir)
    timings.repairs, timings.phones = repairs, phones
    return timings


def _segment(timings: WordTimings, spec, run, stim, root, bids_dir) -> WordTimings:
    if spec.segmentation == "none":
        return timings
    given, dictionary, origin = None, None, spec.segmentation
    if spec.segmentation == "file":
        target = resolve_under(root, _fill(spec.segmentation_file, run, stim),
                               what=f"segmentation file of '{run.name}'")
        given, origin = read_segmentation(target, tier=spec.tier or None,
                                          drop_labels=spec.drop_labels,
                                          label_separator=spec.label_separator,
                                          text_column=spec.text_column), f"'{target}'"
    elif spec.segmentation == "dictionary":
        folder = Path(spec.dictionary)
        path_ = folder if folder.is_absolute() else Path(bids_dir) / folder
        dictionary, origin = load_dictionary(path_), f"'{path_}'"
    return segment(timings, spec.segmentation, given=given, dictionary=dictionary,
                   origin=origin)


def story_sources(run, spec, bids_dir: Path) -> list[StorySource]:
    """Find the stories of a run with their timings and onsets.

    Parameters
    ----------
    run : BoldRun
        The run.
    spec : AnnotationConfig
        Reading options (mapping, tier, segmentation ...).
    bids_dir : Path
        Dataset root.

    Returns
    -------
    list of StorySource
        At least one.
    """
    bids_dir = Path(bids_dir)
    entries = mapped_entries(run, spec.mapping)
    if entries:
        root = _root(bids_dir, spec.stimuli_dir)
        out = []
        for entry in entries:
            if "{stim" in entry["file"] or entry["trial_type"]:
                if run.events_file is None:
                    raise DatasetError(f"the annotation pattern '{entry['file']}' uses {{stim}} "
                                       "or trial_type but "
                                       f"'{run.name}' has no events.tsv naming its stories.")
                rows = story_rows(run.events_file, trial_type=entry["trial_type"])
                if not rows:
                    raise DatasetError(f"'{run.events_file}' has no story row (stim_file naming "
                                       f"audio or an annotation) for the pattern "
                                       f"'{entry['file']}'; add the rows or fix the mapping.")
                targets = [(onset, Path(value).stem if value else None) for onset, value in rows]
            else:
                targets = [(entry["onset"], None)]
            for onset, stim in targets:
                path = resolve_under(root, _fill(entry["file"], run, stim),
                                     what=f"annotation mapped to '{run.name}'")
                timings = _read(path, spec, run, stim, root, bids_dir, entry["rows"])
                name = entry["story"] or story_label(
                    stim or path.stem, *(f"{k}{v}" for k, v in entry["rows"].items()))
                sentences = story_sentences(timings, spec, path=path,
                                            transcript=_transcript(spec, run, stim, root))
                out.append(StorySource(name, timings, onset, _relative(path, bids_dir),
                                       sentences))
        return out
    if run.events_file is None:
        raise DatasetError(
            f"no events.tsv for '{run.bold_file.name}'; add '{run.name}_events.tsv' with the "
            "word timings of the run (or map the run to an annotation file in the spec's "
            "[annotations] mapping).")
    rows = story_rows(run.events_file, annotations_only=True, text_column=spec.text_column)
    if rows:
        root = bids_dir / "stimuli"
        out = []
        for number, (onset, value) in enumerate(rows, start=1):
            path = resolve_under(root, value, what=f"stim_file of '{run.events_file.name}' "
                                                   f"(story row {number})")
            timings = _read(path, spec, run, Path(value).stem, root, bids_dir)
            sentences = story_sentences(
                timings, spec, path=path,
                transcript=_transcript(spec, run, Path(value).stem, _root(bids_dir,
                                                                          spec.stimuli_dir)))
            out.append(StorySource(story_label(path.stem), timings, onset,
                                   _relative(path, bids_dir), sentences))
        return out
    table = read_word_events(run.events_file, text_column=spec.text_column)
    onsets = table["onset"].to_numpy(float)
    timings = WordTimings.build(table["word"].tolist(), onsets,
                                onsets + table["duration"].to_numpy(float),
                                source=str(run.events_file), fmt="events",
                                source_index=table.attrs.get("source_index"),
                                time_reference="story")
    timings = _segment(timings, spec, run, Path(run.events_file).stem, _root(
        bids_dir, spec.stimuli_dir), bids_dir)
    name = story_label(run.task, run.run and f"run{run.run}")
    sentences = story_sentences(
        timings, spec, events=run.events_file,
        transcript=_transcript(spec, run, Path(run.events_file).stem,
                               _root(bids_dir, spec.stimuli_dir)))
    return [StorySource(name, timings, 0.0, _relative(run.events_file, bids_dir), sentences)]


def _transcript(spec, run, stim, root: Path) -> Path | None:
    """The punctuated transcript of a story (``[annotations] transcript``), if one is set."""
    pattern = getattr(spec, "transcript", "")
    if not pattern:
        return None
    return resolve_under(root, _fill(pattern, run, stim),
                         what=f"transcript of '{run.name}' (annotations.transcript)")
