"""Cross-validation over whole runs (never splitting a run between train and test).

Also the run checks and trim masks that the plain and banded cross-validation loops
share (:func:`check_runs`, :func:`trim_mask`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np

from ..alignment import edge_mask

SCHEMES = ("leave-one-run-out", "leave-one-story-out", "<K>-fold")


def _units(runs: np.ndarray, labels) -> list[list]:
    """Group runs that must stay together (all runs of a story when labels are given)."""
    if labels is None:
        return [[r] for r in runs]
    labels = list(labels)
    order = []
    for run in runs:
        if labels[int(run)] not in order:
            order.append(labels[int(run)])
    return [[r for r in runs if labels[int(r)] == lab] for lab in order]


def outer_splits(groups: np.ndarray, scheme: str = "leave-one-run-out", labels=None):
    """Outer folds: each run (or block of runs, or story) is held out once.

    Parameters
    ----------
    groups : ndarray of shape (n_samples,)
        Run index of every volume.
    scheme : str
        ``'leave-one-run-out'``, ``'<K>-fold'`` (K blocks of consecutive runs) or
        ``'leave-one-story-out'`` (all runs of a story held out together).
    labels : sequence of str, optional
        Story of each run (indexed by run). When given, runs of the same story are
        never split between training and test, whatever the scheme.

    Returns
    -------
    list of (train, test)
        Index arrays into the samples.
    """
    groups = np.asarray(groups)
    runs = np.unique(groups)
    if len(runs) < 2:
        raise ValueError("cross-validation needs at least 2 runs")
    if scheme == "leave-one-story-out" and labels is None:
        raise ValueError("'leave-one-story-out' needs the story of every run")
    units = _units(runs, labels)
    if len(units) < 2:
        raise ValueError("cross-validation needs at least 2 runs of different stories")
    if scheme in ("leave-one-run-out", "leave-one-story-out"):
        blocks = units
    else:
        match = re.fullmatch(r"(\d+)-fold", scheme)
        if not match:
            raise ValueError(f"'outer_cv' must be one of {SCHEMES}; got {scheme!r}")
        k = min(int(match.group(1)), len(units))
        if k < 2:
            raise ValueError("K-fold cross-validation needs K >= 2")
        blocks = [sum(b, []) for b in _split_list(units, k)]
    splits = []
    for block in blocks:
        test = np.isin(groups, block)
        splits.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return splits


def _split_list(items: list, k: int) -> list[list]:
    return [[items[i] for i in part] for part in np.array_split(np.arange(len(items)), k)]


def inner_splits(groups: np.ndarray, n_folds: int = 5, labels=None):
    """Inner folds over the training runs, for choosing the regularisation.

    With two or more training runs the folds are blocks of whole runs (at most one
    fold per run). With a single training run the run is cut into ``n_folds``
    contiguous blocks, and a warning says so.

    Parameters
    ----------
    groups : ndarray of shape (n_train,)
        Run index of every training volume.
    n_folds : int
        Maximum number of folds.
    labels : sequence of str, optional
        Story of each run (indexed by run): runs of a story stay in one fold.

    Returns
    -------
    list of (train, validation)
        Index arrays into the training samples.
    """
    groups = np.asarray(groups)
    runs = np.unique(groups)
    units = _units(runs, labels)
    if len(units) >= 2:
        k = min(n_folds, len(units))
        blocks = [sum(b, []) for b in _split_list(units, k)]
        masks = [np.isin(groups, block) for block in blocks]
    else:
        warnings.warn("only one training run (or story): the regularisation is chosen on "
                      "contiguous blocks of the training volumes", RuntimeWarning, stacklevel=2)
        edges = np.linspace(0, len(groups), n_folds + 1).astype(int)
        masks = []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            mask = np.zeros(len(groups), dtype=bool)
            mask[a:b] = True
            masks.append(mask)
    return [(np.flatnonzero(~m), np.flatnonzero(m)) for m in masks]


def check_runs(Xs: Sequence[np.ndarray], Ys: Sequence[np.ndarray]) -> None:
    """Refuse designs and BOLD runs that do not pair up.

    Parameters
    ----------
    Xs : list of ndarray of shape (n_volumes_i, n_features)
        Design matrix of each run.
    Ys : list of ndarray of shape (n_volumes_i, n_voxels)
        BOLD of each run.

    Raises
    ------
    ValueError
        When the numbers of runs differ, or a run's design and BOLD differ in length.

    Examples
    --------
    >>> import numpy as np
    >>> check_runs([np.zeros((5, 2))], [np.zeros((4, 3))])
    Traceback (most recent call last):
    ...
    ValueError: run 0: design has 5 rows, BOLD 4 volumes
    """
    if len(Xs) != len(Ys):
        raise ValueError("one design matrix per BOLD run is needed")
    for i, (x, y) in enumerate(zip(Xs, Ys, strict=True)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"run {i}: design has {x.shape[0]} rows, BOLD {y.shape[0]} volumes")


def trim_mask(lengths: Sequence[int], trim: tuple[int, int] | None) -> np.ndarray:
    """Volumes kept once ``trim = (start, end)`` volumes are left out of every run.

    Parameters
    ----------
    lengths : list of int
        Volumes of each run.
    trim : (int, int) or None
        Volumes left out at the start and at the end of each run.

    Returns
    -------
    ndarray of bool, shape (sum(lengths),)
        True for kept volumes, runs concatenated.

    Examples
    --------
    >>> trim_mask([4, 3], (1, 1)).astype(int).tolist()
    [0, 1, 1, 0, 0, 1, 0]
    """
    start, end = (int(t) for t in (trim or (0, 0)))
    return np.concatenate([edge_mask(n, start, end) for n in lengths])
