"""Import every method module so that each registers itself."""

from . import (  # noqa: F401
    adapter,
    bitfit,
    frozen,
    full,
    ia3,
    lora,
    partial,
    prefix,
    prompt,
    ptuning_v2,
    scratch,
)
