"""The group report: per-variant group maps and the table of participants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.derivatives import write_text
from .html import esc, figure, figure_data_uri, matplotlib_agg, page, table


def _bar_chart(scores: pd.DataFrame) -> str:
    plt = matplotlib_agg()
    brain = scores[scores["region"] == "brain"]
    variants = sorted(brain["variant"].unique())
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(variants) + 2), 3.4))
    rng = np.random.default_rng(0)
    for i, variant in enumerate(variants):
        values = brain.loc[brain["variant"] == variant, "mean_r"].to_numpy()
        mean = values.mean()
        ci = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
        ax.bar(i, mean, color="#6c8ebf", yerr=ci, capsize=4)
        ax.plot(i + rng.uniform(-0.15, 0.15, len(values)), values, "o", color="#223", ms=4)
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_ylabel("whole-brain mean r")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title("Mean held-out r per variant (bars: mean, 95% CI; dots: participants)")
    return figure(figure_data_uri(fig), "Whole-brain mean r by variant with participants.",
                  "fig-bars")


def _map_figure(summary: dict) -> str:
    import nibabel as nib
    from nilearn import plotting

    out = []
    for stat, title in (("meanr", "group mean r"), ("tfdr", "t, FDR-thresholded")):
        path = summary.get("maps", {}).get(stat)
        if not path:
            continue
        img = nib.load(path)
        values = np.asanyarray(img.dataobj)
        vmax = float(np.percentile(np.abs(values[values != 0]), 99.5)) if np.any(values) else 1.0
        display = plotting.plot_glass_brain(img, colorbar=True, plot_abs=False, cmap="RdBu_r",
                                            vmax=max(vmax, 1e-3),
                                            title=f"{summary['variant']}: {title}")
        out.append(figure(figure_data_uri(display.frame_axes.figure),
                          f"{summary['variant']}: {title}.",
                          f"fig-{stat}-{summary['variant']}"))
        display.close()
    return "".join(out)


def write_group_report(output_dir: Path, summaries: list[dict], scores: pd.DataFrame) -> str:
    """Write ``OUTPUT_DIR/group/group.html`` and return its path."""
    body = []
    rows = []
    for summary in summaries:
        rows.append({"variant": summary["variant"], "participants": len(summary["subjects"]),
                     "voxels": summary.get("n_voxels", 0),
                     "significant voxels (FDR)": summary.get("n_significant_fdr", "n/a"),
                     "note": summary.get("skipped", "")})
    body.append("<h2 id='variants'>Variants</h2>" + table(pd.DataFrame(rows)))
    if not scores.empty:
        body.append("<h2 id='participants'>Participants</h2>" + _bar_chart(scores))
        brain = scores[scores["region"] == "brain"][
            ["subject", "variant", "layer", "n_voxels", "mean_r", "median_r", "max_r"]]
        body.append(table(brain))
    for summary in summaries:
        if "maps" in summary:
            body.append(f"<h2 id='maps-{esc(summary['variant'])}'>Group maps: "
                        f"{esc(summary['variant'])}</h2>" + _map_figure(summary))
    final = Path(output_dir) / "group" / "group.html"
    write_text(final, page("brainenc group report", "".join(body)))
    return str(final)
