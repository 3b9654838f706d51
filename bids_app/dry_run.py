"""``--dry-run``: check every input and print the plan, computing and writing nothing.

The spec, the BIDS dataset, the derivatives, every participant's runs and word
annotations, the models and the task data are read and checked exactly as a
run reads them, with the same errors and exit codes. The plan then lists the
participants, their runs, the variants and which tuned models and story
features OUTPUT_DIR already holds, and estimates the time of tuning,
featurization and encoding on the chosen device from measured costs (see
:mod:`bids_app.dry_run_costs`). Run files that the checks need are written to a
temporary folder that is removed; OUTPUT_DIR and the work directory are not
created or touched.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import click

from stimuli_models.errors import StimuliModelsError
from stimuli_models.features import FeatureSettings, resolve_dtype
from stimuli_models.models import check_model_dir
from stimuli_models.story_features import Story, feature_key
from stimuli_models.tuning import get_method

from .dry_run_costs import (
    calibrate_step,
    calibrate_voxels,
    calibrate_words,
    count_voxels,
    format_seconds,
    recorded_step_cost,
)
from .errors import EXIT_OK, NoMatchError, from_library_error
from .io.bids import check_dataset, make_layout, select_subjects
from .plan import make_plan
from .run_inputs import (
    check_paths,
    check_task_ids,
    derivative_layouts,
    load_filters,
    load_run_spec,
    report_failures,
    resolve_device,
)
from .tuning import cached_record, tuning_key
from .variants import plan_variants


def run_dry(options) -> int:
    """Check the inputs of the chosen level and print its plan; return the exit code.

    Parameters
    ----------
    options : RunOptions
        Parsed command line (``dry_run`` set).

    Returns
    -------
    int
        The exit code a real run would give for the problems found (0 when none).
    """
    check_paths(options, create=False)
    spec = load_run_spec(options)
    if options.analysis_level == "group":
        return _group_plan(options)
    with tempfile.TemporaryDirectory(prefix="brainenc-dry-run-") as scratch:
        return _participant_plan(options, spec, Path(scratch))


def _group_plan(options) -> int:
    out = options.output_dir
    if not (out / "dataset_description.json").exists():
        raise NoMatchError(f"'{out}' holds no brainenc outputs; run the participant level "
                           "first.")
    subjects = sorted(p.name for p in out.glob("sub-*") if p.is_dir())
    if options.participant_label:
        subjects = [s for s in subjects if s[4:] in options.participant_label]
    if not subjects:
        raise NoMatchError(f"no participant outputs in '{out}' match --participant-label.")
    maps = sorted(out.glob("sub-*/**/*_stat-r_*statmap*"))
    click.echo("brainenc dry run (group): nothing was computed or written.")
    click.echo(f"Participants with outputs ({len(subjects)}): {', '.join(subjects)}")
    click.echo(f"Correlation maps to combine: {len(maps)}")
    return EXIT_OK


def _participant_plan(options, spec, scratch: Path) -> int:

    device, backend = resolve_device(options, spec)
    _use_threads(options)
    if not options.skip_bids_validation:
        check_dataset(options.bids_dir)
    extractors, variants = plan_variants(spec)  # resolves and checks every model
    filters = load_filters(options.bids_filter_file)
    layout = make_layout(options.bids_dir, database_dir=options.bids_database_dir)
    spec, derivatives = derivative_layouts(options, spec)
    subjects = select_subjects(layout, options.participant_label)
    check_task_ids(layout, options)
    # the story tables a run writes to OUTPUT_DIR go to the temporary folder
    plan = make_plan(layout, subjects, spec, work_dir=scratch, output_dir=scratch / "out",
                     tasks=options.task_id or None, sessions=options.session_id or None,
                     filters=filters.get("bold"), derivatives=derivatives,
                     space=options.space, bids_dir=options.bids_dir)
    click.echo("brainenc dry run: inputs checked; nothing was computed or written.")
    click.echo(f"Spec: {spec.source_file or 'built-in default'}; device {device}, encoding "
               f"backend {backend}")
    _print_subjects(plan)
    if not plan.subjects:
        return report_failures(plan.failures, n_total=len(subjects))
    tuned = _print_variants(options, spec, extractors, variants, plan, device)
    _print_estimate(options, spec, extractors, variants, plan, tuned, device, backend)
    return report_failures(plan.failures, n_total=len(subjects))


def _use_threads(options) -> None:
    """Calibrate with the threads one process of the run would use."""
    import os

    import torch

    nprocs = options.nprocs or os.cpu_count() or 1
    torch.set_num_threads(max(1, options.omp_nthreads or nprocs))


def _feature_settings(spec, device: str, layers=None):

    settings = spec.features.settings()
    return FeatureSettings(**{**settings.to_dict(),
                              "layers": tuple(layers) if layers else settings.layers,
                              "dtype": resolve_dtype(settings.dtype, device)})


def _print_subjects(plan) -> None:
    click.echo(f"Participants ({len(plan.subjects)}):")
    for sub in plan.subjects:
        volumes = sum(r.n_volumes for r in sub.runs)
        names = ", ".join(r.name for r in sub.runs)
        click.echo(f"  sub-{sub.subject}: {len(sub.runs)} runs, {volumes} volumes ({names})")
        for warning in sub.warnings:
            click.echo(f"    warning: {warning}")
    for subject, error in sorted(plan.failures.items()):
        click.echo(f"  sub-{subject}: will fail: {error}")
    click.echo(f"Stories ({len(plan.story_names)}): {', '.join(plan.story_names)}")


def _feature_paths(extractor, fingerprint: str, spec, stories, output_dir: Path, device: str):

    settings = _feature_settings(spec, device, extractor.layers)
    cache = Path(output_dir) / "stimuli" / "features"
    return [cache / f"{feature_key(fingerprint, settings, s)[:24]}.npy" for s in stories]


def _print_variants(options, spec, extractors, variants, plan, device) -> dict:
    """Print each extractor's tuning and feature cache state; return its details."""
    training = dataclasses.asdict(spec.training)
    stories = [Story.from_json(p) for p in plan.story_files]
    layers = {}
    for variant in variants:
        layers.setdefault(variant.extractor.label, []).append(variant.label)
    click.echo(f"Variants ({len(variants)}), by tuned model ({len(extractors)}):")
    details = {}
    for extractor in extractors:
        method = get_method(extractor.method, **extractor.settings)
        try:  # reads and checks the task data
            key, task, model_hash = tuning_key(extractor, seed=options.random_seed,
                                               training=training)
        except StimuliModelsError as exc:
            raise from_library_error(exc) from None
        trains = method.needs_task
        untrained = bool(extractor.settings.get("untrained"))  # a control: no training steps
        cached = cached_record(options.output_dir, extractor.label, key) is not None
        paths = _feature_paths(extractor, key if trains else model_hash, spec, stories,
                               options.output_dir, device)
        n_cached = sum(p.exists() for p in paths)
        if not trains:
            state = "pretrained, not trained"
        elif cached:
            state = "tuned model cached"
        elif untrained:
            state = ("untrained control (" + (f"initialised for '{task.name}'" if task else
                                              "the same for every task") + ", not trained)")
        else:
            state = f"to train on '{task.name}' ({len(task.train)} train / {len(task.dev)} dev)"
        click.echo(f"  {extractor.label} [{method.name}]: {state}; features "
                   f"{n_cached}/{len(paths)} stories cached; variants "
                   f"{', '.join(layers.get(extractor.label, []))}")
        details[extractor.label] = {"train": trains and not cached and not untrained,
                                    "task": task,
                                    "features_missing": len(paths) - n_cached}
    return details


