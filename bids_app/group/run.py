"""Group stage: per-variant group maps, one-sample tests, region tables and report.

Reads only ``OUTPUT_DIR`` (as BIDS-Apps require): the participants' ``stat-r``
maps (NIfTI volumes, GIFTI hemispheres or CIFTI grayordinates), their sidecars,
brain masks, ``_scores.tsv`` tables and cleaned held-out BOLD runs
(``desc-clean_bold``, for the inter-subject noise ceiling). Writes
``OUTPUT_DIR/group``: maps of the group mean r and of one-sample tests (Student's t
and sign-flip permutation, with FDR), paired comparison maps, the noise ceiling
(``stat-ceiling``), TSV tables (with ceiling-normalised r) and ``group.html``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import load_spec
from ..errors import NoMatchError, UsageError
from ..io.derivatives import build_name, write_json, write_text
from ..reports.group import write_group_report
from .ceiling_maps import loso_ceiling, participant_ceiling_methods
from .contrast_maps import compare_variants, comparison_methods, resolve_pairs
from .maps import (
    corrupt_output,
    geometry,
    included_scores,
    load_scores,
    load_values,
    map_kind,
    readable_maps,
    save_values,
)
from .methods import GroupMethods
from .provenance import check_provenance, expected_hashes
from .regions import RegionSet, region_means, regions_for, top_voxel_means
from .tables import method_task_matrix, variant_table, variant_table_methods
from .unique_variance_maps import group_unique_variance
from .variant_maps import (
    EXTENSIONS,
    GroupData,
    group_variant,
    load_group_data,
)

LOGGER = logging.getLogger("brainenc.group")
_ENTITY = re.compile(r"([a-z]+)-([A-Za-z0-9]+)")
CEILING_STATS = ("ceiling", "nc", "isc")


def parse_name(path: Path) -> dict:
    """Entities and suffix of a BIDS-like file name."""
    stem = Path(path).name.split(".")[0]
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
    """Participant outputs found in OUTPUT_DIR.

    Attributes
    ----------
    maps : DataFrame
        One row per statistical map: ``sub, task, space, hemi, desc, stat, kind, path``.
    masks : dict
        Participant label -> brain mask path.
    scores : DataFrame
        Participants' ``_scores.tsv`` tables stacked, with a ``subject`` column.
    """

    maps: pd.DataFrame
    masks: dict
    scores: pd.DataFrame
    #: ``(sub, task, desc)`` of every score table found.
    score_keys: set = field(default_factory=set)


def find_inputs(output_dir: Path, participants: list[str] | None = None) -> GroupInputs:
    """Find the participants' maps, masks and score tables."""
    rows, masks, tables, score_keys = [], {}, [], set()
    for path in sorted(Path(output_dir).glob("sub-*/**/func/*")):
        ent = parse_name(path)
        if participants and ent.get("sub") not in participants:
            continue
        name = path.name
        if ent["suffix"] == "statmap" and name.endswith((".nii.gz", ".func.gii", ".dscalar.nii")):
            rows.append({"sub": ent.get("sub"), "task": ent.get("task", ""),
                         "space": ent.get("space", ""), "hemi": ent.get("hemi", ""),
                         "desc": ent.get("desc", ""), "stat": ent.get("stat"),
                         "kind": map_kind(path), "path": str(path)})
        elif ent["suffix"] == "mask" and ent.get("desc") == "brain" and name.endswith(".nii.gz"):
            masks[ent["sub"]] = str(path)
        elif ent["suffix"] == "scores" and path.suffix == ".tsv":
            try:
                frame = pd.read_csv(path, sep="\t")
            except (OSError, ValueError) as exc:
                raise corrupt_output(path, exc) from None
            score_keys.add((ent.get("sub"), ent.get("task", ""), ent.get("desc", "")))
            frame = frame.drop(columns=["subject"], errors="ignore")
            frame.insert(0, "subject", ent.get("sub"))
            tables.append(frame)
    maps = pd.DataFrame(rows, columns=["sub", "task", "space", "hemi", "desc", "stat", "kind",
                                       "path"])
    found = sorted({p.name[4:] for p in Path(output_dir).glob("sub-*") if p.is_dir()})
    unknown = [label for label in participants or () if label not in found]
    if unknown:
        raise NoMatchError(f"participant label(s) {', '.join(unknown)} have no outputs in "
                           f"'{output_dir}'; available: {', '.join(found) or 'none'}.")
    if not (maps["stat"] == "r").any():
        raise NoMatchError(
            f"no participant results (sub-*/func/*_stat-r_*_statmap.nii.gz) in '{output_dir}'; "
            "run the participant level first."
        )
    return GroupInputs(maps, masks,
                       pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(),
                       score_keys)


