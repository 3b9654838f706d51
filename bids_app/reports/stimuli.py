"""Report section on the stimuli: what was read for every story and how it fits its runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.runs import used_window
from ..io.stimuli.checks import story_checks
from .html import esc, figure, figure_data_uri, matplotlib_agg, table

_LABELS = {"n_before": "before first volume", "n_after": "after run end",
           "n_negative": "before story onset", "n_non_monotonic": "non-monotonic onsets",
           "n_overlaps": "overlapping words", "n_unaligned": "unaligned (interpolated)"}


def story_rows(runs, word_tables, dummy_scans: int = 0) -> pd.DataFrame:
    """One row per story and run with the checks of :func:`story_checks`.

    Parameters
    ----------
    runs : list of BoldRun
        The runs.
    word_tables : list of str
        Word table of each run (``onset, duration, word, story, word_index`` ...).
    dummy_scans : int
        Volumes dropped at the start of each run.

    Returns
    -------
    DataFrame
        Columns ``story``, ``run`` and the check values.
    """
    rows = []
    for run, table_file in zip(runs, word_tables, strict=True):
        words = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        for story, part in words.groupby("story", sort=False):
            part = part.sort_values("word_index", kind="stable")
            info = story_checks(part, used_window(run, dummy_scans))
            rows.append({"story": story, "run": run.name, **info})
    return pd.DataFrame(rows)


def _rate_figure(story: str, runs, word_tables, bin_s: float = 10.0) -> str:
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(9, 2.4))
    for run, table_file in zip(runs, word_tables, strict=True):
        words = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        onsets = words.loc[words["story"] == story, "onset"].to_numpy(float)
        if onsets.size == 0:
            continue
        edges = np.arange(np.floor(onsets.min() / bin_s) * bin_s, onsets.max() + 2 * bin_s, bin_s)
        counts, _ = np.histogram(onsets, edges)
        ax.step(edges[:-1], counts * 60.0 / bin_s, where="post", label=run.name, lw=1.2)
        ax.axvline(run.n_volumes * run.tr, color="#c33", lw=0.8, ls="--")
    ax.set(xlabel="time from the start of the run (s)", ylabel="words per minute",
           title=f"Speech rate of story {story} ({bin_s:g}-s bins; dashed: end of run)")
    ax.legend(fontsize=7, loc="lower left")
    return figure(figure_data_uri(fig), f"Speech rate over time for story {story}.",
                  f"fig-rate-{story}")


def story_repairs(output_dir, story: str) -> list[str]:
    """Repairs made while reading a story's annotation (from its sidecar in ``stimuli/``)."""
    import json
    from pathlib import Path

    if output_dir is None:
        return []
    sidecar = Path(output_dir) / "stimuli" / f"stim-{story}_annot-words_events.json"
    try:
        return list(json.loads(sidecar.read_text(encoding="utf-8")).get("Repairs", []))
    except (OSError, ValueError):
        return []


def stimuli_section(runs, word_tables, spec, output_dir=None) -> str:
    """HTML section with one block per story: counts, coverage, timing problems, speech rate.

    Parameters
    ----------
    runs : list of BoldRun
        The runs.
    word_tables : list of str
        Word table of each run.
    spec : ExperimentSpec
        The resolved spec (dummy scans and text normalisation are reported).
    output_dir : path-like, optional
        OUTPUT_DIR, whose story sidecars list the defects repaired in the annotations.

    Returns
    -------
    str
        HTML.
    """
    rows = story_rows(runs, word_tables, spec.bold.dummy_scans)
    if rows.empty:
        return ""
    ann = spec.annotations
    parts = [
        "<h2 id='stimuli'>Stimuli</h2>",
        f"<p>{rows['story'].nunique()} stories in {len(runs)} runs. Text normalisation: "
        f"lowercase={ann.lowercase}, strip_punctuation={ann.strip_punctuation}, "
        f"numbers={esc(ann.numbers)}, segmentation={esc(ann.segmentation)}; the words used are "
        "listed in <code>stimuli/stim-&lt;story&gt;_annot-words_events.tsv</code>.</p>"]
    for story, part in rows.groupby("story", sort=True):
        shown = pd.DataFrame({
            "run": part["run"], "words": part["n_words"],
            "first onset (s)": part["first_onset"], "last offset (s)": part["last_offset"],
            "coverage of run": [f"{100 * c:.0f}%" for c in part["coverage"]],
            **{label: part[key] for key, label in _LABELS.items()}})
        problems = [f"{int(part[key].sum())} {label}" for key, label in _LABELS.items()
                    if part[key].sum()]
        note = ("<p class='warn'>" + esc("; ".join(problems)) + "</p>") if problems else (
            "<p>No timing problem found.</p>")
        repairs = story_repairs(output_dir, story)
        if repairs:
            note += ("<p class='warn'>Repaired while reading the annotation "
                     "(annotations.strict = false):</p><ul>"
                     + "".join(f"<li>{esc(m)}</li>" for m in repairs) + "</ul>")
        story_runs = [r for r in runs if r.name in set(part["run"])]
        tables = [t for r, t in zip(runs, word_tables, strict=True) if r.name in set(part["run"])]
        parts.append(f"<h3 id='story-{esc(story)}'>Story {esc(story)}</h3>"
                     + table(shown, "{:.2f}") + note
                     + _rate_figure(story, story_runs, tables))
    return "".join(parts)
