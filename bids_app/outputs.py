"""Write a participant's encoding results as BIDS-Derivatives.

For each variant: ``stat-r``, ``stat-r2`` and ``stat-alpha`` maps (``_statmap``),
each with a JSON sidecar holding what is needed to reproduce the numbers, and a
``_scores.tsv`` of regional summaries. The participant's brain mask is written
once (``desc-brain_mask``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .encoding.engine import EncodingResult
from .encoding.maps import DESCRIPTIONS, UNANALYSED, UNANALYSED_NOTE, result_maps
from .encoding.summary import region_summary
from .io.bids import BoldRun
from .io.derivatives import (
    STANDARD_SPACES,
    bids_uri,
    build_name,
    software_versions,
    subject_dir,
    unmask,
    write_json,
    write_nifti,
    write_text,
)
from .io.surfaces import gifti_n_vertices, surface_reference, write_dscalar, write_func_gifti
from .unique_variance import unique_variance_file


def output_entities(runs: list[BoldRun]) -> dict:
    """Entities shared by all runs of a participant (task/session when unique)."""
    entities = {"sub": runs[0].subject}
    sessions = {r.session for r in runs}
    tasks = {r.task for r in runs}
    spaces = {r.space for r in runs}
    if len(sessions) == 1 and runs[0].session:
        entities["ses"] = runs[0].session
    if len(tasks) == 1:
        entities["task"] = runs[0].task
    if len(spaces) == 1 and runs[0].space:
        entities["space"] = runs[0].space
        for key in ("res", "den"):
            values = {str(r.entities.get(key, "")) for r in runs}
            if len(values) == 1 and values != {""}:
                entities[key] = values.pop()
    return entities


def grid_metadata(runs: list[BoldRun], entities: dict) -> dict:
    """``Resolution`` / ``Density`` sidecar fields the output's entities call for."""
    meta = {}
    if entities.get("res"):
        meta["Resolution"] = (f"Resolution '{entities['res']}' of template "
                              f"'{entities.get('space', '')}', as in the input BOLD.")
    if entities.get("den"):
        meta["Density"] = (f"Density '{entities['den']}' of '{entities.get('space', '')}', "
                           "as in the input BOLD.")
    elif runs[0].kind == "surface":
        meta["Density"] = f"Vertices of the '{entities.get('space', '')}' surface mesh."
    return meta


def spatial_reference(runs: list[BoldRun], entities: dict, bids_dir: Path,
                      hemi: str | None = None) -> dict:
    """``SpatialReference`` of an output whose ``space-`` is not a BIDS standard template.

    Parameters
    ----------
    runs : list of BoldRun
        The participant's runs.
    entities : dict
        Entities of the output.
    bids_dir : Path
        BIDS_DIR (URIs of files inside it are ``bids:raw:`` URIs).
    hemi : {'L', 'R'}, optional
        Hemisphere of a ``.func.gii`` output.

    Returns
    -------
    dict
        Empty for standard templates and outputs without ``space-``; else the
        TemplateFlow sphere of an fsaverage mesh, or the first input run (whose
        grid or mesh the output shares).
    """
    space = entities.get("space")
    if not space or space in STANDARD_SPACES:
        return {}
    reference = surface_reference(space, hemi) if hemi else None
    if reference is None:
        source = runs[0].surface_files[hemi] if hemi else runs[0].bold_file
        reference = bids_uri(source, bids_dir)
    return {"SpatialReference": reference}


def _sidecar_file(image: Path) -> Path:
    return image.with_name(image.name.split(".")[0] + ".json")


def _hemi_of(image: Path) -> str | None:
    for hemi in ("L", "R"):
        if f"_hemi-{hemi}_" in image.name:
            return hemi
    return None


def write_mask(output_dir: Path, runs: list[BoldRun], mask_file: str, bids_dir: Path) -> Path:
    """Write the participant's analysis mask as ``desc-brain_mask.nii.gz``."""
    import nibabel as nib

    if not str(mask_file).endswith((".nii", ".nii.gz")):
        return None  # surfaces and CIFTI: the maps cover every vertex / grayordinate
    entities = output_entities(runs)
    folder = subject_dir(output_dir, entities)
    final = folder / build_name({**entities, "desc": "brain"}, "mask", ".nii.gz")
    img = nib.load(mask_file)
    out_img = nib.Nifti1Image(np.asanyarray(img.dataobj).astype(np.uint8), img.affine)
    out_img.header.set_xyzt_units("mm", "sec")
    write_nifti(final, out_img)
    write_json(final.with_name(final.name.replace(".nii.gz", ".json")), {
        "Type": "Brain",
        "Description": "Voxels analysed: brain mask of the runs, without voxels that were "
                       "NaN, infinite or constant in any run.",
        "Sources": [bids_uri(r.bold_file, bids_dir) for r in runs],
        **grid_metadata(runs, entities),
        **spatial_reference(runs, entities, bids_dir),
    })
    return final