def _ceiling_values(inputs: GroupInputs, data: GroupData) -> tuple[np.ndarray, str] | None:
    """Per-subject noise-ceiling maps matching ``data`` and their Methods sentence.

    None unless every subject has one.
    """
    maps = inputs.maps
    found, stats = [], []
    for subject in data.subjects:
        match = maps[(maps["sub"] == subject) & maps["stat"].isin(CEILING_STATS)
                     & (maps["hemi"] == data.entities["hemi"])
                     & (maps["kind"] == data.kind)]
        if match.empty:
            return None
        found.append(load_values(match["path"].iloc[0]))
        stats.append(match["stat"].iloc[0])
    values = np.stack(found)
    if values.shape != data.values.shape:
        return None
    return values, participant_ceiling_methods("/".join(dict.fromkeys(stats)),
                                               len(data.subjects))


def _loso_ceiling(data: GroupData, output_dir: Path) -> tuple[np.ndarray, str] | None:
    """Noise ceiling from the cleaned BOLD in OUTPUT_DIR (mean written as ``stat-ceiling``).

    Returns the per-subject ceilings and their Methods sentence; None when none was computed.
    """
    ceiling = loso_ceiling(output_dir, data.subjects, data.paths[0], data.valid,
                           task=data.entities["task"], space=data.entities["space"])
    if ceiling is None:
        return None
    name = build_name({**data.entities, "stat": "ceiling", "desc": "loso"}, "statmap",
                      EXTENSIONS[data.kind])
    final = save_values(ceiling.values.mean(axis=0), data.paths[0],
                        Path(output_dir) / "group" / name)
    write_json(final.with_name(name.split(".")[0] + ".json"), {
        "Statistic": "ceiling", "Participants": data.subjects, "Runs": ceiling.runs,
        "VolumesPerParticipant": ceiling.n_volumes, "Sources": ceiling.sources,
        "Description": "Inter-subject noise ceiling: mean over participants of the expected "
                       "correlation of a participant's cleaned held-out BOLD with the response "
                       "shared by all participants, from the correlation with the mean of the "
                       "others (leave-one-subject-out) corrected for the noise in that mean "
                       "(Spearman-Brown, equal reliability), over the runs and volumes all "
                       "share. A perfect model of the shared response reads 1 of it.",
        "CeilingType": "shared-response (Spearman-Brown-corrected leave-one-subject-out)"})
    return ceiling.values, ceiling.methods()


#: Voxels whose group noise ceiling is below this are left out of normalised values.
MIN_CEILING = 0.1
#: Methods sentence of the ceiling-normalised values (:func:`_normalise`).
NORMALISED_METHODS = (
    "Ceiling-normalised values (columns ceiling and mean_r_normalised*) divide each "
    "participant's mean r by its mean noise ceiling in the same region, on the elements whose "
    f"group noise ceiling is at least {MIN_CEILING:g}.")


def _normalise(frame: pd.DataFrame, data: GroupData, regions: RegionSet, ceiling: np.ndarray,
               top_percent: float) -> pd.DataFrame:
    """Add ``ceiling`` and ``mean_r_normalised`` columns to region rows.

    The normalised value is mean r over mean ceiling, per subject and region, on the
    voxels whose group ceiling is at least :data:`MIN_CEILING`.
    """
    reliable = data.valid & (ceiling.mean(axis=0) >= MIN_CEILING)
    r_means = region_means(data.values, reliable, regions) if reliable.any() else pd.DataFrame()
    c_means = region_means(ceiling, reliable, regions) if reliable.any() else pd.DataFrame()
    frame["ceiling"], frame["mean_r_normalised"] = np.nan, np.nan
    if r_means.empty:
        return frame
    ratio = (r_means.set_index(["subject_index", "region"])["mean_r"]
             / c_means.set_index(["subject_index", "region"])["mean_r"])
    ceil = c_means.set_index(["subject_index", "region"])["mean_r"]
    keys = pd.MultiIndex.from_arrays([frame["subject_index"], frame["region"]])
    frame["ceiling"] = ceil.reindex(keys).to_numpy()
    frame["mean_r_normalised"] = ratio.reindex(keys).to_numpy()
    return frame


