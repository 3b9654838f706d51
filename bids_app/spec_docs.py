"""The README's tables of spec settings and the help of options that set one, from field help.

Every setting's help text lives beside its field (:mod:`bids_app.config`,
:mod:`bids_app.spec_inputs`, :class:`stimuli_models.features.FeatureSettings`,
:class:`stimuli_models.training.TrainingSettings`). This module renders them:

- one Markdown table per spec section, written into ``README.md`` between two
  markers;
- :mod:`bids_app.cli.spec_help`, the help of command-line options that set a
  spec setting (the command line imports nothing heavier than click, so the help
  is written out rather than imported from the spec).

``python -m bids_app.spec_docs`` rewrites both; ``--check`` exits with 1 when
either is out of date (``tests/unit/test_spec_docs.py`` runs it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import typing
from pathlib import Path

from .config import ENTRIES, SECTIONS
from .spec_types import section_fields, type_name

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HELP_MODULE = Path(__file__).resolve().parent / "cli" / "spec_help.py"
#: A generated block: ``<!-- spec-settings: <sections> -->`` ... ``<!-- /spec-settings -->``.
BLOCK = re.compile(r"(<!-- spec-settings: (?P<names>[a-z, ]+) -->\n).*?(<!-- /spec-settings -->)",
                   re.DOTALL)
#: Command-line options that set a spec setting, and that setting.
MIRRORED_OPTIONS = {"--dummy-scans": "bold.dummy_scans"}


def _default(item) -> str:
    """A field's default as TOML shows it (long lists shortened)."""
    if item.default_factory is not dataclasses.MISSING:
        value = item.default_factory()
    else:
        value = item.default
    if hasattr(value, "to_dict"):  # a nested settings object: its keys are listed
        return ""
    if isinstance(value, tuple):
        value = list(value)
    if value is None:
        return "unset"
    if isinstance(value, list) and len(value) > 6:
        return f"{len(value)} values, {json.dumps(value[0])} … {json.dumps(value[-1])}"
    if isinstance(value, float) and value >= 1e4:
        return f"{value:g}"
    return json.dumps(value, ensure_ascii=False)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table(cls: type) -> str:
    """One Markdown table of a section's settings: key, type, default, meaning.

    Parameters
    ----------
    cls : type
        The section's dataclass (a nested settings dataclass contributes its rows).

    Returns
    -------
    str
        The table, without a trailing newline.
    """
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for item, hint in section_fields(cls):
        if item.name == "options":
            continue
        kind = type_name(hint).replace("NoneType", "unset")
        rows.append(f"| `{item.name}` | {_cell(kind)} | {_cell(f'`{_default(item)}`')} | "
                    f"{_cell(item.metadata.get('help', ''))} |")
    return "\n".join(rows).replace("| `` |", "|  |")


def settings_tables(names: typing.Iterable[str]) -> str:
    """The tables of the named sections, each under a bold heading.

    Parameters
    ----------
    names : iterable of str
        Section names (``features``, ``models`` ...), in the order to show them.
    """
    parts = []
    for name in names:
        cls = {**ENTRIES, **SECTIONS}[name]
        title = f"[[{name}]]" if name in ENTRIES else f"[{name}]"
        doc = (cls.__doc__ or "").strip().splitlines()[0].replace("``", "`")
        parts += [f"**`{title}`** {doc}", "", settings_table(cls), ""]
    return "\n".join(parts)


def render_readme(text: str) -> str:
    """``text`` with every generated block filled with the tables of the sections it names.

    Raises
    ------
    ValueError
        When a block names no known section, or some section is in no block.
    """
    shown = []

    def fill(match: re.Match) -> str:
        names = [n.strip() for n in match.group("names").split(",") if n.strip()]
        unknown = sorted(set(names) - set(ENTRIES) - set(SECTIONS))
        if unknown:
            raise ValueError(f"README names unknown spec section(s) {unknown}.")
        shown.extend(names)
        return match.group(1) + "\n" + settings_tables(names) + match.group(3)

    out = BLOCK.sub(fill, text)
    missing = [n for n in {**ENTRIES, **SECTIONS} if n not in shown]
    if missing:
        raise ValueError(f"README has no generated table of section(s) {missing}; add "
                         f"'<!-- spec-settings: {', '.join(missing)} -->' ... "
                         "'<!-- /spec-settings -->'.")
    return out


def option_help() -> dict[str, str]:
    """Help of each command-line option that sets a spec setting."""
    out = {}
    for option, name in MIRRORED_OPTIONS.items():
        section, key = name.split(".")
        item = {f.name: f for f, _ in section_fields(SECTIONS[section])}[key]
        out[option] = f"{item.metadata['help']} Replaces [{section}] {key} of the spec."
    return out


def help_module() -> str:
    """Source of :mod:`bids_app.cli.spec_help`."""
    lines = ['"""Help of command-line options that set a spec setting.', "",
             "Generated by ``python -m bids_app.spec_docs`` from the help beside each field of",
             "the spec's sections (:mod:`bids_app.config`, :mod:`bids_app.spec_inputs`); do not",
             "edit.", '"""', "",
             "OPTION_HELP = {"]
    for option, text in option_help().items():
        lines.append(f"    {option!r}: (")
        words, line = text.split(" "), ""
        for word in words:
            if len(line) + len(word) > 80:
                lines.append(f"        {line!r}")
                line = ""
            line += word + " "
        lines.append(f"        {line.rstrip()!r}")
        lines.append("    ),")
    return "\n".join(lines + ["}", ""])


def main(argv: typing.Sequence[str] | None = None) -> int:
    """Rewrite README's settings tables and the options' help (``--check``: only compare).

    Returns
    -------
    int
        0 when both are up to date (or were rewritten), 1 when ``--check`` finds one stale.
    """
    parser = argparse.ArgumentParser(prog="python -m bids_app.spec_docs")
    parser.add_argument("--check", action="store_true",
                        help="Exit with 1 when README.md or bids_app/cli/spec_help.py is stale.")
    args = parser.parse_args(argv)
    targets = {README: render_readme(README.read_text(encoding="utf-8")),
               HELP_MODULE: help_module()}
    stale = [path for path, text in targets.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path} is out of date; run 'python -m bids_app.spec_docs'.")
        return 1 if stale else 0
    for path in stale:
        path.write_text(targets[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
