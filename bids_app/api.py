"""From a BIDS dataset to arrays and estimators, in one call (the notebook face).

:func:`encoding_from_bids` runs the participant-level steps of the BIDS-App in
the current process - collect runs and word annotations (:mod:`bids_app.plan`),
tune and featurize every model variant (:mod:`bids_app.tuning`,
:mod:`bids_app.featurization`), mask, clean and z-score the BOLD
(:func:`bids_app.participant.prepare_bold`) and align the features to the
volumes (:func:`bids_app.participant.build_designs`) - and returns the arrays
they write, with the run labels, the brain mask and an encoding estimator
configured from the spec. Nothing is written to an output dataset: intermediate
files (and the feature cache, reused by later calls) go to ``work_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stimuli_models.errors import StimuliModelsError
from stimuli_models.models import resolve_torch_device

from .alignment import edge_mask
from .config import ExperimentSpec, load_spec, trim_volumes, validate_spec
from .encoding.backend import choose_backend
from .encoding.banded_estimator import EncodingBandedRidgeCV
from .encoding.estimators import EncodingRidgeCV
from .errors import DatasetError, UsageError, from_library_error
from .featurization import featurize_extractor, nuisance_settings
from .io.bids import make_layout, select_subjects
from .io.fmriprep import make_derivative_layouts, parse_derivatives
from .participant import build_designs, prepare_bold, read_design_sidecar
from .plan import make_plan
from .tuning import tune_extractor
from .unique_variance import joint_estimator
from .variants import plan_variants

__all__ = ["EncodingData", "encoding_from_bids"]


@dataclass
class EncodingData:
    """Designs, BOLD and run labels of one participant, and an estimator per variant.

    Attributes
    ----------
    participant : str
        Participant label (without ``sub-``).
    runs : list of str
        Name of each run (its BIDS entities), in order.
    stories : list of str
        Story (or stories joined by ``+``) heard in each run.
    designs : dict of str -> list of ndarray of shape (n_volumes_i, n_features)
        Per variant label, the design of each run (features aligned to the volumes),
        over the volumes the CLI scores: run edges trimmed (``info["trim"]``, from
        ``[encoding] trim_edges`` or ``trim_seconds``) and every run centred.
    bold : list of ndarray of shape (n_volumes_i, n_voxels)
        Masked, cleaned and z-scored BOLD of each run (float32), over the same
        volumes and centred in the same way.
    mask_img : nibabel image or None
        Brain mask of the voxels in ``bold`` (None for surface or CIFTI data,
        whose mask is ``mask`` over vertices or grayordinates).
    mask : ndarray of bool
        The mask as an array.
    bands : dict of str -> dict or None
        Per variant, the design's feature bands ``{name: [start, stop]}`` (None for one band).
    estimators : dict of str -> estimator
        Per variant, the unfitted model the CLI fits on each training split:
        :class:`~bids_app.encoding.EncodingJointRidgeCV` when the design holds
        nuisance bands (the default word-rate band), with the same bands and
        weights; :class:`~bids_app.encoding.EncodingBandedRidgeCV` for banded
        variants; :class:`~bids_app.encoding.EncodingRidgeCV` otherwise; with the
        spec's alphas, inner folds and backend. Like the CLI they fit no
        intercept (the BOLD is z-scored per run).
    confounds : list of ndarray or None
        Per run, the confounds the spec regresses out within folds (None when none),
        over the same volumes.
    spec : ExperimentSpec
    work_dir : Path
    info : dict
        What cleaning did: voxels kept, volumes removed per run.

    Examples
    --------
    >>> import numpy as np
    >>> from bids_app.api import EncodingData
    >>> from bids_app.encoding import EncodingRidgeCV
    >>> data = EncodingData(participant="01", runs=["run-1", "run-2"], stories=["a", "b"],
    ...                     designs={"v": [np.ones((3, 2)), np.ones((4, 2))]},
    ...                     bold=[np.zeros((3, 5)), np.zeros((4, 5))], mask_img=None,
    ...                     mask=np.ones(5, bool), bands={"v": None},
    ...                     estimators={"v": EncodingRidgeCV()})
    >>> data.groups
    array([0, 0, 0, 1, 1, 1, 1])
    >>> data.X().shape, data.Y(runs=[1]).shape
    ((7, 2), (4, 5))
    """

    participant: str
    runs: list
    stories: list
    designs: dict
    bold: list
    mask_img: object
    mask: np.ndarray
    bands: dict
    estimators: dict
    confounds: list | None = None
    spec: ExperimentSpec | None = None
    work_dir: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def variants(self) -> list[str]:
        """Labels of the model variants, in the spec's order."""
        return list(self.designs)

    @property
    def groups(self) -> np.ndarray:
        """Run index of every volume of the concatenated runs, shape (n_volumes,)."""
        return np.concatenate([np.full(len(y), i) for i, y in enumerate(self.bold)])

    def X(self, variant: str | None = None, runs=None) -> np.ndarray:  # noqa: N802
        """Designs of ``runs`` (all by default) stacked, shape (n_volumes, n_features)."""
        label = self._variant(variant)
        chosen = range(len(self.bold)) if runs is None else runs
        return np.concatenate([self.designs[label][i] for i in chosen]).astype(np.float32)

    def Y(self, runs=None) -> np.ndarray:  # noqa: N802
        """BOLD of ``runs`` (all by default) stacked, shape (n_volumes, n_voxels)."""
        chosen = range(len(self.bold)) if runs is None else runs
        return np.concatenate([self.bold[i] for i in chosen])

    def estimator(self, variant: str | None = None):
        """The configured (unfitted) estimator of ``variant`` (the first by default)."""
        from sklearn.base import clone

        return clone(self.estimators[self._variant(variant)])

    def unmask(self, values):
        """Per-voxel ``values`` (shape (n_voxels,)) as a brain image (volumes only)."""
        if self.mask_img is None:
            raise UsageError("'unmask' needs volumetric data; this participant's BOLD is on a "
                             "surface or CIFTI grid: index 'mask' instead.")
        import nibabel as nib

        values = np.asarray(values, dtype=np.float32)
        if values.shape != (int(self.mask.sum()),):
            raise UsageError(f"'values' must hold one value per voxel ({int(self.mask.sum())}); "
                             f"got shape {values.shape}.")
        volume = np.zeros(self.mask.shape, dtype=np.float32)
        volume[self.mask] = values
        return nib.Nifti1Image(volume, self.mask_img.affine)

    def _variant(self, variant: str | None) -> str:
        if variant is None:
            return self.variants[0]
        if variant not in self.designs:
            raise UsageError(f"'variant' must be one of {set(self.designs)}; got {variant!r}.")
        return variant


