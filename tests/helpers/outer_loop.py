"""A fixed-seed encoding case run through every outer-loop fit of the CLI.

``tests/unit/data/outer_loop_reference.npz`` holds what :func:`run_case` returned
when the outer loop called the solver and himalaya directly; the unit test
checks that the loop, now fitting each training split with the estimators,
returns the same maps. Regenerate only on purpose::

    python -m tests.helpers.outer_loop tests/unit/data/outer_loop_reference.npz
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

BANDS = {"language": [0, 22], "word_rate": [22, 24]}
ALPHAS = [1.0, 10.0, 100.0, 1e3, 1e4]


def make_case(n_runs: int = 4, n_per_run: int = 50, n_voxels: int = 40, n_wide: int = 260,
              seed: int = 0) -> dict:
    """Runs of a narrow (24-column) and a wide design, BOLD with AR(0.8) noise, confounds."""
    rng = np.random.default_rng(seed)
    n = n_runs * n_per_run
    X = rng.standard_normal((n, 24)).astype(np.float32)
    X[:, 22:] = np.abs(X[:, 22:]) * 3  # a word-rate-like nuisance band
    wide = rng.standard_normal((n, n_wide)).astype(np.float32)
    W = rng.standard_normal((24, n_voxels)) * (rng.uniform(size=n_voxels) > 0.4)
    noise = np.zeros((n, n_voxels))
    eps = rng.standard_normal((n, n_voxels))
    for t in range(n):
        noise[t] = (0.8 * noise[t - 1] if t % n_per_run else 0) + eps[t]
    Y = (X @ W / 4 + wide[:, :8] @ rng.standard_normal((8, n_voxels)) / 3 + 2 * noise)
    runs = np.arange(n) // n_per_run
    split = [np.flatnonzero(runs == r) for r in range(n_runs)]
    confounds = [rng.standard_normal((n_per_run, 2)).astype(np.float32) for _ in split]
    return {"Xs": [X[s] for s in split], "wide": [wide[s] for s in split],
            "Ys": [Y[s].astype(np.float32) for s in split], "confounds": confounds}


def run_case(case: dict | None = None) -> dict:
    """Maps of the plain, joint (word-rate band) and banded fits, and the unique variance."""
    from bids_app.encoding.banded import banded_cross_validate
    from bids_app.encoding.engine import cross_validate
    from bids_app.unique_variance import nuisance_candidates, unique_variance

    case = case or make_case()
    Xs, Ys, wide = case["Xs"], case["Ys"], case["wide"]
    common = {"backend": "torch", "trim": (2, 1), "confounds": case["confounds"]}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions = np.zeros((sum(len(y) - 3 for y in Ys), Ys[0].shape[1]), np.float32)
        plain = cross_validate(Xs, Ys, ALPHAS, n_permutations=40, predictions=predictions,
                               **common)
        out.update(_maps("plain", plain), plain_predictions=predictions)
        joint = cross_validate(nuisance_candidates(Xs, BANDS, ["word_rate"]), Ys, ALPHAS,
                               n_permutations=40, **common)
        out.update(_maps("joint", joint), joint_layer=joint.layer_folds)
        out["unique"] = unique_variance(Xs, Ys, BANDS, ["word_rate"], joint.r2, ALPHAS,
                                        random_state=0, **common)
        banded = banded_cross_validate(Xs, Ys, BANDS, ALPHAS, n_iter=5, **common)
        out.update(_maps("banded", banded), banded_split=banded.r2_split)
        kernel = banded_cross_validate([np.hstack([w, x]) for w, x in zip(wide, Xs, strict=True)],
                                       Ys, {"wide": [0, wide[0].shape[1]],
                                            "narrow": [wide[0].shape[1], wide[0].shape[1] + 24]},
                                       ALPHAS, n_iter=5, **common)
        out.update(_maps("kernel", kernel), kernel_split=kernel.r2_split)
    return out


def _maps(name: str, result) -> dict:
    maps = {f"{name}_{k}": getattr(result, k) for k in ("r", "r2", "alpha_folds", "r_folds")}
    if result.p is not None:
        maps[f"{name}_p"] = result.p
    return maps


if __name__ == "__main__":
    np.savez_compressed(sys.argv[1], **run_case())
