"""Group maps of one variant: stack the participants' r maps, test them, write the maps.

Shared by the per-variant group maps (:mod:`bids_app.group.run`) and the paired
comparisons (:mod:`bids_app.group.contrast_maps`), which import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.derivatives import build_name, write_json
from .maps import geometry, load_values, read_sidecar, save_values
from .one_sample import (
    GROUP_P_MAPS,
    GROUP_TEST_METHODS,
    GROUP_UNANALYSED_NOTE,
    OneSampleResult,
    fisher_z,
    group_test_values,
    one_sample_test,
)

__all__ = ["DESCRIPTIONS", "EXTENSIONS", "GroupData", "group_variant", "load_group_data",
           "one_sample_maps", "variant_methods", "write_group_maps"]

#: File extension of a map of each kind.
EXTENSIONS = {"volume": ".nii.gz", "gifti": ".func.gii", "cifti": ".dscalar.nii"}
#: Description written in the sidecar of each group map.
DESCRIPTIONS = {
    "meanr": "Group mean of held-out r (mean of Fisher z, back-transformed).",
    "t": "One-sample t across participants of Fisher-z r (H1: r > 0).",
    "p": "One-sided p value of the one-sample t test.",
    "q": "Benjamini-Hochberg FDR-adjusted p value of the t test.",
    "pperm": "One-sided p value of the sign-flip permutation test of the t statistic.",
    "qperm": "Benjamini-Hochberg FDR-adjusted sign-flip permutation p value.",
    "pfwe": "Family-wise error corrected p value from the sign-flip max-t distribution.",
    "tfdr": "t where q < FDR alpha (FDR-thresholded), 0 elsewhere.",
}


@dataclass
class GroupData:
    """The subjects' r maps of one variant on a common set of elements."""

    variant: str
    entities: dict               # task, space, hemi of the outputs
    kind: str
    subjects: list
    paths: list
    values: np.ndarray           # (n_subjects, n_elements) r, all elements of the map
    valid: np.ndarray            # (n_elements,) analysed in every subject
    metadata: dict = field(default_factory=dict)
    #: (n_subjects, n_elements) participants' held-out scores (``stat-z``), when all have them
    scores: np.ndarray | None = None


def load_group_data(rows: pd.DataFrame, masks: dict) -> GroupData | str:
    """Stack the r maps of one variant; a reason string when they cannot be stacked."""
    import nibabel as nib

    rows = rows.sort_values("sub")
    paths = list(rows["path"])
    subjects = list(rows["sub"])
    if len({geometry(p) for p in paths}) > 1:
        return ("participants' maps are on different grids; group maps need a common template "
                "space (use preprocessed data with --space).")
    kind = rows["kind"].iloc[0]
    values = np.stack([load_values(p) for p in paths])
    valid = np.all(np.isfinite(values), axis=0)
    for index, subject in enumerate(subjects):
        if kind == "volume" and subject in masks:
            mask = np.asanyarray(nib.load(masks[subject]).dataobj) > 0
            if mask.size == values.shape[1]:
                valid &= mask.ravel()
                continue
        valid &= values[index] != 0
    first = rows.iloc[0]
    entities = {"task": first["task"] if rows["task"].nunique() == 1 else "",
                "space": first["space"] if rows["space"].nunique() == 1 else "",
                "hemi": first["hemi"]}
    return GroupData(first["desc"], entities, kind, subjects, paths,
                     np.nan_to_num(values), valid, read_sidecar(paths[0]))


def write_group_maps(data: GroupData, maps: dict, output_dir: Path, extra: dict) -> dict:
    """Write ``stat-<name>`` maps (values over ``data.valid``) and sidecars; return paths."""
    folder = Path(output_dir) / "group"
    written = {}
    for stat, (values, description) in maps.items():
        # p, q and FWE maps hold NaN where nothing was tested, never a passing value
        untested = np.nan if stat in GROUP_P_MAPS else 0.0
        full = np.full(data.values.shape[1], untested, dtype=np.float32)
        full[data.valid] = values
        name = build_name({**data.entities, "stat": stat, "desc": extra["desc"]}, "statmap",
                          EXTENSIONS[data.kind])
        final = save_values(full, data.paths[0], folder / name)
        sidecar = final.with_name(name.split(".")[0] + ".json")
        write_json(sidecar, {
            "Statistic": stat, "Description": description, "Participants": data.subjects,
            "Sources": [str(Path(p).relative_to(output_dir)) for p in data.paths], **extra,
            **({"UnanalysedElements": GROUP_UNANALYSED_NOTE} if stat in GROUP_P_MAPS else {}),
        })
        written[stat] = str(final)
    return written


