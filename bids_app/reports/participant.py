"""The participant report: inputs, per-variant maps and scores, methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from ..encoding.scoring import alpha_edge_message
from ..group.contrast_maps import identical_variants
from ..group.maps import load_values, map_kind, read_sidecar
from ..group.tables import cka_value, dev_metric, nlu_task
from ..io.derivatives import software_versions, write_text
from .brainplots import brain_map
from .html import esc, figure, figure_data_uri, matplotlib_agg, note, page, table
from .stimuli import stimuli_section


def _inputs_section(runs, word_tables, bold_info) -> str:
    rows = []
    info_runs = bold_info.get("runs", [])
    for i, (run, table_file) in enumerate(zip(runs, word_tables, strict=True)):
        words = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        duration = run.n_volumes * run.tr
        inside = words["onset"].between(0, duration).mean() if len(words) else 0.0
        rows.append({
            "run": run.name, "TR (s)": run.tr, "volumes": run.n_volumes,
            "volumes used": info_runs[i]["volumes"] if i < len(info_runs) else run.n_volumes,
            "volumes removed": info_runs[i].get("removed_volumes", 0) if i < len(info_runs)
            else 0,
            "words": len(words), "stories": ", ".join(sorted(set(words["story"]))),
            "first word (s)": float(words["onset"].min()) if len(words) else float("nan"),
            "last word (s)": float(words["onset"].max()) if len(words) else float("nan"),
            "words inside run": f"{100 * inside:.0f}%",
        })
    frame = pd.DataFrame(rows)
    text = (f"<p>{len(runs)} runs, {int(frame['volumes used'].sum())} volumes and "
            f"{int(frame['words'].sum())} words; {bold_info.get('n_voxels', 0)} voxels analysed "
            f"({bold_info.get('n_bad_voxels_removed', 0)} removed as NaN/constant); "
            f"{bold_info.get('n_volumes_removed', 0)} volumes removed (dummy scans, "
            f"non-steady state, scrubbing); {_confounds_text(bold_info)}.</p>")
    return "<h2 id='inputs'>Inputs</h2>" + text + table(frame, "{:.2f}") + _timing_plot(
        runs, word_tables)


def _confounds_text(bold_info: dict) -> str:
    strategy = str(bold_info.get("confounds", "none"))
    if strategy == "none":
        return "no confound regression"
    where = ("with coefficients fitted on the training runs of each fold"
             if bold_info.get("confound_regression", "fold") == "fold" else "within each run")
    return f"confounds ('{esc(strategy)}' strategy) regressed {where}"


def _timing_plot(runs, word_tables) -> str:
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(runs) + 1.2))
    for i, (run, table_file) in enumerate(zip(runs, word_tables, strict=True)):
        words = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        ax.broken_barh([(0, run.n_volumes * run.tr)], (i - 0.4, 0.8), color="#dde4ec")
        ax.plot(words["onset"], np.full(len(words), i), "|", color="#234", ms=8, alpha=0.5)
    ax.set_yticks(range(len(runs)), [r.name for r in runs], fontsize=8)
    ax.set_xlabel("time from the start of the run (s)")
    ax.set_title("Word onsets (ticks) within each run (grey)")
    return figure(figure_data_uri(fig), "Annotation coverage: word onsets against the run "
                  "duration.", "fig-timing")


def _sibling(r_map: str, stat: str) -> str | None:
    """Find the ``stat-<stat>`` map written beside a ``stat-r`` map, if any."""
    path = Path(r_map)
    other = path.with_name(path.name.replace("_stat-r_", f"_stat-{stat}_"))
    return str(other) if other != path and other.exists() else None


def tuning_summary(label: str, meta: dict) -> pd.DataFrame:
    """One-row table of a variant's model and tuning record (from its sidecar)."""
    name, value = dev_metric(meta)
    cka = cka_value(meta.get("CKA"), meta.get("Layer"))
    settings = meta.get("TuningSettings") or {}
    return pd.DataFrame([{
        "variant": label, "model": meta.get("ModelName") or meta.get("Model"),
        "method": meta.get("TuningMethod"), "NLU task": nlu_task(meta),
        "layer": meta.get("Layer"), "dev metric": f"{name}: {value:.3f}" if value is not None
        else "n/a", "trainable share": meta.get("TrainableParameterShare"),
        "trainable parameters": meta.get("TrainableParameters"),
        "CKA to pretrained": cka,
        "settings": ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "defaults",
    }])


