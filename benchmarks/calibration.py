"""False-positive rates of the participant and group tests on null story data.

Null participants come from :mod:`tests.helpers.nulls` (AR(1) BOLD, slowly drifting
features, runs of different lengths) through the real ``cross_validate`` with the
default settings: edge trims (``encoding.trim_seconds``) in volumes at the TR typical
of each AR value (10 + 5 at 2 s for AR 0.8, 29 + 15 at 0.71 s for AR 0.95), centred
runs; ``--untrimmed`` scores whole runs instead. Reported per AR value:

- participant ``stat-p``: share of voxels with p < .05 and p < .01, and datasets
  with any BH q < .05, for the default scheme and the schemes kept for comparison,
  and for the default scheme with the word-rate band fitted jointly (the CLI's
  default design, ``mismatched_joint``);
- group: mean (and standard error over groups) of the share of elements with
  t-test p < .05 / .01 and sign-flip p < .05 / .01, the groups with any pFWE < .05
  and, on independent voxels, the families of 10 elements with any pFWE < .05,
  when the group tests the participants' held-out scores (``stat-z``, the default)
  and when it tests Fisher-z r (the fallback); the mean, SD and skewness of both.

``small`` is the data of the CI-sized tests (8 groups of 8 participants, 600
independent voxels each); the participant schemes use all 64 of its participants.

Usage::

    python benchmarks/calibration.py --size small     # CI-sized data, minutes
    python benchmarks/calibration.py --size full      # the slow tests' smooth data
    python benchmarks/calibration.py --size full-independent --phi 0.95 --group-only
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bids_app.group.one_sample import fisher_z, one_sample_test  # noqa: E402
from tests.helpers.nulls import (  # noqa: E402
    CI_GRID,
    CI_GROUPS,
    NULL_TR,
    default_settings,
    group_seeds,
    group_settings,
    null_fits,
    null_tr,
)

#: groups: the null groups (8 participants each); participant_groups: those whose
#: participants measure the participant schemes
SIZES = {"small": {"grid": CI_GRID, "smooth": 0.0, "groups": list(CI_GROUPS),
                   "participant_groups": list(CI_GROUPS)},
         "full": {"grid": (8, 8, 6), "smooth": 1.5, "groups": list(range(24)),
                  "participant_groups": [0, 1]},
         "full-independent": {"grid": CI_GRID, "smooth": 0.0, "groups": list(range(24)),
                              "participant_groups": [0, 1]}}
FAMILY = 10
SCHEMES = {"mismatched": {}, "circular": {"permutation": "circular"},
           "block": {"permutation": "block"},
           # the CLI's default fit: word-rate band appended, joint estimator
           "mismatched_joint": {"joint": True}}


def participant_rates(phi: float, seeds: list, size: dict, extra: dict) -> dict:
    """Participant false-positive rates per selectable scheme."""
    out = {}
    for name, overrides in SCHEMES.items():
        fits = null_fits(phi, seeds, grid=size["grid"], smooth=size["smooth"], **overrides,
                         **extra)
        p = np.concatenate([f.p for f in fits])
        out[name] = {"p05": float(np.mean(p < 0.05)), "p01": float(np.mean(p < 0.01)),
                     "datasets_with_q05": int(sum(bool((f.q < 0.05).any()) for f in fits)),
                     "n_voxels": int(p.size)}
    return out


def group_rates(phi: float, size: dict, extra: dict) -> dict:
    """Group false-positive rates of held-out scores and of Fisher-z r (groups of 8)."""
    from scipy import stats

    n_perm = group_settings()["n_permutations"]
    values = {"heldout_z": [], "fisher_z_r": []}
    for g in size["groups"]:
        fits = null_fits(phi, group_seeds(g), grid=size["grid"], smooth=size["smooth"],
                         **extra)
        values["heldout_z"].append(np.stack([f.z for f in fits]))
        values["fisher_z_r"].append(fisher_z(np.stack([f.r for f in fits])))
    out = {}
    for name, groups in values.items():
        rates, fwe, families = [], 0, []
        for g, x in zip(size["groups"], groups, strict=True):
            res = one_sample_test(x, n_permutations=n_perm, seed=g)
            rates.append([np.mean(res.p < 0.05), np.mean(res.p < 0.01),
                          np.mean(res.p_perm < 0.05), np.mean(res.p_perm < 0.01)])
            fwe += bool((res.p_fwe < 0.05).any())
            if not size["smooth"]:  # independent voxels: blocks are families of their own
                families += [bool((one_sample_test(x[:, s:s + FAMILY], n_permutations=n_perm,
                                                   seed=s).p_fwe < 0.05).any())
                             for s in range(0, x.shape[1], FAMILY)]
        rates = np.asarray(rates)
        pooled = np.concatenate(groups)
        out[name] = {"p05": float(rates[:, 0].mean()), "p01": float(rates[:, 1].mean()),
                     "pperm05": float(rates[:, 2].mean()),
                     "pperm01": float(rates[:, 3].mean()),
                     "se_pperm05": float(rates[:, 2].std(ddof=1) / np.sqrt(len(rates))),
                     "n_elements": int(sum(x.shape[1] for x in groups)),
                     "groups_with_fwe05": fwe, "n_groups": len(groups),
                     "families_with_fwe05": int(sum(families)), "n_families": len(families),
                     "mean": float(pooled.mean()), "sd": float(pooled.std()),
                     "skewness": float(np.mean(stats.skew(pooled, axis=0)))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", help="JSON file for the results")
    parser.add_argument("--phi", type=float, nargs="+", default=sorted(NULL_TR),
                        choices=sorted(NULL_TR),
                        help="AR(1) coefficients of the null BOLD (each at its typical TR)")
    parser.add_argument("--group-only", action="store_true",
                        help="skip the participant schemes")
    parser.add_argument("--untrimmed", action="store_true",
                        help="score whole runs (trim = (0, 0)) instead of the default trims")
    args = parser.parse_args()
    # the block scheme warns on every fit that it is kept for comparison only
    warnings.filterwarnings("ignore", message=".*'block' is kept for comparison",
                            category=UserWarning)
    size = SIZES[args.size]
    extra = {"trim": (0, 0)} if args.untrimmed else {}
    result = {"size": args.size, "untrimmed": args.untrimmed,
              **{k: list(v) if isinstance(v, tuple) else v for k, v in size.items()}}
    seeds = [s for g in size["participant_groups"] for s in group_seeds(g)]
    for phi in args.phi:
        trim = extra.get("trim", default_settings(null_tr(phi))["trim"])
        result[f"ar{phi}"] = {"trim": list(trim), "tr": null_tr(phi),
                              "group": group_rates(phi, size, extra)}
        if not args.group_only:
            result[f"ar{phi}"]["participant"] = participant_rates(phi, seeds, size, extra)
        print(json.dumps({f"ar{phi}": result[f"ar{phi}"]}, indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