def one_sample_maps(result, fdr_alpha: float, *, mean_name: str, mean_values: np.ndarray,
              mean_description: str, hypothesis: str) -> dict:
    """Collect the maps of a one-sample result: stat name -> (values, description)."""
    maps = {mean_name: (mean_values, mean_description),
            "t": (np.nan_to_num(result.t), DESCRIPTIONS["t"].replace("(H1: r > 0)", hypothesis)),
            "p": (np.nan_to_num(result.p, nan=1.0), DESCRIPTIONS["p"]),
            "q": (np.nan_to_num(result.q, nan=1.0), DESCRIPTIONS["q"])}
    if result.p_perm is not None:
        maps["pperm"] = (np.nan_to_num(result.p_perm, nan=1.0), DESCRIPTIONS["pperm"])
        maps["qperm"] = (np.nan_to_num(result.q_perm, nan=1.0), DESCRIPTIONS["qperm"])
        maps["pfwe"] = (np.nan_to_num(result.p_fwe, nan=1.0), DESCRIPTIONS["pfwe"])
    maps["tfdr"] = (np.where(np.nan_to_num(result.q, nan=1.0) < fdr_alpha,
                             np.nan_to_num(result.t), 0.0),
                    DESCRIPTIONS["tfdr"].replace("FDR alpha", str(fdr_alpha)))
    return maps


def variant_methods(n_subjects: int, result: OneSampleResult | None, statistic: str,
                    fdr_alpha: float) -> str:
    """Methods sentences of one variant's group maps, as :func:`group_variant` made them.

    Parameters
    ----------
    n_subjects : int
        Participants whose r maps were stacked.
    result : OneSampleResult or None
        The one-sample test (None: one participant, no test).
    statistic : str
        ``GroupTestStatistic``: ``'heldout_z'`` or ``'fisher_z_r'``.
    fdr_alpha : float
        FDR level of the thresholded map and of the significant-element counts.

    Returns
    -------
    str
    """
    who = "the participant's" if n_subjects == 1 else f"the {n_subjects} participants'"
    text = (f"The group mean r map (stat-meanr) is the back-transformed mean of {who} "
            "Fisher z-transformed held-out r (stat-r) over the elements analysed in every "
            "participant.")
    if result is None:
        return text + " With one participant, no group test was made."
    preamble, values = GROUP_TEST_METHODS[statistic]
    return (f"{text} {preamble} {result.methods(values)} The thresholded map (stat-tfdr) "
            f"and the counts of significant elements use q < {fdr_alpha:g}.")


def group_variant(data: GroupData, output_dir: Path, *, fdr_alpha: float = 0.05,
                  n_permutations: int = 1000, seed: int = 0) -> dict:
    """Group maps of one variant (mean r, t, p, q, permutation p/q, FWE p, thresholded t).

    Returns
    -------
    dict
        ``variant``, ``subjects``, ``n_voxels``, significance counts, the written ``maps``
        and ``methods`` (:func:`variant_methods`).
    """
    if data.scores is not None:
        # elements some participant did not test (constant there) are left out of every map
        data = replace(data, valid=data.valid & np.all(np.isfinite(data.scores), axis=0))
    z = fisher_z(data.values[:, data.valid])
    summary = {"variant": data.variant, **data.entities, "kind": data.kind,
               "subjects": data.subjects, "n_voxels": int(data.valid.sum()),
               "metadata": data.metadata}
    mean_r = np.tanh(z.mean(axis=0))
    tested, test_fields = group_test_values(data.scores, z, data.valid)
    result = None
    if len(data.subjects) < 2:
        maps = {"meanr": (mean_r, DESCRIPTIONS["meanr"])}
    else:
        result = one_sample_test(tested, n_permutations=n_permutations, seed=seed)
        maps = one_sample_maps(result, fdr_alpha, mean_name="meanr", mean_values=mean_r,
                         mean_description=DESCRIPTIONS["meanr"], hypothesis="(H1: r > 0)")
        maps["t"] = (maps["t"][0], test_fields["GroupTestDescription"])
        summary["n_significant_fdr"] = int(np.sum(result.q < fdr_alpha))
        if result.p_perm is not None:
            summary["n_significant_perm"] = int(np.sum(result.q_perm < fdr_alpha))
            summary["n_significant_fwe"] = int(np.sum(result.p_fwe < fdr_alpha))
            summary["n_permutations"] = result.n_permutations
    summary["maps"] = write_group_maps(data, maps, output_dir, {
        "desc": data.variant, "Variant": data.variant,
        "SettingsHash": data.metadata.get("SettingsHash"), "FDRAlpha": fdr_alpha,
        "Permutations": summary.get("n_permutations", 0), "RandomSeed": seed,
        "GroupTestStatistic": test_fields["GroupTestStatistic"]})
    summary["group_test_statistic"] = test_fields["GroupTestStatistic"]
    summary["methods"] = variant_methods(len(data.subjects), result,
                                         test_fields["GroupTestStatistic"], fdr_alpha)
    return summary