def write_variant_outputs(output_dir: str, bids_dir: str, runs: list[BoldRun],
                          result_file: str, mask_file: str, metadata: dict) -> list[str]:
    """Write maps, sidecars and scores of one participant and variant.

    Parameters
    ----------
    output_dir, bids_dir : str
        OUTPUT_DIR and BIDS_DIR.
    runs : list of BoldRun
        The participant's runs.
    result_file : str
        Saved :class:`~bids_app.encoding.engine.EncodingResult`.
    mask_file : str
        Mask the result's voxels refer to.
    metadata : dict
        Provenance shared by every sidecar (variant, model, tuning, settings, seed).

    Returns
    -------
    list of str
        Written files (maps first).
    """
    import nibabel as nib

    output_dir, bids_dir = Path(output_dir), Path(bids_dir)
    result = EncodingResult.load(result_file)
    mask_img = nib.load(mask_file) if str(mask_file).endswith((".nii", ".nii.gz")) else None
    entities = {**output_entities(runs), "desc": metadata["variant"]}
    folder = subject_dir(output_dir, entities)
    sources = [bids_uri(r.bold_file, bids_dir) for r in runs]
    sources += [bids_uri(r.events_file, bids_dir) for r in runs if r.events_file]
    common = {
        # BIDS defines TaskName as a string: an untuned variant leaves it out, not null
        **{k: v for k, v in metadata.items() if not (k == "TaskName" and v is None)},
        "Sources": sources,
        "SkullStripped": True,
        "Runs": [r.name for r in runs],
        "TestRunsPerFold": [[runs[i].name for i in fold] for fold in result.test_runs],
        # not BIDS's SoftwareVersions: that is a string naming the scanner's software
        "Software": software_versions(),
    }
    common.update(grid_metadata(runs, entities))
    checks = Path(str(result_file).replace(".npz", "_design.json"))
    if checks.is_file():  # written by fit_encoding: per-run design checks, feature digest
        common.update(json.loads(checks.read_text(encoding="utf-8")))
    written, later = [], []
    unique = _unique_variance(result_file, metadata)
    for stat, values, fields in result_maps(result) + unique:
        sidecar = {**common, **fields}
        if mask_img is not None:
            final = folder / build_name({**entities, "stat": stat}, "statmap", ".nii.gz")
            write_nifti(final, unmask(values, mask_img, fill=UNANALYSED.get(stat, 0.0)))
            files = [final]
        else:
            files = write_surface_maps(folder, {**entities, "stat": stat}, values, mask_file,
                                       runs, fill=UNANALYSED.get(stat, 0.0))
        for final in files:
            write_json(_sidecar_file(final), {**sidecar, **spatial_reference(
                runs, entities, bids_dir, _hemi_of(final))})
        written.append(str(files[0]))
        later += [str(f) for f in files[1:]]
    fdr_alpha = float((metadata.get("Statistics") or {}).get("fdr_alpha", 0.05))
    table = region_summary(result, fdr_alpha=fdr_alpha)
    table.insert(0, "variant", metadata["variant"])
    table.insert(1, "layer", metadata.get("Layer"))
    dev = metadata.get("DevMetric") or {}
    table["dev_metric"] = next(iter(dev.values())) if isinstance(dev, dict) and dev else None
    table["trainable_share"] = metadata.get("TrainableParameterShare")
    table["cka"] = metadata.get("CKA")
    if unique:  # the language bands' unique variance, over the same voxel sets
        values = unique[0][1]
        top = np.argsort(result.r)[::-1][: max(1, int(round(0.1 * len(result.r))))]
        table["mean_r2_unique"] = [float(np.mean(values)), float(np.mean(values[top]))]
    table["settings_hash"] = metadata.get("SettingsHash")
    scores = folder / build_name(entities, "scores", ".tsv")
    write_text(scores, table.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="n/a"))
    write_json(scores.with_suffix(".json"), {
        "region": {"Description": "Voxel set: 'brain' is the whole analysis mask, 'top10pct' the "
                              "10% of voxels with the highest r on the other outer folds than "
                              "the one scored (mean_r and fold_mean_r are held-out values; the "
                              "other columns describe the voxels chosen in every fold)."},
        "mean_r": {"Description": "Mean held-out Pearson r over the voxels of the region."},
        "fold_mean_r": {"Description": "Mean r of the region in each outer fold, ';'-separated."},
        "mean_r2_unique": {"Description": "Mean over the region of stat-r2unique (held-out "
                                          "R² the language features add to the nuisance "
                                          "bands)."},
        "settings_hash": {"Description": "Hash of the settings that produced the maps "
                                         "(SettingsHash of the sidecars)."},
        "n_significant": {"Description": f"Voxels of the region with stat-q < {fdr_alpha:g} "
                                         "(held-out permutation test, BH-FDR); n/a without "
                                         "the test."},
    })
    written.append(str(scores))
    return written + later


