"""The group mean of the participants' unique-variance maps (``stat-meanr2unique``).

With nuisance bands in the design (``[features] nuisance``), each participant map
``stat-r2unique`` holds the held-out R² the language features add to the nuisance
bands. The group stage averages those maps when every participant of a variant has
one made with its ``stat-r`` map (same ``SettingsHash``); it is a mean only, with no
test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.derivatives import build_name, write_json
from .maps import load_values, read_sidecar, save_values

__all__ = ["R2UNIQUE_DESCRIPTION", "group_unique_variance", "unique_variance_methods",
           "unique_variance_paths"]


#: Description of the group map of the language band's unique variance.
R2UNIQUE_DESCRIPTION = (
    "Group mean over participants of stat-r2unique: held-out R² of the full model (language "
    "and nuisance bands fitted jointly) minus that of the nuisance bands alone, the language "
    "band's unique variance. Not tested (no p value); 0 where an element was not analysed in "
    "every participant.")


def unique_variance_methods(n_subjects: int, bands) -> str:
    """Methods sentence of the group ``stat-meanr2unique`` map.

    Parameters
    ----------
    n_subjects : int
        Participants whose ``stat-r2unique`` maps were averaged.
    bands : list of str or None
        The nuisance bands of those fits (sidecar ``NuisanceBands``).

    Returns
    -------
    str
    """
    named = f" ({', '.join(str(b) for b in bands)})" if bands else ""
    return (f"The group mean unique R² map (stat-meanr2unique) averages the {n_subjects} "
            "participants' stat-r2unique maps: held-out R² of the full model minus that of "
            f"the nuisance bands{named} alone; it is a mean only, not tested.")


def unique_variance_paths(r_paths: list) -> list[Path] | None:
    """The ``stat-r2unique`` map beside each ``stat-r`` map, or None unless all exist.

    A ``stat-r2unique`` map counts only when its sidecar's ``SettingsHash`` is that
    of the ``stat-r`` map: one left by an earlier run under other settings (e.g.
    before ``nuisance = []``) is not this fit's.

    Parameters
    ----------
    r_paths : list of str or Path
        The participants' ``stat-r`` maps of one variant.

    Returns
    -------
    list of Path or None
    """
    paths = []
    for r_path in r_paths:
        path = Path(r_path).with_name(Path(r_path).name.replace("_stat-r_", "_stat-r2unique_"))
        if not path.is_file() or (read_sidecar(path).get("SettingsHash")
                                  != read_sidecar(r_path).get("SettingsHash")):
            return None
        paths.append(path)
    return paths


def group_unique_variance(data, output_dir: str | Path, summary: dict) -> list[str]:
    """Write the group mean ``stat-meanr2unique`` map of a variant and note it in ``summary``.

    Every participant of ``data`` must have a ``stat-r2unique`` map (written by the
    participant level when the design holds nuisance bands); when some have none,
    no map is written and the returned note says which ones lack it.

    Parameters
    ----------
    data : GroupData
        The variant's stacked r maps (``paths``, ``subjects``, ``valid``, ``entities``).
    output_dir : str or Path
        OUTPUT_DIR (the map goes to ``OUTPUT_DIR/group``).
    summary : dict
        The variant's group summary: receives ``maps['meanr2unique']``,
        ``mean_r2_unique_map`` (mean of the group map over the analysed elements) and
        ``r2unique_methods`` (:func:`unique_variance_methods`).

    Returns
    -------
    list of str
        Notes for the report (empty when the map was written, or when no participant
        has a ``stat-r2unique`` map: a design without nuisance bands).
    """
    paths = unique_variance_paths(data.paths)
    if paths is None:
        lacking = [s for s, p in zip(data.subjects, data.paths, strict=True)
                   if unique_variance_paths([p]) is None]
        if len(lacking) == len(data.subjects):
            return []
        return ["no group stat-meanr2unique map: " + ", ".join(f"sub-{s}" for s in lacking)
                + (" has" if len(lacking) == 1 else " have")
                + " no stat-r2unique map made with their stat-r map (fitted without "
                "nuisance bands, or under other settings); rerun them with the same "
                "[features] nuisance."]
    values = np.stack([load_values(p) for p in paths])
    valid = data.valid & np.all(np.isfinite(values), axis=0)
    mean = np.where(valid, np.nan_to_num(values).mean(axis=0), 0.0).astype(np.float32)
    name = Path(data.paths[0]).name
    extension = next(e for e in (".dscalar.nii", ".func.gii", ".nii.gz", ".nii") if
                     name.endswith(e))
    target = build_name({**data.entities, "stat": "meanr2unique", "desc": data.variant},
                        "statmap", extension)
    output_dir = Path(output_dir)
    final = save_values(mean, data.paths[0], output_dir / "group" / target)
    write_json(final.with_name(target.split(".")[0] + ".json"), {
        "Statistic": "meanr2unique", "Description": R2UNIQUE_DESCRIPTION,
        "Participants": data.subjects, "desc": data.variant, "Variant": data.variant,
        "SettingsHash": data.metadata.get("SettingsHash"),
        "Sources": [str(p.relative_to(output_dir)) for p in paths],
        "NuisanceBands": read_sidecar(paths[0]).get("NuisanceBands")})
    summary.setdefault("maps", {})["meanr2unique"] = str(final)
    summary["mean_r2_unique_map"] = float(mean[valid].mean()) if valid.any() else float("nan")
    summary["r2unique_methods"] = unique_variance_methods(
        len(data.subjects), read_sidecar(paths[0]).get("NuisanceBands"))
    return []
