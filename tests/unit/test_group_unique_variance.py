"""Group mean of the language band's unique variance (stat-meanr2unique)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from bids_app.group.run import run_group
from tests.helpers.fake_outputs import VARIANTS, language_mask_on_grid, make_fake_outputs

STATS = SimpleNamespace(fdr_alpha=0.05, compare=[], atlas="", n_permutations=50,
                        top_percent=10.0)
WITH, PARTIAL = "minilmfrozenL3", "minilmlorasstL3"
PLANTED = 0.04


def _write_unique(out, sub, label, values):
    func = out / f"sub-{sub}" / "func"
    r_map = next(func.glob(f"*_stat-r_desc-{label}_statmap.nii.gz"))
    img = nib.load(r_map)
    name = r_map.name.replace("_stat-r_", "_stat-r2unique_")
    nib.save(nib.Nifti1Image(values.reshape(img.shape).astype(np.float32), img.affine),
             func / name)
    (func / name.replace(".nii.gz", ".json")).write_text(json.dumps(
        {"Statistic": "r2unique", "NuisanceBands": ["word_rate"]}))


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    out = make_fake_outputs(tmp_path_factory.mktemp("r2u"), n_subjects=4,
                            variants={k: VARIANTS[k] for k in (WITH, PARTIAL)}, with_alpha=False)
    planted = language_mask_on_grid()
    rng = np.random.default_rng(5)
    brain = None
    for s in range(1, 5):
        sub = f"{s:02d}"
        mask_file = next((out / f"sub-{sub}" / "func").glob("*_desc-brain_mask.nii.gz"))
        brain = np.asanyarray(nib.load(mask_file).dataobj).ravel() > 0
        # planted unique variance in the language voxels, noise (sd 0.01) elsewhere in the brain
        values = PLANTED * (1 + 0.2 * rng.standard_normal()) * planted \
            + 0.01 * rng.standard_normal(planted.size)
        _write_unique(out, sub, WITH, np.where(brain, values, 0.0))
        if s == 1:  # only one participant of the other variant was fitted with nuisance bands
            _write_unique(out, sub, PARTIAL, np.where(brain, values, 0.0))
    result = run_group(str(out), statistics=STATS)
    return out, result, planted, brain


def _group_map(out, label):
    return out / "group" / (f"task-listening_space-MNI152NLin2009cAsym_stat-meanr2unique_"
                            f"desc-{label}_statmap.nii.gz")


def test_group_unique_variance_recovers_the_planted_voxels(group):
    from sklearn.metrics import roc_auc_score

    out, result, planted, brain = group
    values = np.asanyarray(nib.load(_group_map(out, WITH)).dataobj).ravel()
    assert abs(values[planted].mean() - PLANTED) < 0.006
    assert abs(values[brain & ~planted].mean()) < 0.002
    assert np.all(values[~brain] == 0)
    assert roc_auc_score(planted[brain], values[brain]) > 0.99
    sidecar = json.loads(_group_map(out, WITH).with_name(
        _group_map(out, WITH).name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["Statistic"] == "meanr2unique" and len(sidecar["Sources"]) == 4
    assert sidecar["Participants"] == ["01", "02", "03", "04"]
    assert sidecar["NuisanceBands"] == ["word_rate"]
    summary = next(s for s in result["variants"] if s["variant"] == WITH)
    assert summary["maps"]["meanr2unique"] == str(_group_map(out, WITH))


def test_group_table_and_report_list_it(group):
    out, result, _, brain = group
    table = result["tables"]["group_variants.tsv"].set_index("variant")
    values = np.asanyarray(nib.load(_group_map(out, WITH)).dataobj).ravel()
    analysed = values != 0
    assert table.loc[WITH, "mean_r2_unique_map"] == pytest.approx(values[analysed].mean(),
                                                                   rel=1e-5)
    assert np.isnan(table.loc[PARTIAL, "mean_r2_unique_map"])
    html = open(result["report"], encoding="utf-8").read()
    assert f'id="fig-r2unique-{WITH}-listening"' in html
    assert f"Group mean of the R² that {WITH}" in html
    assert f'id="fig-r2unique-{PARTIAL}-listening"' not in html
    # the Methods sentence of the group mean is scoped to the variant that has the map
    sentence = next(s for s in result["methods"] if "stat-meanr2unique" in s)
    assert sentence.startswith(f"For variant {WITH}: ") and PARTIAL not in sentence
    assert "averages the 4 participants' stat-r2unique maps" in sentence
    assert "nuisance bands (word_rate) alone" in sentence


def test_no_group_map_when_some_participants_lack_it(group):
    out, result, _, _ = group
    assert not _group_map(out, PARTIAL).exists()
    assert "meanr2unique" not in next(s for s in result["variants"]
                                      if s["variant"] == PARTIAL)["maps"]
    html = open(result["report"], encoding="utf-8").read()
    assert ("no group stat-meanr2unique map: sub-02, sub-03, sub-04 have no stat-r2unique map "
            "made with their stat-r map") in html


def test_a_stale_unique_variance_map_is_not_averaged(tmp_path):
    """A stat-r2unique left by a run under other settings does not enter the group mean."""
    out = make_fake_outputs(tmp_path, n_subjects=3, variants={WITH: VARIANTS[WITH]},
                            with_alpha=False)
    for s in range(1, 4):
        func = out / f"sub-{s:02d}" / "func"
        r_map = next(func.glob(f"*_stat-r_desc-{WITH}_statmap.nii.gz"))
        sidecar = r_map.with_name(r_map.name.replace(".nii.gz", ".json"))
        sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()),
                                       "SettingsHash": "new"}))
        brain = np.asanyarray(nib.load(r_map).dataobj).ravel() != 0
        _write_unique(out, f"{s:02d}", WITH, np.where(brain, 0.05, 0.0))
        unique = next(func.glob(f"*_stat-r2unique_desc-{WITH}_statmap.json"))
        unique.write_text(json.dumps({**json.loads(unique.read_text()),
                                      "SettingsHash": "new" if s < 3 else "old"}))
    result = run_group(str(out), statistics=STATS)
    assert not _group_map(out, WITH).exists()
    html = open(result["report"], encoding="utf-8").read()
    assert "sub-03 has no stat-r2unique map made with their stat-r map" in html
    assert not any("stat-meanr2unique" in s for s in result["methods"])
