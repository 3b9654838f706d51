"""Confounds of fMRIPrep runs and the volumes each run keeps.

Confound regressors are read from fMRIPrep's ``desc-confounds_timeseries.tsv``
(or the older ``desc-confounds_regressors.tsv``) with nilearn's
:func:`~nilearn.interfaces.fmriprep.load_confounds_strategy` (a named strategy:
``simple``, ``scrubbing``, ``compcor``, ``ica_aroma``) or
:func:`~nilearn.interfaces.fmriprep.load_confounds` (``custom``: the options
name the noise components). Non-steady-state volumes, dummy scans and, with
scrubbing, high-motion volumes are dropped: the *same* boolean sample mask is
applied to the BOLD of a run and to the rows of its aligned design matrix, so
that every cross-validation fold sees matching samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DatasetError, UsageError

#: Named strategies of nilearn's ``load_confounds_strategy``, and ``custom``.
STRATEGIES = ("simple", "scrubbing", "compcor", "ica_aroma", "custom")
#: Where confound regression is fitted.
REGRESSION_MODES = ("fold", "run")


@dataclass
class RunSamples:
    """Which volumes of one run are used, and its confound regressors.

    Attributes
    ----------
    keep : ndarray of bool, shape (n_volumes,)
        Volumes used (False: dummy scan, non-steady-state or scrubbed).
    confounds : ndarray of shape (n_volumes, n_confounds) or None
        float32 regressors of every volume (rows of dropped volumes included).
    names : list of str
        Confound column names.
    counts : dict
        Volumes removed, by reason.
    """

    keep: np.ndarray
    confounds: np.ndarray | None = None
    names: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def check_confound_settings(strategy: str, options: dict, mode: str) -> None:
    """Check the ``[bold]`` confound settings of a spec.

    Raises
    ------
    UsageError
        On an unknown strategy or regression mode, or options that are not a table.
    """
    if strategy and strategy not in STRATEGIES:
        raise UsageError(f"'bold.confounds' must be one of {{{', '.join(map(repr, STRATEGIES))}}} "
                         f"or empty; got '{strategy}'.")
    if mode not in REGRESSION_MODES:
        raise UsageError(f"'bold.confound_regression' must be one of "
                         f"{{{', '.join(map(repr, REGRESSION_MODES))}}}; got '{mode}'.")
    if not isinstance(options, dict):
        raise UsageError(f"'bold.confound_options' must be a table; got {options!r}.")
    if strategy == "custom" and "strategy" not in options:
        raise UsageError("'bold.confounds' = 'custom' needs 'bold.confound_options.strategy', a "
                         "list of nilearn noise components, e.g. [\"motion\", \"wm_csf\"].")


def dummy_volumes(run, dummy_scans: int) -> int:
    """Count initial volumes dropped by ``dummy_scans`` (0 when the scanner already did)."""
    discarded = int(run.metadata.get("NumberOfVolumesDiscardedByUser", 0) or 0)
    return max(int(dummy_scans), 0) if discarded == 0 else 0


def _image_argument(run):
    if run.kind == "surface":
        return [str(run.surface_files["L"]), str(run.surface_files["R"])]
    return str(run.bold_file)


def _non_steady(confounds_file, n_volumes: int) -> np.ndarray:
    """Volumes flagged by fMRIPrep's ``non_steady_state_outlierXX`` columns."""
    import pandas as pd

    flagged = np.zeros(n_volumes, dtype=bool)
    if confounds_file is None:
        return flagged
    frame = pd.read_csv(confounds_file, sep="\t", na_values="n/a", nrows=n_volumes)
    for column in frame.columns:
        if str(column).startswith("non_steady_state_outlier"):
            flagged[: len(frame)] |= frame[column].fillna(0).to_numpy() > 0
    return flagged


def load_run_confounds(run, strategy: str, options: dict | None = None):
    """Load nilearn's confounds and sample mask of one fMRIPrep run.

    Parameters
    ----------
    run : BoldRun
        A run read from fMRIPrep derivatives (the confounds file sits beside the BOLD).
    strategy : str
        One of :data:`STRATEGIES`.
    options : dict, optional
        Keyword arguments of the nilearn function (e.g. ``fd_threshold``, ``motion``).

    Returns
    -------
    confounds : pandas.DataFrame of shape (n_volumes, n_confounds)
    sample_mask : ndarray of int or None
        Indices of the volumes to keep (None: all).
    """
    from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

    options = dict(options or {})
    try:
        if strategy == "custom":
            options["strategy"] = tuple(options["strategy"])
            frame, mask = load_confounds(_image_argument(run), **options)
        else:
            frame, mask = load_confounds_strategy(_image_argument(run), denoise_strategy=strategy,
                                                  **options)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
        raise DatasetError(
            f"cannot read the '{strategy}' confounds of '{run.bold_file.name}' ({exc}); it "
            "needs fMRIPrep's desc-confounds_timeseries.tsv (and .json) beside the BOLD file, "
            "or set 'bold.confounds' to a strategy its columns support."
        ) from None
    return frame, mask


