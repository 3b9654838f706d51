"""Query fMRIPrep derivatives: volumes, surfaces and CIFTI of one participant.

Files are found by their entities (pybids), never by string patterns, so every
naming order fMRIPrep has used since 20.x is read: ``..._space-fsaverage5_hemi-L.func.gii``,
``..._space-fsaverage5_hemi-L_bold.func.gii`` and ``..._hemi-L_space-fsaverage5_bold.func.gii``.
``--space`` takes fMRIPrep's spelling: ``MNI152NLin2009cAsym``, ``MNI152NLin2009cAsym:res-2``,
``fsaverage5``, ``fsLR:den-91k``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError, NoMatchError, UsageError
from .echoes import prefer_combined
from .runs import RUN_ENTITIES, BoldRun, find_events, pybids_layout, raw_metadata, tr_of
from .surfaces import HEMISPHERES, cifti_info, count_gifti_arrays, data_kind

_EXTENSIONS = [".nii", ".nii.gz", ".func.gii", ".dtseries.nii"]
_OURS = {"subject", "datatype", "suffix", "extension", "desc", "space", "res", "den", "hemi",
         "scope"}


def parse_space(value: str) -> dict:
    """``'MNI152NLin2009cAsym:res-2'`` -> ``{'space': 'MNI152NLin2009cAsym', 'res': '2'}``."""
    parts = [p for p in str(value).split(":") if p]
    if not parts:
        raise UsageError(f"'--space' must name a space like 'MNI152NLin2009cAsym:res-2'; got "
                         f"'{value}'.")
    out = {"space": parts[0]}
    for part in parts[1:]:
        key, _, label = part.partition("-")
        if key not in ("res", "den") or not label:
            raise UsageError(f"'--space' qualifiers must be 'res-<label>' or 'den-<label>'; got "
                             f"'{part}' in '{value}'.")
        out[key] = label
    return out


def space_label(entities: dict) -> str:
    """Spell a file's space as fMRIPrep does (``fsLR:den-91k``)."""
    label = str(entities.get("space", ""))
    for key in ("res", "den"):
        if entities.get(key) not in (None, ""):
            label += f":{key}-{entities[key]}"
    return label


def bids_filters(filters: dict | None) -> dict:
    """Translate a ``--bids-filter-file`` entry to pybids terms (``null``, ``"*"`` as fMRIPrep)."""
    from bids.layout import Query

    out = {}
    for key, value in (filters or {}).items():
        if key in _OURS:
            continue
        out[key] = Query.NONE if value is None else Query.ANY if value == "*" else value
    return out


def _run_key(entities: dict) -> tuple:
    return tuple(str(entities.get(k, "")) for k in RUN_ENTITIES)


def _candidates(layout, subject: str, tasks, sessions, filters) -> list:
    query = {"subject": subject, "datatype": "func", "extension": _EXTENSIONS,
             **bids_filters(filters)}
    if tasks:
        query["task"] = tasks
    if sessions:
        query["session"] = sessions
    found = []
    for item in layout.get(**query):
        entities = item.get_entities()
        kind = data_kind(item.path)
        suffix = entities.get("suffix")
        if kind == "volume" and (suffix != "bold" or entities.get("desc") != "preproc"):
            continue
        if kind == "surface" and (suffix not in (None, "bold") or not entities.get("hemi")):
            continue
        if kind == "cifti" and suffix != "bold":
            continue
        if not entities.get("space") and kind != "cifti":
            continue  # native-space (boldref-aligned) outputs are not analysed
        found.append((item, entities, kind))

    return prefer_combined(found, subject)


def _matches(entities: dict, wanted: dict) -> bool:
    return all(str(entities.get(k, "")) == str(v) for k, v in wanted.items())


def _companion(layout, entities: dict, **query):
    terms = {k: entities[k] for k in RUN_ENTITIES if entities.get(k) not in (None, "")}
    found = layout.get(return_type="filename", **terms, **query)
    return Path(found[0]) if found else None


def collect_fmriprep_runs(raw_layout, layouts: dict, subject: str, *, space: str | None,
                          tasks=None, sessions=None, filters=None) -> list:
    """Preprocessed BOLD runs of one participant in one space.

    Parameters
    ----------
    raw_layout : bids.BIDSLayout
        The raw dataset (events, raw sidecars).
    layouts : dict of str to bids.BIDSLayout
        Derivative datasets given with ``-d NAME=PATH``.
    subject : str
        Participant label.
    space : str or None
        ``--space`` (None: the only space present).
    tasks, sessions : list of str, optional
        Restrict to these labels.
    filters : dict, optional
        The ``bold`` entry of ``--bids-filter-file``.

    Returns
    -------
    list of BoldRun
        Unsorted.

    Raises
    ------
    NoMatchError
        When ``space`` is not among the spaces of the participant's preprocessed runs
        (the message lists those that exist).
    """
    found = []
    for layout in layouts.values():
        found += _candidates(layout, subject, tasks, sessions, filters)
    spaces = sorted({space_label(e) for _, e, _ in found})
    names = ", ".join(f"{n}={getattr(lay, 'root', '')}" for n, lay in layouts.items())
    if not found:
        raise NoMatchError(f"no preprocessed BOLD of sub-{subject} was found in {names}; check "
                           "-d, --task-id, --session-id and the bids filter.")
    if space is None:
        if len(spaces) > 1:
            raise UsageError(f"sub-{subject} has preprocessed BOLD in several spaces "
                             f"({', '.join(spaces)}); choose one with --space.")
        space = spaces[0]
    wanted = parse_space(space)
    chosen = [(i, e, k) for i, e, k in found if _matches(e, wanted)]
    if not chosen:
        raise NoMatchError(f"no preprocessed BOLD of sub-{subject} in space '{space}'; spaces "
                           f"available: {', '.join(spaces)}.")
    groups: dict = {}
    for item, entities, kind in chosen:
        groups.setdefault((_run_key(entities), space_label(entities), kind), []).append(
            (item, entities))
    owner = {str(i.path): lay for lay in layouts.values() for i, _, _ in chosen
             if str(i.path).startswith(str(Path(lay.root)))}
    runs = []
    for (_, _, kind), items in groups.items():
        runs.append(_make_run(raw_layout, owner.get(str(items[0][0].path)), subject, kind, items))
    kinds = {r.kind for r in runs}
    if len(kinds) > 1:
        raise NoMatchError(f"space '{space}' matches {', '.join(sorted(kinds))} files of "
                           f"sub-{subject}; qualify it, e.g. '{space}:den-91k'.")
    return runs


