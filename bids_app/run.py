"""Run the participant or group level from parsed options; return an exit code."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from stimuli_models.cache import remove_stale_temporaries

from .config import SAVED_SPEC_NAME, load_spec, save_spec
from .dry_run import run_dry
from .encoding.design_checks import identical_warnings
from .errors import (
    EXIT_OK,
    NoMatchError,
    UsageError,
)
from .group.provenance import names_variants
from .group.run import run_group, saved_spec
from .interrupt import clean_after_interrupt, stop_if_interrupted
from .io.bids import check_dataset, make_layout, select_subjects
from .io.derivatives import update_descriptions, write_dataset_description
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
from .variants import plan_variants
from .workflows.base import init_brainenc_wf
from .workflows.failures import FailedSteps, takes_callback
from .workflows.republish import forget_vanished

LOGGER = logging.getLogger("brainenc")


def _environment() -> None:
    """No telemetry, no version checks, no hub look-ups unless a model opts in."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    os.environ.setdefault("NO_ET", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(format="%(asctime)s [%(name)s] %(message)s", datefmt="%H:%M:%S",
                        level=level)
    LOGGER.setLevel(logging.INFO)
    import warnings

    if verbose < 2:
        warnings.filterwarnings("ignore")


def execute(options) -> int:
    """Run the level chosen on the command line.

    Parameters
    ----------
    options : RunOptions
        Parsed command line.

    Returns
    -------
    int
        Exit code.
    """
    _environment()
    _setup_logging(options.verbose)
    if getattr(options, "dry_run", False):  # checks and plan only (bids_app.dry_run)

        return run_dry(options)
    check_paths(options)

    if remove_stale_temporaries(options.output_dir):  # left by a killed run
        LOGGER.info("removed temporary files of an interrupted run from '%s'", options.output_dir)
    spec = load_run_spec(options)
    if options.analysis_level == "group":
        return run_group_level(options, spec)
    return run_participant_level(options, spec)