def region_rows(data: GroupData, regions: RegionSet, top_percent: float,
                ceiling: np.ndarray | None) -> pd.DataFrame:
    """Per-subject region means of r (and ceiling-normalised means when possible)."""
    frame = region_means(data.values, data.valid, regions)
    top = top_voxel_means(data.values, data.valid, top_percent)
    top_rows = pd.DataFrame({"subject_index": range(len(top)), "region": f"top{top_percent:g}pct",
                             "n_voxels": max(1, int(round(data.valid.sum() * top_percent / 100))),
                             "mean_r": top})
    frame = pd.concat([frame, top_rows], ignore_index=True)
    if ceiling is not None:
        frame = _normalise(frame, data, regions, ceiling, top_percent)
    frame.insert(0, "subject", [data.subjects[i] for i in frame.pop("subject_index")])
    frame.insert(1, "variant", data.variant)
    frame["settings_hash"] = data.metadata.get("SettingsHash")
    frame.insert(2, "task", data.entities["task"])
    if data.entities["hemi"]:
        frame.insert(3, "hemi", data.entities["hemi"])
    frame["region_source"] = regions.source if frame["region"].isin(regions.names).any() else ""
    return frame


def run_group(output_dir: str, *, participants: list[str] | None = None,
              fdr_alpha: float = 0.05, statistics=None, seed: int = 0, spec=None) -> dict:
    """Run the group stage and write ``OUTPUT_DIR/group``.

    Parameters
    ----------
    output_dir : str
        OUTPUT_DIR of the participant level.
    participants : list of str, optional
        Restrict to these participant labels.
    fdr_alpha : float
        FDR level (overridden by ``statistics.fdr_alpha``).
    statistics : StatisticsConfig, optional
        ``compare`` pairs, ``atlas``, ``n_permutations``, ``top_percent``.
    seed : int
        Seed of the sign-flip permutations.
    spec : ExperimentSpec, optional
        The current experiment spec: maps it did not produce are left out and listed
        (see :mod:`bids_app.group.provenance`); None checks the maps against each other
        only.

    Returns
    -------
    dict
        ``variants`` (summaries), ``comparisons``, ``tables``, ``report`` path, ``stale``
        maps left out, ``missing`` variants and ``methods``: the Methods sentences of
        the steps that ran, in execution order (:class:`~bids_app.group.methods.GroupMethods`),
        as the report gives them.
    """
    output_dir = Path(output_dir)
    fdr_alpha = getattr(statistics, "fdr_alpha", fdr_alpha)
    n_permutations = int(getattr(statistics, "n_permutations", 1000))
    top_percent = float(getattr(statistics, "top_percent", 10.0))
    atlas = getattr(statistics, "atlas", "") or None
    inputs = find_inputs(output_dir, participants)
    provenance = check_provenance(inputs.maps, None if spec is None
                                  else expected_hashes(spec, seed))
    stale = {(sub, item["variant"]) for item in provenance.stale for sub in item["subjects"]}
    methods = GroupMethods()  # what each step that runs did, in order
    methods.add(provenance.methods())
    inputs = replace(inputs, maps=provenance.maps,
                     scores=_current_scores(inputs.scores, provenance.maps),
                     score_keys={k for k in inputs.score_keys if (k[0], k[2]) not in stale})
    r_maps = inputs.maps[inputs.maps["stat"] == "r"]
    if r_maps.empty:
        raise NoMatchError(f"every participant map in '{output_dir}' is stale (not made by the "
                           "current experiment spec); rerun the participant level with it, or "
                           "give the spec that made them with --config-file.")
    summaries, datasets, region_frames = [], {}, []
    skipped = [{"variant": item["variant"], "task": "",
                "reason": f"stale maps of {', '.join('sub-' + s for s in item['subjects'])} "
                          f"left out: {item['reason']}."} for item in provenance.stale]
    skipped += [{"variant": name, "task": "", "reason": "named by the current experiment spec "
                 "but no participant output holds it."} for name in provenance.missing]
    region_cache: dict = {}
    several_tasks = r_maps["task"].nunique() > 1  # then a Methods scope names the task too
    ceiling_cache: dict = {}
    for key, rows in r_maps.groupby(["desc", "task", "space", "hemi", "kind"], sort=True):
        rows, left_out = readable_maps(rows, _with_outputs(inputs, key))
        for message in left_out:
            skipped.append({"variant": key[0], "task": key[1], "reason": message})
            LOGGER.warning("group maps of %s: %s", key[0], message)
        if rows.empty:
            continue
        data = load_group_data(rows, inputs.masks)
        if isinstance(data, str):
            skipped.append({"variant": key[0], "task": key[1], "reason": data})
            LOGGER.warning("group maps of %s skipped: %s", key[0], data)
            continue
        data.scores = load_scores(inputs.maps, key, data.subjects)
        if len(data.subjects) < 2:
            reason = (f"only sub-{data.subjects[0]} has a stat-r map, so no group test (t, p, q) "
                      "was computed (it needs 2 participants); only the mean map was written")
            skipped.append({"variant": key[0], "task": key[1], "reason": reason})
            LOGGER.warning("group maps of %s: %s", key[0], reason)
        datasets[key] = data
        scope = f"{key[0]} (task {key[1]})" if several_tasks else key[0]
        summaries.append(group_variant(data, output_dir, fdr_alpha=fdr_alpha,
                                       n_permutations=n_permutations, seed=seed))
        methods.add(summaries[-1]["methods"], scope)
        for reason in group_unique_variance(data, output_dir, summaries[-1]):
            skipped.append({"variant": key[0], "task": key[1], "reason": reason})
        methods.add(summaries[-1].get("r2unique_methods", ""), scope)
        shape = geometry(data.paths[0])
        if shape not in region_cache:
            region_cache[shape] = regions_for(data.paths[0], atlas)
        ceiling = _ceiling_values(inputs, data)
        if ceiling is None:
            key_c = (tuple(data.subjects), shape, data.entities["task"])
            if key_c not in ceiling_cache:
                ceiling_cache[key_c] = _loso_ceiling(data, output_dir)
            ceiling = ceiling_cache[key_c]
        if ceiling is not None:
            methods.add(ceiling[1], scope)
        methods.add(region_cache[shape].methods(top_percent, len(data.subjects)), scope)
        region_frames.append(region_rows(data, region_cache[shape], top_percent,
                                         None if ceiling is None else ceiling[0]))
        if ceiling is not None:
            methods.add(NORMALISED_METHODS, scope)
    folder = output_dir / "group"
    regions = pd.concat(region_frames, ignore_index=True) if region_frames else pd.DataFrame()
    pairs = resolve_pairs(getattr(statistics, "compare", None) or [], summaries)
    comparisons = compare_variants(pairs, datasets, output_dir, fdr_alpha=fdr_alpha,
                                   n_permutations=n_permutations, seed=seed)
    methods.add(comparison_methods(comparisons,
                                   requested=bool(getattr(statistics, "compare", None))))
    inputs.scores = included_scores(inputs.scores, datasets)  # the participants the maps used
    table = variant_table(summaries, regions, inputs.scores, top_percent)
    matrix = method_task_matrix(table)
    if not table.empty:
        language = "mean_r_language" in table and bool(table["mean_r_language"].notna().any())
        methods.add(variant_table_methods(top_percent, language))
    tables = {"group_scores.tsv": inputs.scores, "group_regions.tsv": regions,
              "group_variants.tsv": table, "group_method_task.tsv": matrix,
              "group_comparisons.tsv": pd.DataFrame([c["row"] for c in comparisons])}
    for name, frame in tables.items():
        if not frame.empty:
            write_text(folder / name, frame.to_csv(sep="\t", index=False, float_format="%.6g",
                                                   na_rep="n/a"))
    report = write_group_report(output_dir, summaries=summaries, regions=regions,
                                table=table, matrix=matrix, comparisons=comparisons,
                                skipped=skipped, fdr_alpha=fdr_alpha,
                                methods=methods.sentences())
    return {"variants": summaries, "comparisons": comparisons, "tables": tables,
            "report": report, "stale": provenance.stale, "missing": provenance.missing,
            "methods": methods.sentences()}