def _spec_of(spec) -> ExperimentSpec:
    if isinstance(spec, ExperimentSpec):
        validate_spec(spec)
        return spec
    loaded = load_spec(spec)
    validate_spec(loaded)
    return loaded


def encoding_from_bids(bids_dir: str | os.PathLike, participant: str, spec=None, *,
                       work_dir: str | os.PathLike | None = None, task: str | list | None = None,
                       session: str | list | None = None, space: str | None = None,
                       derivatives: dict | None = None, device: str = "cpu",
                       backend: str | None = None, seed: int = 0) -> EncodingData:
    """Designs, cleaned BOLD, run labels and estimators of one participant.

    Parameters
    ----------
    bids_dir : path-like
        BIDS dataset with word-level ``events.tsv`` (or a stimuli folder).
    participant : str
        Participant label (``'01'`` or ``'sub-01'``).
    spec : path-like or ExperimentSpec, optional
        Experiment spec (TOML file or loaded); the built-in default when None.
    work_dir : path-like, optional
        Folder for intermediate files and the feature cache (reused by later
        calls with the same stories, models and settings); a new temporary
        folder when None.
    task, session : str or list of str, optional
        Select runs by task and session.
    space : str, optional
        Output space of preprocessed derivatives.
    derivatives : dict of str -> path-like, optional
        Preprocessed datasets (``{'fmriprep': path}``), as ``-d NAME=PATH``.
    device : {'cpu', 'cuda', 'auto'}
        Torch device for tuning and featurization.
    backend : str, optional
        himalaya backend of the estimators (default: the spec's ``encoding.backend``).
    seed : int
        Random seed of tuning.

    Returns
    -------
    EncodingData

    Examples
    --------
    >>> import tempfile
    >>> from bids_app.api import encoding_from_bids
    >>> from bids_app.demo import make_demo_dataset
    >>> root = tempfile.mkdtemp()
    >>> bids = make_demo_dataset(root + "/bids", n_subjects=1, words_per_story=60)
    >>> data = encoding_from_bids(bids, "01", work_dir=root + "/work", backend="numpy")
    >>> data.runs
    ['sub-01_task-listening_run-1', 'sub-01_task-listening_run-2', 'sub-01_task-listening_run-3']
    >>> data.variants, data.X().shape[0] == data.Y().shape[0]
    (['minilmfrozenL3'], True)
    >>> model = data.estimator().fit(data.X(runs=[0, 1]), data.Y(runs=[0, 1]),
    ...                              groups=data.groups[data.groups < 2])
    >>> model.score(data.X(runs=[2]), data.Y(runs=[2])).shape == (data.Y().shape[1],)
    True
    """
    spec = _spec_of(spec)
    participant = str(participant).removeprefix("sub-")
    bids_dir = Path(bids_dir).absolute()
    if not (bids_dir / "dataset_description.json").is_file():
        raise DatasetError(f"'{bids_dir}' is not a BIDS dataset (no dataset_description.json); "
                           "give the dataset's root folder.")
    try:
        device = resolve_torch_device(device)
    except StimuliModelsError as exc:
        raise from_library_error(exc) from None
    backend = choose_backend(backend or spec.encoding.backend, device)
    work = Path(work_dir).absolute() if work_dir else Path(tempfile.mkdtemp(prefix="brainenc-"))
    output_dir = work / "outputs"  # tuned models and the feature cache
    extractors, variants = plan_variants(spec)
    layout = make_layout(bids_dir)
    subject = select_subjects(layout, [participant])[0]
    layouts = _derivative_layouts(derivatives)
    plan = make_plan(layout, [subject], spec, work_dir=work, output_dir=output_dir,
                     tasks=_as_list(task), sessions=_as_list(session), derivatives=layouts,
                     space=space, bids_dir=bids_dir)
    if subject in plan.failures:
        raise plan.failures[subject]
    subject_plan = plan.subjects[0]
    features = _story_features(extractors, plan.story_files, spec, output_dir, device, seed)
    designs, bands = _designs(variants, subject_plan, plan, spec, features,
                              work / f"sub-{subject}")
    bold, mask_img, mask, confounds, info = _bold(subject_plan, spec, work / f"sub-{subject}")
    stories = [_stories_of(path) for path in designs[variants[0].label]]
    # the volumes the CLI scores: run edges trimmed as the workflow trims them (at the
    # shortest TR), then every run centred (the ridge has no intercept)
    trim = trim_volumes(spec.encoding, min(run.tr for run in subject_plan.runs))
    keep = [edge_mask(len(y), *trim) for y in bold]
    info = {**info, "trim": trim}
    return EncodingData(
        participant=subject, runs=[run.name for run in subject_plan.runs], stories=stories,
        designs={label: _kept([np.load(p) for p in paths], keep)
                 for label, paths in designs.items()},
        bold=_kept(bold, keep), mask_img=mask_img, mask=mask, bands=bands,
        estimators={v.label: _estimator(spec, bands[v.label], backend, seed,
                                        banded=bool(v.with_extractors)) for v in variants},
        confounds=_kept(confounds, keep) if confounds is not None else None, spec=spec,
        work_dir=work, info=info)


