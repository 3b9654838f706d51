"""Exit codes and the errors a user of the BIDS-App can cause.

Every error carries one sentence naming the offending file or value and how to
fix it, and an exit code from :data:`EXIT_CODES`. The command-line entry point
prints the message (without a traceback unless ``-v`` is given) and exits with
that code.
"""

from __future__ import annotations

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
