"""Null calibration of every group map that holds a p, q or FWE value.

Participants' held-out r and score (stat-z) maps come from the real
``cross_validate`` (default settings, its held-out test included) on null story data
with AR(1) BOLD (0.8 and 0.95 per volume), spatially smooth, and slowly drifting
features. Independent groups of 8 such participants go through ``group_variant``,
which writes stat-p/q/pperm/qperm/pfwe and stat-tfdr; the written maps are read back
and their false-positive rates checked. Elements outside the analysed set must hold
NaN in p/q/FWE maps.

The full-size test (``slow``) uses 24 groups of spatially smooth maps; the CI-sized
test uses spatially independent voxels, so element counts follow a binomial law and
much fewer participants bound the rates as tightly.
"""

import json

import nibabel as nib
import numpy as np
import pytest

from bids_app.group.one_sample import one_sample_test
from bids_app.group.variant_maps import GroupData, group_variant
from tests.helpers.nulls import binomial_upper, null_fits

GRID = (8, 8, 6)
GROUP_SIZE, N_GROUPS = 8, 24


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _null_maps(phi: float, group: int, *, grid=GRID, smooth: float = 1.5,
               size: int = GROUP_SIZE) -> tuple:
    """r and held-out score maps, each of shape (size, n_voxels), of one null group."""
    fits = null_fits(phi, [1000 * group + s for s in range(size)], grid=grid, smooth=smooth)
    return np.stack([f.r for f in fits]), np.stack([f.z for f in fits])


def _at_most(rates: list, nominal: float) -> bool:
    """Mean rate within ``nominal`` + 1 % or two standard errors over groups, the larger.

    With spatially smooth null maps a group's rate varies a lot (0-20 % at p < .05
    for an exact test; standard error of the mean over 24 groups about 0.75 %), so the
    tolerance follows the spread actually seen.
    """
    rates = np.asarray(rates)
    se = rates.std(ddof=1) / np.sqrt(len(rates))
    return rates.mean() <= nominal + max(0.2 * nominal, 2 * se)


def _group_rates(r, z, valid, tmp_path, name, seed) -> tuple[dict, dict]:
    """Write the group maps of one null group; return its maps and false-positive shares."""
    n_sub, n_el = len(r), valid.size
    template = tmp_path / "template.nii.gz"
    if not template.exists():
        nib.save(nib.Nifti1Image(np.zeros((n_el, 1, 1), np.float32), np.eye(4)), template)
    values = np.zeros((n_sub, n_el), np.float32)
    values[:, valid] = r
    scores = np.full((n_sub, n_el), np.nan, np.float32)
    scores[:, valid] = z
    data = GroupData(name, {"task": "story", "space": "", "hemi": None}, "volume",
                     [f"{m:02d}" for m in range(n_sub)], [str(template)] * n_sub, values,
                     valid, scores=scores)
    out = group_variant(data, tmp_path, n_permutations=500, seed=seed)
    maps = {stat: nib.load(path).get_fdata().ravel() for stat, path in out["maps"].items()}
    for stat in ("p", "q", "pperm", "qperm", "pfwe"):
        assert np.isnan(maps[stat][~valid]).all(), stat
        assert np.isfinite(maps[stat][valid]).all(), stat
        sidecar = json.loads(open(out["maps"][stat].replace(".nii.gz", ".json")).read())
        assert "NaN" in sidecar["UnanalysedElements"]
        assert sidecar["GroupTestStatistic"] == "heldout_z"
    return maps, {"p": maps["p"][valid] < 0.05, "pperm": maps["pperm"][valid] < 0.05,
                  "p01": maps["pperm"][valid] < 0.01, "q": maps["q"][valid] < 0.05,
                  "qperm": maps["qperm"][valid] < 0.05, "tfdr": maps["tfdr"][valid] != 0}


