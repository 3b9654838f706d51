"""Read HCP-pipeline outputs through a mapping declared in the experiment spec.

Datasets preprocessed with the HCP minimal pipelines (e.g. SMN4Lang, OpenNeuro
ds004078) keep their files outside BIDS-Derivatives naming::

    derivatives/preprocessed_data/sub-01/MNI/sub-01_task-RDR_run-1_bold.nii.gz
    derivatives/preprocessed_data/sub-01/CIFTI/sub-01_task-RDR_run-1_bold.dtseries.nii

The ``[inputs]`` section of the spec says where they are, with ``{entity}``
placeholders (``subject``, ``session``, ``task``, ``acquisition``, ``run``)::

    [inputs]
    layout = "hcp"
    root = "derivatives/preprocessed_data"
    volume = "sub-{subject}/MNI/sub-{subject}_task-{task}_run-{run}_bold.nii.gz"
    cifti = "sub-{subject}/CIFTI/sub-{subject}_task-{task}_run-{run}_bold.dtseries.nii"
    space = "MNI152NLin6Asym"

Timing (RepetitionTime, StartTime) and events come from the raw dataset's
sidecars and ``events.tsv`` of the same entities.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DatasetError, NoMatchError, UsageError
from .runs import BoldRun, find_events, raw_metadata, tr_of
from .surfaces import cifti_info

#: Placeholders a pattern may use.
PLACEHOLDERS = ("subject", "session", "task", "acquisition", "run")
_FIELD = re.compile(r"\{([a-z]+)\}")


def check_pattern(name: str, pattern: str) -> None:
    """Check a path pattern of ``[inputs]`` (raises :class:`UsageError`)."""
    if not pattern:
        return
    unknown = [f for f in _FIELD.findall(pattern) if f not in PLACEHOLDERS]
    if unknown:
        raise UsageError(f"'inputs.{name}' uses unknown placeholder(s) "
                         f"{', '.join('{' + u + '}' for u in unknown)}; allowed: "
                         f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}.")
    if "{subject}" not in pattern:
        raise UsageError(f"'inputs.{name}' must contain '{{subject}}'; got '{pattern}'.")


def pattern_regex(pattern: str) -> re.Pattern:
    """Regular expression matching a pattern's relative paths, one group per placeholder."""
    out, pos, seen = [], 0, set()
    for match in _FIELD.finditer(pattern):
        out.append(re.escape(pattern[pos:match.start()]))
        name = match.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>[A-Za-z0-9]+)")
        seen.add(name)
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + "$")


def find_mapped_files(root: Path, pattern: str, subject: str) -> list[tuple[Path, dict]]:
    """Files of one participant matching ``pattern`` under ``root``, with their entities."""
    glob = _FIELD.sub("*", pattern.replace("{subject}", subject))
    regex = pattern_regex(pattern)
    found = []
    for path in sorted(root.glob(glob)):
        match = regex.match(path.relative_to(root).as_posix())
        if match and match.group("subject") == subject:
            found.append((path, match.groupdict()))
    return found


def hcp_root(bids_dir: Path, inputs, derivatives: dict | None = None) -> Path:
    """Where the mapped files live: ``-d hcp=PATH``, else ``inputs.root`` (relative to BIDS_DIR)."""
    if derivatives and "hcp" in derivatives:
        return Path(derivatives["hcp"])
    root = Path(inputs.root)
    return root if root.is_absolute() else Path(bids_dir) / root


def collect_hcp_runs(raw_layout, inputs, root: Path, subject: str, *, space: str | None = None,
                     tasks=None, sessions=None, filters=None) -> list:
    """BOLD runs of one participant read through the ``[inputs]`` mapping.

    Parameters
    ----------
    raw_layout : bids.BIDSLayout
        The raw dataset (sidecars and events).
    inputs : InputsConfig
        ``[inputs]`` of the spec.
    root : Path
        Folder the patterns are relative to.
    subject : str
        Participant label.
    space : str, optional
        ``--space``: ``inputs.space`` (volumes) or ``fsLR`` (CIFTI).
    tasks, sessions : list of str, optional
        Restrict to these labels.
    filters : dict, optional
        ``bold`` entry of ``--bids-filter-file`` (entity -> value or list).

    Returns
    -------
    list of BoldRun
    """
    import nibabel as nib

    offered = {}
    if inputs.volume:
        offered[inputs.space] = ("volume", inputs.volume)
    if inputs.cifti:
        offered["fsLR"] = ("cifti", inputs.cifti)
    if not offered:
        raise UsageError("[inputs] layout = 'hcp' needs 'volume' and/or 'cifti' path patterns.")
    chosen = (space or next(iter(offered))).split(":")[0]
    if chosen not in offered:
        raise NoMatchError(f"space '{space}' is not mapped by [inputs]; spaces available: "
                           f"{', '.join(offered)}.")
    kind, pattern = offered[chosen]
    if not root.is_dir():
        raise DatasetError(f"the preprocessed data folder '{root}' ([inputs] root) does not "
                           "exist; fix 'inputs.root' or give -d hcp=PATH.")
    runs = []
    for path, entities in find_mapped_files(root, pattern, subject):
        entities = {k: (int(v) if k == "run" and v.isdigit() else v)
                    for k, v in entities.items()}
        if tasks and str(entities.get("task")) not in tasks:
            continue
        if sessions and str(entities.get("session")) not in sessions:
            continue
        if not _filter_ok(entities, filters):
            continue
        metadata = raw_metadata(raw_layout, entities)
        if kind == "cifti":
            info = cifti_info(path)
            n_volumes = info["n_volumes"]
            tr = float(metadata.get("RepetitionTime") or info["tr"])
            entities_out = {**entities, "space": "fsLR", "den": inputs.density}
        else:
            header = nib.load(str(path)).header
            shape = header.get_data_shape()
            if len(shape) != 4 or shape[3] < 2:
                raise DatasetError(f"'{path.name}' is not a 4-D BOLD run (shape {tuple(shape)}).")
            n_volumes, tr = int(shape[3]), tr_of(path, metadata, header)
            entities_out = {**entities, "space": inputs.space}
            if inputs.resolution:
                entities_out["res"] = inputs.resolution
        mask = None
        if kind == "volume" and inputs.mask:
            candidates = find_mapped_files(root, inputs.mask, subject)
            mask = candidates[0][0] if candidates else None
        runs.append(BoldRun(
            subject=subject, session=str(entities.get("session", "") or ""),
            task=str(entities.get("task", "")), run=str(entities.get("run", "")),
            bold_file=path, events_file=find_events(raw_layout, path, entities), tr=tr,
            n_volumes=n_volumes, start_time=metadata.get("StartTime"), mask_file=mask,
            space=entities_out["space"], kind=kind, source="hcp", entities=entities_out,
            metadata=metadata))
    if not runs:
        raise NoMatchError(f"no file of sub-{subject} matches '{pattern}' under '{root}'; check "
                           "the [inputs] patterns, --task-id and --session-id.")
    return runs


def _filter_ok(entities: dict, filters: dict | None) -> bool:
    for key, value in (filters or {}).items():
        if key not in PLACEHOLDERS or value in ("*",):
            continue
        allowed = value if isinstance(value, list) else [value]
        if str(entities.get(key, "")) not in {str(v) for v in allowed}:
            return False
    return True