def significance_summary(maps: dict, fdr_alpha: float) -> str:
    """Count voxels with q below the FDR level (or why it is not available)."""
    r = load_values(maps["r"])
    inside = r != 0
    q_map = maps.get("q") or _sibling(maps["r"], "q")
    p_map = maps.get("p") or _sibling(maps["r"], "p")
    rows = {"voxels analysed": int(inside.sum()), "median r": float(np.median(r[inside]))
            if inside.any() else float("nan"), "voxels with r > 0.1": int((r > 0.1).sum())}
    if p_map:
        rows["voxels with p < 0.001 (uncorrected)"] = int((load_values(p_map)[inside]
                                                         < 0.001).sum())
    if q_map:
        rows[f"voxels with FDR q < {fdr_alpha}"] = int((load_values(q_map)[inside]
                                                       < fdr_alpha).sum())
    text = "" if q_map else note("No voxel-wise p/q maps were written for this variant, so only "
                                 "descriptive counts are shown.")
    return table(pd.DataFrame([rows]), "{:.3f}") + text


def _identical(variant_outputs: dict) -> dict:
    """Variants identical to another by construction or by their feature digest."""
    return identical_variants([{"variant": label, "metadata": read_sidecar(outputs["r"])}
                               for label, outputs in variant_outputs.items()])


