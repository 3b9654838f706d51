"""Run bids-validator-deno on an OUTPUT_DIR.

Maps (``_statmap``) and score tables are listed in ``.bidsignore``, so the
validator checks only the files BIDS knows. :func:`sidecar_errors` also lets it
check the sidecars of the maps: it validates a copy where each map takes a
suffix the validator knows (``_bold``), so the sidecar rules of the map's
entities (``Density`` for ``den-``, ``Resolution`` for ``res-``,
``SpatialReference`` for a non-standard ``space-``) are applied to it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: Prefixes of the validator's issue codes about sidecars (required keys, value formats).
SIDECAR_CODES = ("SIDECAR_", "JSON_")
_STATMAP = re.compile(r"_stat-([A-Za-z0-9]+)_desc-([A-Za-z0-9]+)_statmap")


def validator() -> str:
    """Path of ``bids-validator-deno``; skips the test (fails it on CI) when it is missing."""
    found = shutil.which("bids-validator-deno") or shutil.which(
        "bids-validator-deno", path=str(Path(sys.executable).parent))
    if found is None:
        message = "bids-validator-deno is not installed (pip install bids-validator-deno)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def validate(folder: Path) -> list[dict]:
    """Issues of severity ``error`` that bids-validator-deno reports for ``folder``."""
    proc = subprocess.run([validator(), str(folder), "--json"], capture_output=True, text=True,
                          timeout=600)
    report = json.loads(proc.stdout)
    return [i for i in report["issues"]["issues"] if i["severity"] == "error"]


def sidecar_errors(out: Path, copy: Path) -> tuple[list[dict], int]:
    """Validator errors about the maps' sidecars, on a copy with BIDS suffixes.

    Parameters
    ----------
    out : Path
        OUTPUT_DIR.
    copy : Path
        Empty folder for the renamed copy.

    Returns
    -------
    errors : list of dict
        Errors about sidecars (:data:`SIDECAR_CODES`); those about the renamed
        files themselves (names, a 3-D ``_bold``) are left out.
    n_maps : int
        Maps checked.
    """
    copy.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "dataset_description.json", copy / "dataset_description.json")
    n_maps = 0
    for path in sorted(out.glob("sub-*/**/*_statmap.*")):
        name = _STATMAP.sub(lambda m: f"_desc-{m.group(2)}{m.group(1)}_bold", path.name)
        target = copy / path.parent.relative_to(out) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        n_maps += not path.name.endswith(".json")
    errors = [i for i in validate(copy) if i["code"].startswith(SIDECAR_CODES)]
    return errors, n_maps
