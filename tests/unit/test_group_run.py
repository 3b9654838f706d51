"""The group stage on a fabricated OUTPUT_DIR with a planted language-network effect."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.errors import NoMatchError, UsageError
from bids_app.group.run import find_inputs, run_group, saved_spec
from tests.helpers.fake_outputs import VARIANTS, language_mask_on_grid, make_fake_outputs

KEEP = ["minilmfrozenL3", "minilmfrozenL5", "minilmfullsstL3", "minilmlorasstL3",
        "minilmloranerL3"]
STATS = SimpleNamespace(fdr_alpha=0.05, compare=[], atlas="", n_permutations=200,
                        top_percent=10.0)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    out = make_fake_outputs(tmp_path_factory.mktemp("group"), n_subjects=5,
                            variants={k: VARIANTS[k] for k in KEEP}, with_alpha=False)
    result = run_group(str(out), statistics=STATS)
    return out, result


def _map(out, stat, desc):
    path = out / "group" / f"task-listening_space-MNI152NLin2009cAsym_stat-{stat}_desc-{desc}" \
        "_statmap.nii.gz"
    return np.asanyarray(nib.load(path).dataobj).ravel()


def test_group_maps_recover_planted_regions(group):
    out, _ = group
    planted = language_mask_on_grid()
    mean_r = _map(out, "meanr", "minilmlorasstL3")
    inside = mean_r != 0
    assert mean_r[planted & inside].mean() > 0.2
    assert abs(mean_r[~planted & inside].mean() - 0.02) < 0.01
    q = _map(out, "qperm", "minilmlorasstL3")
    t = _map(out, "t", "minilmlorasstL3")
    assert np.median(t[planted]) > 4 * np.median(t[~planted & inside])
    assert np.nanmin(q) < 1  # 32 exhaustive sign flips for 5 subjects
    sidecar = json.loads((out / "group" / "task-listening_space-MNI152NLin2009cAsym_stat-pperm_"
                                          "desc-minilmlorasstL3_statmap.json").read_text())
    assert sidecar["Permutations"] == 32 and len(sidecar["Participants"]) == 5


def test_variant_table_joins_tuning_and_encoding(group):
    out, _ = group
    table = pd.read_csv(out / "group" / "group_variants.tsv", sep="\t").set_index("variant")
    assert set(table.index) == set(KEEP)
    lora = table.loc["minilmlorasstL3"]
    assert lora["method"] == "lora" and lora["nlu_task"] == "sst"
    assert lora["trainable_share"] == pytest.approx(0.012)
    assert lora["dev_metric_name"] == "accuracy" and lora["dev_metric"] == pytest.approx(0.88)
    assert lora["cka_drift"] == pytest.approx(0.15)
    assert table.loc["minilmfrozenL3", "nlu_task"] == "none"
    # planted effects: language network > top voxels > whole mask, ordered by variant
    assert (table["mean_r_language"] > table["mean_r_top"]).all()
    assert (table["mean_r_top"] > table["mean_r"]).all()
    ranking = table["mean_r_language"].sort_values(ascending=False).index.tolist()
    assert ranking[0] == "minilmlorasstL3" and ranking[-1] == "minilmfrozenL5"
    assert (table["ci95_r_language"] > 0).all() and (table["n_subjects"] == 5).all()


def test_method_task_matrix(group):
    out, _ = group
    matrix = pd.read_csv(out / "group" / "group_method_task.tsv", sep="\t")
    assert {"measure", "model", "layer", "method", "none", "sst", "ner"} <= set(matrix.columns)
    language = matrix[(matrix["measure"] == "language") & (matrix["layer"] == 3)]
    lora = language.set_index("method").loc["lora"]
    assert lora["sst"] > lora["ner"]  # planted 0.26 vs 0.24
    assert np.isnan(language.set_index("method").loc["frozen", "sst"])


def test_regions_and_comparisons(group):
    out, result = group
    regions = pd.read_csv(out / "group" / "group_regions.tsv", sep="\t", dtype={"subject": str})
    assert {"brain", "language", "LH_IFG", "RH_AngG", "top10pct"} <= set(regions["region"])
    left = regions[regions["region"] == "LH_PostTemp"]["mean_r"].mean()
    right = regions[regions["region"] == "RH_PostTemp"]["mean_r"].mean()
    assert left > 0.15 > right  # planted in the left hemisphere only
    comparisons = pd.read_csv(out / "group" / "group_comparisons.tsv", sep="\t")
    pairs = set(zip(comparisons["variant_a"], comparisons["variant_b"], strict=True))
    assert pairs == {("minilmfullsstL3", "minilmfrozenL3"), ("minilmlorasstL3", "minilmfrozenL3"),
                     ("minilmloranerL3", "minilmfrozenL3")}
    row = comparisons.set_index("variant_a").loc["minilmlorasstL3"]
    assert row["subjects_a_better"] >= 4 and row["mean_rdiff"] > 0
    full = comparisons.set_index("variant_a").loc["minilmfullsstL3"]
    assert full["subjects_a_better"] <= 1
    rdiff = out / "group" / ("task-listening_space-MNI152NLin2009cAsym_stat-rdiff_"
                             "desc-minilmlorasstL3vsminilmfrozenL3_statmap.nii.gz")
    values = np.asanyarray(nib.load(rdiff).dataobj).ravel()
    planted = language_mask_on_grid()
    assert values[planted].mean() == pytest.approx(0.06, abs=0.03)


def test_report_lists_everything(group):
    out, result = group
    html = (out / "group" / "group.html").read_text()
    for anchor in ("table-variants", "table-matrix", "table-comparisons", "table-regions",
                   "fig-bars-brain", "fig-bars-language", "fig-share", "fig-layers",
                   "fig-cka", "fig-meanr-minilmlorasstL3", "fig-compare-"):
        assert anchor in html, anchor
    assert "<script" not in html and "src=\"http" not in html
    assert "Best whole-mask prediction" in html


def test_requested_pairs_and_errors(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=3,
                            variants={k: VARIANTS[k] for k in KEEP[:2]}, with_alpha=False)
    stats = SimpleNamespace(**{**STATS.__dict__, "compare": [["minilmfrozenL5",
                                                              "minilmfrozenL3"]],
                               "n_permutations": 0})
    result = run_group(str(out), statistics=stats)
    assert [c["label"] for c in result["comparisons"]] == ["minilmfrozenL5vsminilmfrozenL3"]
    assert result["comparisons"][0]["row"]["mean_rdiff"] < 0
    bad = SimpleNamespace(**{**stats.__dict__, "compare": [["minilmfrozenL5", "nosuch"]]})
    with pytest.raises(UsageError, match="'nosuch'"):
        run_group(str(out), statistics=bad)
    with pytest.raises(NoMatchError, match="participant level"):
        find_inputs(tmp_path / "empty")
    assert saved_spec(out) is None


def test_surface_group_maps(tmp_path):
    """GIFTI hemispheres are averaged per hemisphere and written as .func.gii."""
    rng = np.random.default_rng(0)
    n = 10242
    for sub in ("01", "02", "03"):
        func = tmp_path / "out" / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        for hemi in ("L", "R"):
            values = (0.1 + 0.02 * rng.standard_normal(n)).astype(np.float32)
            img = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(values)])
            name = f"sub-{sub}_task-a_hemi-{hemi}_space-fsaverage5_stat-r_desc-v_statmap"
            nib.save(img, func / f"{name}.func.gii")
            (func / f"{name}.json").write_text(json.dumps({"TuningMethod": "frozen",
                                                           "Layer": 2}))
    result = run_group(str(tmp_path / "out"), statistics=STATS)
    written = sorted(p.name for p in (tmp_path / "out" / "group").glob("*stat-meanr*.func.gii"))
    assert written == ["task-a_hemi-L_space-fsaverage5_stat-meanr_desc-v_statmap.func.gii",
                       "task-a_hemi-R_space-fsaverage5_stat-meanr_desc-v_statmap.func.gii"]
    mean = nib.load(tmp_path / "out" / "group" / written[0]).darrays[0].data
    assert mean.shape == (n,) and abs(float(mean.mean()) - 0.1) < 0.01
    regions = result["tables"]["group_regions.tsv"]
    assert {"LH_PostTemp", "brain"} <= set(regions["region"])
    assert set(regions["hemi"]) == {"L", "R"}


def test_cli_group_level_reads_spec_statistics(tmp_path):
    """`brainenc BIDS OUT group --config-file spec.toml` uses [statistics] compare and atlas."""
    from bids_app.cli import main

    out = make_fake_outputs(tmp_path, n_subjects=3,
                            variants={k: VARIANTS[k] for k in KEEP[:2]}, with_alpha=False)
    bids = tmp_path / "bids"
    bids.mkdir()
    gm = next((out / "sub-01" / "func").glob("*_desc-brain_mask.nii.gz"))
    labels = np.asanyarray(nib.load(gm).dataobj).astype(np.int16) * 2  # one label: 2
    nib.save(nib.Nifti1Image(labels, nib.load(gm).affine), tmp_path / "atlas.nii.gz")
    spec = tmp_path / "spec.toml"
    spec.write_text('[statistics]\ncompare = [["minilmfrozenL5", "minilmfrozenL3"]]\n'
                    f'atlas = "{tmp_path / "atlas.nii.gz"}"\nn_permutations = 0\n')
    assert main([str(bids), str(out), "group", "--config-file", str(spec)]) == 0
    comparisons = pd.read_csv(out / "group" / "group_comparisons.tsv", sep="\t")
    assert list(comparisons["variant_a"]) == ["minilmfrozenL5"]
    regions = pd.read_csv(out / "group" / "group_regions.tsv", sep="\t")
    assert set(regions["region"]) == {"brain", "label-2", "top10pct"}
    spec.write_text('[statistics]\ncompare = [["minilmfrozenL5", "nosuch"]]\n')
    assert main([str(bids), str(out), "group", "--config-file", str(spec)]) == 2


def _bh(p):
    """Benjamini-Hochberg q values, written out independently of the package."""
    n = p.size
    order = np.argsort(p)
    q_sorted = np.minimum.accumulate((p[order] * n / np.arange(1, n + 1))[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def test_fdr_thresholded_t_and_q_maps(group):
    """stat-q is BH over the one-sided t test; stat-tfdr is t where q < alpha, 0 elsewhere."""
    from scipy import stats

    out, _ = group
    desc = "minilmlorasstL3"
    t, q, tfdr = (_map(out, stat, desc) for stat in ("t", "q", "tfdr"))
    r_maps = sorted(out.glob(f"sub-*/func/*_stat-r_desc-{desc}_statmap.nii.gz"))
    masks = sorted(out.glob("sub-*/func/*_desc-brain_mask.nii.gz"))
    assert len(r_maps) == 5
    r = np.stack([np.asanyarray(nib.load(p).dataobj).ravel() for p in r_maps])
    valid = np.all([np.asanyarray(nib.load(p).dataobj).ravel() > 0 for p in masks], axis=0)
    # the t map is the one-sample t test of Fisher z across the 5 participants
    expected = stats.ttest_1samp(np.arctanh(r[:, valid]), 0.0, alternative="greater")
    np.testing.assert_allclose(t[valid], expected.statistic, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q[valid], _bh(expected.pvalue), rtol=1e-4, atol=1e-6)
    assert np.all((q[valid] >= 0) & (q[valid] <= 1))
    assert np.all(np.isnan(q[~valid]))  # not tested there: NaN, never a passing value
    assert np.all(t[~valid] == 0) and np.all(tfdr[~valid] == 0)
    significant = valid & (q < STATS.fdr_alpha)
    assert np.all(tfdr[~significant] == 0)  # zero wherever q is above the threshold
    np.testing.assert_array_equal(tfdr[significant], t[significant])  # t elsewhere
    # five participants leave little power after FDR: what survives is planted, and q is
    # far lower in the planted regions than elsewhere
    planted = language_mask_on_grid()
    assert significant.any() and not np.any(significant & ~planted)
    assert np.median(q[planted & valid]) < 0.5 * np.median(q[valid & ~planted])
    assert tfdr[significant].min() > 2
    assert tfdr[significant].min() > 2
    sidecar = json.loads((out / "group" / "task-listening_space-MNI152NLin2009cAsym_stat-tfdr_"
                                          f"desc-{desc}_statmap.json").read_text())
    assert "0.05" in sidecar["Description"] and len(sidecar["Participants"]) == 5