def _kept(runs: list, keep: list) -> list:
    """Each run's kept volumes, every column centred within the run (float32)."""
    out = []
    for values, kept in zip(runs, keep, strict=True):
        values = np.asarray(values, dtype=np.float32)[kept]
        out.append(values - values.mean(axis=0, dtype=np.float64).astype(np.float32))
    return out


def _as_list(value) -> list | None:
    return None if value is None else [value] if isinstance(value, str) else list(value)


def _derivative_layouts(derivatives: dict | None) -> dict:
    if not derivatives:
        return {}
    return make_derivative_layouts(parse_derivatives([f"{k}={v}" for k, v in derivatives.items()]))


def _story_features(extractors, story_files, spec, output_dir: Path, device: str,
                    seed: int) -> dict:
    """Tune (or reuse) every extractor and featurize every story: label -> feature files."""
    out = {}
    for extractor in extractors:
        tuning_json = tune_extractor(extractor.to_json(), str(output_dir), seed=seed,
                                     device=device, training=dataclasses.asdict(spec.training))
        out[extractor.label] = featurize_extractor(
            extractor.to_json(), tuning_json, list(story_files), str(output_dir),
            feature_settings=dataclasses.asdict(spec.features), device=device)
    return out


def _designs(variants, subject_plan, plan, spec, features: dict, folder: Path):
    """Design files per variant (one per run) and each variant's bands."""
    nuisance = nuisance_settings(spec)
    designs, bands = {}, {}
    for variant in variants:
        files = [path for source in variant.sources for path in features[source.label]]
        parts = variant.bands()
        designs[variant.label] = build_designs(
            subject_plan.runs_json, subject_plan.word_tables, files, plan.story_names,
            variant.layer_position, dataclasses.asdict(spec.alignment),
            dataclasses.asdict(spec.bold), str(folder / f"design_{variant.label}"),
            band_positions=[p for _, p, _ in parts], band_names=[n for _, _, n in parts],
            band_sources=[s for s, _, _ in parts],
            nuisance=nuisance if nuisance["bands"] else {}, story_files=list(plan.story_files))
        found = read_design_sidecar(designs[variant.label][0]).get("bands")
        bands[variant.label] = found or None
    return designs, bands


