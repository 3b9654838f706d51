"""Group stage: per-variant group maps, one-sample tests, tables and report.

Reads only ``OUTPUT_DIR`` (as BIDS-Apps require): the participants' ``stat-r``
maps, brain masks and ``_scores.tsv`` tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..encoding.stats import fdr_bh, one_sample_t
from ..errors import NoMatchError
from ..io.derivatives import build_name, write_json, write_nifti, write_text

_ENTITY = re.compile(r"([a-z]+)-([A-Za-z0-9]+)")


def parse_name(path: Path) -> dict:
    """Entities and suffix of a BIDS-like file name."""
    stem = path.name.split(".")[0]
    *parts, suffix = stem.split("_")
    entities = {}
    for part in parts:
        match = _ENTITY.fullmatch(part)
        if match:
            entities[match.group(1)] = match.group(2)
    entities["suffix"] = suffix
    return entities


@dataclass
class GroupInputs:
    """Participant outputs found in OUTPUT_DIR."""

    maps: pd.DataFrame    # sub, task, space, desc, stat, path
    masks: dict           # subject -> mask path
    scores: pd.DataFrame  # concatenated participant score tables


def find_inputs(output_dir: Path, participants: list[str] | None = None) -> GroupInputs:
    """Find the participants' maps, masks and score tables."""
    rows, masks, tables = [], {}, []
    for path in sorted(Path(output_dir).glob("sub-*/**/func/*")):
        ent = parse_name(path)
        if participants and ent.get("sub") not in participants:
            continue
        if ent["suffix"] == "statmap" and path.name.endswith(".nii.gz"):
            rows.append({"sub": ent.get("sub"), "task": ent.get("task", ""),
                         "space": ent.get("space", ""), "desc": ent.get("desc"),
                         "stat": ent.get("stat"), "path": str(path)})
        elif ent["suffix"] == "mask" and ent.get("desc") == "brain" and path.name.endswith(".nii.gz"):
            masks[ent["sub"]] = str(path)
        elif ent["suffix"] == "scores" and path.suffix == ".tsv":
            frame = pd.read_csv(path, sep="\t")
            frame.insert(0, "subject", ent.get("sub"))
            tables.append(frame)
    if not rows:
        raise NoMatchError(
            f"no participant results (sub-*/func/*_stat-r_*_statmap.nii.gz) in '{output_dir}'; "
            "run the participant level first."
        )
    return GroupInputs(pd.DataFrame(rows), masks,
                       pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())


def _same_grid(images) -> bool:
    first = images[0]
    return all(img.shape == first.shape and np.allclose(img.affine, first.affine, atol=1e-3)
               for img in images[1:])


