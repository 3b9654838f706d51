"""Null calibration of every group map that holds a p, q or FWE value.

Participants' held-out r maps come from the real ``cross_validate`` (default
settings) on null story data with AR(1) BOLD (0.8 and 0.95 per volume), spatially
smooth, and slowly drifting features. Independent groups of 8 such participants
go through ``group_variant``, which writes stat-p/q/pperm/qperm/pfwe
and stat-tfdr; the written maps are read back and their false-positive rates
checked. Elements outside the analysed set must hold NaN in p/q/FWE maps.
"""

import json

import nibabel as nib
import numpy as np
import pytest

from bids_app.config import ExperimentSpec
from bids_app.encoding.engine import cross_validate
from bids_app.group.variant_maps import GroupData, group_variant
from tests.helpers.nulls import null_story_data

GRID = (8, 8, 6)
GROUP_SIZE, N_GROUPS = 8, 24


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _null_r_maps(phi: float, group: int) -> np.ndarray:
    spec = ExperimentSpec()
    maps = []
    for subject in range(GROUP_SIZE):
        Xs, Ys = null_story_data(1000 * group + subject, phi, grid=GRID)
        res = cross_validate(Xs, Ys, spec.encoding.alphas, backend="numpy",
                             outer_cv=spec.encoding.outer_cv,
                             inner_folds=spec.encoding.inner_folds, trim=spec.encoding.trim_edges)
        maps.append(res.r)
    return np.stack(maps)


def _at_most(rates: list, nominal: float) -> bool:
    """Mean rate within ``nominal`` + 1 % or two standard errors over groups, the larger.

    With spatially smooth null maps a group's rate varies a lot (1.5-10 % at p < .05
    for an exact test), so the tolerance follows the spread actually seen.
    """
    rates = np.asarray(rates)
    se = rates.std(ddof=1) / np.sqrt(len(rates))
    return rates.mean() <= nominal + max(0.2 * nominal, 2 * se)


KNOWN_095 = ("at AR 0.95 the group t and sign-flip tests mark 6.3-6.8 % of null elements "
             "p < .05 (40 groups of 8): a participant's fold-averaged held-out r is not "
             "symmetric about 0 (each fold's r is, but the folds share training runs), which "
             "the sign-flip test assumes")


@pytest.mark.slow
@pytest.mark.parametrize("phi", [0.8, pytest.param(0.95, marks=pytest.mark.xfail(
    reason=KNOWN_095, strict=False))])
def test_group_maps_are_calibrated_under_autocorrelated_null(phi, tmp_path):
    n_el = int(np.prod(GRID)) + 20  # 20 elements outside every participant's mask
    valid = np.zeros(n_el, dtype=bool)
    valid[:-20] = True
    template = tmp_path / "template.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((n_el, 1, 1), np.float32), np.eye(4)), template)
    rates = {"p": [], "pperm": [], "p01": [], "q": [], "qperm": [], "tfdr": []}
    any_fwe = []
    for g in range(N_GROUPS):
        members = np.arange(GROUP_SIZE)
        values = np.zeros((GROUP_SIZE, n_el), np.float32)
        values[:, valid] = _null_r_maps(phi, g)
        data = GroupData(f"null{g}", {"task": "story", "space": "", "hemi": None}, "volume",
                         [f"{m:02d}" for m in members], [str(template)] * GROUP_SIZE, values,
                         valid)
        out = group_variant(data, tmp_path, n_permutations=500, seed=g)
        maps = {stat: nib.load(path).get_fdata().ravel() for stat, path in out["maps"].items()}
        for stat in ("p", "q", "pperm", "qperm", "pfwe"):
            assert np.isnan(maps[stat][~valid]).all(), stat
            assert np.isfinite(maps[stat][valid]).all(), stat
            sidecar = json.loads(open(out["maps"][stat].replace(".nii.gz", ".json")).read())
            assert "NaN" in sidecar["UnanalysedElements"]
        rates["p"].append(np.mean(maps["p"][valid] < 0.05))
        rates["pperm"].append(np.mean(maps["pperm"][valid] < 0.05))
        rates["p01"].append(np.mean(maps["pperm"][valid] < 0.01))
        rates["q"].append(np.mean(maps["q"][valid] < 0.05))
        rates["qperm"].append(np.mean(maps["qperm"][valid] < 0.05))
        rates["tfdr"].append(np.mean(maps["tfdr"][valid] != 0))
        any_fwe.append(bool((maps["pfwe"][valid] < 0.05).any()))
    assert _at_most(rates["p"], 0.05) and _at_most(rates["pperm"], 0.05)
    assert _at_most(rates["p01"], 0.01)
    assert np.mean(rates["q"]) <= 0.002 and np.mean(rates["qperm"]) <= 0.002
    assert np.mean(rates["tfdr"]) <= 0.002
    # family-wise: a false positive anywhere in at most ~5 % of groups (4 of 24 allowed:
    # P(>= 5 of 24) is 0.7 % at the nominal 5 %)
    assert sum(any_fwe) <= 4
