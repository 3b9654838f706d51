"""Inter-subject noise ceiling at the group stage, from OUTPUT_DIR only.

The participant level writes every volumetric run's cleaned held-out BOLD to
``OUTPUT_DIR`` (``sub-<label>/func/*_desc-clean_bold.nii.gz``, see
:mod:`bids_app.clean_bold`). For the participants of a group map, the runs all of
them have (same entities apart from ``sub``, same number of volumes, on the grid of
the map) are read one at a time, restricted to the voxels analysed in everyone and
to the volumes no participant excludes (sidecar ``ExcludedVolumes``), and each
participant's leave-one-subject-out correlation is accumulated over those runs with
:class:`bids_app.encoding.noise_ceiling.LosoCorrelation` (equal to
:func:`bids_app.encoding.noise_ceiling.loso_correlation` on the concatenated runs).
The LOSO correlation is corrected for the noise in the mean of the others
(:func:`bids_app.encoding.noise_ceiling.shared_response_ceiling`), so that a perfect
model of the shared response reads 1 of the ceiling at any group size. Encoding
r is then reported as a fraction of it. Surfaces and CIFTI get no
ceiling, nor do fewer than 3 participants.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..encoding.noise_ceiling import LosoCorrelation, shared_response_ceiling
from .maps import corrupt_output, geometry, map_kind

LOGGER = logging.getLogger("brainenc.group")
SUFFIX = "_desc-clean_bold.nii.gz"
#: Keep a run's masked series of every participant in memory below this size (bytes).
CACHE_BYTES = 1 << 30


@dataclass
class Ceiling:
    """A leave-one-subject-out ceiling and what it was computed from.

    Attributes
    ----------
    values : ndarray of shape (n_subjects, n_elements)
        float32 ceilings (0 outside the voxels analysed in every participant): each
        participant's LOSO correlation corrected to the correlation with the shared
        response (:func:`bids_app.encoding.noise_ceiling.shared_response_ceiling`).
    runs : list of str
        Run names without the participant (``task-x_run-1_space-S``).
    n_volumes : int
        Volumes per participant, over every run.
    sources : list of str
        The cleaned BOLD files read, relative to OUTPUT_DIR.
    """

    values: np.ndarray
    runs: list = field(default_factory=list)
    n_volumes: int = 0
    sources: list = field(default_factory=list)

    def methods(self) -> str:
        """Methods sentence of this ceiling: participants, runs and volumes it used.

        Returns
        -------
        str
        """
        n_runs = len(self.runs)
        return (f"A shared-response noise ceiling (stat-ceiling, desc-loso) was computed from "
                f"the cleaned held-out BOLD (desc-clean_bold) of the {self.values.shape[0]} "
                f"participants, over the {n_runs} run{'s' if n_runs != 1 else ''} they all "
                f"share ({self.n_volumes} volumes per participant; volumes any participant "
                "excluded were left out): each participant's correlation with the mean of the "
                "others (leave-one-subject-out), corrected with the Spearman-Brown formula for "
                "the noise left in that mean, so that it estimates the correlation of one "
                "participant with the response all participants share; a perfect model of "
                "that response scores 1 whatever the group size.")


def participant_ceiling_methods(statistic: str, n_subjects: int) -> str:
    """Methods sentence of a ceiling read from the participants' own ceiling maps.

    Parameters
    ----------
    statistic : str
        The ``stat-`` entity of those maps (``'ceiling'``, ``'nc'`` or ``'isc'``).
    n_subjects : int
        Participants whose maps were read.

    Returns
    -------
    str
    """
    return (f"The noise ceiling was read from the {n_subjects} participants' own noise-ceiling "
            f"maps (stat-{statistic}).")


def _run_key(path: Path, subject: str) -> str:
    return path.name[len(f"sub-{subject}_"):-len(SUFFIX)]


def _entity(key: str, name: str) -> str:
    match = re.search(rf"(?:^|_){name}-([A-Za-z0-9]+)", key)
    return match.group(1) if match else ""


def _stories(path: Path) -> str | None:
    """``+``-joined stories of a cleaned run (sidecar ``Stories``), None when unknown."""
    sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
    try:
        stories = json.loads(sidecar.read_text("utf-8")).get("Stories")
    except (OSError, ValueError):
        return None
    return "+".join(str(s) for s in stories) if stories else None


def _story_key(key: str, story: str, seen: dict) -> str:
    """Run key with the run number replaced by the story (and its repeat, if any)."""
    base = re.sub(r"(^|_)run-[A-Za-z0-9]+", "", key).strip("_")
    label = re.sub(r"[^A-Za-z0-9+]", "", story) or "unnamed"
    seen[(base, story)] = seen.get((base, story), 0) + 1
    repeat = f"_repeat-{seen[(base, story)]}" if seen[(base, story)] > 1 else ""
    return f"story-{label}{repeat}_{base}" if base else f"story-{label}{repeat}"


def clean_bold_files(output_dir: str | Path, subjects: list[str], *, task: str = "",
                     space: str = "") -> dict[str, list[Path]]:
    """Cleaned BOLD runs every participant has, paired by story.

    Participants may hear the stories in different orders (counterbalanced designs),
    so runs are paired by the story their sidecar names (``Stories``), not by run
    number. Runs written before stories were recorded are paired by run name when
    no participant's runs name a story; when some do and some do not, nothing is
    paired (the ceiling would mix stories).

    Parameters
    ----------
    output_dir : str or Path
        OUTPUT_DIR.
    subjects : list of str
        Participant labels.
    task, space : str
        Keep runs of this task ('' for any) and this space ('' for native).

    Returns
    -------
    dict of str -> list of Path
        Pairing key (``story-<label>_...`` or the run name) -> one file per
        participant, in the order of ``subjects``; sorted by key.
    """
    found, known = [], []
    for subject in subjects:
        files = {}
        for path in sorted(Path(output_dir).glob(f"sub-{subject}/**/func/sub-{subject}_*{SUFFIX}")):
            key = _run_key(path, subject)
            if (not task or _entity(key, "task") == task) and _entity(key, "space") == space:
                files[key] = path
        found.append(files)
        known += [_stories(p) is not None for p in files.values()]
    if any(known) and not all(known):
        LOGGER.warning("noise ceiling skipped: some cleaned runs name their story and others "
                       "do not, so participants' runs cannot be matched by story; rerun the "
                       "participant level of the older participants")
        return {}
    if any(known):
        by_story = []
        for files in found:
            seen: dict = {}
            by_story.append({_story_key(key, _stories(path), seen): path
                             for key, path in sorted(files.items())})
        found = by_story
    common = sorted(set.intersection(*(set(f) for f in found))) if found else []
    if any(known) and not common and found:
        LOGGER.warning("noise ceiling skipped: the participants share no story (their cleaned "
                       "runs name different stories)")
    return {key: [files[key] for files in found] for key in common}


def _excluded(path: Path) -> set:
    sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
    try:
        return {int(v) for v in json.loads(sidecar.read_text("utf-8")).get("ExcludedVolumes", [])}
    except (OSError, ValueError, TypeError):
        return set()


def _masked(path: Path, voxels: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    """Series (n_volumes, n_voxels) float32 of the chosen voxels and volumes of a 4-D file."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        raw = np.asanyarray(img.dataobj.get_unscaled())
    except (EOFError, OSError, ValueError, zlib.error) as exc:  # truncated or damaged run
        raise corrupt_output(path, exc) from None
    data = raw.reshape(-1, raw.shape[-1])[voxels][:, volumes].T.astype(np.float32)
    del raw
    slope, inter = img.dataobj.slope, img.dataobj.inter
    if slope != 1.0:
        data *= np.float32(slope)
    if inter:
        data += np.float32(inter)
    return data


