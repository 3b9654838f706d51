"""Query a BIDS dataset with pybids: participants, BOLD runs, TR, events.

The functions here collect *what* to process; reading images and annotations is
done elsewhere. Every problem a user can cause is raised as a
:class:`~bids_app.errors.BrainencError` naming the file and the fix.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError, NoMatchError, UsageError
from .fmriprep import make_derivative_layouts, parse_derivatives

__all__ = ["BoldRun", "check_dataset", "collect_runs", "entity_values", "find_events",
           "make_derivative_layouts", "make_layout", "parse_derivatives", "select_subjects"]

_ENTITY_ORDER = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction",
                 "direction", "run", "echo", "part")
_SHORT = {"subject": "sub", "session": "ses", "task": "task", "acquisition": "acq",
          "ceagent": "ce", "reconstruction": "rec", "direction": "dir", "run": "run",
          "echo": "echo", "part": "part"}


@dataclass
class BoldRun:
    """One BOLD run and everything needed to use it.

    Attributes
    ----------
    subject, session, task : str
        BIDS labels (``session`` may be empty).
    run : str
        Run label as written in the file name ('' when absent).
    bold_file : Path
        The 4-D image.
    events_file : Path or None
        The matching ``_events.tsv``.
    tr : float
        Repetition time in seconds.
    n_volumes : int
        Number of volumes in the image.
    start_time : float or None
        ``StartTime`` of the sidecar (slice-timing reference), when given.
    mask_file : Path or None
        Brain mask shipped with preprocessed data.
    space : str
        Template space ('' for native/raw).
    kind : {'volume', 'surface', 'cifti'}
        What the BOLD file holds.
    surface_files : dict
        ``{'L': path, 'R': path}`` of a surface run (``bold_file`` is the left one).
    confounds_file : Path or None
        fMRIPrep's ``desc-confounds_timeseries.tsv`` of the run.
    source : {'raw', 'fmriprep', 'hcp'}
        Where the BOLD comes from.
    entities : dict
        All pybids entities of the BOLD file.
    metadata : dict
        The merged JSON sidecar.
    """

    subject: str
    session: str
    task: str
    run: str
    bold_file: Path
    events_file: Path | None
    tr: float
    n_volumes: int
    start_time: float | None = None
    mask_file: Path | None = None
    space: str = ""
    kind: str = "volume"
    surface_files: dict = field(default_factory=dict)
    confounds_file: Path | None = None
    source: str = "raw"
    entities: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``sub-01_ses-1_task-x_run-1`` style identifier of the run."""
        parts = []
        for key in _ENTITY_ORDER:
            value = self.entities.get(key)
            if value not in (None, "") and key != "echo":
                parts.append(f"{_SHORT[key]}-{value}")
        return "_".join(parts)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        out["entities"] = {k: str(v) for k, v in self.entities.items()}
        out["surface_files"] = {k: str(v) for k, v in self.surface_files.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> BoldRun:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        for key in ("bold_file", "events_file", "mask_file", "confounds_file"):
            if data.get(key):
                data[key] = Path(data[key])
        data["surface_files"] = {k: Path(v) for k, v in (data.get("surface_files") or {}).items()}
        return cls(**data)

    @property
    def files(self) -> list[Path]:
        """Every image file of the run (both hemispheres of a surface run)."""
        if self.kind == "surface":
            return [self.surface_files[h] for h in sorted(self.surface_files)]
        return [self.bold_file]


def check_dataset(bids_dir: Path) -> dict:
    """Check that ``bids_dir`` looks like a BIDS dataset and return its description.

    Raises
    ------
    DatasetError
        When the folder is missing, unreadable, or has no usable dataset_description.json.
    """
    if not bids_dir.exists():
        raise UsageError(f"the BIDS directory '{bids_dir}' does not exist; check the first "
                         "argument.")
    if not bids_dir.is_dir():
        raise UsageError(f"'{bids_dir}' is not a directory; give the root folder of a BIDS "
                         "dataset.")
    if not os.access(bids_dir, os.R_OK | os.X_OK):
        raise UsageError(f"the BIDS directory '{bids_dir}' is not readable; fix its permissions.")
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
    return _layout(Path(bids_dir), database_dir=database_dir, validate=validate,
                   ignore=_IGNORE)


def _layout(root: Path, *, database_dir, validate=False, ignore=(), derivative=False):
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    indexer = BIDSLayoutIndexer(validate=validate, ignore=[re.compile(i) for i in ignore],
                                index_metadata=True)
    kwargs = {}
    if database_dir is not None:
        Path(database_dir).mkdir(parents=True, exist_ok=True)
        kwargs["database_path"] = str(database_dir)
    if derivative:
        kwargs.update(config=["bids", "derivatives"], is_derivative=True)
    try:
        return BIDSLayout(str(root), indexer=indexer, **kwargs)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"pybids cannot index '{root}' ({exc}); check that it is a BIDS "
                           "(derivatives) dataset with a dataset_description.json.") from None


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


