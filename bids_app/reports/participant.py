"""The participant report: inputs, per-variant maps and scores, methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from ..io.derivatives import software_versions, write_text
from .html import esc, figure, figure_data_uri, matplotlib_agg, page, table


def _inputs_section(runs, word_tables, bold_info) -> str:
    rows = []
    info_runs = bold_info.get("runs", [])
    for i, (run, table_file) in enumerate(zip(runs, word_tables)):
        words = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        duration = run.n_volumes * run.tr
        inside = words["onset"].between(0, duration).mean() if len(words) else 0.0
        rows.append({
            "run": run.name, "TR (s)": run.tr, "volumes": run.n_volumes,
            "volumes used": info_runs[i]["volumes"] if i < len(info_runs) else run.n_volumes,
            "words": len(words), "stories": ", ".join(sorted(set(words["story"]))),
            "first word (s)": float(words["onset"].min()) if len(words) else float("nan"),
            "last word (s)": float(words["onset"].max()) if len(words) else float("nan"),
            "words inside run": f"{100 * inside:.0f}%",
        })
    frame = pd.DataFrame(rows)
    text = (f"<p>{len(runs)} runs, {int(frame['volumes used'].sum())} volumes and "
            f"{int(frame['words'].sum())} words; {bold_info.get('n_voxels', 0)} voxels analysed "
            f"({bold_info.get('n_bad_voxels_removed', 0)} removed as NaN/constant).</p>")
    return "<h2 id='inputs'>Inputs</h2>" + text + table(frame, "{:.2f}") + _timing_plot(
        runs, word_tables)


def _timing_plot(runs, word_tables) -> str:
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(runs) + 1.2))
    for i, (run, table_file) in enumerate(zip(runs, word_tables)):
        words = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        ax.broken_barh([(0, run.n_volumes * run.tr)], (i - 0.4, 0.8), color="#dde4ec")
        ax.plot(words["onset"], np.full(len(words), i), "|", color="#234", ms=8, alpha=0.5)
    ax.set_yticks(range(len(runs)), [r.name for r in runs], fontsize=8)
    ax.set_xlabel("time from the start of the run (s)")
    ax.set_title("Word onsets (ticks) within each run (grey)")
    return figure(figure_data_uri(fig), "Annotation coverage: word onsets against the run "
                  "duration.", "fig-timing")


def _variant_section(label: str, maps: dict, scores_file: str) -> str:
    import nibabel as nib
    from nilearn import plotting

    plt = matplotlib_agg()
    r_img = nib.load(maps["r"])
    values = np.asanyarray(r_img.dataobj)
    mask = values != 0
    r = values[mask]
    vmax = float(max(np.percentile(np.abs(r), 99.5), 0.05)) if r.size else 0.1
    display = plotting.plot_glass_brain(r_img, colorbar=True, plot_abs=False, vmax=vmax,
                                        cmap="RdBu_r", threshold=vmax / 10,
                                        title=f"{label}: held-out r")
    fig = display.frame_axes.figure
    glass = figure(figure_data_uri(fig), f"Glass brain of held-out r for {label}.",
                   f"fig-glass-{label}")
    display.close()
    alpha = np.asanyarray(nib.load(maps["alpha"]).dataobj)[mask]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    axes[0].hist(r, bins=60, color="#345")
    axes[0].axvline(0, color="k", lw=0.8)
    axes[0].set(xlabel="held-out r", ylabel="voxels", title="Distribution of r")
    axes[1].hist(np.log10(alpha), bins=30, color="#a63")
    axes[1].set(xlabel="log10 alpha", ylabel="voxels", title="Chosen regularisation")
    hist = figure(figure_data_uri(fig), f"Histograms of r and alpha for {label}.",
                  f"fig-hist-{label}")
    scores = pd.read_csv(scores_file, sep="\t")
    return (f"<h2 id='variant-{esc(label)}'>Variant {esc(label)}</h2>" + table(scores)
            + glass + hist)


def methods_paragraph(spec, n_runs: int, variants: list[str]) -> str:
    """Citation-ready description of what was done, with versions."""
    versions = software_versions()
    feat, align, enc = spec.features, spec.alignment, spec.encoding
    align_text = {
        "hrf": f"convolved with the {align.hrf_model} haemodynamic response function "
               f"(words as {align.word_duration}s), sampled at each volume's acquisition time",
        "fir": f"summed within each volume and stacked at delays of {align.delays} volumes",
        "lanczos": f"Lanczos-resampled to the volume times and stacked at delays of "
                   f"{align.delays} volumes",
    }[align.method]
    return (
        f"<div class='methods'><p>Encoding models were fitted with brainenc {__version__} "
        f"(Python {versions.get('python')}; himalaya {versions.get('himalaya')}, transformers "
        f"{versions.get('transformers')}, torch {versions.get('torch')}, nilearn "
        f"{versions.get('nilearn')}, nipype {versions.get('nipype')}, pybids "
        f"{versions.get('pybids')}). Word-level features ({feat.unit} units, sub-tokens pooled "
        f"by {feat.pooling}, {feat.direction} context of {feat.context_words} words, windows of "
        f"{feat.stride} target words) were extracted from the variants {', '.join(variants)}, "
        f"{align_text}, and z-scored within each run. BOLD time series were masked, "
        f"{'linearly detrended, ' if spec.bold.detrend else ''}"
        f"{'and z-scored ' if spec.bold.standardize else ''}within each of the {n_runs} runs. "
        f"Voxel-wise ridge regression was cross-validated with {enc.outer_cv} outer folds; "
        f"for each voxel, the regularisation was chosen among {len(enc.alphas)} values "
        f"({min(enc.alphas):g} to {max(enc.alphas):g}) by inner cross-validation over whole "
        f"training runs. Prediction accuracy is the Pearson correlation between predicted and "
        f"held-out BOLD, averaged over outer folds.</p></div>"
    )


def write_participant_report(output_dir: str, subject: str, runs, word_tables: list[str],
                             bold_info_file: str, variant_outputs: dict, spec,
                             warnings: list[str] | None = None) -> str:
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

    Returns
    -------
    str
        Path of the report.
    """
    bold_info = json.loads(Path(bold_info_file).read_text(encoding="utf-8"))
    nav = "<nav>" + "".join(f"<a href='#variant-{esc(v)}'>{esc(v)}</a>"
                            for v in variant_outputs) + "</nav>"
    body = [nav, _inputs_section(runs, word_tables, bold_info)]
    if warnings:
        body.append("<h2 id='warnings'>Warnings</h2>" + "".join(
            f"<p class='warn'>{esc(w)}</p>" for w in warnings))
    for label, outputs in variant_outputs.items():
        body.append(_variant_section(label, outputs, outputs["scores"]))
    body.append("<h2 id='methods'>Methods</h2>" + methods_paragraph(spec, len(runs),
                                                                   list(variant_outputs)))
    final = Path(output_dir) / f"sub-{subject}.html"
    write_text(final, page(f"brainenc report: sub-{subject}", "".join(body)))
    return str(final)