def _make_run(raw_layout, layout, subject: str, kind: str, items: list):
    import nibabel as nib

    item, entities = items[0]
    metadata = raw_metadata(raw_layout, entities)
    metadata.update(item.get_metadata())
    run_entities = {k: v for k, v in entities.items()
                    if k not in ("datatype", "suffix", "extension", "desc")}
    surface_files: dict = {}
    mask_file = None
    if kind == "surface":
        for hemi_item, hemi_entities in items:
            surface_files[str(hemi_entities["hemi"])] = Path(hemi_item.path)
        missing = [h for h in HEMISPHERES if h not in surface_files]
        if missing:
            raise DatasetError(f"the hemi-{missing[0]} surface file of "
                               f"'{Path(item.path).name}' is missing; fMRIPrep writes both.")
        bold_file = surface_files["L"]
        run_entities.pop("hemi", None)
        n_volumes = count_gifti_arrays(bold_file)
        tr = metadata.get("RepetitionTime")
        if tr is None:
            raise DatasetError(f"no RepetitionTime for '{bold_file.name}': add it to its JSON "
                               "sidecar or keep the raw dataset's sidecars.")
        tr = float(tr)
    elif kind == "cifti":
        bold_file = Path(item.path)
        info = cifti_info(bold_file)
        n_volumes = info["n_volumes"]
        tr = float(metadata.get("RepetitionTime") or info["tr"])
    else:
        bold_file = Path(item.path)
        header = nib.load(str(bold_file)).header
        shape = header.get_data_shape()
        if len(shape) != 4 or shape[3] < 2:
            raise DatasetError(f"'{bold_file.name}' is not a 4-D BOLD run (shape "
                               f"{tuple(shape)}).")
        n_volumes = int(shape[3])
        tr = tr_of(bold_file, metadata, header)
        if layout is not None:
            space_terms = {k: entities[k] for k in ("space", "res") if entities.get(k)}
            mask_file = _companion(layout, entities, desc="brain", suffix="mask",
                                   extension=[".nii", ".nii.gz"], datatype="func", **space_terms)
    confounds = None
    if layout is not None:
        confounds = _companion(layout, entities, desc="confounds", datatype="func",
                               suffix=["timeseries", "regressors"], extension=".tsv")
    return BoldRun(
        subject=subject, session=str(entities.get("session", "")),
        task=str(entities.get("task", "")), run=str(entities.get("run", "")),
        bold_file=bold_file, events_file=find_events(raw_layout, bold_file, entities),
        tr=tr, n_volumes=n_volumes, start_time=metadata.get("StartTime"), mask_file=mask_file,
        space=str(entities.get("space", "")), kind=kind, surface_files=surface_files,
        confounds_file=confounds, source="fmriprep", entities=run_entities,
        metadata=dict(metadata))


def parse_derivatives(values) -> dict[str, Path]:
    """``-d NAME=PATH`` (or ``-d PATH``) values as ``{name: path}``."""
    out = {}
    for value in values or ():
        name, sep, path = str(value).partition("=")
        if not sep:
            name, path = Path(value).name or "derivatives", value
        path = Path(path).expanduser().absolute()
        if not path.is_dir():
            raise UsageError(f"the derivatives folder '{path}' (from -d {value}) does not exist; "
                             "give NAME=PATH of a preprocessed dataset, e.g. "
                             "fmriprep=/data/derivatives/fmriprep.")
        if name in out:
            raise UsageError(f"-d names '{name}' twice; give each derivatives dataset its own "
                             "name.")
        out[name] = path
    return out


def make_derivative_layouts(derivatives: dict[str, Path], *,
                            database_dir: Path | None = None) -> dict:
    """One pybids layout per preprocessed dataset (each with its own saved index).

    Returns
    -------
    dict of str to bids.BIDSLayout
    """
    layouts = {}
    for name, path in derivatives.items():
        if name == "hcp":
            continue  # read through the [inputs] mapping, not pybids
        if not (path / "dataset_description.json").is_file():
            raise DatasetError(f"the derivatives folder '{path}' has no dataset_description.json; "
                               "give the root of the fMRIPrep output (the folder holding sub-*).")
        db = Path(database_dir) / f"derivatives-{name}" if database_dir else None
        layouts[name] = pybids_layout(path, database_dir=db, derivative=True,
                                ignore=(r"^/(figures|log|logs|sourcedata|work|\.)", r"/\.",
                                        r"/figures/", r"/log/"))
    return layouts