def _tr_of(bold_file: Path, metadata: dict, header) -> float:
    tr = metadata.get("RepetitionTime")
    header_tr = float(header.get_zooms()[3]) if len(header.get_zooms()) > 3 else 0.0
    units = header.get_xyzt_units()[1] if hasattr(header, "get_xyzt_units") else "sec"
    if units == "msec":
        header_tr /= 1000.0
    if tr is None:
        if header_tr > 0:
            _check_plausible_tr(bold_file, header_tr, "NIfTI header")
            return header_tr
        raise DatasetError(
            f"no RepetitionTime for '{bold_file.name}': add it to the JSON sidecar "
            f"('{bold_file.name.split('.')[0]}.json' or a task-level file)."
        )
    if not isinstance(tr, (int, float)) or tr <= 0:
        raise DatasetError(f"RepetitionTime of '{bold_file.name}' must be a positive number; "
                           f"got {tr!r}.")
    if header_tr > 0 and 900 <= max(tr / header_tr, header_tr / tr) <= 1100:
        raise DatasetError(
            f"RepetitionTime of '{bold_file}' is {tr:g} in its JSON sidecar but {header_tr:g} s "
            "in the NIfTI header, a factor of 1000: one of them is in milliseconds; write the "
            "sidecar's RepetitionTime in seconds (BIDS) and fix the header's time unit.")
    _check_plausible_tr(bold_file, float(tr), "JSON sidecar")
    if header_tr > 0 and abs(header_tr - tr) > 0.01 * tr:  # BIDS: the sidecar is authoritative
        logging.getLogger("brainenc").warning(
            "RepetitionTime of '%s' is %g s in its sidecar but %g s in the NIfTI header; using "
            "the sidecar's %g s (fix the header or the sidecar if that is wrong).",
            bold_file.name, tr, header_tr, tr)
    return float(tr)


def find_events(layout, bold_file: Path, entities: dict) -> Path | None:
    """Find the ``_events.tsv`` of a BOLD run (same folder, raw run, BIDS inheritance)."""
    stem = re.sub(r"_(echo|part)-[^_]+", "", bold_file.name.split(".")[0])
    sibling = bold_file.parent / (stem[: -len("_bold")] + "_events.tsv")
    if stem.endswith("_bold") and sibling.is_file():
        return sibling
    raw_sibling = _raw_events_path(Path(layout.root), entities)
    if raw_sibling is not None and raw_sibling.is_file():  # preprocessed BOLD: the raw run's file
        return raw_sibling
    query = {k: v for k, v in entities.items()
             if k in ("subject", "session", "task", "acquisition", "run")}
    found = layout.get(suffix="events", extension=".tsv", return_type="filename", **query)
    if found:
        return Path(found[0])
    top = [p for p in layout.get(suffix="events", extension=".tsv", return_type="filename",
                                 task=entities.get("task"))
           if "sub-" not in Path(p).name]
    return Path(top[0]) if top else None


def _raw_events_path(root: Path, entities: dict) -> Path | None:
    """Where the raw dataset keeps the events of a run with these entities."""
    if not entities.get("subject") or not entities.get("task"):
        return None
    parts = [f"{_SHORT[k]}-{entities[k]}" for k in _ENTITY_ORDER
             if k not in ("echo", "part") and entities.get(k) not in (None, "")]
    folder = root / f"sub-{entities['subject']}"
    if entities.get("session") not in (None, ""):
        folder = folder / f"ses-{entities['session']}"
    return folder / "func" / ("_".join(parts) + "_events.tsv")


#: Longest plausible RepetitionTime (s); longer values are taken for a unit mistake.
MAX_TR = 20.0


def _check_plausible_tr(bold_file: Path, tr: float, where: str) -> None:
    """Refuse a RepetitionTime no fMRI run has (most often milliseconds taken for seconds)."""
    if tr > MAX_TR:
        raise DatasetError(
            f"RepetitionTime of '{bold_file}' is {tr:g} s in its {where}, longer than any fMRI "
            f"run's ({MAX_TR:g} s at most); it is probably in milliseconds: write it in seconds "
            f"(e.g. {tr / 1000:g}).")


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
        from .hcp import collect_hcp_runs, hcp_root

        root = hcp_root(Path(bids_dir or layout.root), inputs)
        runs = collect_hcp_runs(layout, inputs, root, subject, space=space, tasks=tasks,
                                sessions=sessions, filters=filters)
        return _sorted(runs)
    if derivatives:
        from .fmriprep import collect_fmriprep_runs

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
    from .fmriprep import bids_filters

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
            from .bold import image_error

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
            tr=_tr_of(path, metadata, header),
            n_volumes=int(shape[3]),
            start_time=metadata.get("StartTime"),
            entities=entities,
            metadata=dict(metadata),
        ))
    from .echoes import refuse_echoes

    refuse_echoes(runs)
    return runs


def _run_key(run: str):
    return (0, int(run), "") if str(run).isdigit() else (1, 0, str(run))
