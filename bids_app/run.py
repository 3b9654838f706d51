"""Run the participant or group level from parsed options; return an exit code."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from .config import SAVED_SPEC_NAME, ExperimentSpec, load_spec, save_spec, with_settings
from .errors import (
    EXIT_FAILED,
    EXIT_OK,
    NoMatchError,
    ResourceError,
    UsageError,
)
from .interrupt import clean_after_interrupt, stop_if_interrupted
from .spec_paths import check_spec_paths
from .workflows.base import init_brainenc_wf
from .workflows.failures import FailedSteps, takes_callback

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


def check_paths(options, *, create: bool = True) -> None:
    """Refuse bad input/output/work locations before anything is written.

    With ``create=False`` (``--dry-run``) OUTPUT_DIR is not created; its nearest
    existing folder must be writable.
    """
    bids_dir, output_dir = options.bids_dir, options.output_dir
    if not bids_dir.exists():
        raise UsageError(f"the BIDS directory '{bids_dir}' does not exist; check the first "
                         "argument.")
    if not bids_dir.is_dir():
        raise UsageError(f"'{bids_dir}' is not a directory; give the root folder of a BIDS "
                         "dataset.")
    if not os.access(bids_dir, os.R_OK | os.X_OK):
        raise UsageError(f"the BIDS directory '{bids_dir}' is not readable; fix its permissions.")
    resolved_in, resolved_out = bids_dir.resolve(), output_dir.resolve()
    if resolved_out == resolved_in:
        raise UsageError("OUTPUT_DIR must differ from BIDS_DIR (the input dataset is never "
                         "written to); choose another output folder, e.g. "
                         f"'{resolved_in}/derivatives/brainenc'.")
    if resolved_in in resolved_out.parents:
        relative = resolved_out.relative_to(resolved_in)
        if not relative.parts or relative.parts[0] != "derivatives":
            raise UsageError(
                f"OUTPUT_DIR '{output_dir}' is inside BIDS_DIR but not under its derivatives/ "
                f"folder; use '{resolved_in}/derivatives/brainenc' or a folder outside the dataset."
            )
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"OUTPUT_DIR '{output_dir}' exists and is not a directory.")
    _check_folder_options(options, resolved_in, resolved_out)
    if not create:
        existing = next(p for p in (output_dir, *output_dir.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ResourceError(f"cannot write to OUTPUT_DIR '{output_dir}' ('{existing}' is "
                                "not writable); make it writable or choose another folder.")
        return
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".brainenc-write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ResourceError(f"cannot write to OUTPUT_DIR '{output_dir}' ({exc.strerror or exc}); "
                            "make it writable or choose another folder.") from None


def _check_folder_options(options, bids_dir: Path, output_dir: Path) -> None:
    """Refuse a work or database folder that is a file, or a work folder in the input dataset."""
    for flag, folder in (("-w/--work-dir", options.work_dir),
                         ("--bids-database-dir", options.bids_database_dir)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise UsageError(f"{flag} '{folder}' exists and is not a directory; name a folder.")
    given = options.work_dir or Path.cwd() / "work"  # the default: ./work
    work = given.resolve()
    if work == bids_dir or bids_dir in work.parents:
        raise UsageError(f"-w/--work-dir '{given}' is inside BIDS_DIR (the input dataset is "
                         "never written to); choose a folder outside it with -w.")
    if work == output_dir:
        raise UsageError(f"-w/--work-dir '{given}' is OUTPUT_DIR; intermediate files "
                         "would mix with the derivatives: choose another folder, e.g. "
                         f"'{output_dir.parent / 'work'}'.")


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
        from .dry_run import run_dry

        return run_dry(options)
    check_paths(options)
    from stimuli_models.cache import remove_stale_temporaries

    if remove_stale_temporaries(options.output_dir):  # left by a killed run
        LOGGER.info("removed temporary files of an interrupted run from '%s'", options.output_dir)
    spec = spec_for_run(options)
    if options.analysis_level == "group":
        return run_group_level(options, spec)
    return run_participant_level(options, spec)


def spec_overrides(options) -> dict:
    """Settings of the spec that command-line options replace (``{"bold.dummy_scans": 2}``)."""
    overrides = {}
    if options.dummy_scans is not None:
        overrides["bold.dummy_scans"] = options.dummy_scans
    return overrides


def spec_for_run(options) -> ExperimentSpec:
    """The spec of ``--config-file`` with the command line's settings, as a new object.

    Parameters
    ----------
    options : RunOptions
        Parsed command line.

    Returns
    -------
    ExperimentSpec
        A new spec when an option overrides a setting (the loaded one is left
        unchanged), else the loaded spec.

    Raises
    ------
    UsageError
        For a spec that does not load, a spec path that is refused, or an option
        value out of its setting's range.
    """
    spec = load_spec(options.config_file)
    check_spec_paths(spec, roots=[options.bids_dir, options.output_dir,
                                  options.work_dir or Path.cwd() / "work"])
    overrides = spec_overrides(options)
    return with_settings(spec, overrides) if overrides else spec


def _load_filters(path: Path | None) -> dict:
    if path is None:
        return {}
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the BIDS filter file '{path}' ({exc}); it must be JSON "
                         "like {\"bold\": {\"session\": \"1\"}}.") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError(f"the BIDS filter file '{path}' must map query names ('bold', ...) to "
                         "objects of BIDS entities.")
    return data


def derivative_layouts(options, spec) -> tuple[ExperimentSpec, dict]:
    """Index the ``-d NAME=PATH`` datasets; ``-d hcp=PATH`` sets the ``[inputs]`` root.

    Returns
    -------
    spec : ExperimentSpec
        ``spec``, or a new spec whose ``inputs.root`` is the ``-d hcp=PATH`` folder.
    layouts : dict of str to bids.BIDSLayout
        One layout per preprocessed dataset.
    """
    from .io.bids import make_derivative_layouts, parse_derivatives

    paths = parse_derivatives(options.derivatives)
    if "hcp" in paths:
        if spec.inputs.layout != "hcp":
            raise UsageError("-d hcp=PATH needs an [inputs] section with layout = 'hcp' and "
                             "path patterns in the experiment spec (see the README).")
        spec = with_settings(spec, {"inputs.root": str(paths["hcp"])})
    return spec, make_derivative_layouts(paths, database_dir=options.bids_database_dir)


def _resolve_device(options, spec) -> tuple[str, str]:
    """Torch device and himalaya backend from ``--device`` and the spec (ResourceError)."""
    from stimuli_models.errors import StimuliModelsError
    from stimuli_models.models import resolve_torch_device

    from .encoding.backend import choose_backend
    from .errors import from_library_error

    try:
        device = resolve_torch_device(options.device)
    except StimuliModelsError as exc:  # --device cuda without a GPU
        raise from_library_error(exc) from None
    return device, choose_backend(spec.encoding.backend, options.device)


def run_participant_level(options, spec) -> int:
    """Build and run the participant workflow; returns the exit code."""
    from .io.bids import check_dataset, make_layout, select_subjects
    from .io.derivatives import update_descriptions, write_dataset_description
    from .plan import make_plan
    from .variants import plan_variants

    started = time.time()
    device, backend = _resolve_device(options, spec)  # before any slow step: fail early
    description = check_dataset(options.bids_dir) if not options.skip_bids_validation else {}
    extractors, variants = plan_variants(spec)
    from .encoding.design_checks import partial_warnings

    for warning in partial_warnings(variants):
        LOGGER.warning(warning)
    filters = _load_filters(options.bids_filter_file)
    layout = make_layout(options.bids_dir, database_dir=options.bids_database_dir)
    spec, derivatives = derivative_layouts(options, spec)
    subjects = select_subjects(layout, options.participant_label)
    if options.task_id:
        from .io.bids import entity_values

        tasks = entity_values(layout, "task")
        unknown = [t for t in options.task_id if t not in tasks]
        if unknown:
            raise NoMatchError(f"task(s) {', '.join(unknown)} not found in '{options.bids_dir}'; "
                               f"available: {', '.join(tasks) or 'none'}.")
    work_dir = (options.work_dir or Path.cwd() / "work").absolute()
    work_dir.mkdir(parents=True, exist_ok=True)
    output_dir = options.output_dir
    plan = make_plan(layout, subjects, spec, work_dir=work_dir, output_dir=output_dir,
                     tasks=options.task_id or None, sessions=options.session_id or None,
                     filters=filters.get("bold"), derivatives=derivatives,
                     space=options.space, bids_dir=options.bids_dir)
    if not plan.subjects:
        return _report_failures(plan.failures, n_total=len(subjects))
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
    return _report_failures(failures, n_total=len(subjects))


def _report_failures(failures: dict, n_total: int) -> int:
    import click

    if not failures:
        return EXIT_OK
    for subject, error in sorted(failures.items()):
        click.echo(f"brainenc: sub-{subject} failed: {error}", err=True)
    codes = {e.exit_code for e in failures.values()}
    if len(failures) == n_total and len(codes) == 1:
        return codes.pop()
    click.echo(f"brainenc: {len(failures)} of {n_total} participant(s) failed; the others "
               "completed.", err=True)
    return EXIT_FAILED


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
    from .group.run import run_group

    if not (options.output_dir / "dataset_description.json").exists():
        raise NoMatchError(f"'{options.output_dir}' holds no brainenc outputs; run the "
                           "participant level first.")
    from .group.provenance import names_variants

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
    from .group.run import saved_spec

    path = Path(output_dir) / SAVED_SPEC_NAME
    if path.is_file():
        try:
            return load_spec(path)
        except UsageError as exc:
            LOGGER.warning("ignoring the saved spec '%s': %s", path, exc)
    return saved_spec(output_dir)
