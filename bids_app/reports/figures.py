"""Group figures: bars by method and task, share vs encoding, layer curves, CKA drift.

Each function takes the group tables and returns an HTML ``<figure>``, or a note
saying why the figure does not apply to these results (e.g. a single layer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .html import figure, figure_data_uri, matplotlib_agg, note

REGION_LABELS = {"brain": "whole mask", "language": "language network"}


def _ci95(values: np.ndarray) -> float:
    from scipy import stats

    if len(values) < 2:
        return 0.0
    return float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1)
                 / np.sqrt(len(values)))


def _trend(ax, x: np.ndarray, y: np.ndarray) -> str:
    """Least-squares line and Spearman correlation; returns a caption fragment."""
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(np.unique(x)) < 2:
        return ""
    slope, intercept = np.polyfit(x, y, 1)
    grid = np.linspace(x.min(), x.max(), 50)
    ax.plot(grid, slope * grid + intercept, "--", color="#b33", lw=1.2, label="linear fit")
    rho, p = stats.spearmanr(x, y)
    return f" Linear fit slope {slope:.3g}; Spearman rho = {rho:.2f} (p = {p:.2g}, n = {len(x)})."


def method_task_bars(regions: pd.DataFrame, table: pd.DataFrame, region: str = "brain") -> str:
    """Mean r by NLU task (groups) and tuning method (bars) with participants and 95% CIs."""
    plt = matplotlib_agg()
    if regions.empty or table.empty:
        return note("Bar chart: no region summaries.")
    info = table[["variant", "task", "method", "nlu_task", "layer"]].drop_duplicates("variant")
    frame = regions[regions["region"] == region].merge(info, on=["variant", "task"])
    if frame.empty:
        return note(f"Bar chart: no values for region '{region}'.")
    tasks = sorted(frame["nlu_task"].astype(str).unique(), key=lambda t: (t != "none", t))
    variants = list(dict.fromkeys(frame.sort_values(["method", "layer"])["variant"]))
    methods = list(dict.fromkeys(frame.sort_values("method")["method"].astype(str)))
    colors = plt.get_cmap("tab10")
    per_task = frame.groupby(frame["nlu_task"].astype(str))["variant"].nunique()
    width = 0.8 / max(1, int(per_task.max()))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(tasks) + 2.5), 3.8))
    rng = np.random.default_rng(0)
    labelled = set()
    for i, task in enumerate(tasks):
        present = [v for v in variants if ((frame["variant"] == v)
                                            & (frame["nlu_task"].astype(str) == task)).any()]
        for j, variant in enumerate(present):
            rows = frame[(frame["variant"] == variant) & (frame["nlu_task"].astype(str) == task)]
            values = rows["mean_r"].to_numpy()
            method = str(rows["method"].iloc[0])
            x = i + (j - (len(present) - 1) / 2) * width
            label = method if method not in labelled else None
            labelled.add(method)
            layers = rows["layer"].dropna()
            if frame["layer"].nunique() > 1 and len(layers):
                ax.annotate(f"L{int(layers.iloc[0])}", (x, 0), fontsize=7, ha="center",
                            va="bottom", xytext=(0, 2), textcoords="offset points")
            ax.bar(x, values.mean(), width * 0.9, yerr=_ci95(values), capsize=3,
                   color=colors(methods.index(method) % 10), label=label, alpha=0.85)
            ax.plot(x + rng.uniform(-width / 5, width / 5, len(values)), values, "o",
                    color="#222", ms=3)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="NLU task tuned on", ylabel=f"mean r ({REGION_LABELS.get(region, region)})")
    ax.legend(title="tuning method", fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    return figure(figure_data_uri(fig),
                  f"Mean held-out r ({REGION_LABELS.get(region, region)}) by NLU task and tuning "
                  "method: bars are means over participants with 95% t confidence intervals, "
                  "dots are participants.", f"fig-bars-{region}")


def share_vs_encoding(table: pd.DataFrame, column: str = "mean_r") -> str:
    """Trainable-parameter share against encoding performance, with a fitted trend."""
    plt = matplotlib_agg()
    if table.empty or "trainable_share" not in table or table["trainable_share"].isna().all():
        return note("Trainable share vs encoding: no variant records a trainable-parameter "
                    "share.")
    frame = table.dropna(subset=["trainable_share", column])
    if frame["trainable_share"].nunique() < 2:
        return note("Trainable share vs encoding: every variant tunes the same share of "
                    "parameters; add variants tuned by other methods to draw it.")
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = 100 * frame["trainable_share"].to_numpy(dtype=float)
    y = frame[column].to_numpy(dtype=float)
    ci = frame.get(f"ci95_{column[5:]}" if column != "mean_r" else "ci95_r")
    ax.errorbar(x, y, yerr=None if ci is None else ci.to_numpy(dtype=float), fmt="o",
                color="#345", capsize=3)
    for xi, yi, label in zip(x, y, frame["method"].astype(str), strict=True):
        ax.annotate(label, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if np.all(x > 0) and x.max() / max(x.min(), 1e-12) > 100:
        ax.set_xscale("log")
    text = _trend(ax, x, y)
    ax.set(xlabel="trainable parameters (% of the model)", ylabel=f"{column} (whole mask)")
    return figure(figure_data_uri(fig), "Share of tuned parameters against encoding "
                  "performance (mean over participants, 95% CI)." + text, "fig-share")


def layer_curves(table: pd.DataFrame) -> str:
    """Mean r against layer for variants that differ only in layer."""
    plt = matplotlib_agg()
    if table.empty or table["layer"].isna().all():
        return note("Layer curves: no layer recorded.")
    frame = table.dropna(subset=["layer", "mean_r"])
    groups = [(key, rows) for key, rows in frame.groupby(["model", "method", "nlu_task", "task"],
                                                         dropna=False)
              if rows["layer"].nunique() > 1]
    if not groups:
        return note("Layer curves: every model, method and task was run at a single layer; "
                    "list several layers in [features] layers to draw them.")
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (model, method, task, _), rows in groups:
        rows = rows.sort_values("layer")
        ax.errorbar(rows["layer"], rows["mean_r"], yerr=rows.get("ci95_r"), marker="o",
                    capsize=3, label=f"{model} {method} {task}")
    ax.set(xlabel="layer", ylabel="mean r (whole mask)")
    ax.legend(fontsize=7, frameon=False)
    return figure(figure_data_uri(fig), "Encoding performance by layer (mean over participants, "
                  "95% CI) for variants that differ only in layer.", "fig-layers")


def cka_vs_encoding(table: pd.DataFrame) -> str:
    """Representation drift (1 - linear CKA to the pretrained model) against mean r."""
    plt = matplotlib_agg()
    if table.empty or "cka_drift" not in table or table["cka_drift"].isna().all():
        return note("CKA drift vs encoding: no variant records a CKA similarity to the "
                    "pretrained model.")
    frame = table.dropna(subset=["cka_drift", "mean_r"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x, y = frame["cka_drift"].to_numpy(dtype=float), frame["mean_r"].to_numpy(dtype=float)
    ax.scatter(x, y, color="#345")
    for xi, yi, label in zip(x, y, frame["variant"].astype(str), strict=True):
        ax.annotate(label, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    text = _trend(ax, x, y)
    ax.set(xlabel="representation drift (1 - linear CKA with the pretrained layer)",
           ylabel="mean r (whole mask)")
    return figure(figure_data_uri(fig), "How far tuning moved the representation against how "
                  "well it predicts the brain." + text, "fig-cka")
