"""Exit codes and the errors a user of the BIDS-App can cause.

Every error carries one sentence naming the offending file or value and how to
fix it, and an exit code from :data:`EXIT_CODES`. The command-line entry point
prints the message (without a traceback unless ``-v`` is given) and exits with
that code.
"""

from __future__ import annotations

import errno
import os
import re

from stimuli_models import errors as sm_errors

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATASET = 3
EXIT_NO_MATCH = 4
EXIT_RESOURCE = 5
EXIT_INTERRUPTED = 130

#: Documented exit codes (also printed by ``brainenc --help``).
EXIT_CODES = {
    EXIT_OK: "success: every selected participant (or the group stage) completed",
    EXIT_FAILED: "processing failed for at least one participant; the others completed",
    EXIT_USAGE: "usage error: bad command-line option or experiment spec",
    EXIT_DATASET: "the input dataset is not valid or not usable (BIDS, events, images)",
    EXIT_NO_MATCH: "nothing matched the selection (participants, tasks, sessions, spaces)",
    EXIT_RESOURCE: "a resource is unavailable (model, device, writable output, disk space)",
    EXIT_INTERRUPTED: "interrupted by the user (SIGINT/SIGTERM); rerun the command to resume",
}


class BrainencError(Exception):
    """Base class of all errors a user can cause.

    Parameters
    ----------
    message : str
        One sentence naming the file or value and the fix.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(BrainencError):
    """Bad command-line option or experiment specification."""

    exit_code = EXIT_USAGE


class DatasetError(BrainencError):
    """The input dataset (or a file in it) cannot be used."""

    exit_code = EXIT_DATASET


class NoMatchError(BrainencError):
    """The selection (participants, tasks, spaces ...) matched nothing."""

    exit_code = EXIT_NO_MATCH


class ResourceError(BrainencError):
    """A model, device, or writable output location is unavailable."""

    exit_code = EXIT_RESOURCE


class ProcessingError(BrainencError):
    """Processing failed (for some participants or for the group stage)."""

    exit_code = EXIT_FAILED


def from_library_error(exc: sm_errors.StimuliModelsError) -> BrainencError:
    """Translate an error of :mod:`stimuli_models` into a BIDS-App error.

    Parameters
    ----------
    exc : StimuliModelsError
        The library error.

    Returns
    -------
    BrainencError
        The error with the matching exit code.
    """
    if isinstance(exc, (sm_errors.ModelNotAvailableError, sm_errors.InvalidModelError)):
        return ResourceError(str(exc))
    if isinstance(exc, sm_errors.UnsafeModelError):
        return UsageError(str(exc))
    if isinstance(exc, sm_errors.TaskDataError):
        return DatasetError(str(exc))
    return UsageError(str(exc))


#: ``errno`` values meaning that a folder cannot take more data (full, over quota, read-only).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\] ([^:\]]+?)(?:: '([^']*)')?\s*$")


def disk_error(code: int | None, filename: str | None = None) -> ResourceError | None:
    """The error for a write that failed because the disk is full or read-only.

    Parameters
    ----------
    code : int or None
        The ``errno`` of the failure.
    filename : str, optional
        The file being written.

    Returns
    -------
    ResourceError or None
        Naming the folder and the fix; None when ``code`` is not a disk-space error.
    """
    if code not in DISK_ERRNOS:
        return None
    reason = os.strerror(code)
    if not filename:
        return ResourceError(f"a write failed ({reason}); free disk space or choose another "
                             "OUTPUT_DIR or -w/--work-dir, then rerun the same command to resume.")
    folder = os.path.dirname(os.path.abspath(os.fspath(filename)))
    return ResourceError(
        f"cannot write in the folder '{folder}' ({reason}, writing "
        f"'{os.path.basename(os.fspath(filename))}'); free disk space there or choose another "
        "OUTPUT_DIR or -w/--work-dir, then rerun the same command to resume.")


def disk_error_from_text(message: str) -> ResourceError | None:
    """:func:`disk_error` from an ``OSError``'s text (``[Errno 28] No space ...: 'file'``)."""
    match = _ERRNO_TEXT.search(message.strip())
    if match is None:
        return None
    return disk_error(int(match.group(1)), match.group(3))
