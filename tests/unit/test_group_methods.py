"""The group report's Methods text names the steps that ran, with the parameters they used."""

from __future__ import annotations

import html
import re
import shutil
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.group.methods import GroupMethods, join_labels
from bids_app.group.one_sample import one_sample_test
from bids_app.group.run import run_group
from tests.helpers.fake_outputs import VARIANTS, make_fake_outputs

FROZEN, LORA, FROZEN5 = "minilmfrozenL3", "minilmlorasstL3", "minilmfrozenL5"


def _stats(**changes) -> SimpleNamespace:
    settings = {"fdr_alpha": 0.05, "compare": [], "atlas": "", "n_permutations": 200,
                "top_percent": 10.0}
    return SimpleNamespace(**{**settings, **changes})


def _report_methods(out) -> str:
    """The text of the report's Methods section, as a reader sees it."""
    page = (out / "group" / "group.html").read_text(encoding="utf-8")
    section = page[page.index("<h2 id='methods'>"):]
    section = section[section.index("<div class='methods'>"):section.index("</div>")]
    return html.unescape(re.sub(r"<[^>]+>", "", section))


@pytest.fixture(scope="module")
def nine(tmp_path_factory):
    """Nine participants, a frozen and a LoRA variant, no held-out scores, no clean BOLD."""
    out = make_fake_outputs(tmp_path_factory.mktemp("nine"), n_subjects=9, with_alpha=False,
                            variants={k: VARIANTS[k] for k in (FROZEN, LORA)})
    return out, run_group(str(out), statistics=_stats(fdr_alpha=0.01, top_percent=5.0))


def test_one_sample_methods_follow_the_permutations_that_ran():
    rng = np.random.default_rng(0)
    small = one_sample_test(rng.standard_normal((5, 40)), n_permutations=200)
    text = small.methods("Values")
    assert small.exhaustive and small.n_permutations == 32
    assert "all 32 (2^5) sign patterns" in text and "200 permutations asked for" in text
    assert "one-sided" in text and "4 degrees of freedom" in text
    large = one_sample_test(rng.standard_normal((9, 40)), n_permutations=200, seed=7)
    text = large.methods("Values")
    assert not large.exhaustive and large.n_permutations == 201
    assert "200 random sign patterns (seed 7)" in text and "not exhaustive" in text
    assert "2^9" in text and "all " not in text
    none = one_sample_test(rng.standard_normal((9, 40)), n_permutations=0)
    text = none.methods("Values")
    assert "No sign-flip permutation test was run" in text and "sign patterns" not in text
    assert "maximum" not in text  # no family-wise p values without permutations
    paired = one_sample_test(rng.standard_normal((9, 40)), two_sided=True, n_permutations=50)
    text = paired.methods("Values")
    assert "two-sided" in text and "one-sided" not in text and "maximum |t|" in text


def test_the_collector_examples_run():
    import doctest

    import bids_app.group.methods as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_sentences_shared_by_every_variant_are_written_once():
    methods = GroupMethods()
    methods.add("Checked.")
    methods.add("Tested.", "a")
    methods.add("", "a")  # a step with nothing to say adds nothing
    methods.add("Tested.", "b")
    methods.add("Averaged.", "a")
    methods.add("Compared.")
    assert methods.sentences() == ["Checked.", "Tested.", "For variant a: Averaged.",
                                   "Compared."]
    methods.add("Tested more.", "c")
    assert methods.sentences()[1] == "For variants a and b: Tested."
    assert methods.text().endswith("For variant c: Tested more.")
    assert join_labels(["x", "y", "z"]) == "x, y and z"


def test_methods_name_each_step_with_its_parameters(nine):
    out, result = nine
    text = _report_methods(out)
    # the report renders exactly the sentences run_group collected, after the versions
    assert text.endswith(" ".join(result["methods"]))
    assert text.startswith("Group statistics were computed with brainenc")
    variant = next(s for s in result["methods"] if "stat-meanr" in s)
    assert "9 participants" in variant and "8 degrees of freedom" in variant
    assert "200 random sign patterns (seed 0)" in variant and "2^9" in variant
    assert "q < 0.01" in variant and "q < 0.05" not in text
    # no participant has stat-z: the fallback to Fisher-z r is what the text reports
    assert "Fisher-z r was tested" in variant and "own null" not in text
    region = next(s for s in result["methods"] if s.startswith("Region values"))
    assert "top5pct" in region and "5% of analysed elements" in region
    assert "language-network spheres (10 mm, MNI152)" in region
    assert "leave-one-participant-out" in region
    # the default pairs ran (LoRA against frozen) and are named, with a two-sided test
    compared = next(s for s in result["methods"] if s.startswith("Paired comparisons"))
    assert f"{LORA} minus {FROZEN}" in compared and "chosen by default" in compared
    assert "two-sided" in compared and "9 participants" in compared
    # steps that did not run say nothing: no clean BOLD (no ceiling), no stat-r2unique
    assert "ceiling" not in text.lower() and "stat-meanr2unique" not in text
    # execution order: provenance, variant maps, regions, comparisons, tables
    starts = [text.index(s) for s in ("SettingsHash", "stat-meanr", "Region values",
                                      "Paired comparisons", "group_variants.tsv")]
    assert starts == sorted(starts)


