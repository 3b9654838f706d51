"""What every brainenc interface shares: failure records and a methods sentence.

An interface computes in its node folder (``runtime.cwd``) only. When its step
fails, it writes :data:`FAILURE_RECORD` into that folder (the project's error
class, message and exit code) before re-raising, so the run reads the failure
back as a structured record instead of parsing nipype's crash files. Each
interface also describes, in one sentence built from its inputs, what it does:
:func:`bids_app.workflows.methods.methods_text` assembles those sentences in
execution order into the report's Methods section.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nipype.interfaces.base import Directory, File, SimpleInterface, TraitedSpec, traits

from stimuli_models.errors import StimuliModelsError

from .. import errors
from ..errors import BrainencError, ProcessingError, disk_error, from_library_error

#: Name of the failure record an interface leaves in its node folder.
FAILURE_RECORD = "brainenc_failure.json"


def as_project_error(exc: Exception) -> BrainencError:
    """Translate any exception of a step into the project's error with its exit code.

    Parameters
    ----------
    exc : Exception
        What the step raised.

    Returns
    -------
    BrainencError
        The project's own error (itself), a library error translated, a full or
        read-only disk as :class:`~bids_app.errors.ResourceError`, or else a
        :class:`~bids_app.errors.ProcessingError` naming the exception.
    """
    if isinstance(exc, BrainencError):
        return exc
    if isinstance(exc, StimuliModelsError):
        return from_library_error(exc)
    if isinstance(exc, OSError):
        disk = disk_error(exc.errno, exc.filename)
        if disk is not None:
            return disk
    return ProcessingError(f"{type(exc).__name__}: {exc}")


def write_failure(folder: str | os.PathLike, exc: Exception, step: str) -> Path:
    """Record a step's failure in its node folder.

    Parameters
    ----------
    folder : path
        The node folder.
    exc : Exception
        What the step raised.
    step : str
        Name of the interface.

    Returns
    -------
    Path
        The record: ``{"error": class name, "message": str, "exit_code": int, "step": str}``.
    """
    error = as_project_error(exc)
    record = {"error": type(error).__name__, "message": str(error),
              "exit_code": int(error.exit_code), "step": step}
    path = Path(folder) / FAILURE_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_failure(folder: str | os.PathLike) -> BrainencError | None:
    """The error recorded in a node folder by :func:`write_failure` (None when none is).

    Parameters
    ----------
    folder : path
        The node folder.

    Returns
    -------
    BrainencError or None
        An instance of the recorded class of :mod:`bids_app.errors`.
    """
    path = Path(folder) / FAILURE_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cls = getattr(errors, str(record.get("error", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, BrainencError)):
        cls = ProcessingError
    return cls(str(record.get("message", "")))


#: Folder of a node that holds its rendered derivatives (shaped like OUTPUT_DIR).
STAGED = "derivatives"


def staged_dir(runtime) -> Path:
    """``<node folder>/derivatives``, created empty of earlier files.

    Parameters
    ----------
    runtime : Bunch
        nipype's runtime of the step (``runtime.cwd`` is the node folder).

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(runtime.cwd) / STAGED
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def staged_results(folder: Path) -> dict:
    """The outputs of :class:`StagedOutputSpec` for a rendered ``folder``."""
    return {"staged_dir": str(folder), "out_files": staged_files(folder)}


def staged_files(folder: str | os.PathLike) -> list[str]:
    """Files of a rendered tree, in sorted order (temporary files left out).

    Parameters
    ----------
    folder : path
        The tree.

    Returns
    -------
    list of str
        Its files.
    """
    return sorted(str(p) for p in Path(folder).rglob("*")
                  if p.is_file() and ".tmp" not in p.name)


class StagedOutputSpec(TraitedSpec):
    """Output of a step that renders derivatives in its node folder.

    The files are listed as well as their folder: nipype hashes ``File`` inputs by
    content (``hash_method = content``) but a ``Directory`` by its path only, so a
    sink reading the list reruns exactly when a rendered file changed.
    """

    staged_dir = Directory(exists=True, desc="rendered derivatives, shaped like OUTPUT_DIR")
    out_files = traits.List(File(exists=True), desc="the rendered files")


def write_settings(path: str | os.PathLike, settings: dict) -> str:
    """Write a section of settings as a JSON file an interface reads (same bytes each run).

    Parameters
    ----------
    path : path
        Where to write it (its folder is created).
    settings : dict
        JSON-serialisable settings.

    Returns
    -------
    str
        ``path``; rewritten only when the settings changed, so nipype's content hash
        of the input (and so the reuse of finished steps) follows the settings alone.
    """
    path = Path(path)
    text = json.dumps(settings, indent=1, sort_keys=True, default=str) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # jobs sharing -w read whole files
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return str(path)


def read_settings(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`write_settings`.

    Parameters
    ----------
    path : path
        The settings file.

    Returns
    -------
    dict
        The settings.
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))


class BrainencInterface(SimpleInterface):
    """A nipype interface whose work is :meth:`_compute` inside its node folder.

    Subclasses implement ``_compute(runtime)`` (filling ``self._results``) and
    ``methods()`` (one sentence for the report's Methods, '' when the step has none).
    """

    def _run_interface(self, runtime):
        stale = Path(runtime.cwd) / FAILURE_RECORD
        stale.unlink(missing_ok=True)
        try:
            self._compute(runtime)
        except Exception as exc:  # recorded for the run, then nipype's own handling
            write_failure(runtime.cwd, exc, type(self).__name__)
            raise
        return runtime

    def _compute(self, runtime) -> None:
        raise NotImplementedError

    def methods(self) -> str:
        """One sentence describing this step with its parameters ('' for none)."""
        return ""
