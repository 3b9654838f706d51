"""Failed steps of a workflow run, read back as the project's own errors.

nipype reports each finished step to a ``status_callback``; :class:`FailedSteps`
keeps the node folders of the steps that raised, and reads the structured
record each brainenc interface leaves there when it fails
(:func:`bids_app.interfaces.base.write_failure`). No crash file is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from nipype.pipeline import plugins
from nipype.pipeline.plugins.base import GraphPluginBase

from ..errors import BrainencError, ProcessingError
from ..interfaces.base import FAILURE_RECORD, read_failure

_SUBJECT = re.compile(r"(?:^|\.)sub_([A-Za-z0-9]+)_wf\.")


def takes_callback(plugin: str) -> bool:
    """Whether nipype's plugin ``plugin`` reports steps to a ``status_callback``.

    Parameters
    ----------
    plugin : str
        Plugin name without ``Plugin`` (``Linear``, ``MultiProc``, ``SLURMGraph`` ...).

    Returns
    -------
    bool
        False for graph-submission plugins, which submit the whole graph at once.
    """
    cls = getattr(plugins, f"{plugin}Plugin", None)
    return not (isinstance(cls, type) and issubclass(cls, GraphPluginBase))


def subject_of(fullname: str) -> str:
    """Participant label of a node's full name ('' for the shared steps).

    Parameters
    ----------
    fullname : str
        e.g. ``brainenc_wf.sub_01_wf.fit_minilm``.

    Returns
    -------
    str
        e.g. ``'01'``.
    """
    match = _SUBJECT.search(fullname)
    return match.group(1) if match else ""


class FailedSteps:
    """A nipype ``status_callback`` that remembers which steps raised.

    Attributes
    ----------
    folders : dict
        Full node name → node folder, for each step that raised.
    """

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def __call__(self, node, status: str) -> None:
        """Record ``node`` when ``status`` is ``'exception'``."""
        if status == "exception":
            self.folders[node.fullname] = str(node.output_dir())

    def chain(self, then: Callable) -> Callable:
        """A callback recording failures, then calling ``then(node, status)``."""

        def callback(node, status):
            self(node, status)
            then(node, status)

        return callback

    def scan(self, workflow) -> None:
        """Find failure records in the node folders (plugins without callbacks).

        Parameters
        ----------
        workflow : Workflow
            The workflow that ran.
        """
        for node in workflow._create_flat_graph().nodes():  # nipype's expanded graph
            folder = Path(node.output_dir())
            if (folder / FAILURE_RECORD).is_file():
                self.folders[node.fullname] = str(folder)

    def errors(self, crash_dir: str | Path | None = None) -> dict[str, BrainencError]:
        """The first error of each participant ('' for the shared steps).

        Parameters
        ----------
        crash_dir : path, optional
            Where nipype wrote its crash reports (named for steps without a record).

        Returns
        -------
        dict
            Participant label → error, each with its documented exit code.
        """
        found: dict[str, BrainencError] = {}
        for fullname, folder in sorted(self.folders.items()):
            error = read_failure(folder)
            if error is None:  # not a brainenc interface (or killed before recording)
                where = f" (nipype's report is in '{crash_dir}')" if crash_dir else ""
                error = ProcessingError(f"step '{fullname.split('.')[-1]}' failed{where}; "
                                        "rerun with -v to see its error.")
            found.setdefault(subject_of(fullname), error)
        return found
