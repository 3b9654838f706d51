"""Content-addressed caches shared by concurrent jobs.

Artifacts (features, tuned models) are keyed by a hash of everything they depend
on. They are built under a temporary name and published with an atomic rename
while holding a file lock, so that several processes sharing one output folder
build each artifact once and never read a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def stable_hash(*parts: object, length: int | None = None) -> str:
    """Hash JSON-serialisable parts into a hex digest, independent of dict order.

    Parameters
    ----------
    *parts : object
        JSON-serialisable values (dicts, lists, strings, numbers).
    length : int, optional
        Truncate the digest to this many characters.

    Returns
    -------
    str
        SHA-256 hex digest.
    """
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    return digest[:length] if length else digest


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout: float = -1) -> Iterator[None]:
    """Hold an inter-process lock named after ``path`` (``<path>.lock``).

    Parameters
    ----------
    path : path-like
        The artifact the lock protects.
    timeout : float
        Seconds to wait; negative waits forever.
    """
    from filelock import FileLock

    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=timeout):
        yield


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``final`` on success.

    On error the temporary directory is removed and ``final`` is left untouched.

    Parameters
    ----------
    final : path-like
        Destination directory; must not exist yet.

    Yields
    ------
    Path
        The temporary directory to fill.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file next to ``final``; rename it over ``final`` on success.

    Parameters
    ----------
    final : path-like
        Destination file.
    mode : str
        ``'wb'`` or ``'w'`` (text, UTF-8).

    Yields
    ------
    file object
        Handle on the temporary file.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save_npy(final: str | os.PathLike, array) -> None:
    """Save a NumPy array atomically (``np.save`` to a temporary name, then rename)."""
    import numpy as np

    with atomic_file(final) as handle:
        np.save(handle, array, allow_pickle=False)


def atomic_write_json(final: str | os.PathLike, obj: object) -> None:
    """Write JSON atomically, with sorted keys and a final newline."""
    with atomic_file(final, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        handle.write("\n")