def run_samples(run, bold_spec: dict) -> RunSamples:
    """Volumes kept and confounds of one run, as the ``[bold]`` settings ask.

    Parameters
    ----------
    run : BoldRun
        The run.
    bold_spec : dict
        ``[bold]`` of the spec (``dummy_scans``, ``confounds``, ``confound_options``).

    Returns
    -------
    RunSamples
    """
    n = int(run.n_volumes)
    keep = np.ones(n, dtype=bool)
    first = dummy_volumes(run, bold_spec.get("dummy_scans", 0))
    keep[:first] = False
    counts = {"dummy_scans": int(min(first, n)), "non_steady_state": 0, "scrubbed": 0}
    strategy = bold_spec.get("confounds") or ""
    if not strategy:
        return RunSamples(keep=keep, counts={**counts, "removed": int((~keep).sum())})
    if run.confounds_file is None and run.source != "fmriprep":
        raise DatasetError(f"'bold.confounds' = '{strategy}' needs fMRIPrep confounds, but "
                           f"'{run.bold_file.name}' has no desc-confounds_timeseries.tsv; give "
                           "fMRIPrep derivatives with -d or set 'bold.confounds' = ''.")
    frame, mask = load_run_confounds(run, strategy, bold_spec.get("confound_options") or {})
    if len(frame) != n:
        raise DatasetError(f"the confounds of '{run.bold_file.name}' have {len(frame)} rows but "
                           f"the run has {n} volumes; use the confounds file of this run.")
    steady = _non_steady(run.confounds_file, n) & keep
    counts["non_steady_state"] = int(steady.sum())
    keep &= ~steady
    if mask is not None:
        chosen = np.zeros(n, dtype=bool)
        chosen[np.asarray(mask, dtype=int)] = True
        counts["scrubbed"] = int((keep & ~chosen).sum())
        keep &= chosen
    counts["removed"] = int((~keep).sum())
    if keep.sum() < 3:
        raise DatasetError(f"only {int(keep.sum())} of {n} volumes of '{run.bold_file.name}' "
                           "survive dummy scans and scrubbing; relax 'bold.confound_options' "
                           "(e.g. fd_threshold) or drop the run.")
    values = np.nan_to_num(frame.to_numpy(dtype=np.float64)).astype(np.float32)
    return RunSamples(keep=keep, confounds=values, names=[str(c) for c in frame.columns],
                      counts=counts)


#: Confound columns whose meaning is tied to their run (fMRIPrep names): cosine drift terms
#: depend on the run's length, CompCor components are computed run by run, spike and
#: outlier regressors mark volumes of that run. In ``fold`` mode they are regressed within
#: their own run; the others (motion and its expansions, global/WM/CSF signals) mean the same
#: thing in every run and are regressed with coefficients from the training runs.
RUN_SPECIFIC_PREFIXES = ("cosine", "a_comp_cor", "t_comp_cor", "c_comp_cor", "w_comp_cor",
                         "motion_outlier", "non_steady_state_outlier", "spike")


def run_specific_columns(names: list[str]) -> np.ndarray:
    """Which confound columns are tied to their run (:data:`RUN_SPECIFIC_PREFIXES`).

    Parameters
    ----------
    names : list of str
        Column names, as fMRIPrep writes them.

    Returns
    -------
    ndarray of bool, shape (n_columns,)
    """
    return np.array([str(n).startswith(RUN_SPECIFIC_PREFIXES) for n in names], dtype=bool)



def split_confounds(confounds: np.ndarray | None, names: list[str],
                    mode: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Columns regressed within their run, and columns regressed across training runs.

    In ``run`` mode every column is regressed within its run. In ``fold`` mode the
    run-specific columns (:func:`run_specific_columns`) are regressed within their run
    and the others with coefficients fitted on the training runs of each outer fold.
    The BOLD and the design of a run are both cleaned with this split.

    Parameters
    ----------
    confounds : ndarray of shape (n_volumes, n_confounds) or None
        Confounds of one run.
    names : list of str
        Their column names.
    mode : {'fold', 'run'}
        ``bold.confound_regression``.

    Returns
    -------
    within : ndarray of shape (n_volumes, n_within) or None
        Regressed within the run.
    shared : ndarray of shape (n_volumes, n_shared) or None
        Regressed with coefficients from the training runs (None in ``run`` mode).
    """
    if confounds is None or mode != "fold":
        return confounds, None
    specific = run_specific_columns(names)
    within = confounds[:, specific] if specific.any() else None
    shared = confounds[:, ~specific] if (~specific).any() else None
    return within, shared
