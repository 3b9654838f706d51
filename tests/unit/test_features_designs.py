"""Layer bands and nuisance bands reach the design matrices, with their column ranges."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bids_app.config import default_spec, spec_from_dict
from bids_app.errors import UsageError
from bids_app.featurization import nuisance_settings, story_nuisance
from bids_app.participant import build_designs, fit_encoding, read_design_sidecar
from bids_app.variants import plan_variants

NUISANCE = ["word_rate", "word_length", "word_frequency", "sentence_boundary"]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    from bids_app.io.bids import make_derivative_layouts, make_layout
    from bids_app.plan import make_plan
    from tests.helpers.fmriprep import SPACE, make_fmriprep_dataset

    root = tmp_path_factory.mktemp("designs")
    synthetic = make_fmriprep_dataset(root, n_volumes=60)
    spec = default_spec()
    plan = make_plan(make_layout(synthetic.bids), ["01"], spec, work_dir=root / "work",
                     output_dir=root / "out",
                     derivatives=make_derivative_layouts({"fmriprep": synthetic.fmriprep}),
                     space=f"{SPACE}:res-2", bids_dir=synthetic.bids)
    assert not plan.failures
    rng = np.random.default_rng(0)
    features = []
    for name, story in zip(plan.story_names, plan.story_files, strict=True):
        n_words = len(json.loads(Path(story).read_text(encoding="utf-8"))["words"])
        path = root / f"{name}_features.npy"
        np.save(path, rng.normal(size=(3, n_words, 5)).astype(np.float32))
        features.append(str(path))
    return plan, features, root


def _designs(planned, out, **kw):
    plan, features, _ = planned
    spec = default_spec()
    subject = plan.subjects[0]
    return build_designs(subject.runs_json, subject.word_tables, features, plan.story_names, 1,
                         dataclasses.asdict(spec.alignment), dataclasses.asdict(spec.bold),
                         str(out), **kw)


def test_layers_and_nuisance_are_contiguous_bands(planned, tmp_path):
    plan = planned[0]
    nuisance = {"bands": NUISANCE, "frequency_file": ""}
    designs = _designs(planned, tmp_path / "banded", band_positions=[0, 2],
                       band_names=["L0", "L6"], nuisance=nuisance, story_files=plan.story_files)
    plain = _designs(planned, tmp_path / "plain")
    delays = len(default_spec().alignment.delays) if default_spec().alignment.method != "hrf" else 1
    for design_file, plain_file in zip(designs, plain, strict=True):
        design, sidecar = np.load(design_file), read_design_sidecar(design_file)
        bands = sidecar["bands"]
        bands = {name: bands[name] for name in sorted(bands, key=lambda k: bands[k][0])}
        assert list(bands) == ["L0", "L6", *NUISANCE]
        widths = {name: stop - start for name, (start, stop) in bands.items()}
        assert widths["L0"] == widths["L6"] == 5 * delays
        assert all(widths[name] == delays for name in NUISANCE)
        edges = [tuple(v) for v in bands.values()]
        assert edges[0][0] == 0 and edges[-1][1] == design.shape[1]
        assert all(a[1] == b[0] for a, b in zip(edges[:-1], edges[1:], strict=True))
        # the word-rate band follows the number of words per volume
        rate = design[:, slice(*bands["word_rate"])][:, 0]
        assert np.std(rate) > 0
        # one layer, no nuisance: the design is that layer's band alone, no band table
        assert "bands" not in read_design_sidecar(plain_file)
        assert np.load(plain_file).shape[1] == widths["L0"]
    # the layer bands are the single-layer designs of the same slices
    single = _designs(planned, tmp_path / "single", band_positions=[2], band_names=["L6"])
    np.testing.assert_array_equal(np.load(designs[0])[:, slice(*bands["L6"])],
                                  np.load(single[0]))


def test_banded_ridge_reads_the_bands(planned, tmp_path):
    from bids_app.encoding.engine import EncodingResult

    plan, _, root = planned
    designs = _designs(planned, tmp_path / "d", nuisance={"bands": ["word_rate", "word_length"]},
                       story_files=plan.story_files)
    rng = np.random.default_rng(1)
    bold = []
    for i, design in enumerate(designs):
        X = np.load(design)
        path = tmp_path / f"run{i}_bold.npy"
        Y = X[:, :3] @ rng.normal(size=(3, 8)) + rng.normal(size=(len(X), 8))
        np.save(path, (Y - Y.mean(0)).astype(np.float32))
        bold.append(str(path))
    encoding = {**dataclasses.asdict(default_spec().encoding), "alphas": [1.0, 100.0],
                "inner_folds": 2, "banded": True, "banded_iterations": 3}
    result = EncodingResult.load(fit_encoding(designs, bold, encoding, "numpy",
                                              str(tmp_path / "res.npz")))
    assert set(result.info["bands"]) == {"features", "word_rate", "word_length"}
    assert result.r2_split.shape == (3, 8)


def test_story_nuisance_counts_words_over_all_stories(planned):
    plan = planned[0]
    values = story_nuisance(plan.story_files, {"bands": ["word_frequency", "word_rate"]})
    assert set(values) == set(plan.story_names)
    for name, story in zip(plan.story_names, plan.story_files, strict=True):
        n_words = len(json.loads(Path(story).read_text(encoding="utf-8"))["words"])
        assert values[name]["word_frequency"].shape == (n_words, 1)
        assert np.isfinite(values[name]["word_frequency"]).all()


def test_spec_options_for_bands_and_nuisance(tmp_path):
    spec = spec_from_dict({"features": {"layers": [1, 3, 5], "bands": True,
                                        "nuisance": ["word_rate"], "context_unit": "tokens"}})
    assert spec.features.settings().context_unit == "tokens"
    _, variants = plan_variants(spec)
    assert [v.label for v in variants] == ["minilmfrozenL1L3L5"]
    assert variants[0].band_layers == [1, 3, 5] and variants[0].band_positions == [0, 1, 2]
    assert "as bands" in variants[0].description()
    contiguous = spec_from_dict({"features": {"layers": "all", "bands": True}})
    assert plan_variants(contiguous)[1][0].label == "minilmfrozenL0to6"
    assert len(plan_variants(spec_from_dict({"features": {"layers": [1, 3]}}))[1]) == 2
    with pytest.raises(UsageError, match="'features.nuisance' must be one of"):
        spec_from_dict({"features": {"nuisance": ["pitch"]}})
    spec = spec_from_dict({"features": {"nuisance": ["word_frequency"],
                                        "frequency_file": "missing.tsv"}},
                          source_file=str(tmp_path / "spec.toml"))
    with pytest.raises(UsageError, match="missing.tsv"):
        nuisance_settings(spec)
    (tmp_path / "freq.tsv").write_text("word\tcount\nthe\t10\n", encoding="utf-8")
    spec.features.frequency_file = "freq.tsv"
    assert nuisance_settings(spec)["frequency_file"] == str((tmp_path / "freq.tsv").resolve())
