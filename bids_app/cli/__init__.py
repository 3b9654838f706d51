"""Command line of the BIDS-App (click): parse, check, hand over to :mod:`bids_app.run`.

Only click and the standard library are imported here, so ``brainenc --help``
answers at once; the pipeline's heavy imports happen in :func:`bids_app.run.execute`.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from .._version import __version__
from ..errors import (
    EXIT_CODES,
    EXIT_DATASET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    BrainencError,
    disk_error,
)
from ..interrupt import sigterm_as_interrupt
from .options import SEED_RANGE, RunOptions, normalise_argv, parse_labels, parse_memory
from .spec_help import OPTION_HELP

_EPILOG = "Exit codes:\n\n" + "\n\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _path(_ctx, _param, value):
    if value is not None and not str(value).strip():
        raise click.BadParameter("an empty path was given; name a file or folder.")
    return Path(value).expanduser().absolute() if value else None


@click.command(context_settings=CONTEXT, epilog=_EPILOG)
@click.argument("bids_dir", type=click.Path(file_okay=True, dir_okay=True), callback=_path)
@click.argument("output_dir", type=click.Path(), callback=_path)
@click.argument("analysis_level", type=click.Choice(["participant", "group"]))
@click.option("--participant-label", "--participant_label", "participant_label", multiple=True,
              help="Participants to process (with or without 'sub-'); several values, space or "
                   "comma separated. Default: all.")
@click.option("--task-id", "--task_id", "task_id", multiple=True,
              help="Only runs of these tasks.")
@click.option("--session-id", "--session_id", "session_id", multiple=True,
              help="Only runs of these sessions.")
@click.option("-d", "--derivatives", "derivatives", multiple=True, metavar="NAME=PATH",
              help="Preprocessed inputs (e.g. fmriprep=/data/derivatives/fmriprep).")
@click.option("--space", default=None, help="Template space of preprocessed BOLD to use.")
@click.option("--bids-filter-file", "--bids_filter_file", "bids_filter_file",
              type=click.Path(), callback=_path,
              help="JSON of pybids filters (fMRIPrep's format), "
                   "e.g. {\"bold\": {\"run\": [1, 2]}}.")
@click.option("--bids-database-dir", "--bids_database_dir", "bids_database_dir",
              type=click.Path(), callback=_path, help="Save/reuse the pybids index here.")
@click.option("--config-file", "--config_file", "config_file", type=click.Path(), callback=_path,
              help="Experiment spec (TOML). Default: the built-in spec.")
@click.option("-w", "--work-dir", "--work_dir", "work_dir", type=click.Path(), callback=_path,
              help="Working directory (reused on reruns). Default: ./work")
@click.option("--nprocs", "--nthreads", "--n_cpus", "--n-cpus", "nprocs",
              type=click.IntRange(min=1), default=None,
              help="Maximum number of processes (default: all CPUs).")
@click.option("--omp-nthreads", "--omp_nthreads", "omp_nthreads",
              type=click.IntRange(min=0), default=0,
              help="Threads per process for BLAS/torch (default: nprocs).")
@click.option("--mem", "--mem-mb", "--mem_mb", "mem", default=None,
              help="Memory limit: a number in MB, or with a unit (16G, 16000M).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where models and ridge fits run.")
@click.option("--use-plugin", "--use_plugin", "use_plugin", type=click.Path(), callback=_path,
              help="Nipype plugin settings (YAML): MultiProc, SLURM, SGE, ...")
@click.option("--skip-bids-validation", "--skip_bids_validation", "skip_bids_validation",
              is_flag=True, help="Do not check that the input is a valid BIDS dataset.")
@click.option("--random-seed", "--random_seed", "random_seed", type=SEED_RANGE, default=0,
              show_default=True, help="Seed of every random choice (tuning, permutations).")
@click.option("--dummy-scans", "--dummy_scans", "dummy_scans", type=click.IntRange(min=0),
              default=None, help=OPTION_HELP["--dummy-scans"])
@click.option("--stop-on-first-crash", "--stop_on_first_crash", "stop_on_first_crash",
              is_flag=True, help="Stop at the first failing step instead of finishing others.")
@click.option("--dry-run", "--dry_run", "dry_run", is_flag=True,
              help="Check the spec and every input, print the plan (participants, runs, "
                   "variants, cached models and features) and a time estimate; compute "
                   "and write nothing.")
@click.option("-v", "--verbose", "verbose", count=True,
              help="More messages and the traceback of a failure; -vv adds debug messages "
                   "and warnings.")
@click.version_option(__version__, "--version", prog_name="brainenc",
                      message="%(prog)s v%(version)s")
def command(**kwargs):
    """Voxel-wise encoding models of story-listening fMRI from (tuned) language models.

    BIDS_DIR is the input BIDS dataset, OUTPUT_DIR where the BIDS-Derivatives are written,
    ANALYSIS_LEVEL 'participant' (encoding models per participant) or 'group'.
    """
    mem = kwargs.pop("mem")
    options = RunOptions(**{
        **kwargs,
        "participant_label": parse_labels(kwargs["participant_label"], "sub-"),
        "task_id": parse_labels(kwargs["task_id"], "task-"),
        "session_id": parse_labels(kwargs["session_id"], "ses-"),
        "mem_mb": parse_memory(mem),
    })
    from ..run import execute  # here, not above: --help must not import the pipeline

    return execute(options)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises, never exits).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        One of :data:`bids_app.errors.EXIT_CODES`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any("\x00" in arg for arg in argv):  # no file name or label can hold one
        click.echo("brainenc: error: an argument contains a NUL character; check how brainenc "
                   "is called.", err=True)
        return EXIT_USAGE
    argv = normalise_argv(argv)
    verbose = sum(a.count("v") for a in argv if a.startswith("-v") and set(a[1:]) == {"v"})
    verbose += argv.count("--verbose")
    try:
        with sigterm_as_interrupt():  # kill / scancel / docker stop: stop like Ctrl-C
            code = command.main(args=argv, prog_name="brainenc", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        click.echo(f"brainenc: error: {exc.format_message()}", err=True)
        click.echo("Try 'brainenc --help' for the options.", err=True)
        code = EXIT_USAGE
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        if isinstance(exc.__cause__, EOFError):  # click turns an EOFError into Abort
            if verbose:
                traceback.print_exception(exc.__cause__)
            click.echo("brainenc: error: a file ended before its end (truncated or corrupt: "
                       f"{exc.__cause__ or 'EOFError'}); rerun with -v to see which, then "
                       "rewrite or remove it.", err=True)
            code = EXIT_DATASET
        else:
            click.echo("brainenc: interrupted; rerun the same command to resume.", err=True)
            code = EXIT_INTERRUPTED
    except BrainencError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"brainenc: error: {exc.message}", err=True)
        code = exc.exit_code
    except OSError as exc:  # a full or read-only disk outside the guarded writers
        error = disk_error(exc.errno, exc.filename)
        if error is None:
            code = _internal_error(exc, verbose)
        else:
            if verbose:
                traceback.print_exc()
            click.echo(f"brainenc: error: {error.message}", err=True)
            code = error.exit_code
    except Exception as exc:  # a bug, not a user error: short message, traceback with -v
        code = _internal_error(exc, verbose)
    return int(code or 0)


def _internal_error(exc: Exception, verbose: int) -> int:
    if verbose:
        traceback.print_exc()
    click.echo(f"brainenc: internal error: {type(exc).__name__}: {exc} (rerun with -v for "
               "the traceback and report it).", err=True)
    return EXIT_FAILED


def entrypoint() -> None:
    """The ``brainenc`` console script."""
    sys.exit(main())
