"""The shared stores of OUTPUT_DIR: tuned models and story features.

``models/<label>`` and ``stimuli/features/<key>.npy`` are content-addressed:
each entry is keyed by a hash of everything it depends on, and every participant
job sharing OUTPUT_DIR (a SLURM array, say) reuses one entry instead of
computing its own. Their life has two steps, as every derivative's:

1. A compute step (:class:`~bids_app.interfaces.TuneModel`,
   :class:`~bids_app.interfaces.FeaturizeStories`) looks the key up in the store
   (a read). On a miss it builds the entry in its own node folder, while holding
   the entry's lock, and leaves a *claim* beside the store: a small note naming
   the key and the finished staged copy. A concurrent job that then misses the
   same key copies that finished copy instead of computing it again.
2. A sink (:class:`~bids_app.interfaces.StoreSink`) publishes the staged entry
   under the same lock: first publication wins (a key already in the store is
   kept as it is), folders are replaced by a rename, files are written
   atomically, and the claim is removed.

Locks (``<entry>.lock``) and claims (``.claims/<entry>.json``) are the only files
a compute step writes outside its node folder; neither is a derivative, and a
claim whose staged copy is gone (a work folder deleted) is ignored.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from stimuli_models.cache import atomic_write_json, follow_umask, temp_prefix

from .derivatives import copy_file

#: Folder, beside a store's entries, of the claims of staged entries.
CLAIMS = ".claims"


def claim_file(final: str | os.PathLike) -> Path:
    """Where the claim of the store entry ``final`` is kept.

    Parameters
    ----------
    final : path
        The entry in the store (a file or folder).

    Returns
    -------
    Path
        ``<store>/.claims/<entry name>.json``.

    Examples
    --------
    >>> claim_file("/out/models/gpt2frozen").as_posix()
    '/out/models/.claims/gpt2frozen.json'
    """
    final = Path(final)
    return final.parent / CLAIMS / f"{final.name}.json"


def claim(final: str | os.PathLike, staged: str | os.PathLike, key: str) -> None:
    """Record that a finished copy of the entry ``final`` with ``key`` waits in ``staged``.

    Call it once the staged copy is complete, while holding the entry's lock.

    Parameters
    ----------
    final : path
        The entry in the store.
    staged : path
        The complete staged copy (in a node folder).
    key : str
        The entry's content key.
    """
    atomic_write_json(claim_file(final), {"key": key, "staged": str(Path(staged).resolve())})


def claimed_copy(final: str | os.PathLike, key: str) -> Path | None:
    """A finished staged copy of ``final`` with ``key``, left by any job (None if none).

    Parameters
    ----------
    final : path
        The entry in the store.
    key : str
        The content key the copy must have.

    Returns
    -------
    Path or None
        The staged copy, when a claim names ``key`` and the copy is still readable.
    """
    try:
        note = json.loads(claim_file(final).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    staged = Path(str(note.get("staged", "")))
    if note.get("key") != key or not staged.is_absolute() or not staged.exists():
        return None
    return staged


def release(final: str | os.PathLike) -> None:
    """Remove the claim of ``final`` (once published, or when none is left)."""
    claim_file(final).unlink(missing_ok=True)
    try:
        claim_file(final).parent.rmdir()
    except OSError:  # other claims remain, or it was never made
        pass


def copy_staged(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy another job's staged file or folder into this step's node folder.

    Parameters
    ----------
    source : path
        The staged copy named by a claim.
    target : path
        Where it goes (replaced when present).

    Returns
    -------
    Path
        ``target``.
    """
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    return target


def publish_folder(staged: str | os.PathLike, final: str | os.PathLike) -> None:
    """Replace the folder ``final`` by a copy of ``staged``, by renames.

    Readers never see a half-copied folder: the copy is built under a temporary
    name beside ``final`` and renamed into place; an older ``final`` is moved
    aside first and removed after.

    Parameters
    ----------
    staged : path
        The staged folder.
    final : path
        The entry in the store.
    """
    staged, final = Path(staged), Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        follow_umask(tmp, directory=True)
        for source in sorted(staged.rglob("*")):
            if source.is_file():
                copy_file(source, tmp / source.relative_to(staged))
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=".tmp.old",
                                        dir=final.parent))
            os.replace(final, old / final.name)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish_files(staged: list[str | os.PathLike], finals: list[str | os.PathLike]) -> int:
    """Publish staged files to the store, each unless its entry is already there.

    Parameters
    ----------
    staged : list of path
        Staged files.
    finals : list of path
        Their entries in the store, in the same order.

    Returns
    -------
    int
        How many were written (an entry already present is kept: first wins).
    """
    n_written = 0
    for source, final in zip(staged, finals, strict=True):
        if not Path(final).exists():
            n_written += copy_file(Path(source), Path(final))
    return n_written
