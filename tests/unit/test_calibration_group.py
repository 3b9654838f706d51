"""Null calibration of every group map that holds a p, q or FWE value.

Participants' held-out r and score (stat-z) maps come from the real
``cross_validate`` (default settings: edge trims at the TR typical of each AR value,
centred runs, the held-out test) on null story data
with AR(1) BOLD (0.8 and 0.95 per volume), spatially smooth, and slowly drifting
features. Independent groups of 8 such participants go through ``group_variant``,
which writes stat-p/q/pperm/qperm/pfwe and stat-tfdr; the written maps are read back
and their false-positive rates checked. Elements outside the analysed set must hold
NaN in p/q/FWE maps.

The full-size test (``slow``) uses 24 groups of spatially smooth maps; the CI-sized
test uses spatially independent voxels, so element counts follow a binomial law and
much fewer participants bound the rates as tightly. Its bounds are nominal + 3.29
binomial standard errors of the number of tests; what they detect is shown on
deliberately miscalibrated tests of the same null maps.
"""

import json

import nibabel as nib
import numpy as np
import pytest

from bids_app.group.one_sample import one_sample_test
from bids_app.group.variant_maps import GroupData, group_variant
from tests.helpers.nulls import (
    CI_GRID,
    CI_GROUPS,
    GROUP_SIZE,
    binomial_upper,
    count_upper,
    group_seeds,
    group_settings,
    null_fits,
)

