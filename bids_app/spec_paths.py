"""Files named by an experiment spec: where they may be, before anything reads them.

A spec names model directories and NLU task files. brainenc refuses, before any
work starts:

- paths into the system's pseudo-filesystems (``/dev``, ``/proc``, ``/sys``) and
  anything that is neither a regular file nor a directory (a FIFO or a device
  would block or never end when read);
- when the environment variable ``BRAINENC_ALLOWED_ROOTS`` is set (a
  ``os.pathsep``-separated list of folders, e.g. on a shared compute service),
  every path that is not under one of those folders, BIDS_DIR, OUTPUT_DIR or the
  working directory. Symbolic links are followed before the check.

Installed model packages and models in the Hugging Face cache are found by name,
not by path, and are not checked here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError

ROOTS_ENV = "BRAINENC_ALLOWED_ROOTS"
SYSTEM_FOLDERS = (Path("/dev"), Path("/proc"), Path("/sys"))
#: Options of a [[tasks]] entry that name files.
TASK_FILE_OPTIONS = ("train", "dev", "test")


def _as_path(text: str, base: Path, *, must_exist: bool) -> Path | None:
    path = Path(os.path.expanduser(text))
    explicit = path.is_absolute() or text.startswith((".", "~"))
    if not path.is_absolute():
        path = base / path
    if explicit or not must_exist or path.exists():
        return path
    return None


def spec_paths(spec) -> Iterator[tuple[str, Path]]:
    """Yield ``(where, path)`` for every file or folder the spec names.

    Parameters
    ----------
    spec : ExperimentSpec
        The loaded spec (relative paths start at its folder).
    """
    base = Path(spec.source_file).parent if spec.source_file else Path.cwd()
    for index, model in enumerate(spec.models):
        # a name that is no path (an installed package or a hub id) is not a file of the spec
        path = _as_path(str(model.source), base, must_exist=True)
        if path is not None and str(model.source).strip():
            yield f"models[{index}].source", path
    for index, task in enumerate(spec.tasks):
        for key in TASK_FILE_OPTIONS:
            values = task.options.get(key)
            values = values if isinstance(values, list) else [values]
            for value in values:
                if isinstance(value, str) and value.strip():
                    yield f"tasks[{index}].{key}", _as_path(value, base, must_exist=False)


def allowed_roots(extra: list[Path]) -> list[Path] | None:
    """Folders spec paths must lie under (None: no restriction)."""
    text = os.environ.get(ROOTS_ENV, "")
    roots = [Path(p).expanduser() for p in text.split(os.pathsep) if p.strip()]
    if not roots:
        return None
    return [p.resolve() for p in roots + [Path(e) for e in extra if e is not None]]


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_spec_paths(spec, *, roots: list[Path]) -> None:
    """Refuse spec paths that point at system files or outside the allowed roots.

    Parameters
    ----------
    spec : ExperimentSpec
        The loaded spec.
    roots : list of Path
        Folders of this run (BIDS_DIR, OUTPUT_DIR, working directory); used only
        when ``BRAINENC_ALLOWED_ROOTS`` is set.

    Raises
    ------
    UsageError
        Naming the spec entry, the path and the fix.
    """
    allowed = allowed_roots(roots)
    for where, path in spec_paths(spec):
        real = path.resolve()
        system = [f for f in SYSTEM_FOLDERS if _under(real, f)]
        if system:
            raise UsageError(f"'{where}' = '{path}' points into the system folder '{system[0]}'; "
                             "name a model directory or a data file instead.")
        if real.exists() and not (real.is_file() or real.is_dir()):
            raise UsageError(f"'{where}' = '{path}' is not a regular file or folder (a device, "
                             "pipe or socket); name a model directory or a data file instead.")
        if allowed is not None and not any(_under(real, root) for root in allowed):
            shown = os.pathsep.join(str(r) for r in allowed)
            raise UsageError(
                f"'{where}' = '{path}' is outside the allowed roots ({shown}); move it under "
                f"one of them or add its folder to {ROOTS_ENV}."
            )
