"""Labels of the spec's ``[[variants]]`` lines and the checks that only need labels.

A leaf module: the spec (:mod:`bids_app.config`) checks ``bands_with`` with it,
and :mod:`bids_app.variants` names extractors and variants with it, so neither
imports the other's internals.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import UsageError

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def alnum(text: str) -> str:
    """``text`` without anything but ASCII letters and digits."""
    return _NON_ALNUM.sub("", text)


def settings_tag(settings: dict) -> str:
    """Short alphanumeric tag of method settings.

    ``{'k': 2}`` gives ``'k2'``; keys with underscores are cut to their initials
    (``{'num_virtual_tokens': 4}`` gives ``'nvt4'``).

    Examples
    --------
    >>> settings_tag({"num_virtual_tokens": 4, "k": 2})
    'k2nvt4'
    """
    parts = []
    for key in sorted(settings):
        value = settings[key]
        if isinstance(value, (list, tuple)):
            value = "".join(str(v) for v in value)
        short = "".join(w[0] for w in key.split("_")) if "_" in key else key
        parts.append(f"{short}{value}")
    return alnum("".join(parts))


def entry_label(entry: Any) -> str:
    """Label of a ``[[variants]]`` line: its ``label``, or model, method, settings and task.

    This names the extractor (``OUTPUT_DIR/models/<label>``), prefixes the labels of its
    variants and is what ``bands_with`` refers to.

    Parameters
    ----------
    entry : VariantEntry
        One ``[[variants]]`` line of the spec.
    """
    return entry.label or alnum(entry.model + entry.method + settings_tag(entry.settings)
                                + entry.task)


def check_bands_with(variants: list) -> None:
    """Check that ``bands_with`` of each variant names other variants, once each.

    Parameters
    ----------
    variants : list of VariantEntry
        The spec's ``[[variants]]`` lines.

    Raises
    ------
    UsageError
        Naming the offending ``variants[i].bands_with`` and the known labels.
    """
    labels = [entry_label(v) for v in variants]
    shown = "{" + ", ".join(repr(label) for label in sorted(set(labels))) + "}"
    for i, entry in enumerate(variants):
        where, names = f"variants[{i}].bands_with", entry.bands_with
        if not all(isinstance(name, str) for name in names):
            raise UsageError(f"'{where}' must be a list of variant labels, e.g. "
                             f"[{labels[0]!r}]; got {names!r}.")
        for name in names:
            if name not in labels:
                raise UsageError(f"'{where}' names {name!r}, which is not a variant; known: "
                                 f"{shown}.")
            if name == labels[i]:
                raise UsageError(f"'{where}' names the variant itself ({name!r}); name other "
                                 f"variants; known: {shown}.")
            if names.count(name) > 1:
                raise UsageError(f"'{where}' names {name!r} more than once; name each "
                                 "variant once.")
