"""Engine options: story-aware folds, trimming, layer choice, memory bound, files in/out."""

import json
import re
import tracemalloc

import numpy as np
import pytest

from bids_app.alignment import edge_mask
from bids_app.encoding.cv import inner_splits, outer_splits
from bids_app.encoding.engine import EncodingResult, cross_validate
from bids_app.encoding.maps import band_label, result_maps

ALPHAS = [1.0, 10.0, 100.0, 1000.0]


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _planted(n_runs=4, n=60, p=8, v=40, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(p, v))
    W[:, v // 2:] = 0
    Xs = [rng.normal(size=(n, p)).astype(np.float32) for _ in range(n_runs)]
    Ys = [(x @ W + rng.normal(size=(n, v))).astype(np.float32) for x in Xs]
    return Xs, Ys


def test_story_folds_keep_repeats_together():
    groups = np.repeat(np.arange(6), 10)
    labels = ["a", "b", "a", "c", "b", "c"]  # each story heard twice
    splits = outer_splits(groups, "leave-one-story-out", labels=labels)
    assert len(splits) == 3
    for train, test in splits:
        held = {labels[g] for g in np.unique(groups[test])}
        assert len(held) == 1
        assert held.isdisjoint({labels[g] for g in np.unique(groups[train])})
        for itr, iva in inner_splits(groups[train], 5, labels=labels):
            sub = groups[train]
            assert {labels[g] for g in sub[itr]}.isdisjoint({labels[g] for g in sub[iva]})
    # repeated stories never straddle train and test under K-fold either
    for train, test in outer_splits(groups, "2-fold", labels=labels):
        assert {labels[g] for g in groups[test]}.isdisjoint({labels[g] for g in groups[train]})
    with pytest.raises(ValueError, match="needs the story"):
        outer_splits(groups, "leave-one-story-out")
    with pytest.raises(ValueError, match="'outer_cv' must be one of"):
        outer_splits(groups, "bootstrap")


def test_trimming_drops_run_edges():
    assert edge_mask(10, 2, 3).tolist() == [False] * 2 + [True] * 5 + [False] * 3
    with pytest.raises(ValueError, match="leaves nothing"):
        edge_mask(5, 3, 2)
    Xs, Ys = _planted()
    # corrupt the edges: trimming them away restores the scores
    for y in Ys:
        y[:5] += 50.0
    plain = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3)
    trimmed = cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3, trim=(5, 0))
    assert trimmed.r[:20].mean() > plain.r[:20].mean() + 0.1
    assert trimmed.info["n_samples"] == 4 * 55


def test_layer_choice_inside_nested_cv():
    rng = np.random.default_rng(1)
    n, p, v = 60, 6, 30
    good = [rng.normal(size=(n, p)).astype(np.float32) for _ in range(4)]
    other = [rng.normal(size=(n, p)).astype(np.float32) for _ in range(4)]
    W = rng.normal(size=(p, v))
    # first half of voxels driven by the "good" design, second half by "other"
    Ys = [np.hstack([g @ W[:, :15], o @ W[:, 15:]]) + rng.normal(size=(n, v))
          for g, o in zip(good, other, strict=True)]
    Ys = [y.astype(np.float32) for y in Ys]
    res = cross_validate([good, other], Ys, ALPHAS, backend="numpy", inner_folds=3)
    assert (res.layer_folds[:, :15] == 0).mean() > 0.95
    assert (res.layer_folds[:, 15:] == 1).mean() > 0.95
    assert res.r.mean() > 0.8


def test_memory_grows_with_the_batch_not_the_voxels(tmp_path):
    def peak(v):
        Xs, _ = _planted(n=200, p=20, v=2)
        rng = np.random.default_rng(0)
        Ys = []
        for i in range(4):  # on-disk BOLD, streamed one voxel batch at a time
            path = tmp_path / f"v{v}_run{i}.npy"
            np.save(path, rng.normal(size=(200, v)).astype(np.float32))
            Ys.append(np.load(path, mmap_mode="r"))
        tracemalloc.start()
        cross_validate(Xs, Ys, ALPHAS, backend="numpy", inner_folds=3, n_targets_batch=256,
                       mem_gb=1e-4)
        out = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out

    small, large = peak(1000), peak(6000)
    y_bytes = 4 * 200 * 4  # bytes of BOLD per voxel
    # 5,000 more voxels cost far less than their BOLD (only per-voxel scores grow)
    assert large - small < 0.1 * 5000 * y_bytes
    assert large < 0.5 * 6000 * y_bytes