def run_participant_level(options, spec) -> int:
    """Build and run the participant workflow; returns the exit code."""
    started = time.time()
    device, backend = resolve_device(options, spec)  # before any slow step: fail early
    description = check_dataset(options.bids_dir) if not options.skip_bids_validation else {}
    extractors, variants = plan_variants(spec)

    for warning in identical_warnings(variants):
        LOGGER.warning(warning)
    filters = load_filters(options.bids_filter_file)
    layout = make_layout(options.bids_dir, database_dir=options.bids_database_dir)
    spec, derivatives = derivative_layouts(options, spec)
    subjects = select_subjects(layout, options.participant_label)
    check_task_ids(layout, options)
    work_dir = (options.work_dir or Path.cwd() / "work").absolute()
    work_dir.mkdir(parents=True, exist_ok=True)
    output_dir = options.output_dir
    plan = make_plan(layout, subjects, spec, work_dir=work_dir, output_dir=output_dir,
                     tasks=options.task_id or None, sessions=options.session_id or None,
                     filters=filters.get("bold"), derivatives=derivatives,
                     space=options.space, bids_dir=options.bids_dir)
    if not plan.subjects:
        return report_failures(plan.failures, n_total=len(subjects))
    write_dataset_description(output_dir, options.bids_dir, description)
    update_descriptions(output_dir, {v.label: v.description() for v in variants})
    spec_file = work_dir / "brainenc_inputs" / "spec.toml"
    save_spec(spec, spec_file)
    nprocs = options.nprocs or os.cpu_count() or 1
    omp = options.omp_nthreads or max(1, nprocs // max(1, min(nprocs, len(plan.subjects))))
    workflow = init_brainenc_wf(
        plan=plan, extractors=extractors, variants=variants, spec=spec,
        spec_file=str(spec_file), output_dir=str(output_dir), bids_dir=str(options.bids_dir),
        work_dir=str(work_dir), seed=options.random_seed, device=device, backend=backend,
        omp_nthreads=omp,
        # --mem shared by the fits that can run at once; the solver sizes voxel batches from it
        mem_gb_per_fit=(options.mem_mb / 1024.0 / max(1, nprocs // max(omp, 1))
                        if options.mem_mb else 2.0))
    node_failures = run_workflow(workflow, options, work_dir, nprocs)
    failures = dict(plan.failures)
    for subject, error in node_failures.items():
        failures.setdefault(subject, error)
    shared = node_failures.get("")
    if shared is not None:
        raise shared
    LOGGER.info("participant level finished in %.0f s", time.time() - started)
    if len(failures) < len(subjects):  # the saved spec describes maps that exist
        save_spec(spec, output_dir / SAVED_SPEC_NAME)  # same bytes on every rerun of a command
        save_spec(spec, output_dir / "logs" / f"spec-{time.strftime('%Y%m%d-%H%M%S')}.toml")
    return report_failures(failures, n_total=len(subjects))


def run_workflow(workflow, options, work_dir: Path, nprocs: int) -> dict:
    """Run a nipype workflow; return ``{subject: error}`` for failed nodes ('' = shared).

    Failures are read from the records the steps leave in their node folders
    (:class:`~bids_app.workflows.failures.FailedSteps`), never from crash files.
    """
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    # nipype's own crash reports (for -v and for steps that are not brainenc interfaces)
    # go to one fresh folder per run; failures themselves are read from step records
    (work_dir / "crash").mkdir(parents=True, exist_ok=True)
    crash_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"),
                                      dir=work_dir / "crash"))
    crash_dir.rmdir()  # nipype creates it when a node fails
    nipype_config.update_config({
        "execution": {"crashdump_dir": str(crash_dir), "crashfile_format": "txt",
                      "stop_on_first_crash": options.stop_on_first_crash,
                      "remove_unnecessary_outputs": False, "poll_sleep_duration": 0.1,
                      "check_version": False, "use_relative_paths": False,
                      # reruns reuse finished nodes when their input files have the same
                      # content, even if an upstream step rewrote them
                      "hash_method": "content"},
        # without -v, failed nodes are summarised by brainenc (no nipype tracebacks)
        "logging": {"workflow_level": "INFO" if options.verbose else "CRITICAL",
                    "interface_level": "INFO" if options.verbose else "WARNING",
                    "utils_level": "WARNING", "log_to_file": False},
        "monitoring": {"enabled": False},
    })
    nipype_logging.update_logging(nipype_config)
    _apply_config(workflow, nipype_config)
    _share_logging_with_workers(work_dir, nipype_config)
    for name in ("nipype.workflow", "nipype.interface", "nipype.utils"):
        logging.getLogger(name).propagate = False
    plugin, plugin_args = _plugin(options, nprocs)
    failed = FailedSteps()
    if plugin in ("Linear", "MultiProc"):  # stop at once on Ctrl-C / SIGTERM
        plugin_args = {**plugin_args, "status_callback": failed.chain(stop_if_interrupted)}
    elif takes_callback(plugin):  # graph-submission plugins take no callback
        plugin_args = {**plugin_args, "status_callback": failed}
    forget_vanished(work_dir, workflow.name)
    try:
        workflow.run(plugin=plugin, plugin_args=plugin_args)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (see bids_app.interrupt)
        clean_after_interrupt(options.output_dir)
        raise
    except RuntimeError:
        if not failed.folders and not crash_dir.exists():  # failed before any step ran
            raise
        if not failed.folders:  # a plugin without callbacks: the steps' records tell
            failed.scan(workflow)
    return failed.errors(crash_dir)


