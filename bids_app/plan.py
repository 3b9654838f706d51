"""Collect what a participant-level run will process, before any heavy work.

Runs, word annotations and stories are read in the main process so that the
workflow graph knows every story (featurized once for all participants) and so
that most input problems are reported before anything is computed. A
participant whose inputs are unusable is recorded as a failure and left out;
the others go on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import trim_volumes
from .errors import BrainencError, DatasetError, NoMatchError
from .io.annotations import StoryRegistry, annotate_run
from .io.bids import BoldRun, collect_runs
from .io.stimuli.sentences import Sentences, sentence_error
from .io.stimuli.tables import recorded_stories, write_story_table


@dataclass
class SubjectPlan:
    """Inputs of one participant, written as files for the workflow."""

    subject: str
    runs: list[BoldRun]
    runs_json: str
    word_tables: list[str]
    warnings: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Everything a participant-level run processes."""

    subjects: list[SubjectPlan]
    story_names: list[str]
    story_files: list[str]
    failures: dict[str, BrainencError] = field(default_factory=dict)


def _check_runs(runs: list[BoldRun], subject: str, min_runs: int) -> None:
    if not runs:
        raise NoMatchError(f"no BOLD runs matched for participant '{subject}' (check --task-id, "
                           "--session-id and the bids filter).")
    seen = {}
    for run in runs:
        if run.name in seen:
            raise DatasetError(
                f"runs '{seen[run.name].name}' and '{run.bold_file.name}' of sub-{subject} have "
                "the same entities; keep one file per run (e.g. remove a duplicate .nii/.nii.gz)."
            )
        seen[run.name] = run
    if len(runs) < min_runs:
        raise DatasetError(
            f"sub-{subject} has {len(runs)} BOLD run(s) but cross-validation over runs needs at "
            f"least {min_runs}; add runs or select more tasks/sessions."
        )


#: Fewest volumes a run must keep after dummy scans and trimmed edges.
MIN_VOLUMES = 3


def _check_run_settings(runs: list[BoldRun], spec) -> None:
    """Refuse settings that the runs' length or TR make impossible (before any work)."""
    bold = spec.bold
    folds = re.fullmatch(r"(\d+)-fold", spec.encoding.outer_cv)
    if folds and int(folds.group(1)) > len(runs):
        raise DatasetError(
            f"'encoding.outer_cv' = '{spec.encoding.outer_cv}' needs at least "
            f"{folds.group(1)} runs (folds hold whole runs) but sub-{runs[0].subject} has "
            f"{len(runs)}; use fewer folds or 'leave-one-run-out'.")
    for run in runs:
        trim = trim_volumes(spec.encoding, run.tr)
        kept = run.n_volumes - bold.dummy_scans - sum(trim)
        if kept < MIN_VOLUMES:
            raise DatasetError(
                f"'{run.bold_file.name}' has {run.n_volumes} volumes; dropping {bold.dummy_scans} "
                f"dummy scan(s) (--dummy-scans or 'bold.dummy_scans') and trimming {trim[0]} + "
                f"{trim[1]} ('encoding.trim_edges') would leave {max(kept, 0)}, fewer than "
                f"{MIN_VOLUMES}; lower these settings (the default trim is "
                "'encoding.trim_seconds').")
        delays = spec.alignment.delays if spec.alignment.method in ("fir", "lanczos") else []
        last = run.n_volumes - bold.dummy_scans - trim[1]  # a delay from here on sees no word
        if delays and max(delays) >= last:
            raise DatasetError(
                f"'alignment.delays' holds {max(delays)} volumes, but '{run.bold_file.name}' "
                f"keeps only {last} volumes after dummy scans and trimming, so those features "
                "would be all zeros; use delays of a few volumes (e.g. [1, 2, 3, 4]).")
        start = run.start_time
        if start is not None and (isinstance(start, bool) or not isinstance(start, (int, float))
                                  or not 0 <= start <= run.tr):
            unit = " (milliseconds? BIDS wants seconds)" if isinstance(start, (int, float)) \
                and 0 <= start / 1000 <= run.tr else ""
            raise DatasetError(
                f"StartTime of '{run.bold_file.name}' is {start!r}{unit}, but it must be the "
                f"seconds from the start of a volume to its reference slice, within the TR "
                f"(0 to {run.tr:g} s); fix the JSON sidecar.")
        nyquist = 0.5 / run.tr
        if bold.high_pass and bold.high_pass >= nyquist:
            raise DatasetError(
                f"'bold.high_pass' = {bold.high_pass:g} Hz is at or above the Nyquist frequency "
                f"({nyquist:g} Hz at TR {run.tr:g} s of '{run.bold_file.name}'), so it would "
                "remove the whole signal; use a cut-off such as 0.01 Hz (0 disables it).")