@pytest.mark.slow
@pytest.mark.parametrize("smooth", [1.5, 0.0])
@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_group_maps_are_calibrated_under_autocorrelated_null(phi, smooth, tmp_path):
    """24 null groups of 8 participants, on spatially smooth or independent voxels.

    Smooth maps have few independent elements, so a group's share of p < .05 varies
    a lot and element-wise rates are held to nominal + max(1 %, 2 standard errors);
    they test the family-wise maps. Independent voxels (600 per map) give the
    element-wise rates to about 0.25 %: there p < .05 must stay at or below 6 % and
    p < .01 at or below 1.5 %.
    """
    grid = GRID if smooth else (10, 10, 6)
    n_el = int(np.prod(grid)) + 20  # 20 elements outside every participant's mask
    valid = np.zeros(n_el, dtype=bool)
    valid[:-20] = True
    rates = {"p": [], "pperm": [], "p01": [], "q": [], "qperm": [], "tfdr": []}
    any_fwe = []
    for g in range(N_GROUPS):
        r, z = _null_maps(phi, g, grid=grid, smooth=smooth)
        maps, hits = _group_rates(r, z, valid, tmp_path, f"null{g}", g)
        for key, value in hits.items():
            rates[key].append(float(np.mean(value)))
        any_fwe.append(bool((maps["pfwe"][valid] < 0.05).any()))
    assert _at_most(rates["p"], 0.05) and _at_most(rates["pperm"], 0.05)
    assert _at_most(rates["p01"], 0.01)
    if not smooth:
        assert np.mean(rates["p"]) <= 0.06 and np.mean(rates["pperm"]) <= 0.06
        assert np.mean(rates["p01"]) <= 0.015
    assert np.mean(rates["q"]) <= 0.002 and np.mean(rates["qperm"]) <= 0.002
    assert np.mean(rates["tfdr"]) <= 0.002
    # family-wise: a false positive anywhere in at most ~5 % of groups (4 of 24 allowed:
    # P(>= 5 of 24) is 0.6 % at the nominal 5 %)
    assert sum(any_fwe) <= 4


#: CI-sized: independent voxels, so the counts are binomial (bounds at 3.29 standard errors)
CI_GRID, CI_GROUPS, CI_BLOCK = (10, 10, 6), 2, 20


@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_group_maps_are_calibrated_ci_sized(phi, tmp_path):
    """Two groups of 8 participants on 600 independent null voxels each.

    Element-wise rates are bounded binomially over the 1,200 elements. The family-wise
    rate is checked on 60 disjoint blocks of 20 elements (each block is a family of
    its own with independent noise): at most 8 blocks may hold a pFWE < .05
    (P(>= 9 of 60) = 0.3 % at the nominal 5 %).
    """
    n_el = int(np.prod(CI_GRID))
    valid = np.ones(n_el, dtype=bool)
    hits = {key: [] for key in ("p", "pperm", "p01", "q", "qperm", "tfdr")}
    fwe_blocks = 0
    for g in range(CI_GROUPS):
        r, z = _null_maps(phi, 50 + g, grid=CI_GRID, smooth=0.0)
        _, group_hits = _group_rates(r, z, valid, tmp_path, f"null{g}", g)
        for key, value in group_hits.items():
            hits[key].append(value)
        for start in range(0, n_el, CI_BLOCK):  # one family per block of 20 elements
            block = one_sample_test(z[:, start:start + CI_BLOCK], n_permutations=500,
                                    seed=start)
            fwe_blocks += bool((block.p_fwe < 0.05).any())
    n = CI_GROUPS * n_el
    rates = {key: float(np.mean(np.concatenate(value))) for key, value in hits.items()}
    assert rates["p"] <= binomial_upper(0.05, n) and rates["pperm"] <= binomial_upper(0.05, n)
    assert rates["p01"] <= binomial_upper(0.01, n)
    assert rates["q"] <= 0.002 and rates["qperm"] <= 0.002 and rates["tfdr"] <= 0.002
    assert fwe_blocks <= 8