def group_variant(rows: pd.DataFrame, masks: dict, output_dir: Path, fdr_alpha: float) -> dict:
    """Group maps of one variant (mean r, t, p, q, FDR-thresholded t).

    Returns
    -------
    dict
        Written map paths and a summary (subjects, significant voxels), or a
        ``skipped`` reason when participants are not on a common grid.
    """
    import nibabel as nib

    rows = rows.sort_values("sub")
    images = [nib.load(p) for p in rows["path"]]
    desc = rows["desc"].iloc[0]
    entities = {"task": rows["task"].iloc[0] if rows["task"].nunique() == 1 else "",
                "space": rows["space"].iloc[0] if rows["space"].nunique() == 1 else "",
                "desc": desc}
    subjects = list(rows["sub"])
    if not _same_grid(images):
        return {"variant": desc, "subjects": subjects,
                "skipped": "participants' maps are on different voxel grids; group maps need "
                           "a common template space (use preprocessed data with --space)."}
    data = np.stack([np.asarray(img.dataobj, dtype=np.float32) for img in images])
    mask = np.ones(data.shape[1:], dtype=bool)
    for subject in subjects:
        if subject in masks:
            mask &= np.asanyarray(nib.load(masks[subject]).dataobj) > 0
        else:
            mask &= data[subjects.index(subject)] != 0
    values = data[:, mask]
    mean_r = np.tanh(np.arctanh(np.clip(values, -0.999999, 0.999999)).mean(axis=0))
    outputs = {"meanr": mean_r}
    summary = {"variant": desc, "subjects": subjects, "n_voxels": int(mask.sum())}
    if len(subjects) >= 2:
        t, p = one_sample_t(values)
        q = fdr_bh(p)
        outputs.update({"t": np.nan_to_num(t), "p": np.nan_to_num(p, nan=1.0),
                        "q": np.nan_to_num(q, nan=1.0)})
        outputs["tfdr"] = np.where(q < fdr_alpha, np.nan_to_num(t), 0.0)
        summary["n_significant_fdr"] = int(np.sum(q < fdr_alpha))
    reference = images[0]
    folder = Path(output_dir) / "group"
    written = {}
    descriptions = {
        "meanr": "Group mean of held-out r (mean of Fisher z, back-transformed).",
        "t": "One-sample t across participants of Fisher-z r (H1: r > 0).",
        "p": "One-sided p value of the one-sample t test.",
        "q": "Benjamini-Hochberg FDR-adjusted p value.",
        "tfdr": f"t where q < {fdr_alpha} (FDR-thresholded), 0 elsewhere.",
    }
    for stat, vals in outputs.items():
        volume = np.zeros(mask.shape, dtype=np.float32)
        volume[mask] = vals
        final = folder / build_name({**entities, "stat": stat}, "statmap", ".nii.gz")
        write_nifti(final, nib.Nifti1Image(volume, reference.affine))
        write_json(final.with_name(final.name.replace(".nii.gz", ".json")), {
            "Statistic": stat, "Description": descriptions[stat], "Variant": desc,
            "Participants": subjects, "FDRAlpha": fdr_alpha,
            "Sources": [str(Path(p).relative_to(output_dir)) for p in rows["path"]],
        })
        written[stat] = str(final)
    summary["maps"] = written
    return summary


def run_group(output_dir: str, *, participants: list[str] | None = None,
              fdr_alpha: float = 0.05) -> dict:
    """Run the group stage and write ``OUTPUT_DIR/group``.

    Returns
    -------
    dict
        Summaries per variant and the report path.
    """
    from ..reports.group import write_group_report

    output_dir = Path(output_dir)
    inputs = find_inputs(output_dir, participants)
    r_maps = inputs.maps[inputs.maps["stat"] == "r"]
    summaries = []
    for _, rows in r_maps.groupby(["desc", "task", "space"], sort=True):
        summaries.append(group_variant(rows, inputs.masks, output_dir, fdr_alpha))
    folder = output_dir / "group"
    if not inputs.scores.empty:
        write_text(folder / "group_scores.tsv",
                   inputs.scores.to_csv(sep="\t", index=False, float_format="%.6g",
                                        na_rep="n/a"))
        table = variant_table(inputs.scores, summaries)
        write_text(folder / "group_variants.tsv",
                   table.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="n/a"))
    report = write_group_report(output_dir, summaries, inputs.scores)
    return {"variants": summaries, "report": report}


def variant_table(scores: pd.DataFrame, summaries: list[dict]) -> pd.DataFrame:
    """One row per variant: subjects, mean and SD across subjects of whole-brain mean r."""
    brain = scores[scores["region"] == "brain"]
    rows = []
    for variant, frame in brain.groupby("variant", sort=True):
        summary = next((s for s in summaries if s["variant"] == variant), {})
        rows.append({
            "variant": variant,
            "layer": frame["layer"].iloc[0] if "layer" in frame else None,
            "n_subjects": int(frame["subject"].nunique()),
            "mean_r": float(frame["mean_r"].mean()),
            "sd_r": float(frame["mean_r"].std(ddof=1)) if len(frame) > 1 else float("nan"),
            "n_significant_fdr": summary.get("n_significant_fdr"),
        })
    return pd.DataFrame(rows)