def loso_ceiling(output_dir: str | Path, subjects: list[str], template: str | Path,
                 valid: np.ndarray, *, task: str = "", space: str = "") -> Ceiling | None:
    """Per-participant leave-one-subject-out correlation from OUTPUT_DIR.

    Parameters
    ----------
    output_dir : str or Path
        OUTPUT_DIR holding the participants' ``desc-clean_bold`` runs.
    subjects : list of str
        Participant labels, in the order of the group data.
    template : str or Path
        A participant NIfTI map giving the grid (flattened element order).
    valid : ndarray of bool, shape (n_elements,)
        Voxels analysed in every participant.
    task, space : str
        Entities of the group map ('' task: runs of any task).

    Returns
    -------
    Ceiling or None
        None when fewer than 3 participants, no shared run or no volumetric grid.
    """
    import nibabel as nib

    if len(subjects) < 3 or map_kind(template) != "volume":
        return None
    output_dir = Path(output_dir)
    grid = geometry(template)
    voxels = np.flatnonzero(valid)
    accumulator = LosoCorrelation(len(subjects), len(voxels))
    used_runs, sources = [], []
    for key, paths in clean_bold_files(output_dir, subjects, task=task, space=space).items():
        images = [nib.load(str(p)) for p in paths]
        lengths = {img.shape[3] if len(img.shape) == 4 else 0 for img in images}
        if (len(lengths) != 1 or any(geometry(p)[1:] != grid[1:] for p in paths)):
            LOGGER.warning("noise ceiling: run '%s' left out (participants' files differ in "
                           "volumes or grid)", key)
            continue
        excluded = set.union(*(_excluded(p) for p in paths))
        volumes = np.setdiff1d(np.arange(lengths.pop()), sorted(excluded))
        if len(volumes) < 3:
            continue
        fits = len(subjects) * len(volumes) * len(voxels) * 4 <= CACHE_BYTES
        cache: dict = {}

        def load(s, paths=paths, volumes=volumes, cache=cache, fits=fits):
            if s in cache:
                return cache[s]
            data = _masked(paths[s], voxels, volumes)
            if fits:
                cache[s] = data
            return data

        accumulator.add_run(load)
        used_runs.append(key)
        sources += [Path(p).relative_to(output_dir).as_posix() for p in paths]
    if not used_runs:
        LOGGER.warning("noise ceiling skipped: the participants share no cleaned BOLD run "
                       "(desc-clean_bold) in '%s'", output_dir)
        return None
    full = np.zeros((len(subjects), valid.size), dtype=np.float32)
    # the LOSO correlation, corrected for the noise left in the mean of the others
    full[:, voxels] = shared_response_ceiling(accumulator.result(), len(subjects))
    return Ceiling(full, used_runs, int(accumulator.n_volumes_), sources)
