"""A BOLD run as collected from BIDS, fMRIPrep or the HCP pipelines, and its timing.

The leaf of :mod:`bids_app.io`: the raw (:mod:`~bids_app.io.bids`), fMRIPrep
(:mod:`~bids_app.io.fmriprep`) and HCP (:mod:`~bids_app.io.hcp`) collectors all build
:class:`BoldRun` objects with the helpers here (pybids index, repetition time, events
file, raw sidecar metadata), and the volume timing used by every later step
(:func:`kept_volumes`, :func:`used_window`) is decided here once.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError

__all__ = ["MAX_TR", "RUN_ENTITIES", "BoldRun", "find_events", "kept_volumes", "pybids_layout",
           "raw_metadata", "tr_of", "used_window"]

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


def pybids_layout(root: Path, *, database_dir, validate=False, ignore=(), derivative=False):
    """Index a raw or derivative dataset with pybids.

    Parameters
    ----------
    root : Path
        Dataset root.
    database_dir : Path or None
        Folder of a saved index to reuse (created on the first run).
    validate : bool
        Let pybids drop files that are not valid BIDS.
    ignore : sequence of str
        Regular expressions of paths (relative to ``root``) not to index.
    derivative : bool
        Index ``root`` as a derivatives dataset.

    Returns
    -------
    bids.BIDSLayout
    """
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


def tr_of(bold_file: Path, metadata: dict, header) -> float:
    """Repetition time (s) of a run: the sidecar's, checked against the NIfTI header's.

    Raises
    ------
    DatasetError
        When no TR is given, or it is not positive, or it is implausibly long (a unit mistake).
    """
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


#: Entities that identify a run (shared by raw and preprocessed files).
RUN_ENTITIES = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction",
                "direction", "run")


def raw_metadata(raw_layout, entities: dict) -> dict:
    """Read the raw run's sidecar metadata (TR, SliceTiming...), with BIDS inheritance."""
    query = {k: entities[k] for k in RUN_ENTITIES if entities.get(k) not in (None, "")}
    files = raw_layout.get(suffix="bold", extension=[".nii", ".nii.gz"], scope="raw", **query)
    if files:
        return dict(files[0].get_metadata())
    wanted = {k: str(v) for k, v in query.items()}
    applicable = []
    for sidecar in raw_layout.get(suffix="bold", extension=".json", scope="raw"):
        own = {k: str(v) for k, v in sidecar.get_entities().items() if k in RUN_ENTITIES}
        if all(wanted.get(k) == v for k, v in own.items()):
            applicable.append((len(own), sidecar.path))
    metadata: dict = {}
    for _, path in sorted(applicable):  # the most specific file wins
        try:
            metadata.update(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            raise DatasetError(f"cannot read the sidecar '{path}'; it must be valid JSON.") \
                from None
    return metadata


def kept_volumes(run: BoldRun, dummy_scans: int) -> int:
    """Index of the first volume used (after non-steady-state volumes)."""
    discarded = int(run.metadata.get("NumberOfVolumesDiscardedByUser", 0) or 0)
    return max(int(dummy_scans), 0) if discarded == 0 else 0


def used_window(run: BoldRun, dummy_scans: int) -> tuple[float, float]:
    """Start and end (seconds, events clock) of the volumes of a run that are used.

    Word onsets in ``events.tsv`` count from the first volume stored in the file
    (BIDS), so volumes the scanner discarded before saving never shift them; only
    the dummy scans dropped here move the start. This, :func:`kept_volumes` and
    :func:`bids_app.participant.run_times` are the one place where volume timing is decided.
    """
    first = kept_volumes(run, dummy_scans)
    return first * run.tr, run.n_volumes * run.tr