def make_plan(layout, subjects: list[str], spec, *, work_dir: Path, output_dir: Path,
              tasks=None, sessions=None, filters=None, derivatives=None, space=None,
              bids_dir=None) -> Plan:
    """Collect runs and annotations of every participant.

    Returns
    -------
    Plan
        With failures per participant (the others are processed).
    """
    inputs = Path(work_dir) / "brainenc_inputs"
    registry = StoryRegistry(recorded_stories(output_dir))  # names other jobs recorded stay theirs
    plans, failures = [], {}
    for subject in subjects:
        try:
            runs = collect_runs(layout, subject, tasks=tasks, sessions=sessions, filters=filters,
                                derivatives=derivatives, space=space,
                                inputs=getattr(spec, "inputs", None), bids_dir=bids_dir)
            _check_runs(runs, subject, min_runs=2)
            _check_run_settings(runs, spec)
            folder = inputs / f"sub-{subject}"
            folder.mkdir(parents=True, exist_ok=True)
            tables, warnings = [], []
            for run in runs:
                table = annotate_run(run, registry, spec.annotations, bids_dir=Path(layout.root),
                                     dummy_scans=spec.bold.dummy_scans, warnings=warnings)
                _check_timing(table, run)
                path = folder / f"{run.name}_words.tsv"
                _write_if_changed(path, table.to_csv(sep="\t", index=False))
                tables.append(str(path))
            runs_json = folder / "runs.json"
            _write_if_changed(runs_json, json.dumps([r.to_dict() for r in runs], indent=1,
                                                    sort_keys=True))
            plans.append(SubjectPlan(subject, runs, str(runs_json), tables, warnings))
        except BrainencError as exc:
            failures[subject] = exc
    if getattr(getattr(spec, "features", None), "unit", "word") == "sentence":
        check_sentences(registry)
    wants_phones = "phoneme_rate" in (getattr(getattr(spec, "features", None), "nuisance",
                                              None) or [])
    if wants_phones:
        check_phones(registry)
    names, files = [], []
    story_dir = inputs / "stories"
    for name, story in sorted(registry.stories.items()):
        path = story_dir / f"{name}.json"
        record = {"name": name, "words": story.words, "sentences": story.sentences,
                  "separator": story.separator}
        if wants_phones:  # phone onsets per word (only then, so other records stay as they were)
            record["phones"] = story.phones
        payload = json.dumps(record, ensure_ascii=False)
        _write_if_changed(path, payload)  # the format read by stimuli_models Story.from_json
        names.append(name)
        files.append(str(path))
    write_story_tables(output_dir, registry)
    return Plan(plans, names, files, failures)


def check_sentences(registry: StoryRegistry) -> None:
    """Stop when a story has no sentence boundaries and the features are per sentence.

    Parameters
    ----------
    registry : StoryRegistry
        The stories read for the participants.

    Raises
    ------
    DatasetError
        Naming the first story without boundaries, the sources tried and the fix.
    """
    for name, story in sorted(registry.stories.items()):
        if story.sentences is None:
            record = story.meta.get("sentences") or {}
            tried = Sentences(None, tried=list(record.get("SentencesTried") or
                                               ["no source (the story was not read from a file)"]))
            raise DatasetError(sentence_error(name, story.sources[0], tried))


def check_phones(registry: StoryRegistry) -> None:
    """Stop when the ``phoneme_rate`` band is asked for and a story has no phone timings.

    Parameters
    ----------
    registry : StoryRegistry
        The stories read for the participants.

    Raises
    ------
    DatasetError
        Naming the first story without phones, its annotation file and the fix.
    """
    for name, story in sorted(registry.stories.items()):
        if story.phones is None:
            raise DatasetError(
                f"the 'phoneme_rate' nuisance band needs phone timings, but the annotation "
                f"'{story.sources[0]}' of story '{name}' has no phone tier; give a TextGrid with "
                "an IntervalTier named 'phones' (as forced aligners such as the Montreal Forced "
                "Aligner write) or remove 'phoneme_rate' from [features] nuisance.")


def _check_timing(table: pd.DataFrame, run: BoldRun, tolerance: float = 1.0) -> None:
    duration = run.n_volumes * run.tr
    late = table["onset"] > duration + tolerance
    if late.all():
        raise DatasetError(
            f"every word of '{run.events_file}' starts after the end of its run "
            f"({duration:.1f} s = {run.n_volumes} volumes x TR {run.tr} s); check the onsets' "
            "unit (seconds) and the RepetitionTime."
        )


def _write_if_changed(path: Path, text: str) -> None:
    """Write only when the content differs (keeps timestamps, so nipype reuses results)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_story_tables(output_dir: Path, registry: StoryRegistry) -> None:
    """Write the words of each story as ``stimuli/stim-<story>_annot-words_events.tsv``."""
    for story in registry.stories.values():
        write_story_table(output_dir, story)