def _variant_section(label: str, maps: dict, scores_file: str, fdr_alpha: float = 0.05,
                     identical_to: str | None = None) -> str:
    plt = matplotlib_agg()
    # the maps beside stat-r are authoritative (a surface variant has one file per hemisphere)
    maps = {**maps, **{s: _sibling(maps["r"], s) for s in ("r2", "alpha", "p", "q")
                       if _sibling(maps["r"], s)}}
    meta = read_sidecar(maps["r"])
    r_all = load_values(maps["r"])
    inside = r_all != 0
    r = r_all[inside]
    parts = [f"<h2 id='variant-{esc(label)}'>Variant {esc(label)}</h2>",
             "<h3>Tuning</h3>", table(tuning_summary(label, meta))]
    parts += [design_notes({**meta, "IdenticalTo": identical_to or meta.get("IdenticalTo")})]
    parts.append("<h3>Maps</h3>" + brain_map(maps["r"], f"{label}: held-out r",
                                             f"Held-out r for {label}.", f"fig-glass-{label}"))
    right = maps["r"].replace("_hemi-L_", "_hemi-R_")
    if right != maps["r"] and Path(right).exists():
        parts.append(brain_map(right, f"{label}: held-out r (right)",
                               f"Held-out r for {label}, right hemisphere.",
                               f"fig-glass-{label}-R"))
    if maps.get("alpha") and map_kind(maps["alpha"]) == "volume":
        parts.append(brain_map(maps["alpha"], f"{label}: log10 alpha",
                               f"Regularisation chosen per voxel (log10 alpha) for {label}.",
                               f"fig-alpha-{label}", cmap="viridis", threshold=None,
                               symmetric=False, transform=np.log10,
                               projection="mean"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    axes[0].hist(r, bins=60, color="#345")
    axes[0].axvline(0, color="k", lw=0.8)
    axes[0].set(xlabel="held-out r", ylabel="voxels", title="Distribution of r")
    if maps.get("alpha"):
        alpha = load_values(maps["alpha"])[inside]
        axes[1].hist(np.log10(alpha[alpha > 0]), bins=30, color="#a63")
    axes[1].set(xlabel="log10 alpha", ylabel="voxels", title="Chosen regularisation")
    parts.append(figure(figure_data_uri(fig), f"Histograms of r and alpha for {label}.",
                        f"fig-hist-{label}"))
    if maps.get("alpha"):
        sidecar = read_sidecar(maps["alpha"])
        edges, grid = sidecar.get("AlphaGridEdgeShare"), sidecar.get("AlphaGrid")
        if edges and grid:
            message = alpha_edge_message({**edges, "grid": grid})
            if message:
                parts.append(note("Regularisation grid: " + message))
    parts.append("<h3>Significance</h3>" + significance_summary(maps, fdr_alpha))
    parts.append("<h3>Regions</h3>" + table(pd.read_csv(scores_file, sep="\t")))
    return "".join(parts)


def design_notes(meta: dict) -> str:
    """The design checks of a variant, and whether it is identical to another by construction."""
    lines = []
    if meta.get("IdenticalTo"):
        lines.append(f"<p class='warn'>This variant is identical to {esc(meta['IdenticalTo'])} "
                     "by construction (its features are the same); it is kept out of "
                     "comparisons.</p>")
    checks = meta.get("DesignChecks") or []
    if checks:
        rows = pd.DataFrame(checks)
        lines.append("<h3>Design checks</h3>" + table(rows))
    return "".join(lines)


def bold_warnings(bold_info: dict) -> list[str]:
    """Warnings implied by the BOLD preparation record (dropped voxels, removed volumes).

    Parameters
    ----------
    bold_info : dict
        The JSON written by :func:`bids_app.participant.prepare_bold`.

    Returns
    -------
    list of str
    """
    found = []
    for run in bold_info.get("runs", []):
        if run.get("bad_voxels"):
            found.append(f"{run['run']}: {run['bad_voxels']} voxel(s) were NaN, infinite or "
                         "constant and were dropped from the analysis mask.")
        total = run.get("volumes", 0) + run.get("removed_volumes", 0)
        scrubbed = run.get("scrubbed_volumes", 0)
        if total and scrubbed / total > 0.2:
            found.append(f"{run['run']}: {scrubbed} of {total} volumes were scrubbed for "
                         "motion; its estimates rest on fewer samples.")
    return found


def collect_warnings(output_dir: str | Path, subject: str, extra: list[str] | None = None) \
        -> list[str]:
    """Warnings of a participant's run: given ones plus those in ``OUTPUT_DIR/logs``.

    Log lines at WARNING level or above are kept from ``logs/sub-<label>*.log`` and,
    when they name ``sub-<label>``, from the other ``logs/*.log`` files.

    Returns
    -------
    list of str
        Unique messages, in order of appearance.
    """
    found = list(extra or [])
    tag = f"sub-{subject}"
    for log in sorted(Path(output_dir).glob("logs/*.log")):
        own = log.name.startswith(tag + "_") or log.name.startswith(tag + ".")
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if any(level in line for level in ("WARNING", "ERROR", "CRITICAL")) and (
                    own or tag in line):
                found.append(line.strip())
    return list(dict.fromkeys(found))


def methods_section(steps: str) -> str:
    """Citation-ready Methods: software versions, then what each step of the run did.

    Parameters
    ----------
    steps : str
        Sentences describing the steps in execution order, generated from the
        workflow by :func:`bids_app.workflows.methods.methods_text`.

    Returns
    -------
    str
        HTML of the section's body.
    """
    versions = software_versions()
    intro = (f"Encoding models were fitted with brainenc {__version__} "
             f"(Python {versions.get('python')}; himalaya {versions.get('himalaya')}, "
             f"transformers {versions.get('transformers')}, torch {versions.get('torch')}, "
             f"nilearn {versions.get('nilearn')}, nipype {versions.get('nipype')}, pybids "
             f"{versions.get('pybids')}).")
    return f"<div class='methods'><p>{esc(intro)} {esc(steps)}</p></div>"


def write_participant_report(output_dir: str, subject: str, runs, word_tables: list[str],
                             bold_info_file: str, variant_outputs: dict, spec,
                             warnings: list[str] | None = None, *, methods: str = "",
                             out_dir: str | None = None) -> str:
    """Write ``OUTPUT_DIR/sub-<label>.html``.

    Parameters
    ----------
    output_dir : str
        OUTPUT_DIR.
    subject : str
        Participant label.
    runs : list of BoldRun
        The runs.
    word_tables : list of str
        Word table of each run.
    bold_info_file : str
        JSON written by :func:`bids_app.participant.prepare_bold`.
    variant_outputs : dict
        ``label -> {'r': map, 'r2': map, 'alpha': map, 'scores': tsv}``.
    spec : ExperimentSpec
        The resolved spec.
    warnings : list of str, optional
        Warnings collected during the run.
    methods : str
        What the workflow's steps did (:func:`bids_app.workflows.methods.methods_text`).
    out_dir : str, optional
        Folder the report is written to (default: ``output_dir``); the workflow
        renders it in its node folder and publishes it with a sink.

    Returns
    -------
    str
        Path of the report.
    """
    bold_info = json.loads(Path(bold_info_file).read_text(encoding="utf-8"))
    nav = "<nav>" + "".join(f"<a href='#variant-{esc(v)}'>{esc(v)}</a>"
                            for v in variant_outputs) + "</nav>"
    body = [nav, _inputs_section(runs, word_tables, bold_info),
            stimuli_section(runs, word_tables, spec, output_dir=output_dir)]
    warnings = collect_warnings(output_dir, subject, list(warnings or [])
                                + bold_warnings(bold_info))
    body.append("<h2 id='warnings'>Warnings</h2>" + ("".join(
        f"<p class='warn'>{esc(w)}</p>" for w in warnings) if warnings else note(
        "No warnings were raised for this participant.")))
    fdr_alpha = getattr(getattr(spec, "statistics", None), "fdr_alpha", 0.05)
    same = _identical(variant_outputs)
    for label, outputs in variant_outputs.items():
        body.append(_variant_section(label, outputs, outputs["scores"], fdr_alpha,
                                     identical_to=same.get(label)))
    body.append("<h2 id='methods'>Methods</h2>" + methods_section(methods))
    final = Path(out_dir or output_dir) / f"sub-{subject}.html"
    write_text(final, page(f"brainenc report: sub-{subject}", "".join(body)))
    return str(final)