def _share_logging_with_workers(work_dir: Path, nipype_config) -> None:
    """Worker processes import nipype afresh: give them the same logging levels.

    nipype reads ``nipype.cfg`` from ``$NIPYPE_CONFIG_DIR`` when it is imported, so
    the levels are written there before the first worker starts.
    """
    folder = work_dir / "nipype_config"
    folder.mkdir(parents=True, exist_ok=True)
    levels = nipype_config._sections["logging"]
    lines = ["[logging]"] + [f"{key} = {levels[key]}" for key in
                             ("workflow_level", "interface_level", "utils_level")]
    (folder / "nipype.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.environ["NIPYPE_CONFIG_DIR"] = str(folder)


def _apply_config(engine, nipype_config) -> None:
    """Give a workflow built earlier (it copied the global config then) the settings now."""
    if engine.config is not None:
        for section in ("execution", "logging", "monitoring"):
            engine.config.setdefault(section, {}).update(nipype_config._sections[section])
    graph = getattr(engine, "_graph", None)
    for child in (graph.nodes() if graph is not None else ()):
        _apply_config(child, nipype_config)


def _plugin(options, nprocs: int):
    if options.use_plugin is not None:
        import yaml

        try:
            settings = yaml.safe_load(options.use_plugin.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read the plugin file '{options.use_plugin}' ({exc}).") \
                from None
        if not isinstance(settings, dict) or "plugin" not in settings:
            raise UsageError(f"the plugin file '{options.use_plugin}' must hold 'plugin:' (and "
                             "optionally 'plugin_args:'), e.g. 'plugin: SLURM'.")
        name, args = settings["plugin"], settings.get("plugin_args") or {}
        _check_plugin(name, args, options.use_plugin)
        if name == "MultiProc":  # the command line's settings unless the file sets them
            args = {**_multiproc_args(options, nprocs), **args}
        return name, args
    if nprocs == 1:
        return "Linear", {}
    return "MultiProc", _multiproc_args(options, nprocs)


def _check_plugin(name, args, path: Path) -> None:
    from nipype.pipeline import plugins

    known = sorted(n[:-len("Plugin")] for n in dir(plugins)
                   if n.endswith("Plugin") and n != "Plugin")
    if not isinstance(name, str) or name not in known:
        raise UsageError(f"'plugin' must be one of {{{', '.join(known)}}}; got '{name}' (in "
                         f"'{path}').")
    if not isinstance(args, dict):
        raise UsageError(f"'plugin_args' in '{path}' must be a mapping of settings, e.g. "
                         "'plugin_args: {n_procs: 8}'.")


def _multiproc_args(options, nprocs: int) -> dict:
    """Return the settings of nipype's MultiProc plugin.

    Nodes that use the GPU declare it (their ``use_gpu`` input); one GPU slot makes
    MultiProc run one of them at a time, as they all use the first visible device.
    """
    # Workers are started by a fork server: forking a process that already runs torch or
    # BLAS thread pools (e.g. when brainenc is called from Python) can deadlock the child.
    args = {"n_procs": nprocs, "raise_insufficient": False, "maxtasksperchild": 1,
            "mp_context": "forkserver", "n_gpu_procs": 1}
    if options.mem_mb:
        args["memory_gb"] = options.mem_mb / 1024.0
    return args


def run_group_level(options, spec) -> int:
    """Run the group stage on OUTPUT_DIR."""
    if not (options.output_dir / "dataset_description.json").exists():
        raise NoMatchError(f"'{options.output_dir}' holds no brainenc outputs; run the "
                           "participant level first.")

    # the maps are checked against the spec naming the variants: --config-file when it
    # does, else the one the last successful participant run saved in OUTPUT_DIR
    given = options.config_file is not None
    current = (spec if given and names_variants(options.config_file)
               else _saved_spec(options.output_dir))
    if not given:
        spec = current or spec
    result = run_group(str(options.output_dir), participants=options.participant_label or None,
                       fdr_alpha=spec.statistics.fdr_alpha, statistics=spec.statistics,
                       seed=options.random_seed, spec=current)
    LOGGER.info("group report: %s", result["report"])
    return EXIT_OK


def _saved_spec(output_dir: Path):
    """Return the spec the participant level saved in ``output_dir`` (None when none is).

    ``OUTPUT_DIR/experiment_spec.toml`` is read first, then the newest copy in
    ``OUTPUT_DIR/logs`` (outputs of versions that saved it only there).
    """
    path = Path(output_dir) / SAVED_SPEC_NAME
    if path.is_file():
        try:
            return load_spec(path)
        except UsageError as exc:
            LOGGER.warning("ignoring the saved spec '%s': %s", path, exc)
    return saved_spec(output_dir)
