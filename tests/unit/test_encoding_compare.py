"""Participant-level comparison of two variants: files in, stat-rdiff maps out."""

import json

import nibabel as nib
import numpy as np
import pytest

from bids_app.io.bids import BoldRun
from bids_app.participant import compare_encodings, fit_encoding


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def test_better_variant_wins_and_maps_are_written(tmp_path):
    from bids_app.outputs import write_comparison_outputs

    rng = np.random.default_rng(0)
    n_runs, n, p, v = 4, 80, 6, 24
    shape = (2, 3, 4)
    good = [rng.normal(size=(n, p)).astype(np.float32) for _ in range(n_runs)]
    W = rng.normal(size=(p, v))
    bold, designs_a, designs_b = [], [], []
    for i, x in enumerate(good):
        y = (x @ W + rng.normal(size=(n, v))).astype(np.float32)
        bad = (x + 3.0 * rng.normal(size=x.shape)).astype(np.float32)  # noisier features
        for name, arr, store in (("bold", y, bold), ("a", x, designs_a), ("b", bad, designs_b)):
            path = tmp_path / f"run{i}_{name}.npy"
            np.save(path, arr)
            store.append(str(path))
    encoding = {"alphas": [1.0, 10.0, 100.0], "outer_cv": "leave-one-run-out",
                "inner_folds": 3, "save_predictions": True, "trim_edges": [3, 0],
                "statistics": {"heldout_permutations": 0}}
    res_a = fit_encoding(designs_a, bold, encoding, "numpy", str(tmp_path / "a.npz"))
    res_b = fit_encoding(designs_b, bold, encoding, "numpy", str(tmp_path / "b.npz"))
    stats = {"n_bootstrap": 200}
    out = compare_encodings(res_a, res_b, stats, str(tmp_path / "cmp.npz"))
    with np.load(out) as data:
        assert (data["rdiff"] > 0).all()
        assert (data["q"] < 0.05).mean() > 0.9
    # maps in a BIDS-derivatives layout
    mask = np.zeros(shape, dtype=np.uint8)
    mask.flat[:v] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "mask.nii.gz")
    bids = tmp_path / "bids"
    func = bids / "sub-01" / "func"
    runs = [BoldRun(subject="01", session="", task="story", run=str(i + 1),
                    bold_file=func / f"sub-01_task-story_run-{i + 1}_bold.nii.gz",
                    events_file=None, tr=2.0, n_volumes=n,
                    entities={"subject": "01", "task": "story", "run": str(i + 1)})
            for i in range(n_runs)]
    files = write_comparison_outputs(str(tmp_path / "out"), str(bids), runs, out,
                                     str(tmp_path / "mask.nii.gz"), ["tuned", "frozen"], stats)
    names = [f.split("/")[-1] for f in files]
    assert names == [f"sub-01_task-story_stat-{s}_desc-tunedvsfrozen_statmap.nii.gz"
                     for s in ("rdiff", "rdiffp", "rdiffq")]
    sidecar = json.loads(open(files[1].replace(".nii.gz", ".json")).read())
    assert sidecar["ComparedVariants"] == ["tuned", "frozen"] and sidecar["NNull"] == 200
    assert sidecar["PValueFloor"] == pytest.approx(1 / 201)
    assert "NaN" in sidecar["UnanalysedVoxels"]
    img = nib.load(files[0]).get_fdata()
    assert (img.flat[:v] > 0).all() and (img.flat[v:] == 0).all()
    # voxels outside the mask were not tested: NaN in the p and q maps, never 0
    for path in files[1:]:
        p_map = nib.load(path).get_fdata()
        assert np.isnan(p_map.flat[v:]).all() and np.isfinite(p_map.flat[:v]).all()