def _bold(subject_plan, spec, folder: Path):
    """Cleaned BOLD of every run, the mask (image and array) and in-fold confounds."""
    import nibabel as nib

    mask_file, bold_files, info_file = prepare_bold(
        subject_plan.runs_json, dataclasses.asdict(spec.bold), str(folder / "bold"))
    bold = [np.load(path) for path in bold_files]
    siblings = [Path(p.replace("_bold.npy", "_confounds.npy")) for p in bold_files]
    confounds = [np.load(p) for p in siblings] if all(p.is_file() for p in siblings) else None
    if mask_file.endswith(".npy"):
        mask_img, mask = None, np.load(mask_file)
    else:
        mask_img = nib.load(mask_file)
        mask = np.asanyarray(mask_img.dataobj) > 0
    return bold, mask_img, mask, confounds, json.loads(Path(info_file).read_text("utf-8"))


def _stories_of(design_file: str) -> str:
    return "+".join(read_design_sidecar(design_file).get("stories") or [])


def _estimator(spec, bands: dict | None, backend: str, seed: int, *, banded: bool = False):
    """The model the CLI fits on each training split of this variant.

    Banded ridge when asked for (or ``banded``: bands of several extractors); the
    joint fit (:class:`~bids_app.encoding.EncodingJointRidgeCV`) when the design
    holds nuisance bands; plain ridge otherwise. As in the CLI, no intercept is
    fitted: the BOLD is z-scored per run.
    """
    encoding = spec.encoding
    common = {"alphas": tuple(float(a) for a in encoding.alphas), "cv": encoding.inner_folds,
              "backend": backend, "n_targets_batch": encoding.n_targets_batch or None,
              "fit_intercept": False}
    if bands and (encoding.banded or banded):
        return EncodingBandedRidgeCV(bands={k: tuple(v) for k, v in bands.items()},
                                     n_iter=encoding.banded_iterations, random_state=seed,
                                     **common)
    nuisance = [name for name in spec.features.nuisance if name in (bands or {})]
    if nuisance:
        return joint_estimator(bands, nuisance, common["alphas"], backend).set_params(**common)
    return EncodingRidgeCV(**common)
