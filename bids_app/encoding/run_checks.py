"""Checks and masks shared by the plain and banded cross-validation loops.

A leaf of :mod:`bids_app.encoding`: :mod:`~bids_app.encoding.banded` (and any other
loop over runs) takes these from here rather than from another loop's module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..alignment import edge_mask

__all__ = ["check_runs", "trim_mask"]


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