def test_fit_encoding_files_and_maps(tmp_path):
    from bids_app.participant import fit_encoding, update_design_sidecar

    Xs, Ys = _planted(n_runs=4)
    designs, bolds = [], []
    for i, (x, y) in enumerate(zip(Xs, Ys, strict=True)):
        designs.append(tmp_path / f"run{i:03d}_design.npy")
        bolds.append(tmp_path / f"run{i:03d}_bold.npy")
        np.save(designs[-1], x)
        np.save(bolds[-1], y)
        update_design_sidecar(designs[-1], stories=["s1" if i % 2 else "s0"])
    encoding = {"alphas": ALPHAS, "outer_cv": "leave-one-story-out", "inner_folds": 3,
                "trim_edges": [2, 1], "save_predictions": True, "seed": 3,
                "statistics": {"heldout_permutations": 100, "permutation": "block",
                               "block_length": 5}}
    out = fit_encoding([str(d) for d in designs], [str(b) for b in bolds], encoding, "numpy",
                       str(tmp_path / "res.npz"))
    res = EncodingResult.load(out)
    assert len(res.test_runs) == 2 and res.test_runs[0] == [0, 2]
    assert res.p.shape == res.r.shape and np.all((res.p > 0) & (res.p <= 1))
    assert (res.q[:20] < 0.05).all()
    assert res.info["trim"] == [2, 1] and res.info["n_permutations"] == 100
    pred = np.load(tmp_path / "res_predictions.npy")
    assert pred.shape == (4 * 57, 40) and np.abs(pred).sum() > 0
    labels = [label for label, _, _ in result_maps(res)]
    assert labels == ["r", "r2", "alpha", "p", "q", "z"]
    assert all(re.fullmatch(r"[A-Za-z0-9]+", lab) for lab in labels)
    fields = dict((lab, f) for lab, _, f in result_maps(res))
    assert fields["p"]["NPermutations"] == 100 and "SignificanceTest" in fields["q"]
    json.dumps(fields, default=str)


def test_fit_encoding_refuses_story_folds_without_stories(tmp_path):
    from bids_app.errors import UsageError
    from bids_app.participant import fit_encoding

    Xs, Ys = _planted(n_runs=2, v=4)
    files = []
    for i, (x, y) in enumerate(zip(Xs, Ys, strict=True)):
        np.save(tmp_path / f"d{i}.npy", x)
        np.save(tmp_path / f"b{i}.npy", y)
        files.append((str(tmp_path / f"d{i}.npy"), str(tmp_path / f"b{i}.npy")))
    with pytest.raises(UsageError, match="leave-one-run-out"):
        fit_encoding([f[0] for f in files], [f[1] for f in files],
                     {"alphas": ALPHAS, "outer_cv": "leave-one-story-out", "inner_folds": 2},
                     "numpy", str(tmp_path / "r.npz"))


def test_band_labels_are_alphanumeric():
    assert band_label("tuned-L6") == "TunedL6"
    assert band_label("word rate") == "WordRate"
    assert band_label("__") == "Band"


def test_progress_log_reports_fold_voxels_and_time_left(caplog):
    import logging

    from bids_app.encoding.engine import ProgressLog

    log = ProgressLog("sub-01_fit", every=0.0)
    with caplog.at_level(logging.INFO, logger="brainenc.encoding"):
        log(0, 3, 500, 1000)
        log(2, 3, 1000, 1000)  # the last batch: nothing left to announce
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert messages[0].startswith("sub-01_fit: outer fold 1/3, 500 of 1000 voxels, about ")
    quiet = ProgressLog("x", every=3600.0)
    with caplog.at_level(logging.INFO, logger="brainenc.encoding"):
        quiet(0, 3, 10, 1000)
    assert len(caplog.records) == 1, "at most one message per interval"


