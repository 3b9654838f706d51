"""Group tables: variant summaries and the method x task matrix.

``group_variants.tsv`` has one row per variant and (BIDS) task with the tuning
record (method, NLU task, dev metric, trainable-parameter share, CKA drift) next
to the encoding results (mean r over participants in the whole mask, the language
network and the top voxels, confidence intervals, significant voxels, and
noise-ceiling-normalised values when ceiling maps exist). ``group_method_task.tsv``
arranges the mean r as the method x task matrix of Sun, Zhang & Moens (2023).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .contrast_maps import identical_variants
from .regions import LANGUAGE


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
        return float(value)
    return None


def cka_value(cka, layer) -> float | None:
    """Read the CKA similarity of a sidecar's ``CKA`` entry for one layer.

    Accepts a number, a list indexed by layer, or a mapping keyed by the layer
    (``3``, ``"3"``, ``"layer3"``, ``"L3"``) or holding a single value.
    """
    if _number(cka) is not None:
        return _number(cka)
    if isinstance(cka, (list, tuple)) and layer is not None and 0 <= int(layer) < len(cka):
        return _number(cka[int(layer)])
    if isinstance(cka, dict):
        for key in (layer, str(layer), f"layer{layer}", f"L{layer}", f"layer_{layer}"):
            if key in cka:
                return cka_value(cka[key], layer)
        numbers = [v for v in cka.values() if _number(v) is not None]
        if len(numbers) == 1:
            return float(numbers[0])
        for key in ("linear", "linear_cka", "value", "mean"):
            if key in cka:
                return cka_value(cka[key], layer)
    return None


def dev_metric(meta: dict) -> tuple[str | None, float | None]:
    """``(name, value)`` of the tuning's dev-set metric from a sidecar."""
    value = meta.get("DevMetric")
    if isinstance(value, dict):
        for name, number in value.items():
            if _number(number) is not None:
                return str(name), float(number)
        return None, None
    return meta.get("DevMetricName"), _number(value)


def nlu_task(meta: dict) -> str:
    """Name of the NLU task a variant was tuned on (``'none'`` for untuned)."""
    name = meta.get("TaskName")
    if not name and isinstance(meta.get("Task"), dict):
        name = meta["Task"].get("name")
    return str(name) if name else "none"


def untrained_control(meta: dict) -> bool:
    """Whether a sidecar describes an untrained control (``TuningSettings.untrained``)."""
    settings = meta.get("TuningSettings")
    return isinstance(settings, dict) and bool(settings.get("untrained"))


