"""Checks and inputs shared by a participant run and its ``--dry-run``.

Both check the folders and the spec the same way, read the filters and the
derivative datasets the same way, choose the same device and report failed
participants with the same exit codes; :mod:`bids_app.run` and
:mod:`bids_app.dry_run` import these from here (neither imports the other's
internals).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from stimuli_models.errors import StimuliModelsError
from stimuli_models.models import resolve_torch_device

from .config import ExperimentSpec, load_spec, with_settings
from .encoding.backend import choose_backend
from .errors import (
    EXIT_FAILED,
    EXIT_OK,
    NoMatchError,
    ResourceError,
    UsageError,
    from_library_error,
)
from .io.bids import (
    check_bids_folder,
    entity_values,
    make_derivative_layouts,
    parse_derivatives,
)
from .spec_paths import check_spec_paths


def spec_overrides(options) -> dict:
    """Settings of the spec that command-line options replace (``{"bold.dummy_scans": 2}``)."""
    overrides = {}
    if options.dummy_scans is not None:
        overrides["bold.dummy_scans"] = options.dummy_scans
    return overrides


def load_run_spec(options) -> ExperimentSpec:
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


def check_task_ids(layout, options) -> None:
    """Refuse ``--task-id`` values the dataset does not have (NoMatchError)."""
    if not options.task_id:
        return

    tasks = entity_values(layout, "task")
    unknown = [t for t in options.task_id if t not in tasks]
    if unknown:
        raise NoMatchError(f"task(s) {', '.join(unknown)} not found in '{options.bids_dir}'; "
                           f"available: {', '.join(tasks) or 'none'}.")


def check_paths(options, *, create: bool = True) -> None:
    """Refuse bad input/output/work locations before anything is written.

    With ``create=False`` (``--dry-run``) OUTPUT_DIR is not created; its nearest
    existing folder must be writable.
    """
    bids_dir, output_dir = options.bids_dir, options.output_dir
    check_bids_folder(bids_dir)
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


def load_filters(path: Path | None) -> dict:
    """The queries of ``--bids-filter-file`` (``{}`` without one); UsageError if unreadable."""
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
    paths = parse_derivatives(options.derivatives)
    if "hcp" in paths:
        if spec.inputs.layout != "hcp":
            raise UsageError("-d hcp=PATH needs an [inputs] section with layout = 'hcp' and "
                             "path patterns in the experiment spec (see the README).")
        spec = with_settings(spec, {"inputs.root": str(paths["hcp"])})
    return spec, make_derivative_layouts(paths, database_dir=options.bids_database_dir)


def resolve_device(options, spec) -> tuple[str, str]:
    """Torch device and himalaya backend from ``--device`` and the spec (ResourceError)."""
    try:
        device = resolve_torch_device(options.device)
    except StimuliModelsError as exc:  # --device cuda without a GPU
        raise from_library_error(exc) from None
    return device, choose_backend(spec.encoding.backend, options.device)


def report_failures(failures: dict, n_total: int) -> int:
    """Print each failed participant; the exit code of the run (0 when none failed)."""
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