def test_alpha_grid_edge_warns_records_and_reaches_the_report(tmp_path):
    """A grid whose top is too small for the voxels the model predicts: the fit warns."""
    from bids_app.encoding.maps import result_maps
    from bids_app.encoding.scoring import alpha_edge_message, alpha_grid_edges

    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(80, 30)).astype(np.float32) for _ in range(3)]
    W = np.zeros((30, 60))
    W[:, :30] = 0.15 * rng.normal(size=(30, 30))  # weak, spread weights: a large best alpha
    Ys = [(x @ W + rng.normal(size=(80, 60))).astype(np.float32) for x in Xs]
    with pytest.warns(RuntimeWarning, match="% of the 30 voxels with r above 3 times the spread "
                      "of the negative r values chose the largest alpha .* extend "
                      "'encoding.alphas'"):
        res = cross_validate(Xs, Ys, [0.01, 0.1, 1.0, 10.0], backend="numpy", inner_folds=2)
    edges = res.info["alpha_grid_edges"]
    assert edges["n_voxels"] == 30 and res.r[:30].min() > res.r[30:].max()
    assert edges["largest"] > 0.5 and edges["grid"] == pytest.approx([0.01, 10.0])
    sidecar = dict((s, f) for s, _, f in result_maps(res))["alpha"]
    assert sidecar["AlphaGridEdgeShare"]["largest"] == edges["largest"]
    assert sidecar["AlphaGridEdgeShare"]["n_voxels"] == 30
    # a grid that brackets the choices stays silent
    assert alpha_edge_message(alpha_grid_edges(np.full((2, 10), 5.0), [1.0, 5.0, 25.0])) is None
    low = alpha_edge_message(alpha_grid_edges(np.full((2, 10), 1.0), [1.0, 5.0, 25.0]))
    assert "100.0 % of the 10 voxels chose the smallest alpha (1)" in low


def test_alpha_grid_edge_is_silent_on_noise_only_maps():
    """Pure noise: every voxel rightly picks the largest alpha, and nothing is predicted."""
    import warnings

    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(60, 30)).astype(np.float32) for _ in range(3)]
    Ys = [rng.normal(size=(60, 200)).astype(np.float32) for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = cross_validate(Xs, Ys, [0.1, 1.0, 10.0], backend="numpy", inner_folds=2)
        permuted = cross_validate(Xs, Ys, [0.1, 1.0, 10.0], backend="numpy", inner_folds=2,
                                  n_permutations=50)
    assert (res.alpha_folds == 10.0).mean() > 0.5  # the top of the grid, as it should be
    assert res.info["alpha_grid_edges"]["n_voxels"] < 10
    # no q < .05 on noise: the r rule counts the voxels, and too few of them to warn
    assert permuted.info["alpha_grid_edges"]["among"].startswith("voxels with r above")
    assert permuted.info["alpha_grid_edges"]["n_voxels"] < 10


def test_top_voxel_summary_does_not_select_and_score_on_the_same_map():
    """Pure noise: the top 10 % by r have a high r, but their held-out value is about 0."""
    from bids_app.outputs import region_summary

    rng = np.random.default_rng(2)
    v, k = 2000, 4
    r_folds = (0.1 * rng.normal(size=(k, v))).astype(np.float32)
    res = EncodingResult(r=r_folds.mean(0), r2=np.zeros(v, np.float32),
                         alpha=np.ones(v, np.float32), r_folds=r_folds,
                         r2_folds=np.zeros_like(r_folds), alpha_folds=np.ones_like(r_folds),
                         test_runs=[[i] for i in range(k)])
    table = region_summary(res).set_index("region")
    naive = np.sort(res.r)[::-1][:200].mean()
    assert naive > 0.08  # selecting and scoring on one map: inflated
    assert abs(table.loc["top10pct", "mean_r"]) < 0.01
    assert table.loc["top10pct", "n_voxels"] == 200
    assert len(table.loc["top10pct", "fold_mean_r"].split(";")) == k