GRID = (8, 8, 6)
N_GROUPS = 24


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _null_maps(phi: float, group: int, *, grid=GRID, smooth: float = 1.5,
               size: int = GROUP_SIZE) -> tuple:
    """r and held-out score maps, each of shape (size, n_voxels), of one null group."""
    fits = null_fits(phi, group_seeds(group, size), grid=grid, smooth=smooth)
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
    out = group_variant(data, tmp_path, seed=seed, **group_settings())
    maps = {stat: nib.load(path).get_fdata().ravel() for stat, path in out["maps"].items()}
    for stat in ("p", "q", "pperm", "qperm", "pfwe"):
        assert np.isnan(maps[stat][~valid]).all(), stat
        assert np.isfinite(maps[stat][valid]).all(), stat
        sidecar = json.loads(open(out["maps"][stat].replace(".nii.gz", ".json")).read())
        assert "NaN" in sidecar["UnanalysedElements"]
        assert sidecar["GroupTestStatistic"] == "heldout_z"
    return maps, {"p": maps["p"][valid] < 0.05, "pperm": maps["pperm"][valid] < 0.05,
                  "p01": maps["pperm"][valid] < 0.01, "t01": maps["p"][valid] < 0.01,
                  "q": maps["q"][valid] < 0.05,
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
    rates = {"p": [], "pperm": [], "p01": [], "t01": [], "q": [], "qperm": [], "tfdr": []}
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


#: CI-sized: independent voxels, so counts are binomial; families of FAMILY elements
FAMILY = 10
#: the rates checked in the CI-sized test: label -> (p map, threshold = nominal rate)
CI_LEVELS = {"t p < .05": ("p", 0.05), "t p < .01": ("p", 0.01),
             "sign-flip p < .05": ("pperm", 0.05), "sign-flip p < .01": ("pperm", 0.01)}


def _ci_failures(p_maps: dict, fwe_families: np.ndarray) -> list[str]:
    """What the CI-sized bounds reject: element rates and the family-wise rate.

    Parameters
    ----------
    p_maps : dict of str -> ndarray of shape (n_tests,)
        ``'p'`` (t test) and ``'pperm'`` (sign flips) of independent null elements.
    fwe_families : ndarray of bool, shape (n_families,)
        Whether each independent null family holds any pFWE < .05.

    Returns
    -------
    list of str
        One line per rate above nominal + 3.29 binomial standard errors of its count.
    """
    failed = []
    for label, (key, level) in CI_LEVELS.items():
        rate, bound = np.mean(p_maps[key] < level), binomial_upper(level, p_maps[key].size)
        if rate > bound:
            failed.append(f"{label}: {rate:.4f} > {bound:.4f}")
    rate, bound = np.mean(fwe_families), binomial_upper(0.05, fwe_families.size)
    if rate > bound:
        failed.append(f"pFWE < .05 families: {rate:.4f} > {bound:.4f}")
    return failed


def _ci_groups(phi: float) -> list:
    """Held-out score maps (stat-z), each of shape (8, 600), of the CI-sized null groups."""
    return [_null_maps(phi, g, grid=CI_GRID, smooth=0.0)[1] for g in CI_GROUPS]


def _families(z: np.ndarray, split: int = 1) -> np.ndarray:
    """Any pFWE < .05 in each block of FAMILY elements of one group (each its own family).

    ``z`` has shape (n_participants, n_elements). ``split > 1`` corrects each family
    over ``FAMILY // split`` elements at a time only (a deliberately anti-conservative
    variant).
    """
    n_perm = group_settings()["n_permutations"]
    step = FAMILY // split
    hits = []
    for start in range(0, z.shape[1], FAMILY):
        parts = [one_sample_test(z[:, s:s + step], n_permutations=n_perm, seed=start)
                 for s in range(start, start + FAMILY, step)]
        hits.append(any(bool((part.p_fwe < 0.05).any()) for part in parts))
    return np.asarray(hits)


@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_group_maps_are_calibrated_ci_sized(phi, tmp_path):
    """Eight null groups of 8 participants on 600 independent voxels each.

    The written maps' element rates are bounded binomially over the 4,800 elements:
    p < .05 at 6.03 % and p < .01 at 1.47 %, for the t test and the sign flips (with
    8 participants all 256 flips are used, so the sign-flip test's exact sizes are
    12/256 = 4.69 % and 2/256 = 0.78 %). The family-wise rate is the share of null
    families with any pFWE < .05 among 480 disjoint blocks of 10 elements (each a
    family of its own with independent noise), bounded at 8.27 %. 20 elements outside
    the analysed set must read NaN.
    """
    n_el = int(np.prod(CI_GRID))
    valid = np.zeros(n_el + 20, dtype=bool)
    valid[:n_el] = True
    hits = {key: [] for key in ("p", "pperm", "q", "qperm", "tfdr")}
    written = {"p": [], "pperm": []}
    families, whole_map_fwe, bh_groups = [], 0, 0
    n_perm = group_settings()["n_permutations"]
    for g, z in zip(CI_GROUPS, _ci_groups(phi), strict=True):
        r = _null_maps(phi, g, grid=CI_GRID, smooth=0.0)[0]
        maps, group_hits = _group_rates(r, z, valid, tmp_path, f"null{g}", g)
        for key in hits:
            hits[key].append(group_hits[key])
        for key in written:
            written[key].append(maps[key][valid])
        # the written pFWE map is the sign-flip max-t of one_sample_test, as the families'
        np.testing.assert_allclose(maps["pfwe"][valid], one_sample_test(
            z, n_permutations=n_perm, seed=g).p_fwe, rtol=1e-6)
        whole_map_fwe += bool((maps["pfwe"][valid] < 0.05).any())
        bh_groups += bool(group_hits["q"].any() or group_hits["qperm"].any())
        families.append(_families(z))
    p_maps = {key: np.concatenate(value) for key, value in written.items()}
    assert p_maps["p"].size == len(CI_GROUPS) * n_el == 4800
    assert _ci_failures(p_maps, np.concatenate(families)) == []
    rates = {key: float(np.mean(np.concatenate(value))) for key, value in hits.items()}
    assert rates["q"] <= 0.002 and rates["qperm"] <= 0.002 and rates["tfdr"] <= 0.002
    # under a complete null, BH and the whole-map FWE find something in at most 5 % of groups
    assert bh_groups <= count_upper(0.05, len(CI_GROUPS))
    assert whole_map_fwe <= count_upper(0.05, len(CI_GROUPS))


@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_ci_group_bounds_reject_small_miscalibrations(phi):
    """The CI-sized bounds reject tests a few points too liberal, on the same null maps.

    A calibrated test fails a bound with probability 0.07-0.13 %. The bounds fail with
    probability 50 % at true rates of 6.03 % (p < .05), 1.47 % (p < .01) and 8.3 %
    (family-wise), and 90 % at 6.5 %, 1.7 % and 10 %. The variants below are of that
    size, and each fails the bounds of what it breaks:

    - the t test read with normal tails (ignoring its 7 degrees of freedom): 7.1-7.9 %
      at p < .05 and 2.7-2.9 % at p < .01 (nominal t_7 sizes: 7.2 % and 2.6 %);
    - every participant's score shifted by 0.07 SD (a bias of the participant null):
      sign-flip p < .05 in 6.5-7.2 % (t test 7.0-7.8 %);
    - the family-wise correction over half of each family (expected FWE 1 - 0.95² =
      9.75 %): 10.0-10.4 % of the 480 families.
    """
    from scipy import stats

    groups = _ci_groups(phi)
    n_perm = group_settings()["n_permutations"]
    correct = [one_sample_test(z, n_permutations=n_perm, seed=g)
               for g, z in zip(CI_GROUPS, groups, strict=True)]
    p = {"p": np.concatenate([c.p for c in correct]),
         "pperm": np.concatenate([c.p_perm for c in correct])}
    families = np.concatenate([_families(z) for z in groups])
    assert _ci_failures(p, families) == []
    normal = {**p, "p": stats.norm.sf(np.concatenate([c.t for c in correct]))}
    assert {f.split(":")[0] for f in _ci_failures(normal, families)} == {"t p < .05",
                                                                          "t p < .01"}
    shifted = [one_sample_test(z + 0.07, n_permutations=n_perm, seed=g)
               for g, z in zip(CI_GROUPS, groups, strict=True)]
    assert "sign-flip p < .05" in {f.split(":")[0] for f in _ci_failures(
        {"p": p["p"], "pperm": np.concatenate([s.p_perm for s in shifted])}, families)}
    half = np.concatenate([_families(z, split=2) for z in groups])
    assert [f.split(":")[0] for f in _ci_failures(p, half)] == ["pFWE < .05 families"]
