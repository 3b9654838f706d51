"""Tuning methods, registered by name (see :mod:`stimuli_models.tuning.base`)."""

from .base import (  # noqa: F401
    TuningMethod,
    TuningResult,
    get_method,
    register_method,
    registered_methods,
)
