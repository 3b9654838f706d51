"""The string-keyed table of tuning methods (as peft's ``PEFT_TYPE_TO_CONFIG_MAPPING``).

Every built-in method module is imported here and listed in :data:`METHODS`; the
method modules import only :mod:`~stimuli_models.tuning.base` (the abstract class)
and never this table, so the registry has no import cycle. A method written outside
this package is added with :func:`register_method`.
"""

from __future__ import annotations

from ..errors import SettingsError
from .adapter import Adapter
from .base import TuningMethod
from .bitfit import BitFit
from .frozen import Frozen
from .full import Full
from .ia3 import IA3
from .lora import LoRA
from .partial import Partial
from .prefix import PrefixTuning
from .prompt import PromptTuning
from .ptuning_v2 import PTuningV2
from .scratch import Scratch

__all__ = ["METHODS", "get_method", "register_method", "registered_methods"]

#: Method name -> class, for every method :func:`get_method` knows.
METHODS: dict[str, type[TuningMethod]] = {
    cls.name: cls
    for cls in (Frozen, Full, Partial, BitFit, Scratch, LoRA, IA3, Adapter, PromptTuning,
                PrefixTuning, PTuningV2)
}


def register_method(name: str):
    """Class decorator adding a :class:`TuningMethod` subclass to :data:`METHODS` as ``name``.

    Parameters
    ----------
    name : str
        The method's name in experiment specs (``[[variants]] method = name``).

    Raises
    ------
    ValueError
        When another class is already registered under ``name``.
    """

    def decorator(cls: type[TuningMethod]) -> type[TuningMethod]:
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"a tuning method named {name!r} is already registered")
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorator


def registered_methods() -> tuple[str, ...]:
    """Names of every registered method, sorted."""
    return tuple(sorted(METHODS))


def get_method(name: str, **settings) -> TuningMethod:
    """Instantiate the method registered as ``name`` with its settings.

    Parameters
    ----------
    name : str
        A name of :data:`METHODS` (``_`` is read as ``-``: ``ptuning_v2``).
    **settings
        The method's settings (its ``settings_schema``).

    Returns
    -------
    TuningMethod

    Raises
    ------
    SettingsError
        When ``name`` is unknown or a setting is invalid.
    """
    name = name.replace("_", "-") if isinstance(name, str) else name
    if name not in METHODS:
        raise SettingsError(
            "'method' must be one of {" + ", ".join(repr(m) for m in registered_methods())
            + f"}}; got {name!r}."
        )
    return METHODS[name](**settings)
