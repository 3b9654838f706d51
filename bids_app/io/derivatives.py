"""Write BIDS-Derivatives: dataset description, names, maps and sidecars.

Every file is written under a temporary name and renamed into place, so a final
name never holds a half-written file, even when the run is killed.
"""

from __future__ import annotations

import filecmp
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from stimuli_models.cache import follow_umask, temp_prefix

from .._version import __version__
from ..errors import ResourceError

BIDS_VERSION = "1.10.0"
#: Standard template identifiers of BIDS (``space-`` labels that need no ``SpatialReference``).
STANDARD_SPACES = frozenset({
    "ICBM452AirSpace", "ICBM452Warp5Space", "IXI549Space", "fsaverage", "fsaverageSym", "fsLR",
    "MNIColin27", "MNI152Lin", "MNI152NLin2009aSym", "MNI152NLin2009bSym", "MNI152NLin2009cSym",
    "MNI152NLin2009aAsym", "MNI152NLin2009bAsym", "MNI152NLin2009cAsym", "MNI152NLin6Sym",
    "MNI152NLin6Asym", "MNI305", "NIHPD", "OASIS30AntsOASISAnts", "OASIS30Atropos", "Talairach",
    "UNCInfant"})
#: Entity order of output names (BIDS order; ``stat`` as FitLins places it, ``desc`` last).
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part",
                "hemi", "space", "res", "den", "label", "stat", "desc")
README_TEXT = """Voxel-wise encoding models computed by brainenc.

sub-<label>/func/*_stat-<r|r2|alpha|p|q>_desc-<variant>_statmap.nii.gz  per-participant maps
sub-<label>/func/*_desc-<variant>_scores.tsv                           regional summaries
sub-<label>.html                                                       participant reports
group/                                                                 group maps, tables, report
models/<variant>/                                                      tuned models and records
stimuli/                                                               word tables, cached features
descriptions.tsv                                                       what each desc-<variant> is
logs/                                                                  resolved experiment specs
"""
BIDSIGNORE = [
    "*_statmap.*",
    "*_scores.tsv",
    "*_scores.json",
    "*.html",
    "experiment_spec.toml",
    # folders without a trailing slash: bids-validator matches "group/" against the
    # files inside but still reports the folder itself as not included
    "sub-*/figures",
    "figures",
    "group",
    "logs",
    "models",
    "stimuli",
]


def build_name(entities: dict, suffix: str, extension: str) -> str:
    """File name from entities in BIDS order (unknown keys are rejected)."""
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"unknown entities {sorted(unknown)}")
    parts = [f"{key}-{entities[key]}" for key in ENTITY_ORDER
             if entities.get(key) not in (None, "")]
    return "_".join(parts + [suffix]) + extension


def subject_dir(output_dir: Path, entities: dict) -> Path:
    """``OUTPUT_DIR/sub-XX[/ses-YY]/func``."""
    folder = Path(output_dir) / f"sub-{entities['sub']}"
    if entities.get("ses"):
        folder = folder / f"ses-{entities['ses']}"
    return folder / "func"


def _tmp_path(final: Path) -> Path:
    ext = "".join(final.suffixes[-2:]) if final.name.endswith(".nii.gz") else final.suffix

    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=f".tmp{ext}", dir=final.parent)
    try:
        follow_umask(fd)  # mkstemp's 0600 would hide every output from the rest of the lab
    finally:
        os.close(fd)
    return Path(tmp)


def guard_io(final: Path, func) -> None:
    """Write ``final`` atomically: ``func(tmp)`` writes a temporary sibling, then it is renamed.

    Raises
    ------
    ResourceError
        When the file cannot be written (disk full, read-only folder); nothing is left behind.
    """
    tmp = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_path(final)
        func(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise ResourceError(
            f"cannot write '{final}' ({exc.strerror or exc}); free disk space or make the "
            "output folder writable, then rerun the same command to resume."
        ) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def write_text(final: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    guard_io(Path(final), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(final: Path, data: dict) -> None:
    """Write a JSON file atomically (sorted keys, final newline)."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=_jsonable) + "\n"
    write_text(final, text)


def copy_file(source: Path, final: Path) -> bool:
    """Copy a file atomically, unless ``final`` already holds the same bytes.

    Parameters
    ----------
    source, final : Path
        The file to copy and where it goes (its folder is created).

    Returns
    -------
    bool
        Whether ``final`` was written (False: it was already identical).
    """
    final = Path(final)
    if final.is_file() and filecmp.cmp(source, final, shallow=False):
        return False
    guard_io(final, lambda tmp: shutil.copyfile(source, tmp))
    return True


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_nifti(final: Path, img) -> None:
    """Save a NIfTI image atomically."""
    import nibabel as nib

    guard_io(Path(final), lambda tmp: nib.save(img, str(tmp)))


def unmask(values: np.ndarray, mask_img, fill: float = 0.0):
    """Put per-voxel values back on the mask's grid (float32, ``fill`` outside)."""
    import nibabel as nib

    mask = np.asanyarray(mask_img.dataobj) > 0
    volume = np.full(mask.shape, fill, dtype=np.float32)
    volume[mask] = np.asarray(values, dtype=np.float32)
    img = nib.Nifti1Image(volume, mask_img.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = f"brainenc {__version__}".encode()[:79]
    return img


def software_versions() -> dict:
    """Versions of the software that shaped the numbers."""
    from importlib import metadata

    versions = {"brainenc": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "nibabel", "nilearn", "himalaya", "torch", "transformers",
                 "peft", "pybids", "nipype", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_dataset_description(output_dir: Path, bids_dir: Path, source: dict) -> None:
    """Write ``dataset_description.json``, ``.bidsignore`` (and keep them idempotent)."""
    output_dir = Path(output_dir)
    container = {"Type": "docker", "Tag": f"brainenc/brainenc:{__version__}"} if os.environ.get(
        "BRAINENC_CONTAINER") else None
    generated = {"Name": "brainenc", "Version": __version__,
                 "CodeURL": "https://github.com/brainenc/brainenc"}
    if container:
        generated["Container"] = container
    source_entry = {"URL": f"file://{Path(bids_dir).resolve()}"}
    if source.get("DatasetDOI"):
        source_entry = {"DOI": source["DatasetDOI"], **source_entry}
    description = {
        "Name": f"brainenc encoding models of {source.get('Name', 'a BIDS dataset')}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [source_entry],
        "DatasetLinks": {"raw": f"file://{Path(bids_dir).resolve()}"},
        "License": source.get("License", "n/a"),
    }
    write_json(output_dir / "dataset_description.json", description)
    write_text(output_dir / ".bidsignore", "\n".join(BIDSIGNORE) + "\n")
    if not (output_dir / "README").exists():
        write_text(output_dir / "README", README_TEXT)


def update_descriptions(output_dir: Path, descriptions: dict[str, str]) -> None:
    """Add ``desc`` labels to ``descriptions.tsv`` (keeping earlier ones)."""
    path = Path(output_dir) / "descriptions.tsv"
    rows = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            if "\t" in line:
                key, value = line.split("\t", 1)
                rows[key] = value
    rows.update({f"desc-{k}": v.replace("\t", " ") for k, v in descriptions.items()})
    body = "".join(f"{k}\t{rows[k]}\n" for k in sorted(rows))
    write_text(path, "desc_id\tdescription\n" + body)


def bids_uri(path: Path, root: Path, dataset: str = "raw") -> str:
    """``bids:<dataset>:<relative path>`` URI of a file of a linked dataset."""
    try:
        relative = Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return f"file://{Path(path).resolve()}"
    return f"bids:{dataset}:{relative.as_posix()}"
