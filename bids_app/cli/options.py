"""Parsing helpers of the command line and the options object it produces."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import click

#: Options that accept several values after one flag (``--participant-label 01 02``).
MULTI_VALUE = {"--participant-label", "--participant_label", "--task-id", "--task_id",
               "--session-id", "--session_id", "-d", "--derivatives"}
#: Options that take exactly one value.
SINGLE_VALUE = {"--space", "--bids-filter-file", "--bids_filter_file", "--bids-database-dir",
                "--bids_database_dir", "--config-file", "--config_file", "-w", "--work-dir",
                "--work_dir", "--nprocs", "--nthreads", "--n_cpus", "--n-cpus", "--omp-nthreads",
                "--omp_nthreads", "--mem", "--mem-mb", "--mem_mb", "--device", "--use-plugin",
                "--use_plugin", "--random-seed", "--random_seed", "--dummy-scans",
                "--dummy_scans"}
N_POSITIONAL = 3
#: Seeds NumPy and torch both accept.
SEED_RANGE = click.IntRange(0, 2**32 - 1)


def normalise_argv(argv: list[str]) -> list[str]:
    """Rewrite ``--flag a b`` into ``--flag a --flag b`` for multi-value options.

    A multi-value flag takes the following arguments up to the next option, like
    argparse's ``nargs='+'``; when that would leave fewer than three positional
    arguments, the last values are given back to the positionals.
    """
    out: list[tuple[str, list[str]]] = []  # (flag or '', values)
    i = 0
    while i < len(argv):
        token = argv[i]
        name = token.split("=", 1)[0]
        if token == "--":
            out.extend(("", [t]) for t in argv[i + 1:])
            break
        if name in MULTI_VALUE and "=" not in token:
            values = []
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                values.append(argv[i])
                i += 1
            out.append((token, values))
            continue
        if name in SINGLE_VALUE and "=" not in token and i + 1 < len(argv):
            out.append((token, [argv[i + 1]]))
            i += 2
            continue
        out.append(("", [token]))
        i += 1
    positionals = sum(1 for flag, values in out if not flag and not values[0].startswith("-"))
    missing = N_POSITIONAL - positionals
    if missing > 0:
        for index in range(len(out) - 1, -1, -1):
            flag, values = out[index]
            if flag in MULTI_VALUE and len(values) > 1:
                give = min(missing, len(values) - 1)
                out[index] = (flag, values[:-give])
                out[index + 1:index + 1] = [("", [v]) for v in values[-give:]]
                break
            if flag:
                break
    result = []
    for flag, values in out:
        if not flag:
            result.extend(values)
        elif flag in MULTI_VALUE:
            if not values:
                result.append(flag)  # click reports the missing value
            for value in values:
                result.extend([flag, value])
        else:
            result.extend([flag, *values])
    return result


def parse_labels(values, prefix: str) -> list[str]:
    """Split comma/space separated labels, strip ``prefix`` (e.g. ``sub-``), keep order."""
    labels = []
    for value in values or ():
        for item in re.split(r"[,\s]+", value.strip()):
            if not item:
                continue
            if item.startswith(prefix):
                item = item[len(prefix):]
            if not re.fullmatch(r"[A-Za-z0-9]+", item):
                raise click.BadParameter(
                    f"'{prefix}{item}' is not a valid BIDS label (letters and digits only).",
                    param_hint=f"'--{'participant' if prefix == 'sub-' else prefix[:-1]}-...'")
            labels.append(item)
    return list(dict.fromkeys(labels))


def parse_memory(value) -> float | None:
    """Memory limit in MB from '16000', '16G', '16GB', '512M' ..."""
    if value in (None, ""):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise click.BadParameter(f"'{value}' is not a memory size (e.g. 16G or 16000 for MB).",
                                 param_hint="'--mem'")
    number, unit = float(match.group(1)), match.group(2).upper()
    factor = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 ** 2}[unit]
    if number * factor <= 0:
        raise click.BadParameter("must be positive.", param_hint="'--mem'")
    return number * factor


@dataclass
class RunOptions:
    """Everything the command line decided."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: list = field(default_factory=list)
    task_id: list = field(default_factory=list)
    session_id: list = field(default_factory=list)
    derivatives: tuple = ()
    space: str | None = None
    bids_filter_file: Path | None = None
    bids_database_dir: Path | None = None
    config_file: Path | None = None
    work_dir: Path | None = None
    nprocs: int | None = None
    omp_nthreads: int = 0
    mem_mb: float | None = None
    device: str = "auto"
    use_plugin: Path | None = None
    skip_bids_validation: bool = False
    random_seed: int = 0
    dummy_scans: int | None = None
    stop_on_first_crash: bool = False
    verbose: int = 0
    dry_run: bool = False
