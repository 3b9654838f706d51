"""Noise ceiling: participant outputs of cleaned BOLD in OUTPUT_DIR, group ceiling from them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from bids_app.clean_bold import heldout_runs, write_clean_bold
from bids_app.encoding.noise_ceiling import loso_correlation, shared_response_ceiling
from bids_app.group.run import run_group
from bids_app.io.bids import BoldRun
from tests.helpers.fake_outputs import (
    SPACE,
    TASK,
    VARIANTS,
    language_mask_on_grid,
    make_fake_outputs,
)

STATS = SimpleNamespace(fdr_alpha=0.05, compare=[], atlas="", n_permutations=0,
                        top_percent=10.0)
N_RUNS, N_TIME, DUMMY = 2, 90, 2
PREFIX = f"task-{TASK}_space-{SPACE}"


@pytest.fixture(autouse=True)
def _one_thread():
    from bids_app.threads import limit_threads

    with limit_threads(1):
        yield


def _zscore(x):
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def _participants(root, out, subjects, *, seed=0):
    """Prepared (cleaned) runs of each participant sharing a signal in the planted voxels."""
    mask_file = next((out / "sub-01" / "func").glob("*_desc-brain_mask.nii.gz"))
    mask = np.asanyarray(nib.load(mask_file).dataobj).ravel() > 0
    planted = language_mask_on_grid()[mask]
    rng = np.random.default_rng(seed)
    shared = [rng.standard_normal((N_TIME, int(planted.sum()))) for _ in range(N_RUNS)]
    made = {}
    for sub in subjects:
        prepared = root / "work" / sub
        prepared.mkdir(parents=True)
        runs, files, series = [], [], []
        for r in range(N_RUNS):
            data = rng.standard_normal((N_TIME, int(mask.sum())))
            data[:, planted] += 2.0 * shared[r]  # stimulus-driven, the same for everyone
            data = _zscore(data)
            np.save(prepared / f"run{r:03d}_bold.npy", data)
            files.append(str(prepared / f"run{r:03d}_bold.npy"))
            series.append(data)
            name = f"sub-{sub}_task-{TASK}_run-{r + 1}_space-{SPACE}_desc-preproc_bold.nii.gz"
            runs.append(BoldRun(
                subject=sub, session="", task=TASK, run=str(r + 1),
                bold_file=root / "bids" / "derivatives" / f"sub-{sub}" / "func" / name,
                events_file=None, tr=1.5, n_volumes=N_TIME + DUMMY, space=SPACE,
                source="fmriprep", entities={"subject": sub, "task": TASK, "run": str(r + 1),
                                             "space": SPACE}).to_dict())
        runs_json = prepared / "runs.json"
        runs_json.write_text(json.dumps(runs))
        made[sub] = (str(runs_json), files, series)
    return mask_file, mask, made


def _write(out, root, mask_file, made, **statistics):
    written = {}
    for sub, (runs_json, files, _) in made.items():
        written[sub] = write_clean_bold(
            str(out), str(root / "bids"), runs_json, files, str(mask_file),
            {"dummy_scans": DUMMY}, {"outer_cv": "leave-one-run-out", "trim_edges": [0, 0]},
            {"noise_ceiling": True, **statistics})
    return written


@pytest.fixture(scope="module")
def ceiling_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ceiling")
    out = make_fake_outputs(root, n_subjects=3, with_alpha=False,
                            variants={"minilmfrozenL3": VARIANTS["minilmfrozenL3"]})
    subjects = ["01", "02", "03"]
    mask_file, mask, made = _participants(root, out, subjects)
    written = _write(out, root, mask_file, made)
    result = run_group(str(out), statistics=STATS)
    return SimpleNamespace(root=root, out=out, mask=mask, mask_file=mask_file, made=made,
                           written=written, result=result)


def test_participant_files_are_bids_bold_runs(ceiling_run):
    files = ceiling_run.written["02"]
    assert [f.split("/")[-1] for f in files] == [
        f"sub-02_task-{TASK}_run-{r}_space-{SPACE}_desc-clean_bold.nii.gz" for r in (1, 2)]
    img = nib.load(files[0])
    assert img.shape[3] == N_TIME + DUMMY and img.header.get_zooms()[3] == pytest.approx(1.5)
    assert img.get_data_dtype() == np.int16
    sidecar = json.loads(open(files[0].replace(".nii.gz", ".json")).read())
    assert sidecar["RepetitionTime"] == 1.5 and sidecar["SkullStripped"] is True
    assert sidecar["ExcludedVolumes"] == list(range(DUMMY))
    assert sidecar["Sources"] == [f"bids:raw:derivatives/sub-02/func/sub-02_task-{TASK}_run-1_"
                                  f"space-{SPACE}_desc-preproc_bold.nii.gz"]
    values = np.asanyarray(img.dataobj).reshape(-1, img.shape[3])
    series = ceiling_run.made["02"][2][0]
    assert np.all(values[:, :DUMMY] == 0) and np.all(values[~ceiling_run.mask] == 0)
    # int16 with a scale factor: the cleaned run within a 1/65534 of its largest value
    np.testing.assert_allclose(values[ceiling_run.mask, DUMMY:].T, series,
                               atol=np.abs(series).max() / 32767)


def test_ceiling_is_high_where_subjects_share_the_signal(ceiling_run):
    out = ceiling_run.out
    planted, mask = language_mask_on_grid(), ceiling_run.mask
    path = out / "group" / f"{PREFIX}_stat-ceiling_desc-loso_statmap.nii.gz"
    ceiling = np.asanyarray(nib.load(path).dataobj).ravel()
    assert ceiling[planted].mean() > 0.75  # LOSO 4 / sqrt(5 * 4.5) = 0.84, corrected higher
    assert abs(ceiling[mask & ~planted].mean()) < 0.02
    assert np.all(ceiling[~mask] == 0)
    # loso_correlation of the participants' runs concatenated in time, corrected for the
    # noise in the mean of the others
    data = [np.concatenate(ceiling_run.made[s][2]) for s in ("01", "02", "03")]
    expected = shared_response_ceiling(loso_correlation(data), 3).mean(axis=0)
    np.testing.assert_allclose(ceiling[mask], expected, atol=2e-3)
    sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["Participants"] == ["01", "02", "03"]
    assert sidecar["VolumesPerParticipant"] == N_RUNS * N_TIME
    assert len(sidecar["Sources"]) == 3 * N_RUNS
    assert all(s.startswith("sub-") and s.endswith("_desc-clean_bold.nii.gz")
               for s in sidecar["Sources"])


def test_group_tables_carry_normalised_values(ceiling_run):
    tables = ceiling_run.result["tables"]
    row = tables["group_variants.tsv"].iloc[0]
    # planted r 0.22 in the language spheres against a ceiling of about 0.84
    assert row["mean_r_normalised_language"] == pytest.approx(0.22 / 0.84, abs=0.06)
    regions = tables["group_regions.tsv"]
    language = regions[regions["region"].str.startswith("LH_")]
    assert (language["ceiling"] > 0.7).all()
    np.testing.assert_allclose(language["mean_r_normalised"],
                               language["mean_r"] / language["ceiling"], rtol=0.1)
    assert "brain_normalised" in set(tables["group_method_task.tsv"]["measure"])


def test_rewrites_are_byte_identical_and_float32_is_exact(ceiling_run, tmp_path):
    first = {f: open(f, "rb").read() for f in ceiling_run.written["01"]}
    sub = {"01": ceiling_run.made["01"]}
    again = _write(tmp_path / "out", ceiling_run.root, ceiling_run.mask_file, sub)["01"]
    for old, new in zip(sorted(first), sorted(again), strict=True):
        assert open(new, "rb").read() == first[old]
        assert open(new.replace(".nii.gz", ".json")).read() == open(
            old.replace(".nii.gz", ".json")).read()
    exact = _write(tmp_path / "f32", ceiling_run.root, ceiling_run.mask_file, sub,
                   clean_bold_dtype="float32")["01"]
    values = np.asanyarray(nib.load(exact[1]).dataobj).reshape(-1, N_TIME + DUMMY)
    assert values.dtype == np.float32
    kept = np.asarray(sub["01"][2][1], dtype=np.float32)  # the writer centres the kept volumes
    kept = kept - kept.mean(axis=0, dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(values[ceiling_run.mask, DUMMY:].T, kept)
    assert _write(tmp_path / "none", ceiling_run.root, ceiling_run.mask_file, sub,
                  noise_ceiling=False)["01"] == []


def test_no_ceiling_without_three_participants_sharing_runs(ceiling_run, tmp_path):
    out = make_fake_outputs(tmp_path, n_subjects=3, with_alpha=False,
                            variants={"minilmfrozenL3": VARIANTS["minilmfrozenL3"]})
    made = {s: ceiling_run.made[s] for s in ("01", "02")}  # sub-03 has no cleaned BOLD
    _write(out, ceiling_run.root, ceiling_run.mask_file, made)
    result = run_group(str(out), statistics=STATS)
    assert result["tables"]["group_variants.tsv"].filter(like="normalised").empty
    assert not list((out / "group").glob("*_stat-ceiling_*"))
    # no ceiling ran, so the Methods text says nothing of one
    assert not any("ceiling" in sentence.lower() for sentence in result["methods"])


def test_methods_describe_the_ceiling_that_ran(ceiling_run):
    methods = ceiling_run.result["methods"]
    ceiling = next(s for s in methods if "noise ceiling (stat-ceiling" in s)
    assert "cleaned held-out BOLD (desc-clean_bold) of the 3 participants" in ceiling
    assert f"over the {N_RUNS} runs they all share ({N_RUNS * N_TIME} volumes" in ceiling
    assert "leave-one-subject-out" in ceiling and "Spearman-Brown" in ceiling
    normalised = next(s for s in methods if s.startswith("Ceiling-normalised"))
    assert "at least 0.1" in normalised
    # the ceiling is computed before the region values it normalises
    assert methods.index(ceiling) < methods.index(normalised)


@pytest.mark.parametrize("outer_cv", ["leave-one-run-out", "2-fold"])
def test_heldout_runs_equal_the_encoding_heldout_bold(tmp_path, outer_cv):
    """Confounds regressed within folds: the written runs are what the encoding scored."""
    from bids_app.encoding.engine import cross_validate

    rng = np.random.default_rng(1)
    lengths, v, trim = [50, 60, 55, 45], 30, (3, 2)
    Xs = [rng.standard_normal((n, 4)).astype(np.float32) for n in lengths]
    Cs = [rng.standard_normal((n, 3)).astype(np.float32) for n in lengths]
    Ys = [(x @ rng.standard_normal((4, v)) + c @ rng.standard_normal((3, v)) * 3
           + rng.standard_normal((n, v)) + 2.0 * i).astype(np.float32)  # off zero mean
          for i, (x, c, n) in enumerate(zip(Xs, Cs, lengths, strict=True))]
    bold, conf = [], []
    for i, (y, c) in enumerate(zip(Ys, Cs, strict=True)):
        np.save(tmp_path / f"run{i:03d}_bold.npy", y)
        np.save(tmp_path / f"run{i:03d}_confounds.npy", c)
        bold.append(str(tmp_path / f"run{i:03d}_bold.npy"))
        conf.append(str(tmp_path / f"run{i:03d}_confounds.npy"))
    n_kept = sum(n - sum(trim) for n in lengths)
    heldout = np.zeros((n_kept, v), np.float32)
    cross_validate(Xs, Ys, [1.0, 10.0], outer_cv=outer_cv, inner_folds=2, backend="numpy",
                   confounds=Cs, trim=trim, heldout=heldout)
    pieces = {i: data for i, _, data in heldout_runs(bold, conf, outer_cv=outer_cv, trim=trim,
                                                     batch=7)}
    ours = np.concatenate([pieces[i] for i in range(len(lengths))])
    np.testing.assert_allclose(ours, heldout, atol=1e-4)
    # the confounds are gone from the held-out runs
    kept = np.concatenate([c[trim[0]:len(c) - trim[1]] for c in Cs])
    assert np.abs(np.corrcoef(kept.T, ours.T)[:3, 3:]).mean() < 0.1
    # every run's kept volumes are centred, with confounds and without
    for piece in pieces.values():
        np.testing.assert_allclose(piece.mean(0), 0.0, atol=1e-4)
    plain = np.zeros_like(heldout)
    cross_validate(Xs, Ys, [1.0, 10.0], outer_cv=outer_cv, inner_folds=2, backend="numpy",
                   trim=trim, heldout=plain)
    pieces = {i: data for i, _, data in heldout_runs(bold, None, trim=trim)}
    np.testing.assert_allclose(np.concatenate([pieces[i] for i in range(len(lengths))]), plain,
                               atol=1e-5)
    for piece in pieces.values():
        np.testing.assert_allclose(piece.mean(0), 0.0, atol=1e-4)


def test_spec_checks_the_storage_type():
    from bids_app.config import spec_from_dict
    from bids_app.errors import UsageError

    spec = spec_from_dict({"statistics": {"clean_bold_dtype": "float32"}})
    assert spec.statistics.noise_ceiling is True
    with pytest.raises(UsageError, match="'statistics.clean_bold_dtype' must be one of"):
        spec_from_dict({"statistics": {"clean_bold_dtype": "float16"}})


def _counterbalanced(out, orders, stories=True, n=60, shape=(3, 3, 2)):
    """Cleaned runs of participants who heard the same stories in different orders."""
    rng = np.random.default_rng(0)
    shared = {s: rng.normal(size=(n, int(np.prod(shape)))) for s in ("a", "b")}
    for sub, order in orders.items():
        folder = out / f"sub-{sub}" / "func"
        folder.mkdir(parents=True, exist_ok=True)
        for run, story in enumerate(order, start=1):
            data = shared[story] + 0.5 * rng.normal(size=shared[story].shape)
            name = f"sub-{sub}_task-{TASK}_run-{run}_space-{SPACE}_desc-clean_bold"
            img = nib.Nifti1Image(data.T.reshape(*shape, n).astype(np.float32), np.eye(4))
            nib.save(img, folder / f"{name}.nii.gz")
            sidecar = {"ExcludedVolumes": [], **({"Stories": [story]} if stories else {})}
            (folder / f"{name}.json").write_text(json.dumps(sidecar))
    template = out / "template.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), template)
    return template, np.ones(int(np.prod(shape)), bool)


def test_counterbalanced_story_order_pairs_runs_by_story(tmp_path, caplog):
    from bids_app.group.ceiling_maps import clean_bold_files, loso_ceiling

    orders = {"01": "ab", "02": "ba", "03": "ab"}
    template, valid = _counterbalanced(tmp_path, orders)
    pairs = clean_bold_files(tmp_path, list(orders), task=TASK, space=SPACE)
    assert sorted(pairs) == [f"story-a_task-{TASK}_space-{SPACE}",
                             f"story-b_task-{TASK}_space-{SPACE}"]
    assert [p.name.split("_run-")[1][0] for p in pairs[f"story-a_task-{TASK}_space-{SPACE}"]] \
        == ["1", "2", "1"]  # sub-02 heard story a in its second run
    ceiling = loso_ceiling(tmp_path, list(orders), template, valid, task=TASK, space=SPACE)
    # shared response of variance 1, noise 0.25: corr with the shared response 0.89
    assert ceiling.values.mean() == pytest.approx(1 / np.sqrt(1.25), abs=0.05)


def test_story_pairing_refuses_runs_that_cannot_be_matched(tmp_path, caplog):
    from bids_app.group.ceiling_maps import clean_bold_files

    orders = {"01": "ab", "02": "ba", "03": "ab"}
    _counterbalanced(tmp_path, orders)
    sidecar = tmp_path / "sub-02" / "func" / (f"sub-02_task-{TASK}_run-1_space-{SPACE}"
                                              "_desc-clean_bold.json")
    sidecar.write_text(json.dumps({"ExcludedVolumes": []}))  # this run's story is unknown
    with caplog.at_level("WARNING", logger="brainenc.group"):
        assert clean_bold_files(tmp_path, list(orders), task=TASK, space=SPACE) == {}
    assert "cannot be matched by story" in caplog.text
