"""The example specs of the public story datasets, end to end on their stand-ins.

Each recipe under ``examples/`` runs unchanged (packaged MiniLM model, frozen)
through the command line on a stand-in written by :mod:`bids_app.standins` with
the dataset's layout, shortened to a fifth of the real story lengths; the r map
must recover the voxels that carry the planted word rate. What is particular to
each dataset is checked too (story onsets from the ``story`` rows of Narratives,
runs named by story in LeBel, the chosen echo of Le Petit Prince).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.errors import EXIT_DATASET, EXIT_OK
from bids_app.standins import make_lebel, make_lepetitprince, make_narratives
from tests.helpers.pipeline import auc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCALE = 0.2


def _run(root: Path, make, spec: str, subject: str, *extra: str, **kw):
    from bids_app.cli import main

    bids = make(root / "bids", scale=SCALE, **kw)
    out, work = root / "out", root / "work"
    code = main([str(bids), str(out), "participant", "--participant-label", subject,
                 "-w", str(work), "--nprocs", "1", "--config-file", str(EXAMPLES / spec),
                 *extra])
    return bids, out, code


def _recovered(bids: Path, out: Path, subject: str) -> np.ndarray:
    """Check the r map ranks the planted voxels first; return it (brain voxels)."""
    func = next((out / f"sub-{subject}").rglob("func"))
    mask = np.asanyarray(nib.load(next(func.glob("*_desc-brain_mask.nii.gz"))).dataobj) > 0
    planted = np.asanyarray(nib.load(bids / "sourcedata" / "planted" /
                                     "planted_mask.nii.gz").dataobj)[mask] > 0
    r = np.asanyarray(nib.load(next(func.glob("*_stat-r_desc-*_statmap.nii.gz"))).dataobj)[mask]
    assert planted.sum() > 20 and (~planted).sum() > 20
    assert auc(r, planted) > 0.95
    assert r[planted].mean() > 0.3
    assert abs(np.median(r[~planted])) < 0.05
    return r


@pytest.fixture(scope="module")
def narratives(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("narratives"), make_narratives, "narratives.toml", "001")


def test_narratives_recipe_recovers_planted_voxels(narratives):
    bids, out, code = narratives
    assert code == EXIT_OK
    _recovered(bids, out, "001")


def test_narratives_stories_start_at_their_story_row(narratives):
    bids, out, _ = narratives
    words = pd.read_csv(out / "stimuli" / "stim-piemanaudio_annot-words_events.tsv", sep="\t")
    source = pd.read_csv(bids / "stimuli" / "gentle" / "pieman" / "align.csv", header=None,
                         names=["word", "aligned", "start", "end"])
    timed = source.dropna()
    # story clock = Gentle's clock; the music row (same wav, onset 0) is not a story
    np.testing.assert_allclose(words.loc[words["aligned"] == 1, "onset"].to_numpy(),
                               timed["start"].to_numpy(), atol=1e-3)
    assert (words["aligned"] == 0).sum() == source["start"].isna().sum() > 0
    sidecar = json.loads((out / "stimuli" / "stim-piemanaudio_annot-words_events.json")
                         .read_text(encoding="utf-8"))
    assert sidecar["Sources"] == ["stimuli/gentle/pieman/align.csv"]
    assert any("not aligned by Gentle; times interpolated" in n for n in sidecar["Notes"])
    assert sorted(p.name for p in (out / "stimuli").glob("stim-*.tsv")) == [
        "stim-piemanaudio_annot-words_events.tsv", "stim-prettymouthaudio_annot-words_events.tsv",
        "stim-tunnelaudio_annot-words_events.tsv"]


@pytest.fixture(scope="module")
def lebel(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("lebel"), make_lebel, "lebel.toml", "UTS01")


def test_lebel_recipe_recovers_planted_voxels(lebel):
    bids, out, code = lebel
    assert code == EXIT_OK
    assert not list(bids.rglob("*_events.tsv"))  # the layout has none
    _recovered(bids, out, "UTS01")


def test_lebel_runs_are_named_by_story_and_sized_by_respdict(lebel):
    bids, out, _ = lebel
    counts = json.loads((bids / "derivative" / "respdict.json").read_text())
    for story, n_volumes in counts.items():
        bold = next(bids.rglob(f"*_task-{story}_bold.nii.gz"))
        assert nib.load(bold).shape[3] == n_volumes
        assert (out / "stimuli" / f"stim-{story}_annot-words_events.tsv").is_file()
        cleaned = next((out / "sub-UTS01").rglob(f"*_task-{story}_desc-clean_bold.nii.gz"))
        assert nib.load(cleaned).shape[3] == n_volumes


@pytest.fixture(scope="module")
def lepetitprince(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("lpp"), make_lepetitprince, "lepetitprince.toml",
                "EN057", "--bids-filter-file", str(EXAMPLES / "lepetitprince_echo2.json"),
                sections=3)


def test_lepetitprince_recipe_uses_echo_2_and_recovers_planted_voxels(lepetitprince):
    bids, out, code = lepetitprince
    assert code == EXIT_OK
    _recovered(bids, out, "EN057")
    sidecar = json.loads(next((out / "sub-EN057").rglob("*_stat-r_desc-*_statmap.json"))
                         .read_text(encoding="utf-8"))
    sources = " ".join(sidecar["Sources"])
    assert "_echo-2_bold" in sources and "_echo-1_" not in sources and "_echo-3_" not in sources
    words = pd.read_csv(out / "stimuli" / "stim-lppENsection1_annot-words_events.tsv", sep="\t")
    info = pd.read_csv(bids / "annotation" / "EN" / "lppEN_word_information.csv")
    first = info[info["section"] == 1]
    np.testing.assert_allclose(words["onset"], first["onset"], atol=1e-3)
    assert words["word"].tolist() == first["word"].tolist()


def test_lepetitprince_without_the_echo_filter_is_refused(lepetitprince, tmp_path):
    from bids_app.cli import main

    bids, _, _ = lepetitprince
    code = main([str(bids), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w"),
                 "--config-file", str(EXAMPLES / "lepetitprince.toml")])
    assert code == EXIT_DATASET
