"""Null calibration of participant-level variant contrasts (stat-rdiffp, stat-rdiffq).

Two variants with independent, slowly drifting features, both unrelated to AR(1)
BOLD (0.8 and 0.95 per volume, spatially smooth), are fitted with the real
``cross_validate`` with the default settings (edge trims at the TR typical of each
AR value, centred runs) and compared with the real ``compare_predictions`` on the
kept volumes, folds built as ``participant.compare_encodings`` builds them: every
contrast is null, so the share of voxels under a threshold is the false-positive
rate.
"""

import numpy as np
import pytest

from bids_app.config import ExperimentSpec
from bids_app.encoding.contrast import compare_predictions
from bids_app.encoding.cv import trim_mask
from bids_app.encoding.engine import cross_validate
from tests.helpers.nulls import (
    binomial_upper,
    default_settings,
    drifting_features,
    null_story_data,
    null_tr,
)

N_DATASETS = 6


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _null_contrast(seed: int, phi: float, **data) -> dict:
    spec = ExperimentSpec()
    # the default fit; its held-out test of r is not what is compared, so it is left out
    settings = {**default_settings(null_tr(phi)), "n_permutations": 0}
    alphas = settings.pop("alphas")
    Xa, Ys = null_story_data(seed, phi, **data)
    rng = np.random.default_rng(seed + 1000)
    Xb = [drifting_features(rng, len(x), x.shape[1]) for x in Xa]
    n = int(trim_mask([len(y) for y in Ys], settings["trim"]).sum())
    preds, heldout = {}, np.zeros((n, Ys[0].shape[1]), np.float32)
    for name, Xs in (("a", Xa), ("b", Xb)):
        preds[name] = np.zeros_like(heldout)
        res = cross_validate(Xs, Ys, alphas, backend="numpy", predictions=preds[name],
                             heldout=heldout, **settings)
    assert res.info["trim"] == list(settings["trim"]) != [0, 0]
    bounds = np.concatenate([[0], np.cumsum(res.info["run_lengths"])])
    folds = [np.concatenate([np.arange(bounds[r], bounds[r + 1]) for r in runs])
             for runs in res.test_runs]
    return compare_predictions(heldout, preds["a"], preds["b"], folds,
                               n_null=spec.statistics.n_bootstrap, random_state=seed)


@pytest.mark.slow
@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_null_contrasts_are_calibrated(phi):
    outs = [_null_contrast(seed, phi) for seed in range(N_DATASETS)]
    p = np.concatenate([o["p"] for o in outs])
    q = np.concatenate([o["q"] for o in outs])
    assert np.mean(p < 0.05) <= 0.06
    assert np.mean(p < 0.01) <= 0.015
    assert np.mean(q < 0.05) <= 0.002
    n_null = ExperimentSpec().statistics.n_bootstrap
    assert p.min() >= 1 / (n_null + 1) - 1e-9
    assert all(len(o["circular_folds"]) == 0 for o in outs)


@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_null_contrasts_are_calibrated_ci_sized(phi):
    """Three datasets of 600 spatially independent voxels (1,800 null contrasts).

    p < .05 and p < .01 within 3.29 binomial standard errors of nominal (6.7 % and
    1.8 %); BH finds something in at most 1 of the 3 datasets (P(>= 2 of 3) = 0.7 %
    at 5 %).
    """
    outs = [_null_contrast(200 + seed, phi, grid=(10, 10, 6), smooth=0.0)
            for seed in range(3)]
    p = np.concatenate([o["p"] for o in outs])
    assert np.mean(p < 0.05) <= binomial_upper(0.05, p.size)
    assert np.mean(p < 0.01) <= binomial_upper(0.01, p.size)
    assert sum(bool((o["q"] < 0.05).any()) for o in outs) <= 1
    assert p.min() >= 1 / (ExperimentSpec().statistics.n_bootstrap + 1) - 1e-9


def test_contrast_windows_come_from_other_folds_and_keep_order():
    from bids_app.encoding.contrast import contrast_windows

    folds = [np.arange(0, 50), np.arange(50, 90), np.arange(90, 160)]
    windows = contrast_windows(folds, 30, random_state=0)
    for rows, w in zip(folds, windows, strict=True):
        assert w.shape == (30, len(rows))
        assert not np.isin(w, rows).any()
    # the third fold (70 volumes) fits in the others' 90: consecutive rows of other folds
    others = np.concatenate(folds[:2])
    for w in windows[2]:
        start = int(np.flatnonzero(others == w[0])[0])
        np.testing.assert_array_equal(w, others[start:start + 70])
