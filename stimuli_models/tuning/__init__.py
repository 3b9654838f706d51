"""Tuning methods, listed by name in :mod:`stimuli_models.tuning.registry`."""

from .base import TuningMethod, TuningResult
from .registry import METHODS, get_method, register_method, registered_methods

__all__ = ["METHODS", "TuningMethod", "TuningResult", "get_method", "register_method",
           "registered_methods"]
