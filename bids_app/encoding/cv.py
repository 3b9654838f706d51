"""Cross-validation over whole runs (never splitting a run between train and test)."""

from __future__ import annotations

import re
import warnings

import numpy as np


def outer_splits(groups: np.ndarray, scheme: str = "leave-one-run-out"):
    """Outer folds: each run (or block of runs) is held out once.

    Parameters
    ----------
    groups : ndarray of shape (n_samples,)
        Run index of every volume.
    scheme : str
        ``'leave-one-run-out'`` or ``'<K>-fold'`` (K blocks of consecutive runs).

    Returns
    -------
    list of (train, test)
        Index arrays into the samples.
    """
    groups = np.asarray(groups)
    runs = np.unique(groups)
    if len(runs) < 2:
        raise ValueError("cross-validation needs at least 2 runs")
    if scheme == "leave-one-run-out":
        blocks = [[r] for r in runs]
    else:
        match = re.fullmatch(r"(\d+)-fold", scheme)
        if not match:
            raise ValueError(f"unknown outer cross-validation scheme {scheme!r}")
        k = min(int(match.group(1)), len(runs))
        if k < 2:
            raise ValueError("K-fold cross-validation needs K >= 2")
        blocks = [list(b) for b in np.array_split(runs, k)]
    splits = []
    for block in blocks:
        test = np.isin(groups, block)
        splits.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return splits


def inner_splits(groups: np.ndarray, n_folds: int = 5):
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

    Returns
    -------
    list of (train, validation)
        Index arrays into the training samples.
    """
    groups = np.asarray(groups)
    runs = np.unique(groups)
    if len(runs) >= 2:
        k = min(n_folds, len(runs))
        blocks = np.array_split(runs, k)
        masks = [np.isin(groups, block) for block in blocks]
    else:
        warnings.warn("only one training run: the regularisation is chosen on contiguous "
                      "blocks of that run", RuntimeWarning, stacklevel=2)
        edges = np.linspace(0, len(groups), n_folds + 1).astype(int)
        masks = []
        for a, b in zip(edges[:-1], edges[1:]):
            mask = np.zeros(len(groups), dtype=bool)
            mask[a:b] = True
            masks.append(mask)
    return [(np.flatnonzero(~m), np.flatnonzero(m)) for m in masks]
