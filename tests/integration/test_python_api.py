"""The notebook face on the demo dataset: encoding_from_bids, its arrays and estimators."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One demo participant (3 runs, a planted signal) loaded through encoding_from_bids."""
    from bids_app.api import encoding_from_bids
    from bids_app.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("api")
    bids = make_demo_dataset(root / "bids", n_subjects=1, seed=42, words_per_story=240)
    data = encoding_from_bids(bids, "sub-01", work_dir=root / "work", backend="numpy")
    return bids, root, data


def test_runs_designs_and_bold_line_up(demo):
    _, _, data = demo
    assert data.participant == "01"
    assert data.runs == [f"sub-01_task-listening_run-{r}" for r in (1, 2, 3)]
    assert data.variants == ["minilmfrozenL3"]
    designs = data.designs["minilmfrozenL3"]
    assert [x.shape[0] for x in designs] == [y.shape[0] for y in data.bold]
    # MiniLM width, HRF-convolved, beside the default low-level control band (word rate)
    bands = data.bands["minilmfrozenL3"]
    widths = {name: stop - start for name, (start, stop) in bands.items()}
    assert sorted(widths.values()) == [1, 384], widths
    assert all(x.shape[1] == 385 for x in designs)
    assert data.X().shape[0] == data.Y().shape[0] == len(data.groups)
    assert data.Y().shape[1] == int(data.mask.sum())
    # cleaned BOLD is z-scored per run, then the run edges are trimmed (as the CLI scores it)
    # and the kept volumes centred
    assert data.info["trim"] == [10, 5]  # 20 s and 10 s at the demo's TR of 2 s
    np.testing.assert_allclose(data.bold[0].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(np.median(data.bold[0].std(0, ddof=1)), 1, atol=0.05)
    np.testing.assert_allclose(data.X().mean(0), 0, atol=1e-3)
    assert len(set(data.stories)) == 3


def test_estimator_recovers_the_planted_voxels_on_a_held_out_run(demo):
    import nibabel as nib

    bids, _, data = demo
    planted_img = nib.load(bids / "sourcedata" / "planted" / "planted_mask.nii.gz")
    planted = (np.asanyarray(planted_img.dataobj) > 0)[data.mask]
    train = data.groups < 2
    model = data.estimator().set_params(scoring="r")
    model.fit(data.X(runs=[0, 1]), data.Y(runs=[0, 1]), groups=data.groups[train])
    r = model.score(data.X(runs=[2]), data.Y(runs=[2]))
    assert r.shape == (int(data.mask.sum()),)
    assert r[planted].mean() > r[~planted].mean() + 0.15
    assert abs(r[~planted].mean()) < 0.05
    image = data.unmask(r)
    assert image.shape == data.mask.shape
    np.testing.assert_allclose(np.asanyarray(image.dataobj)[data.mask], r)


def test_estimator_follows_the_spec(demo):
    _, _, data = demo
    model = data.estimator("minilmfrozenL3")
    spec = data.spec.encoding
    assert model.cv == spec.inner_folds and model.backend == "numpy"
    np.testing.assert_allclose(model.alphas, spec.alphas)
    assert not hasattr(model, "coef_")


@pytest.fixture(scope="module")
def cli_maps(demo):
    """The CLI's participant r and alpha maps of the same demo participant, over its mask."""
    import nibabel as nib

    from bids_app.cli import main

    bids, root, _ = demo
    out = root / "cli_out"
    assert main([str(bids), str(out), "participant", "-w", str(root / "cli_work"),
                 "--nprocs", "1"]) == 0
    func = out / "sub-01" / "func"
    mask = np.asanyarray(nib.load(next(func.glob("*_desc-brain_mask.nii.gz"))).dataobj) > 0
    maps = {stat: np.asanyarray(nib.load(next(func.glob(
        f"*_stat-{stat}_desc-minilmfrozenL3_statmap.nii.gz"))).dataobj)[mask]
        for stat in ("r", "alpha")}
    return mask, maps


def test_the_estimator_is_the_cli_joint_fit_and_reproduces_its_participant_map(demo, cli_maps):
    """Fitted run by run on the returned arrays, the estimator gives the CLI's r per voxel."""
    from sklearn.base import clone

    from bids_app.encoding import EncodingJointRidgeCV
    from bids_app.unique_variance import NUISANCE_WEIGHTS

    _, _, data = demo
    mask, maps = cli_maps
    np.testing.assert_array_equal(mask, data.mask)
    model = data.estimator()
    bands = data.bands["minilmfrozenL3"]
    assert isinstance(model, EncodingJointRidgeCV)
    assert model.nuisance == ("word_rate",) and tuple(model.weights) == NUISANCE_WEIGHTS
    assert {k: list(v) for k, v in model.bands.items()} == {k: list(v) for k, v in bands.items()}
    assert model.fit_intercept is False
    r_folds, alphas = [], []
    for run in range(3):  # the CLI's leave-one-run-out folds, on the CLI's backend (CPU: torch)
        train = data.groups != run
        fitted = clone(model).set_params(scoring="r", backend="torch").fit(
            data.X()[train], data.Y()[train], groups=data.groups[train])
        r_folds.append(fitted.score(data.X()[~train], data.Y()[~train]))
        alphas.append(fitted.best_alphas_)
        assert set(np.unique(fitted.best_weights_)) <= set(NUISANCE_WEIGHTS)
    # weights from the refit instead of the CLI's hat matrices: float32 rounding, which can
    # turn a near-tie between two weights or alphas of a voxel (0.08 % of voxels when this
    # fit ran on the numpy backend)
    gap = np.abs(np.mean(r_folds, 0) - maps["r"])
    assert np.mean(gap < 1e-3) > 0.999 and np.median(gap) < 1e-5, np.sort(gap)[-5:]
    alpha = np.exp(np.log(np.stack(alphas)).mean(0))
    assert np.mean(np.isclose(alpha, maps["alpha"], rtol=1e-3)) > 0.99


def test_features_are_those_featurize_words_gives(demo):
    """The designs are built from the features featurize_words computes for each story."""
    from bids_app.config import default_spec
    from stimuli_models import featurize_words

    _, root, data = demo
    story_file = sorted((root / "work" / "brainenc_inputs" / "stories").glob("*.json"))[0]
    story = json.loads(story_file.read_text("utf-8"))
    cached = {}
    for meta_file in (root / "work" / "outputs" / "stimuli" / "features").glob("*.json"):
        meta = json.loads(meta_file.read_text("utf-8"))
        cached[meta["story"]] = (np.load(meta_file.with_suffix(".npy")), meta["layers"])
    features, layers = cached[story["name"]]
    settings = default_spec().features.settings()
    ours = featurize_words(story["words"], settings=settings, layers=tuple(layers),
                           sentences=story["sentences"])
    assert list(ours.layers) == list(layers) == [3]
    np.testing.assert_allclose(ours.features, features, atol=1e-5)


@pytest.mark.parametrize("call, error, message", [
    (lambda f, b, w: f(b, "07", work_dir=w), "NoMatchError", "participant label(s) 07 not found"),
    (lambda f, b, w: f(b.parent, "01", work_dir=w), "DatasetError",
     "is not a BIDS dataset (no dataset_description.json)"),
    (lambda f, b, w: f(b, "01", spec=b / "missing.toml", work_dir=w), "UsageError",
     "missing.toml' does not exist"),
])
def test_user_errors_are_one_clear_sentence(demo, call, error, message):
    from bids_app import errors
    from bids_app.api import encoding_from_bids

    bids, root, _ = demo
    with pytest.raises(getattr(errors, error)) as caught:
        call(encoding_from_bids, bids, root / "work")
    assert message in str(caught.value)


def test_unknown_variant_is_named(demo):
    from bids_app.errors import UsageError

    _, _, data = demo
    with pytest.raises(UsageError, match="'variant' must be one of {'minilmfrozenL3'}; got 'L9'"):
        data.X("L9")


@pytest.fixture(scope="module")
def fmriprep(tmp_path_factory):
    from tests.helpers.fmriprep import make_fmriprep_dataset

    return make_fmriprep_dataset(tmp_path_factory.mktemp("api_fmriprep"),
                                 kinds=("volume", "surface"), n_volumes=90, surface_naming="21.0")


@pytest.mark.parametrize("kind, space", [("volume", "MNI152NLin2009cAsym:res-2"),
                                         ("surface", "fsaverage5")])
def test_fmriprep_derivatives_space_and_in_fold_confounds(fmriprep, tmp_path, kind, space):
    """``derivatives`` and ``space`` pick fMRIPrep's runs; confounds come back per run."""
    from bids_app.api import encoding_from_bids
    from bids_app.config import default_spec
    from bids_app.encoding.confounds import FoldConfoundRegressor
    from bids_app.errors import UsageError
    from tests.helpers.pipeline import auc

    spec = default_spec()
    spec.bold.confounds = "simple"
    data = encoding_from_bids(fmriprep.bids, "01", spec=spec, space=space,
                              derivatives={"fmriprep": fmriprep.fmriprep},
                              work_dir=tmp_path / "work", backend="numpy")
    planted = fmriprep.planted[kind]
    assert data.Y().shape[1] == len(planted)
    # non-steady-state volumes out, then the run edges the CLI trims
    kept = [90 - run["removed_volumes"] - sum(data.info["trim"]) for run in data.info["runs"]]
    assert [len(c) for c in data.confounds] == [len(y) for y in data.bold] == kept
    assert [len(x) for x in data.designs[data.variants[0]]] == kept and max(kept) < 90
    train = data.groups < 2
    C = np.concatenate(data.confounds)
    regressor = FoldConfoundRegressor().fit(C[train], data.Y()[train])
    Y_train = regressor.transform(C[train], data.Y()[train])
    Y_test = regressor.transform(C[~train], data.Y()[~train])
    model = data.estimator().set_params(scoring="r").fit(data.X()[train], Y_train,
                                                         groups=data.groups[train])
    r = model.score(data.X()[~train], Y_test)
    assert auc(r, planted) > 0.9
    if kind == "surface":
        assert data.mask_img is None
        with pytest.raises(UsageError, match="'unmask' needs volumetric data"):
            data.unmask(r)
    else:
        assert data.unmask(r).shape == data.mask.shape


def test_task_selects_runs(demo):
    from bids_app.api import encoding_from_bids
    from bids_app.errors import NoMatchError

    bids, root, data = demo
    same = encoding_from_bids(bids, "01", task="listening", work_dir=root / "work",
                              backend="numpy")
    assert same.runs == data.runs
    np.testing.assert_array_equal(same.Y(), data.Y())
    with pytest.raises(NoMatchError, match="no BOLD runs matched for participant '01'"):
        encoding_from_bids(bids, "01", task="rest", work_dir=root / "work")