def _unique_variance(result_file: str, metadata: dict) -> list:
    """``[('r2unique', values, sidecar fields)]`` when the fit saved it, else ``[]``."""
    path = unique_variance_file(result_file)
    if not path.is_file():
        return []
    bands = ", ".join(metadata.get("NuisanceBands") or [])
    return [("r2unique", np.load(path), {
        "Statistic": "r2unique",
        "Description": "Unique variance of the language model's features: held-out R² of the "
                       "full model (language and nuisance bands fitted jointly by banded ridge) "
                       f"minus that of the nuisance bands ({bands}) alone, cross-validated on "
                       "the same folds.",
        "NuisanceBands": metadata.get("NuisanceBands") or []})]


def write_surface_maps(folder: Path, entities: dict, values: np.ndarray, mask_file: str,
                       runs: list[BoldRun], fill: float = 0.0) -> list[Path]:
    """Write one map of a surface (one ``.func.gii`` per hemisphere) or CIFTI analysis.

    Parameters
    ----------
    folder : Path
        Output folder.
    entities : dict
        Entities of the map (``stat`` included).
    values : ndarray of shape (n_analysed,)
        Values of the analysed vertices / grayordinates.
    mask_file : str
        ``.npy`` boolean vector of the analysed vertices (left then right) or grayordinates.
    runs : list of BoldRun
        The participant's runs (the first gives the hemispheres' sizes or brain models).
    fill : float
        Value of the vertices / grayordinates not analysed (NaN for p and q maps).

    Returns
    -------
    list of Path
        The left then right ``.func.gii``, or the ``.dscalar.nii``.
    """
    mask = np.load(mask_file)
    full = np.full(mask.shape[0], fill, dtype=np.float32)
    full[mask] = np.asarray(values, dtype=np.float32)
    name = f"stat-{entities['stat']}"
    if runs[0].kind == "cifti":
        final = folder / build_name(entities, "statmap", ".dscalar.nii")
        write_dscalar(final, full, runs[0].bold_file, name)
        return [final]
    size_left = gifti_n_vertices(runs[0].surface_files["L"])
    files = []
    for hemi, part in (("L", full[:size_left]), ("R", full[size_left:])):
        final = folder / build_name({**entities, "hemi": hemi}, "statmap", ".func.gii")
        write_func_gifti(final, part, hemi, name)
        files.append(final)
    return files


def tuning_sidecar(tuning: dict, layer: int) -> dict:
    """Sidecar keys taken from a tuning record (``models/<variant>/tuning.json``).

    Parameters
    ----------
    tuning : dict
        The record written by :func:`bids_app.tuning.tune_extractor`.
    layer : int
        Hidden-state index of the variant (selects its CKA value).

    Returns
    -------
    dict
        ``TuningSettings``, ``TaskName``, ``TaskType``, ``DevMetric`` ({name: value}),
        ``TrainableParameters`` (what defines the tuned model), ``TrainableParameterShare``,
        ``TrainingParameters`` (trained while tuning), ``TuningHash``, ``CKA``
        (linear CKA of the variant's layer with the pretrained model's) and more.
    """
    name, value = tuning.get("dev_metric_name"), tuning.get("dev_metric")
    cka = tuning.get("cka") or {}
    return {
        "ModelSHA256": tuning.get("model_sha256"),
        "TuningSettings": tuning.get("settings", {}),
        "TaskName": tuning.get("task"),
        "TaskType": tuning.get("task_type"),
        "DevMetric": {name: value} if name else {},
        "DevMetricName": name,
        "DevMetrics": tuning.get("dev_metrics", {}),
        "TrainableParameters": tuning.get("trainable_params"),
        "TrainableParameterShare": tuning.get("trainable_share"),
        "TrainingParameters": tuning.get("training_params"),
        "TuningHash": tuning.get("tuning_hash"),
        "TrainingSteps": tuning.get("steps"),
        "CKA": cka.get(str(layer)),
    }


