"""The paper's design (examples/paper_reproduction.toml) on a story dataset without punctuation.

The demo dataset's words are stripped of punctuation and upper-cased, as forced
alignments give them. The example's [features] and [annotations] are used as
written; the test keeps only its frozen variant (tuning is tested elsewhere).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

# a participant-level run on the demo dataset: several minutes on two shared cores
pytestmark = pytest.mark.slow

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "paper_reproduction.toml"


def _strip_events(bids: Path) -> None:
    for events in bids.rglob("*_events.tsv"):
        lines = events.read_text(encoding="utf-8").splitlines()
        rows = [lines[0]]
        for line in lines[1:]:
            onset, duration, word = line.split("\t")
            rows.append("\t".join([onset, duration, re.sub(r"[^\w']", "", word).upper()]))
        events.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _spec(folder: Path, **features) -> Path:
    import tomli_w

    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data.pop("tasks", None)
    data["variants"] = [v for v in data["variants"] if v["method"] == "frozen"]
    data["features"].update(features)
    path = folder / "spec.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from bids_app.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("paper")
    bids = make_demo_dataset(root / "bids", n_subjects=1, seed=42, words_per_story=600)
    _strip_events(bids)
    return root, bids


@pytest.fixture(scope="module")
def paper_run(dataset):
    from bids_app.cli import main

    root, bids = dataset
    out = root / "out"
    # one layer (the example reads two) keeps the test short
    code = main([str(bids), str(out), "participant", "-w", str(root / "work"), "--nprocs", "1",
                 "--config-file", str(_spec(root, layers=[0.5]))])
    return code, out


def test_the_words_carry_no_punctuation(dataset):
    _, bids = dataset
    for events in bids.rglob("*_events.tsv"):
        words = [line.split("\t")[2] for line in
                 events.read_text(encoding="utf-8").splitlines()[1:]]
        assert len(words) > 500
        assert not any(re.search(r"[.!?,;]", word) for word in words)


def test_example_recovers_the_planted_voxels_with_the_frozen_variant(dataset, paper_run):
    import nibabel as nib
    from sklearn.metrics import roc_auc_score

    _, bids = dataset
    code, out = paper_run
    assert code == 0
    planted = np.asanyarray(nib.load(bids / "sourcedata" / "planted" /
                                     "planted_mask.nii.gz").dataobj) > 0
    func = out / "sub-01" / "func"
    mask = np.asanyarray(nib.load(next(func.glob("*_desc-brain_mask.nii.gz"))).dataobj) > 0
    r_files = sorted(func.glob("*_stat-r_desc-*frozen*_statmap.nii.gz"))
    assert len(r_files) == 1
    r = np.asanyarray(nib.load(r_files[0]).dataobj)[mask]
    p = planted[mask]
    assert roc_auc_score(p, r) > 0.9
    assert r[p].mean() > r[~p].mean() + 0.2
    assert abs(np.median(r[~p])) < 0.05


def test_sentences_come_from_pauses_and_are_recorded(paper_run):
    code, out = paper_run
    assert code == 0
    sidecars = sorted((out / "stimuli").glob("stim-*_annot-words_events.json"))
    assert len(sidecars) == 3
    for sidecar in sidecars:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        assert meta["SentenceSource"] == "pauses of at least 0.3 s"
        assert meta["SentencesTried"][0].startswith("punctuation (no sentence ends")
        assert 30 <= meta["SentenceCount"] <= 120  # demo sentences hold 6 to 15 words
    design = json.loads(next(out.glob("sub-01/func/*_stat-r_desc-*_statmap.json"))
                        .read_text(encoding="utf-8"))
    assert all(run["rank"] >= 2 for run in design["DesignChecks"])


def test_without_a_sentence_source_the_run_stops_with_exit_3(dataset, capsys):
    from bids_app.cli import main

    root, bids = dataset
    folder = root / "nosource"
    folder.mkdir(exist_ok=True)
    spec = _spec(folder)
    text = spec.read_text(encoding="utf-8")
    spec.write_text(re.sub(r'sentence_fallback = "pause"', 'sentence_fallback = "none"', text),
                    encoding="utf-8")
    code = main([str(bids), str(folder / "out"), "participant", "-w", str(folder / "work"),
                 "--config-file", str(spec)])
    assert code == 3
    err = capsys.readouterr().err
    assert "no sentence boundaries for story" in err
    assert "punctuation (no sentence ends" in err and "sentence_fallback" in err
    assert not list((folder / "out").glob("sub-01/func/*_statmap.nii.gz"))
