"""Which participant maps the group stage may tabulate together.

Every participant map records the ``SettingsHash`` of the settings that made it
(:mod:`bids_app.provenance`). Before any group map is computed:

- maps of one label made under different settings are refused (exit 3), naming
  the participants and the settings that differ;
- with a current spec (``--config-file`` or the spec saved by the last successful
  participant run), maps it did not produce are *stale*: labels it does not name,
  or maps all made under other settings. They are listed (log and report) and
  left out of every group map and table;
- variants the current spec names that no participant output holds are listed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from ..errors import BrainencError, DatasetError
from ..provenance import settings_differences, settings_hash, variant_sidecar_metadata
from ..variants import plan_variants
from .maps import read_sidecar

LOGGER = logging.getLogger("brainenc.group")


@dataclass
class Provenance:
    """Outcome of :func:`check_provenance`.

    Attributes
    ----------
    maps : DataFrame
        The maps to tabulate (stale ones removed), with a ``settings_hash`` column.
    stale : list of dict
        ``variant``, ``subjects`` and ``reason`` of each set of maps left out.
    missing : list of str
        Variants of the current spec without any participant map.
    against_spec : bool
        Whether the maps were checked against a current spec.
    """

    maps: pd.DataFrame
    stale: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    against_spec: bool = False

    def methods(self) -> str:
        """Methods sentence of the check: what was combined and what was left out.

        Returns
        -------
        str
        """
        text = ("Participant maps of one variant were combined only when made under the same "
                "settings (sidecar SettingsHash)")
        if not self.against_spec:
            return text + "."
        text += ", and only maps that the current experiment spec produces were used"
        if not self.stale:
            return text + "."
        labels = sorted({item["variant"] for item in self.stale})
        return (text + f"; maps of {len(labels)} variant{'s' if len(labels) > 1 else ''} "
                f"({', '.join(labels)}) were left out as stale.")


def expected_hashes(spec, seed: int = 0) -> dict[str, str] | None:
    """``{variant label: SettingsHash}`` the spec gives (None when its models cannot be read).

    Parameters
    ----------
    spec : ExperimentSpec
        The current experiment spec.
    seed : int
        Random seed (not part of the hash).
    """
    try:
        _, variants = plan_variants(spec)
    except BrainencError as exc:
        LOGGER.warning("cannot resolve the variants of the current spec (%s); maps are checked "
                       "against each other only.", exc)
        return None
    return {v.label: variant_sidecar_metadata(v, spec, seed, "")["SettingsHash"]
            for v in variants}


def names_variants(spec_file) -> bool:
    """Whether an experiment spec file has its own ``[[variants]]`` (not the defaults)."""
    from pathlib import Path

    import tomllib

    try:
        return "variants" in tomllib.loads(Path(spec_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _hash_of(path: str, cache: dict) -> tuple[str, dict]:
    if path not in cache:
        sidecar = read_sidecar(path)
        cache[path] = (str(sidecar.get("SettingsHash") or settings_hash(sidecar)), sidecar)
    return cache[path]


def _subjects(rows: pd.DataFrame) -> str:
    return ", ".join(f"sub-{s}" for s in sorted(set(rows["sub"])))


def _mixed_message(variant: str, r_rows: pd.DataFrame, sidecars: dict,
                   expected: str | None) -> str:
    groups = [(h, rows) for h, rows in r_rows.groupby("settings_hash", sort=True)]
    first = sidecars[groups[0][1]["path"].iloc[0]]
    differing = sorted({name for _, rows in groups[1:] for name in
                        settings_differences(first, sidecars[rows["path"].iloc[0]])})
    parts = "; ".join(f"{_subjects(rows)}: {h}" for h, rows in groups)
    what = f", differing in {', '.join(differing)}" if differing else ""
    if expected is not None and (r_rows["settings_hash"] == expected).any():
        good = r_rows[r_rows["settings_hash"] == expected]
        stale = r_rows[r_rows["settings_hash"] != expected]
        labels = " ".join(sorted(set(good["sub"])))
        return (f"the maps labelled '{variant}' were made under different settings ({parts}"
                f"{what}); the current spec made those of {_subjects(good)} only: rerun "
                f"{_subjects(stale)} with it, or restrict the group stage with "
                f"--participant-label {labels}.")
    return (f"the maps labelled '{variant}' were made under different settings ({parts}{what});"
            " rerun the participants with one experiment spec (or give each spec its own "
            "OUTPUT_DIR) before the group stage.")


def check_provenance(maps: pd.DataFrame, expected: dict[str, str] | None) -> Provenance:
    """Refuse mixed maps, and leave out maps the current spec did not produce.

    Parameters
    ----------
    maps : DataFrame
        Participant maps (``sub, desc, stat, path`` ...), from ``find_inputs``.
    expected : dict or None
        ``{label: SettingsHash}`` of the current spec; None when there is none.

    Returns
    -------
    Provenance

    Raises
    ------
    DatasetError
        When maps of one label were made under different settings.
    """
    cache: dict = {}
    maps = maps.copy()
    maps["settings_hash"] = ""
    stale, drop = [], pd.Series(False, index=maps.index)
    r_maps = maps[maps["stat"] == "r"]
    for variant, rows in r_maps.groupby("desc", sort=True):
        hashes = [_hash_of(p, cache)[0] for p in rows["path"]]
        rows = rows.assign(settings_hash=hashes)
        same_label = maps["desc"] == variant
        for sub, value in zip(rows["sub"], hashes, strict=True):
            maps.loc[same_label & (maps["sub"] == sub), "settings_hash"] = value
        want = None if expected is None else expected.get(variant)
        if expected is not None and want is None:
            stale.append({"variant": variant, "subjects": sorted(set(rows["sub"])),
                          "reason": "not a variant of the current experiment spec"})
            drop |= same_label
            continue
        if len(set(hashes)) > 1:
            sidecars = {p: _hash_of(p, cache)[1] for p in rows["path"]}
            raise DatasetError(_mixed_message(variant, rows, sidecars, want))
        if want is not None and hashes[0] != want:
            stale.append({"variant": variant, "subjects": sorted(set(rows["sub"])),
                          "reason": f"made under other settings (SettingsHash {hashes[0]}) than "
                                    f"the current experiment spec ({want})"})
            drop |= same_label
    present = set(r_maps["desc"])
    missing = sorted(set(expected or {}) - present)
    for item in stale:
        LOGGER.warning("stale maps left out of the group stage: '%s' of %s, %s.",
                       item["variant"], ", ".join(f"sub-{s}" for s in item["subjects"]),
                       item["reason"])
    if missing:
        LOGGER.warning("no participant maps for variant(s) %s of the current experiment spec; "
                       "run the participant level for them.", ", ".join(missing))
    return Provenance(maps=maps[~drop].reset_index(drop=True), stale=stale, missing=missing,
                      against_spec=expected is not None)
