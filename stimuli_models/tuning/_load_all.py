"""Import every method module so that each registers itself."""

from . import frozen  # noqa: F401