def _current_scores(scores: pd.DataFrame, maps: pd.DataFrame) -> pd.DataFrame:
    """Participants' score rows of the maps kept (no rows of stale maps)."""
    if scores.empty or "variant" not in scores:
        return scores
    kept = set(zip(maps["sub"], maps["desc"], strict=True))
    mask = [(s, v) in kept for s, v in zip(scores["subject"], scores["variant"], strict=True)]
    return scores[mask].reset_index(drop=True)


def _with_outputs(inputs: GroupInputs, key: tuple) -> set:
    """Participants with any map or score table of a variant key (desc, task, space, hemi)."""
    maps = inputs.maps
    same = ((maps["desc"] == key[0]) & (maps["task"] == key[1]) & (maps["space"] == key[2])
            & (maps["hemi"] == key[3]))
    scored = {sub for sub, task, desc in inputs.score_keys if desc == key[0] and task == key[1]}
    return set(maps.loc[same, "sub"]) | scored


def saved_spec(output_dir: str | Path):
    """Load the newest experiment spec saved by the participant level in ``OUTPUT_DIR/logs``.

    Returns
    -------
    ExperimentSpec or None
        None when no readable spec is found.
    """
    for path in sorted(Path(output_dir).glob("logs/spec-*.toml"), reverse=True):
        try:
            return load_spec(path)
        except UsageError as exc:
            LOGGER.warning("ignoring the saved spec '%s': %s", path, exc)
    return None
