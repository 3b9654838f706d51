"""Find annotation files safely: names from ``events.tsv`` or the spec never leave their root.

BIDS ``stim_file`` values are paths relative to ``BIDS_DIR/stimuli``. A value is
refused before anything is opened when it is absolute, contains ``..``, or
resolves (through symbolic links) to a place outside the root.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from ...errors import DatasetError

_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_under(root: Path, value: str, *, what: str) -> Path:
    """Resolve ``value`` under ``root``, refusing anything that escapes it.

    Parameters
    ----------
    root : Path
        Folder the file must lie in (e.g. ``BIDS_DIR/stimuli``).
    value : str
        Relative path from the dataset (``stim_file``) or the spec.
    what : str
        Where the value comes from, for messages (e.g. "stim_file of 'x_events.tsv'").

    Returns
    -------
    Path
        The resolved file (a regular file inside ``root``).

    Raises
    ------
    DatasetError
        When the value escapes ``root`` (absolute, ``..``, symlink outside) or the
        file does not exist.
    """
    text = str(value).strip()
    if not text or "\x00" in text:
        raise DatasetError(f"the {what} is empty; name a file under '{root}'.")
    posix = text.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or _DRIVE.match(posix) or Path(text).is_absolute():
        raise DatasetError(f"the {what} '{text}' is an absolute path; it must be relative to "
                           f"'{root}' (refused, not read).")
    if ".." in parts:
        raise DatasetError(f"the {what} '{text}' contains '..' and could leave '{root}'; give a "
                           "path inside that folder (refused, not read).")
    base = Path(root)
    candidate = base.joinpath(*parts)
    try:
        real_root = base.resolve(strict=True)
    except (OSError, RuntimeError):
        raise DatasetError(f"the folder '{root}' holding annotations does not exist; create it "
                           "or set annotations.stimuli_dir.") from None
    try:
        real = candidate.resolve(strict=False)
    except (OSError, RuntimeError):
        raise DatasetError(f"the {what} '{text}' is a symbolic-link loop; fix the link "
                           "(refused, not read).") from None
    if not real.is_relative_to(real_root):
        raise DatasetError(f"the {what} '{text}' points outside '{root}' (through a symbolic "
                           f"link, to '{real}'); keep annotations inside it (refused, not read).")
    if not real.exists():
        raise DatasetError(f"the annotation '{candidate}' named by the {what} does not exist; "
                           "add the file or fix the name.")
    if not real.is_file():
        raise DatasetError(f"the {what} '{text}' is not a regular file ('{candidate}'); name "
                           "the annotation file itself.")
    return real
