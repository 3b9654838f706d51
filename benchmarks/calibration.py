"""False-positive rates of the participant and group tests on null story data.

Null participants come from :mod:`tests.helpers.nulls` (AR(1) BOLD, slowly drifting
features, runs of different lengths) through the real ``cross_validate`` with the
default settings. Reported per AR value:

- participant ``stat-p``: share of voxels with p < .05 and p < .01, and datasets
  with any BH q < .05, for the default scheme and the schemes kept for comparison;
- group: mean (and standard error over groups) of the share of elements with
  p < .05 (t test) and sign-flip p < .05 / .01, and the groups with any pFWE < .05,
  when the group tests the participants' held-out scores (``stat-z``, the default)
  and when it tests Fisher-z r (the fallback); the mean, SD and skewness of both.

Usage::

    python benchmarks/calibration.py --size small     # CI-sized data, minutes
    python benchmarks/calibration.py --size full      # the slow tests' smooth data
    python benchmarks/calibration.py --size full-independent --phi 0.95 --group-only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bids_app.group.one_sample import fisher_z, one_sample_test  # noqa: E402
from tests.helpers.nulls import null_fits  # noqa: E402

SIZES = {"small": {"grid": (10, 10, 6), "smooth": 0.0, "n_groups": 2},
         "full": {"grid": (8, 8, 6), "smooth": 1.5, "n_groups": 24},
         "full-independent": {"grid": (10, 10, 6), "smooth": 0.0, "n_groups": 24}}
SCHEMES = {"mismatched": {}, "circular": {"permutation": "circular"},
           "block": {"permutation": "block"}}


def participant_rates(phi: float, seeds: list, size: dict) -> dict:
    """Participant false-positive rates per selectable scheme."""
    out = {}
    for name, overrides in SCHEMES.items():
        fits = null_fits(phi, seeds, grid=size["grid"], smooth=size["smooth"], **overrides)
        p = np.concatenate([f.p for f in fits])
        out[name] = {"p05": float(np.mean(p < 0.05)), "p01": float(np.mean(p < 0.01)),
                     "datasets_with_q05": int(sum(bool((f.q < 0.05).any()) for f in fits)),
                     "n_voxels": int(p.size)}
    return out


def group_rates(phi: float, size: dict) -> dict:
    """Group false-positive rates of held-out scores and of Fisher-z r (groups of 8)."""
    from scipy import stats

    values = {"heldout_z": [], "fisher_z_r": []}
    for g in range(size["n_groups"]):
        fits = null_fits(phi, [1000 * g + s for s in range(8)], grid=size["grid"],
                         smooth=size["smooth"])
        values["heldout_z"].append(np.stack([f.z for f in fits]))
        values["fisher_z_r"].append(fisher_z(np.stack([f.r for f in fits])))
    out = {}
    for name, groups in values.items():
        rates, fwe = [], 0
        for g, x in enumerate(groups):
            res = one_sample_test(x, n_permutations=500, seed=g)
            rates.append([np.mean(res.p < 0.05), np.mean(res.p_perm < 0.05),
                          np.mean(res.p_perm < 0.01)])
            fwe += bool((res.p_fwe < 0.05).any())
        rates = np.asarray(rates)
        pooled = np.concatenate(groups)
        out[name] = {"p05": float(rates[:, 0].mean()), "pperm05": float(rates[:, 1].mean()),
                     "pperm01": float(rates[:, 2].mean()),
                     "se_pperm05": float(rates[:, 1].std(ddof=1) / np.sqrt(len(rates))),
                     "groups_with_fwe05": fwe, "n_groups": len(groups),
                     "mean": float(pooled.mean()), "sd": float(pooled.std()),
                     "skewness": float(np.mean(stats.skew(pooled, axis=0)))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", help="JSON file for the results")
    parser.add_argument("--phi", type=float, nargs="+", default=[0.8, 0.95],
                        help="AR(1) coefficients of the null BOLD")
    parser.add_argument("--group-only", action="store_true",
                        help="skip the participant schemes")
    args = parser.parse_args()
    size = SIZES[args.size]
    result = {"size": args.size, **{k: list(v) if isinstance(v, tuple) else v
                                    for k, v in size.items()}}
    seeds = [1000 * g + s for g in range(2) for s in range(8)]
    for phi in args.phi:
        result[f"ar{phi}"] = {"group": group_rates(phi, size)}
        if not args.group_only:
            result[f"ar{phi}"]["participant"] = participant_rates(phi, seeds, size)
        print(json.dumps({f"ar{phi}": result[f"ar{phi}"]}, indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
