"""The group report: which variant predicts the brain best, where, and how consistently."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._version import __version__
from ..io.derivatives import software_versions, write_text
from .brainplots import brain_map
from .figures import cka_vs_encoding, layer_curves, method_task_bars, share_vs_encoding
from .html import esc, nav, note, page
from .html import table as html_table

VARIANT_COLUMNS = ["variant", "task", "hemi", "method", "nlu_task", "layer", "dev_metric_name",
                   "dev_metric", "trainable_share", "n_subjects", "mean_r", "ci95_r",
                   "mean_r_language", "mean_r_top", "mean_r_normalised",
                   "mean_r_normalised_language", "n_significant_fdr", "n_significant_perm",
                   "n_significant_subject_mean",
                   "mean_r2_unique", "mean_r2_unique_map", "cka_drift", "settings_hash",
                   "note"]


def _headline(table: pd.DataFrame, comparisons: list[dict]) -> str:
    if table.empty or "mean_r" not in table:
        return ""
    best = table.sort_values("mean_r", ascending=False).iloc[0]
    tuned = (f"{esc(best['method'])} on {esc(best['nlu_task'])}"
             if best["nlu_task"] != "none" else f"{esc(best['method'])}, untuned")
    text = (f"Best whole-mask prediction: <b>{esc(best['variant'])}</b> ({tuned}, "
            f"layer {esc(best['layer'])}), mean r = "
            f"{best['mean_r']:.3f} over {int(best['n_subjects'])} participants")
    if "mean_r_language" in table and table["mean_r_language"].notna().any():
        lang = table.sort_values("mean_r_language", ascending=False).iloc[0]
        text += (f"; best in the language network: <b>{esc(lang['variant'])}</b> "
                 f"(mean r = {lang['mean_r_language']:.3f})")
    text += "."
    for comparison in comparisons:
        row = comparison["row"]
        text += (f" {esc(row['variant_a'])} beats {esc(row['variant_b'])} in "
                 f"{row['subjects_a_better']} of {row['n_subjects']} participants "
                 f"(mean difference {row['mean_rdiff']:+.3f}).")
    return f"<p>{text}</p>"


def _region_matrix(regions: pd.DataFrame) -> str:
    if regions.empty:
        return ""
    keys = ["variant", "task"] + (["hemi"] if "hemi" in regions else [])
    pivot = regions.pivot_table(index=keys, columns="region", values="mean_r", aggfunc="mean")
    order = ["brain"] + [c for c in pivot.columns if c != "brain"]
    return html_table(pivot[order].reset_index(), table_id="table-regions")


def methods_section(steps: list[str]) -> str:
    """Methods: software versions, then what each group step that ran did.

    Parameters
    ----------
    steps : list of str
        Sentences of the steps that ran, in execution order, each written by the
        step from the parameters it used (see :mod:`bids_app.group.methods`).

    Returns
    -------
    str
        HTML of the section's body.
    """
    versions = software_versions()
    intro = (f"Group statistics were computed with brainenc {__version__} (Python "
             f"{versions.get('python')}; numpy {versions.get('numpy')}, scipy "
             f"{versions.get('scipy')}, nibabel {versions.get('nibabel')}, nilearn "
             f"{versions.get('nilearn')}) from the participants' held-out correlation maps.")
    return f"<div class='methods'><p>{esc(' '.join([intro, *steps]))}</p></div>"


def write_group_report(output_dir: Path, *, summaries: list[dict], regions: pd.DataFrame,
                       table: pd.DataFrame, matrix: pd.DataFrame, comparisons: list[dict],
                       skipped: list[dict] | None = None, fdr_alpha: float = 0.05,
                       methods: list[str] | None = None) -> str:
    """Write ``OUTPUT_DIR/group/group.html`` and return its path.

    Parameters
    ----------
    output_dir : Path
        OUTPUT_DIR.
    summaries : list of dict
        Per-variant group summaries with their ``maps``.
    regions : DataFrame
        Per-participant region means (``group_regions.tsv``).
    table : DataFrame
        ``group_variants.tsv``.
    matrix : DataFrame
        ``group_method_task.tsv``.
    comparisons : list of dict
        Paired comparisons (``row`` and ``maps``).
    skipped : list of dict, optional
        Variants without group maps and why.
    fdr_alpha : float
        FDR level used.
    methods : list of str, optional
        Methods sentences of the steps that ran, in execution order
        (:func:`bids_app.group.run.run_group` collects them).

    Returns
    -------
    str
        Path of the report.
    """
    links = [("summary", "Summary"), ("variants", "Variants"), ("matrix", "Method x task"),
             ("figures", "Figures"), ("regions", "Regions"), ("maps", "Maps"),
             ("methods", "Methods")]
    if comparisons:
        links.insert(3, ("comparisons", "Comparisons"))
    body = [nav(links), "<h2 id='summary'>Summary</h2>", _headline(table, comparisons)]
    for item in skipped or []:
        body.append(f"<p class='warn'>{esc(item['variant'])}: {esc(item['reason'])}</p>")
    columns = [c for c in VARIANT_COLUMNS if c in table]
    body.append("<h2 id='variants'>Variants</h2>" + (
        html_table(table[columns], table_id="table-variants") if not table.empty
        else note("No variant could be summarised.")))
    body.append("<h2 id='matrix'>Method x task matrix</h2>" + note(
        "Mean held-out r over participants, as in the method x task table of Sun, Zhang & Moens "
        "(2023); rows: model, layer and tuning method; columns: NLU task ('none': untuned).")
        + (html_table(matrix, table_id="table-matrix", css_class="matrix") if not matrix.empty
           else note("No values.")))
    if comparisons:
        body.append("<h2 id='comparisons'>Comparisons</h2>" + html_table(
            pd.DataFrame([c["row"] for c in comparisons]), table_id="table-comparisons"))
    body.append("<h2 id='figures'>Figures</h2>")
    body.append(method_task_bars(regions, table, "brain"))
    if not regions.empty and (regions["region"] == "language").any():
        body.append(method_task_bars(regions, table, "language"))
    body += [share_vs_encoding(table), layer_curves(table), cka_vs_encoding(table)]
    body.append("<h2 id='regions'>Regions</h2>" + note(
        "Mean r over participants in each region.") + _region_matrix(regions))
    body.append("<h2 id='maps'>Group maps</h2>")
    for summary in summaries:
        label = summary["variant"] + (f" hemi-{summary['hemi']}" if summary.get("hemi") else "")
        maps = summary.get("maps", {})
        ident = f"{summary['variant']}-{summary.get('task', '')}{summary.get('hemi', '')}"
        if "meanr" in maps:
            body.append(brain_map(maps["meanr"], f"{label}: group mean r",
                                  f"Group mean r of {label}.", f"fig-meanr-{ident}"))
        if "meanr2unique" in maps:
            body.append(brain_map(maps["meanr2unique"], f"{label}: group mean unique R²",
                                  f"Group mean of the R² that {label}'s features add to the "
                                  "nuisance bands (stat-r2unique).", f"fig-r2unique-{ident}"))
        if "tfdr" in maps:
            n_sig = summary.get("n_significant_fdr", 0)
            body.append(brain_map(maps["tfdr"], f"{label}: t, FDR q < {fdr_alpha}",
                                  f"One-sample t of {label} where FDR q < {fdr_alpha} "
                                  f"({n_sig} voxels).", f"fig-tfdr-{ident}", threshold=None)
                        if n_sig else note(f"{label}: no voxel survives FDR q < {fdr_alpha}."))
    for comparison in comparisons:
        if "t" in comparison["maps"]:
            body.append(brain_map(comparison["maps"]["t"], f"{comparison['label']}: paired t",
                                  f"Paired t of {comparison['row']['variant_a']} minus "
                                  f"{comparison['row']['variant_b']}.",
                                  f"fig-compare-{comparison['label']}"))
    body.append("<h2 id='methods'>Methods</h2>" + methods_section(methods or []))
    final = Path(output_dir) / "group" / "group.html"
    write_text(final, page("brainenc group report", "".join(body)))
    return str(final)
