"""Errors raised by :mod:`stimuli_models`.

Every error a user can cause is raised as a subclass of :class:`StimuliModelsError`
with a one-sentence message that names the offending file or value and the fix.
Applications built on this library (such as the brainenc BIDS-App) map these
classes onto their own exit codes.
"""

from __future__ import annotations


class StimuliModelsError(Exception):
    """Base class of all errors a user of :mod:`stimuli_models` can cause."""


class ModelNotAvailableError(StimuliModelsError):
    """A model cannot be found locally (and downloading was not allowed)."""


class UnsafeModelError(StimuliModelsError):
    """A model asks for something that is refused unless the user opts in."""


class InvalidModelError(StimuliModelsError):
    """A model directory is incomplete or unreadable."""


class TaskDataError(StimuliModelsError):
    """NLU task data are missing, malformed or unusable."""


class SettingsError(StimuliModelsError, ValueError):
    """A setting has a value outside of what is accepted."""


def check_choice(name: str, value: object, choices: set | list | tuple) -> None:
    """Raise :class:`SettingsError` when ``value`` is not one of ``choices``.

    Parameters
    ----------
    name : str
        Name of the parameter, as the user wrote it.
    value : object
        The value given.
    choices : collection
        Accepted values.
    """
    if value not in choices:
        shown = "{" + ", ".join(repr(c) for c in sorted(choices, key=str)) + "}"
        raise SettingsError(f"'{name}' must be one of {shown}; got {value!r}.")
