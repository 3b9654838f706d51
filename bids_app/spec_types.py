"""Typed settings: declare a field with its help beside it, check values against the type.

Every setting of the experiment spec is a dataclass field whose ``metadata``
holds its help text (``"help"``) and, for numbers, its range (``"minimum"``,
``"maximum"``, ``"above"``: an exclusive lower bound). Choices are
:data:`typing.Literal` annotations; a choice with a parameter (``'<K>-fold'``) is
``Annotated[str, Pattern(...)]``, alone or in a union with a ``Literal``.
:func:`check_value` checks a value against its annotation and :func:`check_range`
against the field's range, with nilearn-style messages ("'<name>' must be one of
{...}; got '<value>'") raised as :class:`~bids_app.errors.UsageError` (exit 2).
This module imports nothing of the project but its errors.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from stimuli_models.errors import SettingsError

from .errors import UsageError

_UNIONS = (typing.Union, types.UnionType)


@dataclass(frozen=True)
class Pattern:
    r"""A choice with an integer parameter, as ``Annotated[str, Pattern(...)]``.

    Parameters
    ----------
    shown : str
        How the choice reads in messages and tables (``'<K>-fold'``).
    regex : str
        Full-match regular expression whose first group is the parameter
        (``r"(\d+)-fold"``).
    minimum : int
        Smallest parameter allowed.

    Examples
    --------
    >>> folds = Pattern("<K>-fold", r"(\d+)-fold", minimum=2)
    >>> folds.parameter("5-fold"), folds.parameter("1-fold"), folds.parameter("fold")
    (5, None, None)
    """

    shown: str
    regex: str
    minimum: int = 0

    def parameter(self, value: Any) -> int | None:
        """The parameter of ``value`` when it matches and is in range, else None."""
        match = re.fullmatch(self.regex, value) if isinstance(value, str) else None
        if match is None or int(match.group(1)) < self.minimum:
            return None
        return int(match.group(1))

    def condition(self) -> str:
        """``K at least 2``: the range of the parameter, named as in :attr:`shown`."""
        letter = re.search(r"<(\w+)>", self.shown)
        return f"{letter.group(1) if letter else 'the number'} at least {self.minimum}"

    def describe(self) -> str:
        """``'<K>-fold' (K at least 2)``: the choice and the range of its parameter."""
        return f"{self.shown!r} ({self.condition()})"


def _patterns(hint: Any) -> tuple:
    """The :class:`Pattern` marks of an ``Annotated`` hint (() for other hints)."""
    if typing.get_origin(hint) is not Annotated:
        return ()
    return tuple(m for m in hint.__metadata__ if isinstance(m, Pattern))


def setting(default: Any = dataclasses.MISSING, *, help: str,  # noqa: A002  (dataclass style)
            default_factory: Any = dataclasses.MISSING, minimum: float | None = None,
            maximum: float | None = None, above: float | None = None) -> Any:
    """A dataclass field with its help text and numeric range beside it.

    Parameters
    ----------
    default : object, optional
        Default value (immutable); use ``default_factory`` for lists and dicts.
    help : str
        One or two sentences for the README and ``--help``.
    default_factory : callable, optional
        Called to make the default.
    minimum, maximum : float, optional
        Inclusive bounds of a number (of each number of a list).
    above : float, optional
        Exclusive lower bound.

    Returns
    -------
    dataclasses.Field
        The field, its metadata holding ``help`` and the bounds given.
    """
    metadata = {"help": help}
    for key, value in (("minimum", minimum), ("maximum", maximum), ("above", above)):
        if value is not None:
            metadata[key] = value
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata=metadata)


def field_help(cls: type, name: str) -> str:
    """The help text of field ``name`` of dataclass ``cls`` ('' when it has none)."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            return item.metadata.get("help", "")
    raise KeyError(name)


