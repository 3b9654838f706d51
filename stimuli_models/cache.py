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
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_HOST = re.sub(r"[^A-Za-z0-9_-]", "", socket.gethostname().split(".")[0]) or "host"
#: Temporary names: ``.<final name>.<pid>@<host>.<random>.tmp[<ext>]``.
_TEMP_NAME = re.compile(
    r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)\.[A-Za-z0-9_]+\.tmp(\.\S*)?$")


def temp_prefix(final: str | os.PathLike) -> str:
    """Prefix of a temporary name for ``final``: hidden, and naming this process and host.

    Temporaries left behind by a killed process are recognised (and removed) by
    :func:`remove_stale_temporaries`.
    """
    return f".{Path(final).name}.{os.getpid()}@{_HOST}."


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """Return the file mode creation mask of this process (e.g. ``0o022``), unchanged.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting and
    restoring it under a lock.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def umask_mode(*, directory: bool = False) -> int:
    """Mode that ``open`` (``0o666``) or ``mkdir`` (``0o777``) gives a new path under the umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def follow_umask(target: str | os.PathLike | int, *, directory: bool = False) -> None:
    """Give a temporary file or folder the mode a plain ``open``/``mkdir`` would have given it.

    ``tempfile.mkstemp`` and ``mkdtemp`` create private paths (``0o600``/``0o700``)
    whatever the umask; anything renamed into OUTPUT_DIR must instead be readable by
    whoever the umask lets read it (``0o644``/``0o755`` under umask ``022``, ``0o664``/
    ``0o775`` under ``002``).

    Parameters
    ----------
    target : path-like or int
        Path, or a file descriptor open on the file.
    directory : bool
        Whether ``target`` is a folder.
    """
    mode = umask_mode(directory=directory)
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temporaries(root: str | os.PathLike) -> list[Path]:
    """Remove temporary files and folders left under ``root`` by killed processes.

    Only temporaries made on this host by a process that no longer runs are removed;
    those of live processes (concurrent jobs) and of other hosts are left alone.

    Parameters
    ----------
    root : path-like
        Folder to clean (e.g. OUTPUT_DIR).

    Returns
    -------
    list of Path
        What was removed.
    """
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in list(dirs) + files:
            match = _TEMP_NAME.match(name)
            if (match is None or match["host"] != _HOST
                    or _process_alive(int(match["pid"]))):
                continue
            path = Path(folder) / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                dirs.remove(name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
    return removed


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
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        follow_umask(tmp, directory=True)
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
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent)
    try:
        follow_umask(fd)
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
