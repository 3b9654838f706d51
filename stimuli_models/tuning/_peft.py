"""Helpers of the methods built on :mod:`peft` (LoRA, IA3, prompt and prefix tuning)."""

from __future__ import annotations

from ..errors import SettingsError


def wrap(backbone, config):
    """Wrap a backbone with a peft config as a feature-extraction model.

    Raises
    ------
    SettingsError
        When peft cannot apply the config to this architecture (for instance no
        default target modules are known).
    """
    from peft import get_peft_model

    try:
        return get_peft_model(backbone, config)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SettingsError(f"cannot apply {type(config).__name__} to a "
                            f"{type(backbone).__name__} ({exc}); set 'target_modules' in the "
                            "variant's settings.") from None


def target_list(value):
    """Peft accepts a list of module names (None: its default for the architecture)."""
    return list(value) if value else None


def n_virtual_default(settings: dict) -> int:
    """Soft tokens of a prompt-learning method (checked positive)."""
    n = settings["num_virtual_tokens"]
    if n < 1:
        raise SettingsError(f"'num_virtual_tokens' must be at least 1; got {n}.")
    return n