def _control_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Controls as rows ``<method> untrained`` of the matrix.

    A control set up without a task (``nlu_task`` 'none') serves every task its
    method was tuned on, so its value is shown in each of those task columns.
    """
    if "untrained_control" not in frame:
        return frame
    control = frame["untrained_control"].fillna(False).astype(bool)
    tuned = frame[~control & (frame["nlu_task"] != "none")]
    rows = []
    for _, row in frame[control].iterrows():
        tasks = [row["nlu_task"]]
        if row["nlu_task"] == "none":
            same = tuned[(tuned["model"] == row["model"]) & (tuned["layer"] == row["layer"])
                         & (tuned["method"] == row["method"])]
            tasks = sorted(set(same["nlu_task"])) or tasks
        rows += [{**row.to_dict(), "nlu_task": task, "method": f"{row['method']} untrained"}
                 for task in tasks]
    return pd.concat([frame[~control], pd.DataFrame(rows, columns=frame.columns)],
                     ignore_index=True)


def _score_column(scores: pd.DataFrame, variant: str, column: str) -> float | None:
    if scores.empty or column not in scores or "variant" not in scores:
        return None
    values = pd.to_numeric(scores.loc[scores["variant"] == variant, column], errors="coerce")
    values = values.dropna()
    return float(values.mean()) if len(values) else None


def _ci95(values: np.ndarray) -> float:
    from scipy import stats

    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def variant_table(summaries: list[dict], regions: pd.DataFrame, scores: pd.DataFrame,
                  top_percent: float = 10.0) -> pd.DataFrame:
    """One row per variant and task (and hemisphere for surfaces).

    Parameters
    ----------
    summaries : list of dict
        From :func:`bids_app.group.run.group_variant`.
    regions : DataFrame
        Per-subject region means (``group_regions.tsv``).
    scores : DataFrame
        The participants' score tables (fallback for tuning columns).
    top_percent : float
        Size of the top-voxel set.

    Returns
    -------
    DataFrame
    """
    rows = []
    top = f"top{top_percent:g}pct"
    same = identical_variants(summaries)
    for summary in summaries:
        meta = summary.get("metadata", {})
        variant = summary["variant"]
        layer = meta.get("Layer", _score_column(scores, variant, "layer"))
        metric_name, metric = dev_metric(meta)
        if metric is None:
            metric = _score_column(scores, variant, "dev_metric")
        share = _number(meta.get("TrainableParameterShare"))
        if share is None:
            share = _score_column(scores, variant, "trainable_share")
        cka = cka_value(meta.get("CKA"), layer)
        if cka is None:
            cka = _score_column(scores, variant, "cka")
        row = {
            "variant": variant, "task": summary.get("task", ""),
            "model": meta.get("ModelName") or meta.get("Model"),
            "method": meta.get("TuningMethod"), "nlu_task": nlu_task(meta),
            "untrained_control": untrained_control(meta),
            "layer": layer, "dev_metric_name": metric_name, "dev_metric": metric,
            "trainable_share": share, "cka": cka,
            "cka_drift": None if cka is None else 1.0 - cka,
            "n_subjects": len(summary["subjects"]), "n_voxels": summary.get("n_voxels"),
            "settings_hash": meta.get("SettingsHash"),
        }
        if summary.get("hemi"):
            row["hemi"] = summary["hemi"]
        mine = regions[(regions["variant"] == variant)
                       & (regions["task"] == summary.get("task", ""))] if len(regions) else regions
        if "hemi" in mine and summary.get("hemi"):
            mine = mine[mine["hemi"] == summary["hemi"]]
        for region, suffix in (("brain", ""), (LANGUAGE, "_language"), (top, "_top")):
            values = mine.loc[mine["region"] == region, "mean_r"].to_numpy() if len(mine) else []
            if len(values) == 0:
                continue
            row[f"mean_r{suffix}"] = float(np.mean(values))
            if suffix == "":
                row["sd_r"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            row[f"ci95_r{suffix}"] = _ci95(np.asarray(values))
            if "mean_r_normalised" in mine:
                normalised = mine.loc[mine["region"] == region, "mean_r_normalised"]
                row[f"mean_r_normalised{suffix}"] = float(normalised.mean())
        for key in ("n_significant_fdr", "n_significant_perm", "n_significant_fwe"):
            row[key] = summary.get(key)
        if not scores.empty and "n_significant" in scores and "region" in scores:
            brain = scores[scores["region"] == "brain"]
            row["n_significant_subject_mean"] = _score_column(brain, variant, "n_significant")
        if not scores.empty and "mean_r2_unique" in scores and "region" in scores:
            brain = scores[scores["region"] == "brain"]  # beside the full model's mean r
            row["mean_r2_unique"] = _score_column(brain, variant, "mean_r2_unique")
        if "mean_r2_unique_map" in summary:  # mean of the group stat-meanr2unique map
            row["mean_r2_unique_map"] = summary["mean_r2_unique_map"]
        row["note"] = (f"identical to {same[variant]} by construction" if variant in same
                       else "")
        rows.append(row)
    return pd.DataFrame(rows)


def variant_table_methods(top_percent: float, language: bool) -> str:
    """Methods sentence of ``group_variants.tsv`` as :func:`variant_table` computes it.

    Parameters
    ----------
    top_percent : float
        Size (%) of the top-voxel set.
    language : bool
        Whether language-network values were tabulated.

    Returns
    -------
    str
    """
    where = "whole mask" + (", language network" if language else "")
    return (f"In group_variants.tsv, each variant's mean r ({where} and top "
            f"{top_percent:g}% of elements) is the mean over participants of their region "
            "values, with a 95% confidence interval from Student's t across participants.")


def method_task_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Mean r as a method x NLU-task matrix, per measure, model and layer.

    Untrained controls have rows of their own (``<method> untrained``), a control set
    up without a task filled in under every task its method was tuned on.

    Returns
    -------
    DataFrame
        Columns ``measure, model, layer, method`` and one column per NLU task
        (``none`` for untuned variants); empty cells where a method was not run on a task.
    """
    if table.empty:
        return pd.DataFrame()
    parts = []
    for column, measure in (("mean_r", "brain"), ("mean_r_language", "language"),
                            ("mean_r_top", "top"),
                            ("mean_r_normalised", "brain_normalised"),
                            ("mean_r_normalised_language", "language_normalised")):
        if column not in table or table[column].isna().all():
            continue
        frame = _control_rows(table.assign(model=table["model"].fillna("?"),
                                           layer=table["layer"].fillna(-1),
                                           method=table["method"].fillna("?")))
        pivot = frame.pivot_table(index=["model", "layer", "method"], columns="nlu_task",
                                  values=column, aggfunc="mean")
        pivot.columns = [str(c) for c in pivot.columns]
        pivot = pivot.reset_index()
        pivot.insert(0, "measure", measure)
        parts.append(pivot)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