def _steps(task, training) -> int:
    batches = math.ceil(len(task.train) / training.batch_size)
    by_epochs = math.ceil(training.epochs * batches / max(training.grad_accumulation, 1))
    caps = [s for s in (training.max_steps, by_epochs if training.epochs else 0) if s > 0]
    steps = min(caps) if caps else training.max_steps
    evaluations = steps // max(training.eval_every, 1) + 1
    # a dev evaluation is forward passes only: about a third of a step per batch
    return steps + math.ceil(evaluations * math.ceil(len(task.dev) / training.batch_size) / 3)


def _typical_tokens(model_dir: str, task, max_length: int) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = [" ".join(ex["tokens"]) if "tokens" in ex else
             " ".join(str(ex.get(k, "")) for k in ("text", "text_pair", "question", "context"))
             for ex in task.train[:200]]
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts] or [max_length]
    return int(min(max_length, max(8, round(float(sum(lengths)) / len(lengths)))))


def _print_estimate(options, spec, extractors, variants, plan, details, device, backend):

    click.echo(f"Estimated time on {device} (measured costs; sources in brackets):")
    training = spec.training
    to_train = [e for e in extractors if details[e.label]["train"]]
    total = 0.0
    if to_train:
        first = to_train[0]
        cost = recorded_step_cost(options.output_dir) or calibrate_step(
            first.model_dir, batch_size=training.batch_size, device=device,
            n_tokens=_typical_tokens(first.model_dir, details[first.label]["task"],
                                     training.max_length),
            trust_remote_code=first.model.trust_remote_code)
        steps = sum(_steps(details[e.label]["task"], training) for e in to_train)
        seconds = steps * cost.seconds
        total += seconds
        click.echo(f"  tuning: {len(to_train)} model(s), about {steps} step-equivalents x "
                   f"{cost.seconds:.3f} s = {format_seconds(seconds)} [{cost.source}]")
    else:
        click.echo("  tuning: nothing to train")
    stories = [Story.from_json(p) for p in plan.story_files]
    words = sum(len(s.words) for s in stories)
    n_missing = sum(details[e.label]["features_missing"] for e in extractors)
    if n_missing:
        first = extractors[0]
        settings = _feature_settings(spec, device, first.layers)
        cost = calibrate_words(first.model_dir, max(stories, key=lambda s: len(s.words)),
                               settings, device=device,
                               allow_pickle=first.model.allow_pickle,
                               trust_remote_code=first.model.trust_remote_code)
        share = n_missing / max(len(extractors) * len(stories), 1)
        seconds = len(extractors) * words * share * cost.seconds
        total += seconds
        click.echo(f"  featurization: {n_missing} story feature file(s), about "
                   f"{round(words * share * len(extractors))} words x {cost.seconds * 1e3:.1f} ms"
                   f" = {format_seconds(seconds)} [{cost.source}]")
    else:
        click.echo("  featurization: every story's features are cached")
    first_run = plan.subjects[0].runs[0]
    voxel_cost, fixed = calibrate_voxels([r.n_volumes for r in plan.subjects[0].runs],
                                         _n_features(extractors[0]), spec, backend)
    n_voxels, how = count_voxels(first_run)  # taken for every participant
    fits = len(variants) * len(plan.subjects)
    seconds = fits * (fixed + n_voxels * voxel_cost.seconds)
    total += seconds
    click.echo(f"  encoding: {fits} fit(s) ({len(variants)} variant(s) x "
               f"{len(plan.subjects)} participant(s)) of {n_voxels} voxels ({how} of "
               f"{first_run.name}) x {voxel_cost.seconds * 1e3:.3f} ms = "
               f"{format_seconds(seconds)} [{voxel_cost.source}]")
    click.echo(f"  total: about {format_seconds(total)} of compute, before parallel processes "
               f"(--nprocs) and not counting BOLD preprocessing")


def _n_features(extractor) -> int:

    config = check_model_dir(extractor.model_dir, allow_pickle=extractor.model.allow_pickle,
                             trust_remote_code=extractor.model.trust_remote_code)
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
    return int(get("hidden_size") or get("n_embd") or get("d_model") or 768)
