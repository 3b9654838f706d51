"""Publish again what was deleted from OUTPUT_DIR since the last run.

nipype reuses a finished step when its inputs are unchanged; it does not look at
whether the files a sink published are still there. A map, a tuned model or a
feature file deleted from OUTPUT_DIR (to save space, say) while the working
directory was kept would then be missing for good, and a step reading it would
fail. Before each run, :func:`forget_vanished` makes every sink whose published
files are gone run again: it copies them back from the staged copies its step
left under ``-w`` (nothing is recomputed).
"""

from __future__ import annotations

import logging
from pathlib import Path

from nipype.utils.filemanip import loadpkl

LOGGER = logging.getLogger("brainenc.run")


def forget_vanished(work_dir: str | Path, workflow_name: str = "brainenc_wf") -> list[str]:
    """Drop the cached results of sinks whose published files are gone.

    Parameters
    ----------
    work_dir : path
        The working directory (``-w``).
    workflow_name : str
        Name of the top workflow.

    Returns
    -------
    list of str
        Names of the sink steps that will run again.

    Examples
    --------
    >>> import tempfile
    >>> forget_vanished(tempfile.mkdtemp())
    []
    """
    forgotten = []
    quiet = logging.getLogger("nipype.utils")  # its note on pickles without version metadata
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for result in sorted(Path(work_dir).glob(f"{workflow_name}/**/ds_*/result_ds_*.pklz")):
            if _vanished(result):
                result.unlink(missing_ok=True)
                forgotten.append(result.parent.name)
    finally:
        quiet.setLevel(level)
    if forgotten:
        LOGGER.info("publishing again what was deleted from the output folder: %s",
                    ", ".join(forgotten))
    return forgotten


def _vanished(result: Path) -> bool:
    """Whether a sink's cached result lists a published file that is gone (or is unreadable)."""
    try:
        outputs = loadpkl(result).outputs
    except Exception:  # unreadable (another nipype version, a killed write): run it again
        return True
    return outputs is None or any(not Path(path).exists()
                                  for path in getattr(outputs, "out_files", None) or [])