def test_variant_outputs_hold_p_q_and_band_maps(tmp_path):
    from bids_app.encoding.engine import EncodingResult
    from bids_app.outputs import write_variant_outputs

    v, shape = 10, (2, 5, 1)
    rng = np.random.default_rng(0)
    r = rng.uniform(0, 0.5, v).astype(np.float32)
    folds = np.vstack([r, r])
    result = EncodingResult(r=r, r2=r ** 2, alpha=np.full(v, 10.0, np.float32), r_folds=folds,
                            r2_folds=folds ** 2, alpha_folds=np.full((2, v), 10.0, np.float32),
                            test_runs=[[0], [1]],
                            info={"n_permutations": 200, "permutation": "block",
                                  "block_length": 10, "null_fold_correlation": 0.2,
                                  "bands": ["tuned", "word rate"]},
                            p=np.linspace(0.001, 0.9, v).astype(np.float32),
                            q=np.linspace(0.004, 0.9, v).astype(np.float32),
                            r2_split=np.vstack([r ** 2 * 0.7, r ** 2 * 0.3]))
    result.save(tmp_path / "res.npz")
    mask = np.ones(shape, dtype=np.uint8)
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "mask.nii.gz")
    func = tmp_path / "bids" / "sub-01" / "func"
    runs = [BoldRun(subject="01", session="", task="story", run=str(i + 1),
                    bold_file=func / f"sub-01_task-story_run-{i + 1}_bold.nii.gz",
                    events_file=None, tr=2.0, n_volumes=50,
                    entities={"subject": "01", "task": "story", "run": str(i + 1)})
            for i in range(2)]
    files = write_variant_outputs(str(tmp_path / "out"), str(tmp_path / "bids"), runs,
                                  str(tmp_path / "res.npz"), str(tmp_path / "mask.nii.gz"),
                                  {"variant": "minilmfrozenL3", "Layer": 3,
                                   "Statistics": {"fdr_alpha": 0.05}})
    stats = [f.split("_stat-")[1].split("_")[0] for f in files if "_stat-" in f]
    assert stats == ["r", "r2", "alpha", "p", "q", "r2splitTuned", "r2splitWordRate"]
    q_sidecar = json.loads(open(files[4].replace(".nii.gz", ".json")).read())
    assert q_sidecar["MultipleComparisonCorrection"] == "Benjamini-Hochberg FDR"
    assert q_sidecar["NPermutations"] == 200
    import pandas as pd

    table = pd.read_csv(next(f for f in files if f.endswith("_scores.tsv")), sep="\t")
    brain = table.loc[table.region == "brain", "n_significant"].item()
    assert brain == int((result.q < 0.05).sum())


def test_banded_variants_can_be_compared(tmp_path):
    """Banded fits save their held-out predictions too, so a compare pair of them works."""
    from bids_app.participant import update_design_sidecar

    rng = np.random.default_rng(2)
    n_runs, n, v = 4, 70, 12
    W = rng.normal(size=(6, v))
    bold, designs_a, designs_b = [], [], []
    for i in range(n_runs):
        x = rng.normal(size=(n, 6)).astype(np.float32)
        y = (x @ W + rng.normal(size=(n, v))).astype(np.float32)
        noise = rng.normal(size=(n, 3)).astype(np.float32)
        bad = (x + 3.0 * rng.normal(size=x.shape)).astype(np.float32)
        for name, arr, store in (("bold", y, bold), ("a", np.hstack([x, noise]), designs_a),
                                 ("b", np.hstack([bad, noise]), designs_b)):
            path = tmp_path / f"run{i}_{name}.npy"
            np.save(path, arr)
            store.append(str(path))
            if name != "bold":
                update_design_sidecar(path, bands={"features": [0, 6], "nuisance": [6, 9]})
    encoding = {"alphas": [1.0, 10.0, 100.0], "outer_cv": "leave-one-run-out",
                "inner_folds": 3, "save_predictions": True, "trim_edges": [2, 0],
                "banded": True, "banded_iterations": 3,
                "statistics": {"heldout_permutations": 0}}
    res_a = fit_encoding(designs_a, bold, encoding, "numpy", str(tmp_path / "a.npz"))
    res_b = fit_encoding(designs_b, bold, encoding, "numpy", str(tmp_path / "b.npz"))
    heldout = np.load(tmp_path / "a_heldout.npy")
    assert heldout.shape == (n_runs * (n - 2), v)
    kept = np.load(bold[0])[2:]  # the kept volumes, centred as the fit centres them
    np.testing.assert_allclose(heldout[: n - 2], kept - kept.mean(0), rtol=1e-5, atol=1e-6)
    out = compare_encodings(res_a, res_b, {"n_bootstrap": 100},
                            str(tmp_path / "cmp.npz"))
    with np.load(out) as data:
        assert (data["rdiff"] > 0).mean() > 0.9