def variant_metadata(variant_label: str, extractor, layer: int, spec, seed: int,
                     backend: str) -> dict:
    """Provenance of one variant shared by all its sidecars.

    Tuning details are added from the tuning record when the maps are written.
    """
    return {
        "variant": variant_label,
        "Model": extractor.model.source,
        "ModelName": extractor.model.name,
        "TuningMethod": extractor.method,
        "TaskName": extractor.task.name if extractor.task else None,
        "TaskType": extractor.task.type if extractor.task else None,
        "TuningSettings": dict(extractor.settings),
        "Layer": layer,
        "Features": {**spec.features.to_dict(), "layers": [layer]},
        "Annotations": dict(spec.annotations.__dict__),
        "Alignment": dict(spec.alignment.__dict__),
        "BoldPreparation": dict(spec.bold.__dict__),
        "Encoding": {**spec.encoding.__dict__, "backend": backend,
                     "estimator": ("himalaya banded ridge (BandedRidgeCV/MultipleKernelRidgeCV)"
                                   if spec.encoding.banded else
                                   "ridge with per-voxel alpha (eigendecomposition solver on "
                                   "himalaya's backend; equal to himalaya RidgeCV)")},
        "Statistics": dict(spec.statistics.__dict__),
        "CrossValidation": {"outer": spec.encoding.outer_cv,
                            "inner": f"up to {spec.encoding.inner_folds} folds of whole "
                                     "training runs"},
        "RandomSeed": seed,
    }


def write_comparison_outputs(output_dir: str, bids_dir: str, runs: list[BoldRun],
                             comparison_file: str, mask_file: str, pair: list[str],
                             statistics: dict) -> list[str]:
    """Write ``stat-rdiff``/``stat-rdiffp``/``stat-rdiffq`` maps of two variants.

    The maps are labelled ``desc-<first>vs<second>``; ``rdiff`` is the first
    variant's held-out r minus the second's.

    Returns
    -------
    list of str
        Written maps (first file of each).
    """
    import nibabel as nib

    output_dir, bids_dir = Path(output_dir), Path(bids_dir)
    is_volume = str(mask_file).endswith((".nii", ".nii.gz"))
    mask_img = nib.load(mask_file) if is_volume else None
    entities = {**output_entities(runs), "desc": f"{pair[0]}vs{pair[1]}"}
    folder = subject_dir(output_dir, entities)
    with np.load(comparison_file) as data:
        values = {k: data[k] for k in data.files}
    common = {
        "ComparedVariants": list(pair),
        "SignificanceTest": "paired mismatched-window null of the held-out r difference per "
                            "outer fold (both models' predictions of other runs against this "
                            "run's BOLD), fold scores summed over their empirical-null "
                            "spread; two-sided rank p, +1 corrected",
        "NNull": int(values.get("n_null", statistics.get("n_bootstrap", 1000))),
        "PValueFloor": 1.0 / (int(values.get("n_null", statistics.get("n_bootstrap", 1000)))
                              + 1),
        "EmpiricalNullScale": float(values["scale"]) if "scale" in values else None,
        "CircularFolds": [int(i) for i in values.get("circular_folds", [])],
        "Sources": [bids_uri(r.bold_file, bids_dir) for r in runs],
        "SkullStripped": True,
        "Software": software_versions(),
        **grid_metadata(runs, entities),
    }
    written = []
    for stat, key in (("rdiff", "rdiff"), ("rdiffp", "p"), ("rdiffq", "q")):
        sidecar = {**common, "Statistic": stat, "Description": DESCRIPTIONS[stat]}
        if stat == "rdiffq":
            sidecar["MultipleComparisonCorrection"] = "Benjamini-Hochberg FDR"
        if stat in UNANALYSED:
            sidecar["UnanalysedVoxels"] = UNANALYSED_NOTE
        if mask_img is not None:
            final = folder / build_name({**entities, "stat": stat}, "statmap", ".nii.gz")
            write_nifti(final, unmask(values[key], mask_img, fill=UNANALYSED.get(stat, 0.0)))
            files = [final]
        else:
            files = write_surface_maps(folder, {**entities, "stat": stat}, values[key],
                                       mask_file, runs, fill=UNANALYSED.get(stat, 0.0))
        for final in files:
            write_json(_sidecar_file(final), {**sidecar, **spatial_reference(
                runs, entities, bids_dir, _hemi_of(final))})
        written.append(str(files[0]))
    return written


def variant_maps(files: list[str], label: str) -> dict | None:
    """Find one variant's maps and scores among written derivatives, by their names.

    Parameters
    ----------
    files : list of str
        Derivative files (e.g. what the sinks published).
    label : str
        Variant label (``desc-<label>``).

    Returns
    -------
    dict or None
        ``{'r', 'r2', 'alpha', 'scores'[, 'p', 'q']}`` → path (the first file of a
        map written per hemisphere); None when the variant has no ``stat-r`` map.
    """
    mine = sorted(f for f in files if f"_desc-{label}_" in Path(f).name)
    found = {}
    for stat in ("r", "r2", "alpha", "p", "q"):
        maps = [f for f in mine if f"_stat-{stat}_" in Path(f).name and not f.endswith(".json")
                and Path(f).name.split(".")[0].endswith("_statmap")]
        if maps:
            found[stat] = maps[0]
    scores = [f for f in mine if f.endswith("_scores.tsv")]
    if "r" not in found or not scores:
        return None
    found["scores"] = scores[0]
    return found