def type_name(hint: Any) -> str:
    """Readable name of an annotation (``int``, ``list of float``, ``'a' or 'b'``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if _patterns(hint):
        return " or ".join(p.describe() for p in _patterns(hint))
    if origin in _UNIONS:
        return " or ".join(type_name(a) for a in args if a is not type(None))
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if hint is Any:
        return "any value"
    return getattr(origin or hint, "__name__", str(hint))


def _is_type(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the plain type ``hint`` (bools are not numbers)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typing.get_origin(hint) or hint)


def _shown(choices: tuple) -> str:
    return "{" + ", ".join(repr(c) for c in sorted(choices, key=str)) + "}"


def check_value(where: str, value: Any, hint: Any) -> None:
    """Check ``value`` against the annotation ``hint``.

    Parameters
    ----------
    where : str
        Name of the setting as the user writes it (``features.unit``).
    value : object
        The value read from the spec or the command line.
    hint : type or typing annotation
        ``int``, ``float``, ``str``, ``bool``, ``dict``, ``Literal[...]``,
        ``list[...]``, ``tuple[..., ...]`` or unions of these.

    Raises
    ------
    UsageError
        "'<where>' must be one of {...}; got '<value>'." for a choice, "'<where>'
        must be of type ..." otherwise; list elements are named ``<where>[i]``.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"'{where}' must be a finite number; got {value!r} (TOML's nan and inf "
                         "are not allowed here).")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args or isinstance(value, bool):
            raise UsageError(f"'{where}' must be one of {_shown(args)}; got {value!r}.")
        return
    if origin is Annotated:
        marks = _patterns(hint)
        if marks and not any(p.parameter(value) is not None for p in marks):
            raise UsageError(f"'{where}' must be {' or '.join(p.describe() for p in marks)}; "
                             f"got {value!r}.")
        check_value(where, value, args[0])
        return
    if origin in _UNIONS and all(typing.get_origin(a) is Literal or _patterns(a) for a in args):
        _check_choice(where, value, args)
        return
    if origin in _UNIONS:
        # the member of the value's kind decides the message (a list's element, a choice)
        members = [a for a in args if _kind(a) in (_kind_of(value), "any")]
        if len(members) == 1:
            check_value(where, value, members[0])
            return
        for member in members:
            try:
                check_value(where, value, member)
                return
            except UsageError:
                continue
        raise UsageError(f"'{where}' must be of type {type_name(hint)}; got {value!r}.")
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"'{where}' must be of type {type_name(hint)}; got {value!r}.")
        element = args[0] if args else Any
        for index, item in enumerate(value):
            # a choice among a list's elements is named by the list, as users write it
            name = where if typing.get_origin(element) is Literal else f"{where}[{index}]"
            check_value(name, item, element)
        return
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UsageError(f"'{where}' must be a table; got {value!r}.")
        for key, item in value.items():
            check_value(f"{where}.{key}", item, Any)
        return
    if hint is Any:
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                check_value(f"{where}[{index}]", item, Any)
        elif isinstance(value, dict):
            check_value(where, value, dict)
        return
    if not _is_type(value, hint):
        raise UsageError(f"'{where}' must be of type {type_name(hint)}; got {value!r}.")


def _check_choice(where: str, value: Any, members: tuple) -> None:
    """Check ``value`` against a union of ``Literal`` choices and :class:`Pattern` choices."""
    literals = tuple(c for m in members for c in typing.get_args(m)
                     if typing.get_origin(m) is Literal)
    marks = tuple(p for m in members for p in _patterns(m))
    if isinstance(value, bool) or not (
            value in literals or any(p.parameter(value) is not None for p in marks)):
        ranges = " and ".join(p.condition() for p in marks)
        raise UsageError(f"'{where}' must be one of "
                         f"{_shown(literals + tuple(p.shown for p in marks))} with {ranges}; "
                         f"got {value!r}.")


