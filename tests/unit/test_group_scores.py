"""The group tests the participants' held-out scores (stat-z) when every participant has them.

A participant's ``stat-z`` is its held-out r centred and scaled by its own null
(:func:`bids_app.encoding.permutation.combined_score`); the group t, p, q and FWE
maps must follow it, not r, and fall back to Fisher-z r (saying so) when a
participant has no ``stat-z`` map.
"""

from __future__ import annotations

import html
import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
from scipy import stats

from bids_app.encoding.engine import cross_validate
from bids_app.encoding.maps import UNANALYSED, result_maps
from bids_app.group.run import run_group
from tests.helpers.fake_outputs import VARIANTS, language_mask_on_grid, make_fake_outputs
from tests.helpers.nulls import null_story_data

LABEL = "minilmlorasstL3"
STATS = SimpleNamespace(fdr_alpha=0.05, compare=[], atlas="", n_permutations=200,
                        top_percent=10.0)


def _group_map(out, stat):
    name = f"task-listening_space-MNI152NLin2009cAsym_stat-{stat}_desc-{LABEL}_statmap"
    path = out / "group" / f"{name}.nii.gz"
    return (np.asanyarray(nib.load(path).dataobj).ravel(),
            json.loads((out / "group" / f"{name}.json").read_text()))


def _write_scores(out, sign: float) -> None:
    """Give every participant a stat-z map: ``sign * 10 * (r - 0.02)`` (NaN outside the mask)."""
    for r_path in sorted(out.glob(f"sub-*/func/*_stat-r_desc-{LABEL}_statmap.nii.gz")):
        img = nib.load(r_path)
        r = np.asanyarray(img.dataobj).astype(np.float32)
        z = np.where(r != 0, sign * 10 * (r - 0.02), np.nan).astype(np.float32)
        nib.save(nib.Nifti1Image(z, img.affine), str(r_path).replace("_stat-r_", "_stat-z_"))


def test_group_tests_the_participants_scores_not_r(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=5, variants={LABEL: VARIANTS[LABEL]},
                            with_alpha=False)
    planted = language_mask_on_grid()
    # scores of opposite sign to r: the tests must follow the scores, the mean r map not
    _write_scores(out, -1.0)
    run_group(str(out), statistics=STATS)
    t, sidecar = _group_map(out, "t")
    mean_r, _ = _group_map(out, "meanr")
    pperm, _ = _group_map(out, "pperm")
    assert sidecar["GroupTestStatistic"] == "heldout_z"
    assert "own null" in sidecar["Description"]
    assert np.median(t[planted]) < -4 and mean_r[planted].mean() > 0.2
    assert np.nanmin(pperm[planted]) > 0.5  # one-sided: negative scores are not significant
    methods = html.unescape((out / "group" / "group.html").read_text())
    assert "scored against that participant's own null" in methods
    assert "These scores were tested across the 5 participants" in methods
    # one participant without stat-z: Fisher-z r is tested, and the sidecar says so
    next(out.glob(f"sub-01/func/*_stat-z_desc-{LABEL}_statmap.nii.gz")).unlink()
    run_group(str(out), statistics=STATS)
    t, sidecar = _group_map(out, "t")
    assert sidecar["GroupTestStatistic"] == "fisher_z_r"
    assert np.median(t[planted]) > 4
    methods = html.unescape((out / "group" / "group.html").read_text())
    assert "Fisher-z r was tested" in methods and "own null" not in methods
    assert "heldout_permutations = 0" in methods


def test_group_leaves_out_elements_a_participant_did_not_test(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=4, variants={LABEL: VARIANTS[LABEL]},
                            with_alpha=False)
    _write_scores(out, 1.0)
    path = next(out.glob(f"sub-02/func/*_stat-z_desc-{LABEL}_statmap.nii.gz"))
    img = nib.load(path)
    z = np.asanyarray(img.dataobj).copy()
    inside = np.flatnonzero(np.isfinite(z.ravel()))[:7]
    z.ravel()[inside] = np.nan  # constant voxels: no held-out test there
    nib.save(nib.Nifti1Image(z, img.affine), path)
    run_group(str(out), statistics=STATS)
    for stat in ("p", "pperm", "pfwe", "q"):
        values, _ = _group_map(out, stat)
        assert np.isnan(values[inside]).all(), stat


def test_participant_score_is_what_the_p_value_ranks():
    Xs, Ys = null_story_data(3, 0.8, grid=(6, 6, 4))
    for y in Ys:  # a constant voxel is not tested
        y[:, 1] = 1.0
    res = cross_validate(Xs, Ys, [1.0, 1e2, 1e4, 1e6, 1e8], backend="numpy", n_permutations=50,
                         heldout_p="normal", random_state=0)
    tested = np.isfinite(res.p)
    assert not tested[1] and np.isnan(res.z[1])
    # the normal p is the upper tail of the score itself
    np.testing.assert_allclose(res.p[tested], stats.norm.sf(res.z[tested]), rtol=1e-4,
                               atol=1e-6)
    maps = {label: (values, fields) for label, values, fields in result_maps(res)}
    assert "z" in maps and np.isnan(UNANALYSED["z"])
    np.testing.assert_array_equal(maps["z"][0], res.z)
    # rank p: larger scores never get larger p values (up to ties of the rank)
    res = cross_validate(Xs, Ys, [1.0, 1e2, 1e4, 1e6, 1e8], backend="numpy", n_permutations=50,
                         random_state=0)
    order = np.argsort(res.z[tested])
    rho = stats.spearmanr(res.z[tested][order], res.p[tested][order])[0]
    assert rho < -0.9