def test_comparison_sentence_only_when_comparisons_ran(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=4, with_alpha=False,
                            variants={k: VARIANTS[k] for k in (FROZEN, FROZEN5)})
    result = run_group(str(out), statistics=_stats(n_permutations=0))
    assert not result["comparisons"]  # two frozen variants: no default pair
    assert not any("Paired" in s for s in result["methods"])
    assert "No sign-flip permutation test was run" in _report_methods(out)
    result = run_group(str(out), statistics=_stats(n_permutations=0,
                                                   compare=[[FROZEN5, FROZEN]]))
    compared = [s for s in result["methods"] if s.startswith("Paired comparisons")]
    assert len(compared) == 1 and f"({FROZEN5} minus {FROZEN};" in compared[0]
    assert "named in statistics.compare" in compared[0]


def test_one_participant_gets_no_test_sentence(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=1, with_alpha=False,
                            variants={FROZEN: VARIANTS[FROZEN]})
    text = " ".join(run_group(str(out), statistics=_stats())["methods"])
    assert "With one participant, no group test was made." in text
    assert "sign" not in text and "FDR" not in text
    assert "highest r in the participant's own map (one participant)" in text


def test_sentences_of_one_task_name_the_task(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=5, with_alpha=False,
                            variants={FROZEN: VARIANTS[FROZEN]})
    for sub in ("01", "02", "03"):  # three participants also have maps of a second task
        for path in (out / f"sub-{sub}" / "func").glob("*_stat-r_*"):
            shutil.copy(path, path.with_name(path.name.replace("task-listening",
                                                               "task-reading")))
    methods = run_group(str(out), statistics=_stats())["methods"]
    listening = next(s for s in methods if s.startswith(f"For variant {FROZEN} (task listening)"))
    reading = next(s for s in methods if s.startswith(f"For variant {FROZEN} (task reading)"))
    assert "the 5 participants'" in listening and "the 3 participants'" in reading


def test_each_option_changes_only_its_own_sentence(tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=5, with_alpha=False,
                            variants={FROZEN: VARIANTS[FROZEN]})
    base = run_group(str(out), statistics=_stats(n_permutations=20))["methods"]
    more = run_group(str(out), statistics=_stats(n_permutations=25))["methods"]
    changed = set(base) ^ set(more)
    assert len(changed) == 2 and all("random sign patterns" in s for s in changed)
    assert any("25 random" in s for s in more) and any("20 random" in s for s in base)
    # an atlas replaces the language-network spheres in the region sentence, and the table
    # sentence loses its language-network values (the atlas has no 'language' region)
    mask_file = next((out / "sub-01" / "func").glob("*_desc-brain_mask.nii.gz"))
    img = nib.load(mask_file)
    labels = np.zeros(img.shape, dtype=np.int16)
    labels[: img.shape[0] // 2] = 1
    labels[img.shape[0] // 2:] = 2
    atlas = tmp_path / "halves_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, img.affine), atlas)
    pd.DataFrame({"index": [1, 2], "name": ["right", "left"]}).to_csv(
        tmp_path / "halves_dseg.tsv", sep="\t", index=False)
    with_atlas = run_group(str(out), statistics=_stats(n_permutations=20,
                                                       atlas=str(atlas)))["methods"]
    changed = set(base) ^ set(with_atlas)
    assert len(changed) == 4
    assert all(s.startswith(("Region values", "In group_variants.tsv")) for s in changed)
    region = next(s for s in with_atlas if s.startswith("Region values"))
    assert "each of 2 regions, atlas halves_dseg.nii.gz" in region
    assert "language" not in next(s for s in with_atlas if "group_variants.tsv" in s)
    assert "language network" in next(s for s in base if "group_variants.tsv" in s)
