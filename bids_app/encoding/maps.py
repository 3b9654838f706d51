"""Which voxel-wise maps an encoding result yields, with their sidecar fields.

Map labels become the ``stat-<label>`` entity of the output file names, so they
are alphanumeric: ``r``, ``r2``, ``alpha``, ``p`` and ``q`` (permutation test and
its FDR correction), one ``r2split<Band>`` per feature band of a banded model,
and ``rdiff``/``rdiffp``/``rdiffq`` for comparisons of two variants.
"""

from __future__ import annotations

import re

import numpy as np

#: Value written outside the analysed voxels, per map: p and q maps hold NaN there (never a
#: value that passes a threshold), other maps 0.
UNANALYSED = {stat: float("nan") for stat in ("p", "q", "z", "rdiffp", "rdiffq")}
#: Sidecar statement of that convention.
UNANALYSED_NOTE = ("n/a (NaN) outside the analysis mask and where the held-out BOLD or "
                   "prediction is constant: such voxels were not tested")

DESCRIPTIONS = {
    "r": "Pearson correlation between held-out BOLD and the encoding model's prediction, "
         "averaged over outer cross-validation folds (left-out runs).",
    "r2": "Coefficient of determination (1 - SSE/SST) of held-out predictions, averaged over "
          "outer folds; negative values mean worse than the run mean.",
    "alpha": "Ridge regularisation chosen per voxel by inner cross-validation over whole "
             "training runs (geometric mean over outer folds).",
    "p": "One-sided p value (H1: r > 0) of the held-out correlation: each outer fold's r is "
         "standardised by its null (the held-out BOLD against windows of the model's "
         "predictions of other story stretches by default), the fold scores are summed with "
         "their dependence measured on time-reversed pseudo-null voxels, and the p value is "
         "the rank of that sum among the null sums (+1 corrected).",
    "q": "Benjamini-Hochberg FDR-adjusted p value (q value) of stat-p over the voxels analysed.",
    "z": "Held-out score tested by stat-p: each outer fold's r minus the mean of its null, "
         "over the null's standard deviation, summed over folds and scaled to unit variance "
         "under the null (fold dependence measured on time-reversed pseudo-null voxels). It "
         "has mean 0 and variance 1 under the null whatever the voxel's autocorrelation; the "
         "group level tests it across participants.",
    "r2split": "Part of the held-out R² attributed to one feature band by banded ridge "
               "(himalaya r2_score_split: the bands' parts sum to the model's R²).",
    "rdiff": "Difference in held-out r (first minus second variant), mean over outer folds.",
    "rdiffp": "Two-sided p value of stat-rdiff from a paired circular block bootstrap of the "
              "held-out volumes, blocks as long as the data's autocorrelation.",
    "rdiffq": "Benjamini-Hochberg FDR-adjusted stat-rdiffp.",
}


def band_label(name: str) -> str:
    """Alphanumeric, capitalised form of a band name for ``stat-r2split<Band>``."""
    parts = re.split(r"[^A-Za-z0-9]+", str(name))
    label = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return label or "Band"


def result_maps(result) -> list[tuple[str, np.ndarray, dict]]:
    """List the maps of an :class:`~bids_app.encoding.engine.EncodingResult`.

    Returns
    -------
    list of (label, values, sidecar fields)
        ``values`` of shape (n_voxels,).
    """
    info = result.info or {}
    maps = []
    for stat, values in (("r", result.r), ("r2", result.r2), ("alpha", result.alpha)):
        extra = {"Statistic": stat, "Description": DESCRIPTIONS[stat]}
        if stat == "alpha":
            chosen, counts = np.unique(result.alpha_folds, return_counts=True)
            extra["AlphasChosen"] = {f"{a:g}": int(c) for a, c in zip(chosen, counts,
                                                                      strict=True)}
            if "alpha_grid_edges" in info:
                edges = info["alpha_grid_edges"]
                extra["AlphaGridEdgeShare"] = {"smallest": edges["smallest"],
                                               "largest": edges["largest"],
                                               **{k: edges[k] for k in ("among", "n_voxels")
                                                  if k in edges}}
                extra["AlphaGrid"] = edges["grid"]
        maps.append((stat, values, extra))
    if result.p is not None:
        test = {"SignificanceTest": f"{info.get('permutation', 'block')} null of the held-out "
                                    "r per outer fold, fold scores summed (dependence-"
                                    "corrected), "
                                    + ("rank p among the null sums, +1 corrected"
                                       if info.get("heldout_p", "normal") == "permutation"
                                       else "normal approximation of the combined score"),
                "NPermutations": info.get("n_permutations"),
                "PermutationScheme": info.get("permutation"),
                "PValue": info.get("heldout_p", "normal"),
                "PValueFloor": info.get("p_floor", 0.0),
                "BlockLength": info.get("block_length"),
                "NullFoldCorrelation": info.get("null_fold_correlation"),
                "Alternative": "greater",
                "UnanalysedVoxels": UNANALYSED_NOTE}
        maps.append(("p", result.p, {"Statistic": "p", "Description": DESCRIPTIONS["p"],
                                     **test}))
        maps.append(("q", result.q, {"Statistic": "q", "Description": DESCRIPTIONS["q"],
                                     "MultipleComparisonCorrection": "Benjamini-Hochberg FDR",
                                     **test}))
    if result.z is not None:
        maps.append(("z", result.z, {"Statistic": "z", "Description": DESCRIPTIONS["z"],
                                     **test}))
    if result.r2_split is not None:
        for name, values in zip(info.get("bands", []), result.r2_split, strict=True):
            maps.append((f"r2split{band_label(name)}", values,
                         {"Statistic": "r2split", "Band": name,
                          "Bands": info.get("bands"), "Description": DESCRIPTIONS["r2split"]}))
    return maps


def n_significant(result, fdr_alpha: float, index=None) -> int | None:
    """Voxels (of ``index``) with q below ``fdr_alpha``; None without a test."""
    if result.q is None:
        return None
    q = result.q if index is None else result.q[index]
    return int(np.sum(np.nan_to_num(q, nan=1.0) < fdr_alpha))
