"""The per-participant steps, as plain functions over files.

Each function reads its inputs from files and writes its outputs to files, so
that the nipype interfaces wrapping them pass paths, not arrays, and can cache
their results in the working directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from stimuli_models.cache import atomic_file

from .alignment import align_run, edge_mask, frame_times
from .band_events import band_events
from .encoding.banded import banded_cross_validate
from .encoding.contrast import compare_predictions
from .encoding.design_checks import check_designs, feature_digest, run_summary, volumes_with_words
from .encoding.engine import EncodingResult, ProgressLog, cross_validate
from .errors import DatasetError, UsageError
from .featurization import story_nuisance
from .io.bold import analysis_mask, clean_confounds, clean_design, clean_run, load_run_data
from .io.confounds import run_samples, split_confounds
from .io.runs import BoldRun, kept_volumes
from .unique_variance import (
    joint_estimator,
    unique_variance,
    unique_variance_file,
)


def load_runs(runs_json: str) -> list[BoldRun]:
    """Read the list of runs written at workflow construction."""
    return [BoldRun.from_dict(d) for d in json.loads(Path(runs_json).read_text("utf-8"))]


def run_times(run: BoldRun, bold_spec: dict) -> np.ndarray:
    """Acquisition times of the kept volumes of a run (seconds, events clock)."""
    first = kept_volumes(run, bold_spec.get("dummy_scans", 0))
    reference = (float(run.start_time) if run.start_time is not None
                 else bold_spec.get("slice_time_ref", 0.5) * run.tr)
    return frame_times(run.n_volumes - first, run.tr, reference=reference, first_volume=first)


def prepare_bold(runs_json: str, bold_spec: dict, out_dir: str) -> tuple[str, list[str], str]:
    """Mask, clean and z-score every run of a participant.

    Parameters
    ----------
    runs_json : str
        Runs of the participant.
    bold_spec : dict
        ``[bold]`` of the spec.
    out_dir : str
        Folder for the outputs.

    Returns
    -------
    mask_file : str
        NIfTI brain mask (voxels used in every run) for volumes; for surfaces and
        CIFTI a ``.npy`` boolean vector over vertices (left then right) or grayordinates.
    bold_files : list of str
        One ``.npy`` per run, shape (n_kept_volumes, n_voxels), float32. When confounds
        are regressed within cross-validation folds, ``runNNN_confounds.npy`` beside
        each holds the run's filtered confounds, shape (n_kept_volumes, n_confounds).
    info_file : str
        JSON with the number of voxels, of bad (NaN/constant) voxels and of volumes
        removed (dummy scans, non-steady state, scrubbing) per run.
    """
    import nibabel as nib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(runs_json)
    mask, mask_img = analysis_mask(runs)
    bad_any = np.zeros(int(mask.sum()), dtype=bool)
    in_folds = bold_spec.get("confound_regression", "fold") == "fold"
    cleaned_files, info = [], {"runs": [], "kind": runs[0].kind,
                               "confounds": bold_spec.get("confounds") or "none",
                               "confound_regression": bold_spec.get("confound_regression",
                                                                    "fold")}
    for i, run in enumerate(runs):
        samples = run_samples(run, bold_spec)
        first = kept_volumes(run, bold_spec.get("dummy_scans", 0))
        data = load_run_data(run, mask)[first:]
        keep = samples.keep[first:]
        confounds = None if samples.confounds is None else samples.confounds[first:]
        settings = {"tr": run.tr, "detrend": bold_spec.get("detrend", True),
                    "high_pass": bold_spec.get("high_pass") or None, "keep": keep}
        # 'fold' mode: run-specific columns (cosines, CompCor, spikes) within their run,
        # the others with coefficients fitted on the training runs of each fold
        within, confounds = split_confounds(confounds, samples.names,
                                            info["confound_regression"])
        cleaned, bad = clean_run(data, standardize=bold_spec.get("standardize", True),
                                 confounds=within,
                                 batch_size=bold_spec.get("voxel_batch", 20000), **settings)
        del data
        bad_any |= bad
        path = out / f"run{i:03d}_bold.npy"
        np.save(path, cleaned)
        cleaned_files.append(str(path))
        if confounds is not None and in_folds:
            np.save(out / f"run{i:03d}_confounds.npy",
                    clean_confounds(confounds, within=within, **settings))
        info["runs"].append({"run": run.name, "volumes": int(cleaned.shape[0]),
                             "dropped_initial_volumes": first, "bad_voxels": int(bad.sum()),
                             "removed_volumes": samples.counts.get("removed", first),
                             "non_steady_state_volumes": samples.counts.get("non_steady_state", 0),
                             "scrubbed_volumes": samples.counts.get("scrubbed", 0),
                             "confounds": samples.names})
        del cleaned
    # voxels unusable in any run are left out of the mask altogether
    if bad_any.any():
        per_run = ", ".join(f"{r['run']}: {r['bad_voxels']}" for r in info["runs"]
                            if r["bad_voxels"])
        logging.getLogger("brainenc").warning(
            "sub-%s: %d voxel(s) NaN, infinite or constant in some run were dropped from the "
            "analysis mask (%s).", runs[0].subject, int(bad_any.sum()), per_run)
        keep_vox = ~bad_any
        for path in cleaned_files:
            np.save(path, np.load(path)[:, keep_vox])
        flat = np.flatnonzero(mask.ravel())
        new_mask = np.zeros(mask.size, dtype=bool)
        new_mask[flat[keep_vox]] = True
        mask = new_mask.reshape(mask.shape)
    if not mask.any():
        raise DatasetError(f"no usable voxel in the runs of '{runs[0].subject}': every voxel is "
                           "NaN, infinite or constant in some run.")
    info["n_voxels"] = int(mask.sum())
    info["n_bad_voxels_removed"] = int(bad_any.sum())
    info["n_volumes_removed"] = int(sum(r["removed_volumes"] for r in info["runs"]))
    if mask_img is not None:
        mask_file = out / "brain_mask.nii.gz"
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), mask_img.affine), mask_file)
    else:
        mask_file = out / "brain_mask.npy"
        np.save(mask_file, mask)
    info_file = out / "bold_info.json"
    info_file.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return str(mask_file), cleaned_files, str(info_file)


def build_designs(runs_json: str, word_tables: list[str], feature_files: list[str],
                  story_names: list[str], layer_position: int, alignment: dict,
                  bold_spec: dict, out_dir: str, *, band_positions: list[int] | None = None,
                  band_names: list[str] | None = None, band_sources: list[int] | None = None,
                  nuisance: dict | None = None,
                  story_files: list[str] | None = None) -> list[str]:
    """Align word features to the volumes of every run, one band after the other.

    The design holds the model features of one layer (or of several layers,
    ``band_positions``, one band each; several extractors, ``band_sources``)
    followed by the nuisance bands. Bands are
    aligned separately and set side by side, so that each covers a contiguous
    column range; with more than one band the ranges go to the design's sidecar
    JSON as ``bands: {name: [start, stop]}`` (used by banded ridge; plain ridge
    uses the concatenation).

    Parameters
    ----------
    runs_json : str
        Runs of the participant.
    word_tables : list of str
        One TSV per run (``onset, duration, word, story, word_index``).
    feature_files : list of str
        Feature file of each story (same order as ``story_names``); with several
        extractors, those of the first, then those of the second, and so on.
    story_names : list of str
        Story names.
    layer_position : int
        Slice of the feature files to use (when ``band_positions`` is not given).
    alignment, bold_spec : dict
        ``[alignment]`` and ``[bold]`` of the spec.
    out_dir : str
        Folder for the outputs.
    band_positions, band_names : list, optional
        Slices of the feature files used together, and their band names.
    band_sources : list of int, optional
        Extractor of each band (index into the groups of ``feature_files``; all 0 when
        not given).
    nuisance : dict, optional
        From :func:`bids_app.featurization.nuisance_settings`; needs ``story_files``.
    story_files : list of str, optional
        Story JSON files (for the nuisance bands).

    Returns
    -------
    list of str
        One design ``.npy`` per run, shape (n_kept_volumes, n_columns), detrended,
        high-pass filtered and cleaned of the within-run confounds as its BOLD is
        (:func:`bids_app.io.bold.clean_design`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    positions = list(band_positions) if band_positions else [layer_position]
    names = (list(band_names) if band_names else ["features"] if len(positions) == 1
             else [f"features{p}" for p in positions])
    sources = list(band_sources) if band_sources else [0] * len(positions)
    n_stories = len(story_names)
    if len(feature_files) != n_stories * (max(sources) + 1):
        raise ValueError(f"{len(feature_files)} feature files for {n_stories} stories and "
                         f"{max(sources) + 1} extractor(s)")
    loaded = [{name: np.load(path, mmap_mode="r") for name, path in
               zip(story_names, feature_files[k * n_stories:(k + 1) * n_stories], strict=True)}
              for k in range(max(sources) + 1)]
    bands = {band: {story: data[position] for story, data in loaded[source].items()}
             for band, position, source in zip(names, positions, sources, strict=True)}
    phones: dict = {}
    if nuisance and nuisance.get("bands"):
        per_story = story_nuisance(list(story_files or []), nuisance)
        for band in nuisance["bands"]:
            bands[band] = {story: values[band] for story, values in per_story.items()}
        phones = {story: values.get("phones") for story, values in per_story.items()}

    digest = feature_digest(np.asarray(bands[b][story]) for b in names for story in story_names)
    n_model = np.asarray(bands[names[0]][story_names[0]]).shape[-1]
    runs = load_runs(runs_json)
    paths = []
    for i, (run, table_file) in enumerate(zip(runs, word_tables, strict=True)):
        table = pd.read_csv(table_file, sep="\t", keep_default_na=False)
        times = run_times(run, bold_spec)
        blocks, slices, start = [], {}, 0
        for band, features in bands.items():
            onsets, durations, rows = band_events(band, features, table, times, run.tr,
                                                  phones=phones)
            block = align_run(
                onsets, durations, rows, times,
                run.tr, method=alignment.get("method", "hrf"),
                hrf_model=alignment.get("hrf_model", "glover"),
                delays=alignment.get("delays", [1, 2, 3, 4]),
                word_duration=alignment.get("word_duration", "impulse"),
            )
            blocks.append(block)
            slices[band] = [start, start + block.shape[1]]
            start += block.shape[1]
        design = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
        # the volumes prepare_bold removed (non-steady state, scrubbing) leave the design too,
        # and the design gets the BOLD's detrending, high-pass and within-run confounds (the
        # shared ones of 'fold' mode are regressed in the folds, as for the BOLD)
        samples = run_samples(run, bold_spec)
        first = run.n_volumes - len(times)
        keep = samples.keep[first:]
        within, _ = split_confounds(None if samples.confounds is None else
                                    samples.confounds[first:], samples.names,
                                    bold_spec.get("confound_regression", "fold"))
        checks = run_summary(design[keep], volumes_with_words(
            table["onset"].to_numpy(float), times[keep], run.tr), block=n_model)
        design = clean_design(design, tr=run.tr, detrend=bold_spec.get("detrend", True),
                              high_pass=bold_spec.get("high_pass") or None, keep=keep,
                              within=within)
        path = out / f"run{i:03d}_design.npy"
        np.save(path, design)
        sidecar = {"stories": sorted({str(v) for v in table["story"]}), "run": run.name,
                   "checks": checks, "feature_digest": digest}
        if len(slices) > 1:
            sidecar["bands"] = slices
        update_design_sidecar(path, **sidecar)
        paths.append(str(path))
    return paths


def design_sidecar(design_file: str | Path) -> Path:
    """JSON beside a design ``.npy`` (``stories`` of the run, feature ``bands``)."""
    return Path(design_file).with_suffix(".json")


def update_design_sidecar(design_file: str | Path, **fields) -> None:
    """Merge ``fields`` into the design's sidecar JSON (created when missing)."""
    path = design_sidecar(design_file)
    data = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    data.update(fields)
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def read_design_sidecar(design_file: str | Path) -> dict:
    """The design's sidecar JSON ({} when there is none)."""
    path = design_sidecar(design_file)
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def fit_encoding(design_files: list[str], bold_files: list[str], encoding: dict,
                 backend: str, out_file: str) -> str:
    """Cross-validate the encoding model of one participant and variant.

    ``encoding`` is the spec's ``[encoding]`` table, with the ``[statistics]`` table
    under ``'statistics'``, the memory budget of the fit under ``'mem_gb'``, the seed
    under ``'seed'`` and ``'save_predictions'`` when the held-out predictions are
    needed for a comparison (written beside ``out_file`` as ``*_predictions.npy``).

    Returns
    -------
    str
        ``.npz`` with per-voxel ``r``, ``r2``, ``alpha``, per-fold values and, when
        asked for, permutation ``p``/``q`` or banded ``r2_split``.
    """
    stats = encoding.get("statistics") or {}
    sidecars = [read_design_sidecar(p) for p in design_files]
    if all("checks" in sc for sc in sidecars):
        check_designs([sc["checks"] for sc in sidecars],
                      [sc.get("run") or Path(p).stem for sc, p in zip(sidecars, design_files,
                                                                        strict=True)],
                      encoding.get("variant") or Path(out_file).stem)
        Path(str(out_file).replace(".npz", "_design.json")).write_text(json.dumps(
            {"DesignChecks": [sc["checks"] for sc in sidecars],
             "FeatureDigest": sidecars[0].get("feature_digest")}, indent=1), encoding="utf-8")
    Xs = [np.load(p) for p in design_files]
    Ys = [np.load(p, mmap_mode="r") for p in bold_files]
    # confounds regressed within folds are saved beside the BOLD by prepare_bold
    siblings = [Path(p).with_name(Path(p).name.replace("_bold.npy", "_confounds.npy"))
                for p in bold_files]
    extra = {}
    if all(path.is_file() for path in siblings):
        extra["confounds"] = [np.load(path) for path in siblings]
    labels = ["+".join(sc.get("stories") or []) for sc in sidecars]
    labels = labels if all(labels) else None
    if encoding["outer_cv"] == "leave-one-story-out" and labels is None:
        raise UsageError("'encoding.outer_cv' = 'leave-one-story-out' needs the story of every "
                         f"run, which the designs in '{Path(design_files[0]).parent}' lack; "
                         "use 'leave-one-run-out'.")
    common = {"outer_cv": encoding["outer_cv"], "inner_folds": encoding["inner_folds"],
              "backend": backend, "run_labels": labels,
              "n_targets_batch": encoding.get("n_targets_batch") or None,
              "trim": encoding.get("trim_edges") or (0, 0),
              "mem_gb": encoding.get("mem_gb"),
              "progress": ProgressLog(Path(out_file).stem)}
    arrays = {}
    if encoding.get("save_predictions"):  # held-out predictions for a paired comparison
        from numpy.lib.format import open_memmap

        n_kept = sum(int(edge_mask(len(y), *common["trim"]).sum()) for y in Ys)
        for key in ("predictions", "heldout"):
            arrays[key] = open_memmap(str(out_file).replace(".npz", f"_{key}.npy"),
                                      mode="w+", dtype=np.float32,
                                      shape=(n_kept, Ys[0].shape[1]))
    nuisance = encoding.get("nuisance_bands") if sidecars[0].get("bands") else None
    joint = {}
    if nuisance and not encoding.get("banded"):  # joint fit, see bids_app.unique_variance

        joint["estimator"] = joint_estimator(sidecars[0]["bands"], nuisance,
                                             encoding["alphas"], backend)
    if encoding.get("banded"):
        bands = sidecars[0].get("bands")
        if not bands:
            raise UsageError("'encoding.banded' needs feature bands in "
                             f"'{design_sidecar(design_files[0])}'; the features of this "
                             "variant form one band: set banded = false.")
        result = banded_cross_validate(Xs, Ys, bands, encoding["alphas"],
                                       n_iter=encoding.get("banded_iterations", 20),
                                       random_state=encoding.get("seed", 0), **arrays,
                                       **common, **extra, **_heldout_test(stats))
    else:
        result = cross_validate(
            Xs, Ys, encoding["alphas"],
            random_state=encoding.get("seed", 0), **_heldout_test(stats),
            **arrays, **common, **extra, **joint)
    for array in arrays.values():
        array.flush()
    arrays.clear()
    if nuisance:  # the language bands' unique variance

        np.save(unique_variance_file(out_file), unique_variance(
            [np.load(p) for p in design_files], Ys, sidecars[0]["bands"], nuisance, result.r2,
            encoding["alphas"], random_state=encoding.get("seed", 0), **common, **extra))
    result.save(out_file)
    return out_file


def _heldout_test(stats: dict) -> dict:
    """Held-out permutation test settings of ``[statistics]`` (plain and banded fits alike)."""
    return {"n_permutations": stats.get("heldout_permutations", 0),
            "permutation": stats.get("permutation", "mismatched"),
            "heldout_p": stats.get("heldout_p", "permutation"),
            "block_length": stats.get("block_length", 10)}


def compare_encodings(result_a: str, result_b: str, statistics: dict, out_file: str) -> str:
    """Paired comparison of two variants' held-out predictions (mismatched-window null).

    Both fits must have saved their held-out predictions (``save_predictions``).

    Returns
    -------
    str
        ``.npz`` with ``rdiff``, ``p``, ``q`` per voxel, the null ``scale``, ``n_null``
        and ``circular_folds``.
    """
    first, second = EncodingResult.load(result_a), EncodingResult.load(result_b)
    if first.test_runs != second.test_runs or first.info.get("trim") != second.info.get("trim"):
        raise ValueError("the two variants were cross-validated on different folds")
    arrays = [np.load(str(f).replace(".npz", f"_{k}.npy"), mmap_mode="r")
              for f, k in ((result_a, "heldout"), (result_a, "predictions"),
                           (result_b, "predictions"))]
    # rows of the kept volumes, in run order; each outer fold holds out whole runs
    lengths = first.info.get("run_lengths")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    folds = [np.concatenate([np.arange(bounds[r], bounds[r + 1]) for r in runs])
             for runs in first.test_runs]
    out = compare_predictions(*arrays, folds, n_null=int(statistics.get("n_bootstrap", 1000)),
                              random_state=0)
    with atomic_file(out_file) as handle:
        np.savez(handle, **out)
    return out_file