def _kind(hint: Any) -> str:
    """Kind of value an annotation accepts: 'list', 'number', 'str', 'bool', 'dict', ..."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return _kind_of(typing.get_args(hint)[0])
    if origin is Annotated:
        return _kind(typing.get_args(hint)[0])
    if origin in (list, tuple) or hint in (list, tuple):
        return "list"
    if hint in (int, float):
        return "number"
    if hint is Any:
        return "any"
    return {str: "str", bool: "bool", dict: "dict", type(None): "none"}.get(origin or hint, "")


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    return {str: "str", dict: "dict", type(None): "none"}.get(type(value), "")


def check_range(where: str, value: Any, metadata: typing.Mapping) -> None:
    """Check a number (or each number of a list) against a field's range.

    Parameters
    ----------
    where : str
        Name of the setting.
    value : object
        The value; anything that is not a number is left to :func:`check_value`.
    metadata : mapping
        The field's metadata (``minimum``, ``maximum``, ``above``).

    Raises
    ------
    UsageError
        "'<where>' must be >= <minimum>; got <value>." and the like.
    """
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_range(f"{where}[{index}]", item, metadata)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high, above = (metadata.get(k) for k in ("minimum", "maximum", "above"))
    if above is not None and high is not None and not above < value <= high:
        raise UsageError(f"'{where}' must be in ({above:g}, {high:g}]; got {value!r}.")
    if low is not None and high is not None and not low <= value <= high:
        raise UsageError(f"'{where}' must be in [{low:g}, {high:g}]; got {value!r}.")
    if low is not None and value < low:
        raise UsageError(f"'{where}' must be >= {low:g}; got {value!r}.")
    if above is not None and value <= above:
        raise UsageError(f"'{where}' must be > {above:g}; got {value!r}.")
    if high is not None and value > high:
        raise UsageError(f"'{where}' must be <= {high:g}; got {value!r}.")


def check_fields(obj: Any, where: str) -> None:
    """Check every field of a dataclass instance against its annotation and range.

    Parameters
    ----------
    obj : dataclass instance
        A section of the spec.
    where : str
        Its name in the spec (``encoding``, ``variants[0]``).

    Raises
    ------
    UsageError
        For the first field whose value is of the wrong type, not among its
        choices or out of range.
    """
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for item in dataclasses.fields(obj):
        value = getattr(obj, item.name)
        if dataclasses.is_dataclass(value):
            check_fields(value, where)
            continue
        check_value(f"{where}.{item.name}", value, hints[item.name])
        check_range(f"{where}.{item.name}", value, item.metadata)


def section_fields(cls: type) -> list[tuple[dataclasses.Field, typing.Any]]:
    """Fields of a section as written in TOML, with their resolved annotations.

    The nested ``FeatureSettings`` of ``[features]`` contributes its own fields.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for item in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[item.name]):
            out.extend(section_fields(hints[item.name]))
        else:
            out.append((item, hints[item.name]))
    return out


def build_section(cls: type, data: dict, where: str) -> Any:
    """Check the keys and values of one TOML table and build its dataclass.

    Parameters
    ----------
    cls : type
        The section's dataclass. One with a ``from_flat`` class method is built
        by it (a section nesting another dataclass); one with an ``options``
        field receives the unknown keys there.
    data : dict
        The table as parsed from TOML.
    where : str
        Its name in the spec (``features``, ``tasks[0]``).

    Returns
    -------
    object
        The section.

    Raises
    ------
    UsageError
        For an unknown key, or a value of the wrong type, not among the choices
        or out of range.
    """
    if not isinstance(data, dict):
        raise UsageError(f"'{where}' must be a table; got {data!r}.")
    fields_ = section_fields(cls)
    names = [item.name for item, _ in fields_]
    unknown = sorted(set(data) - set(names))
    if unknown and "options" not in names:
        raise UsageError(
            f"unknown key(s) {', '.join(repr(u) for u in unknown)} in [{where}] of the experiment "
            f"spec; allowed keys: {', '.join(names)}."
        )
    for item, hint in fields_:
        if item.name in data:
            check_value(f"{where}.{item.name}", data[item.name], hint)
            check_range(f"{where}.{item.name}", data[item.name], item.metadata)
    if "options" in names:
        options = {k: v for k, v in data.items() if k not in names}
        check_value(where, options, dict)
        data = {**{k: v for k, v in data.items() if k in names}, "options": options}
    try:
        return cls.from_flat(data) if hasattr(cls, "from_flat") else cls(**data)
    except SettingsError as exc:
        raise UsageError(f"[{where}]: {exc}") from None
