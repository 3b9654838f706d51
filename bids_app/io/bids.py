"""Query a BIDS dataset with pybids: participants, BOLD runs, TR, events.

The functions here collect *what* to process; reading images and annotations is
done elsewhere. Every problem a user can cause is raised as a
:class:`~bids_app.errors.BrainencError` naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import DatasetError, NoMatchError, UsageError
from .bold import image_error
from .echoes import refuse_echoes
from .fmriprep import (
    bids_filters,
    collect_fmriprep_runs,
    make_derivative_layouts,
    parse_derivatives,
)
from .hcp import collect_hcp_runs, hcp_root
from .runs import BoldRun, find_events, pybids_layout, tr_of

__all__ = ["BoldRun", "check_bids_folder", "check_dataset", "collect_runs", "entity_values",
           "find_events", "make_derivative_layouts", "make_layout", "parse_derivatives",
           "select_subjects"]


def check_bids_folder(bids_dir: Path) -> None:
    """Refuse a BIDS_DIR that is missing, not a folder or unreadable (UsageError, exit 2)."""
    if not bids_dir.exists():
        raise UsageError(f"the BIDS directory '{bids_dir}' does not exist; check the first "
                         "argument.")
    if not bids_dir.is_dir():
        raise UsageError(f"'{bids_dir}' is not a directory; give the root folder of a BIDS "
                         "dataset.")
    if not os.access(bids_dir, os.R_OK | os.X_OK):
        raise UsageError(f"the BIDS directory '{bids_dir}' is not readable; fix its permissions.")


def check_dataset(bids_dir: Path) -> dict:
    """Check that ``bids_dir`` looks like a BIDS dataset and return its description.

    Raises
    ------
    DatasetError
        When the folder is missing, unreadable, or has no usable dataset_description.json.
    """
    check_bids_folder(bids_dir)
    description = bids_dir / "dataset_description.json"
    if not description.is_file():
        raise DatasetError(
            f"'{bids_dir}' is not a BIDS dataset: it has no dataset_description.json; give the "
            "dataset's root folder (the one holding sub-* folders)."
        )
    try:
        data = json.loads(description.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read '{description}' ({exc}); it must be valid JSON.") from None
    if not isinstance(data, dict) or not data.get("Name") or not data.get("BIDSVersion"):
        raise DatasetError(
            f"'{description}' must be a JSON object with 'Name' and 'BIDSVersion'; add them."
        )
    if not any(p.is_dir() and p.name.startswith("sub-") for p in bids_dir.iterdir()):
        raise DatasetError(f"the BIDS dataset '{bids_dir}' has no sub-* folders.")
    return data


_IGNORE = (r"^/(code|models|sourcedata|stimuli|derivatives|work|\.)", r"/\.")


def make_layout(bids_dir: Path, *, database_dir: Path | None = None, derivatives=None,
                validate: bool = False):
    """Index the raw dataset with pybids, reusing a saved index when given one.

    Parameters
    ----------
    bids_dir : Path
        Dataset root.
    database_dir : Path, optional
        ``--bids-database-dir``: the index is saved there on the first run and read
        back on the next ones (seconds instead of minutes for large datasets).
    derivatives : ignored
        Derivative datasets are indexed by :func:`make_derivative_layouts`.
    validate : bool
        Let pybids drop files that are not valid BIDS.

    Returns
    -------
    bids.BIDSLayout
    """
    del derivatives
    return pybids_layout(Path(bids_dir), database_dir=database_dir, validate=validate,
                   ignore=_IGNORE)


def entity_values(layout, entity: str) -> list[str]:
    """Distinct values of an entity in the index (one SQL query, not a scan of every file)."""
    try:
        from bids.layout.models import Tag

        session = layout.connection_manager.session
        rows = session.query(Tag._value).filter(Tag.entity_name == entity).distinct().all()
        return sorted({str(row[0]) for row in rows})
    except (ImportError, AttributeError):  # another pybids version: its public API
        return sorted(str(v) for v in layout.get(return_type="id", target=entity))


def select_subjects(layout, labels: list[str] | None) -> list[str]:
    """Validate participant labels against the dataset (all subjects when None).

    Participants are the ``sub-<label>`` folders of the dataset (listing them is
    instant, where pybids' ``get_subjects`` scans its whole index).
    """
    root = Path(layout.root)
    available = sorted(p.name[4:] for p in root.iterdir()
                       if p.is_dir() and re.fullmatch(r"sub-[A-Za-z0-9]+", p.name))
    if not available:
        available = entity_values(layout, "subject")
    if not available:
        raise NoMatchError(f"no participants were found in '{layout.root}'.")
    if not labels:
        return available
    unknown = [label for label in labels if label not in available]
    if unknown:
        raise NoMatchError(
            f"participant label(s) {', '.join(unknown)} not found in '{layout.root}'; "
            f"available: {', '.join(available)}."
        )
    return list(dict.fromkeys(labels))


def collect_runs(layout, subject: str, *, tasks: list[str] | None = None,
                 sessions: list[str] | None = None, filters: dict | None = None,
                 derivatives: dict | None = None, space: str | None = None,
                 inputs=None, bids_dir: Path | None = None) -> list[BoldRun]:
    """List the BOLD runs of one participant: raw, fMRIPrep or HCP-pipeline.

    Parameters
    ----------
    layout : bids.BIDSLayout
        Indexed raw dataset.
    subject : str
        Participant label (without ``sub-``).
    tasks, sessions : list of str, optional
        Restrict to these labels.
    filters : dict, optional
        Extra pybids filters for the BOLD query (``--bids-filter-file``'s ``bold``).
    derivatives : dict, optional
        ``{name: BIDSLayout}`` of preprocessed datasets (``-d``); their runs are used.
    space : str, optional
        ``--space`` of the preprocessed runs.
    inputs : InputsConfig, optional
        ``[inputs]`` of the spec; ``layout = 'hcp'`` reads its path mapping.
    bids_dir : Path, optional
        Dataset root (for relative ``inputs.root``).

    Returns
    -------
    list of BoldRun
        Sorted by session, task and run.
    """
    if inputs is not None and getattr(inputs, "layout", "bids") == "hcp":
        root = hcp_root(Path(bids_dir or layout.root), inputs)
        runs = collect_hcp_runs(layout, inputs, root, subject, space=space, tasks=tasks,
                                sessions=sessions, filters=filters)
        return _sorted(runs)
    if derivatives:
        return _sorted(collect_fmriprep_runs(layout, derivatives, subject, space=space,
                                             tasks=tasks, sessions=sessions, filters=filters))
    if space:
        raise NoMatchError(f"--space '{space}' needs preprocessed inputs: raw BOLD has no "
                           "template space; add -d fmriprep=PATH (or an [inputs] mapping).")
    return _sorted(_collect_raw(layout, subject, tasks=tasks, sessions=sessions, filters=filters))


def _sorted(runs: list[BoldRun]) -> list[BoldRun]:
    runs.sort(key=lambda r: (r.session, r.task, _run_key(r.run), str(r.bold_file)))
    return runs


def _collect_raw(layout, subject: str, *, tasks=None, sessions=None, filters=None):
    import nibabel as nib

    query = {"subject": subject, "datatype": "func", "suffix": "bold",
             "extension": [".nii", ".nii.gz"], "scope": "raw"}
    if tasks:
        query["task"] = tasks
    if sessions:
        query["session"] = sessions

    query.update(bids_filters(filters))
    files = layout.get(**query)
    runs = []
    for bids_file in files:
        path = Path(bids_file.path)
        entities = {k: v for k, v in bids_file.get_entities().items()
                    if k not in ("datatype", "suffix", "extension")}
        metadata = bids_file.get_metadata()
        try:
            header = nib.load(str(path)).header
        except Exception as exc:  # nibabel raises many types on corrupt files

            raise image_error(path, exc) from None
        shape = header.get_data_shape()
        if len(shape) != 4 or shape[3] < 2:
            raise DatasetError(
                f"'{path.name}' is not a 4-D BOLD run (shape {tuple(shape)}); "
                "a run needs one 3-D volume per time point."
            )
        runs.append(BoldRun(
            subject=subject,
            session=str(entities.get("session", "")),
            task=str(entities.get("task", "")),
            run=str(entities.get("run", "")),
            bold_file=path,
            events_file=find_events(layout, path, entities),
            tr=tr_of(path, metadata, header),
            n_volumes=int(shape[3]),
            start_time=metadata.get("StartTime"),
            entities=entities,
            metadata=dict(metadata),
        ))

    refuse_echoes(runs)
    return runs


def _run_key(run: str):
    return (0, int(run), "") if str(run).isdigit() else (1, 0, str(run))
