"""Querying fMRIPrep derivatives by entities: spaces, naming orders, filters, timing."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bids_app.errors import DatasetError, NoMatchError, UsageError
from bids_app.io.bids import (
    collect_runs,
    make_derivative_layouts,
    make_layout,
    parse_derivatives,
)
from bids_app.io.fmriprep import bids_filters, parse_space
from tests.helpers.fmriprep import SURFACE_NAMES


def _dataset(tmp_path, naming="23.0", volumes=True):
    raw, prep = tmp_path / "raw", tmp_path / "fmriprep"
    (raw / "sub-01" / "func").mkdir(parents=True)
    (raw / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "BIDSVersion": "1.10.0"}))
    (raw / "task-a_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    func = prep / "sub-01" / "func"
    func.mkdir(parents=True)
    (prep / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
    for run in (1, 2):
        stem = f"sub-01_task-a_run-{run}"
        (raw / "sub-01" / "func" / f"{stem}_events.tsv").write_text("onset\tduration\tword\n")
        (func / f"{stem}_desc-confounds_timeseries.tsv").write_text("a\n1\n")
        for hemi in ("L", "R"):
            name = SURFACE_NAMES[naming].format(s="01", t="a", r=run, h=hemi)
            arrays = [nib.gifti.GiftiDataArray(np.zeros(6, np.float32)) for _ in range(5)]
            nib.save(nib.gifti.GiftiImage(darrays=arrays), func / name)
        if volumes:
            base = f"{stem}_space-MNI152NLin2009cAsym_res-2"
            img = nib.Nifti1Image(np.zeros((3, 3, 3, 4), np.float32), np.eye(4))
            nib.save(img, func / f"{base}_desc-preproc_bold.nii.gz")
            (func / f"{base}_desc-preproc_bold.json").write_text(json.dumps(
                {"RepetitionTime": 2.0, "StartTime": 0.75}))
            nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)),
                     func / f"{base}_desc-brain_mask.nii.gz")
            # a native-space output and another desc are not analysed
            nib.save(img, func / f"{stem}_desc-preproc_bold.nii.gz")
            nib.save(img, func / f"{base}_desc-smoothAROMAnonaggr_bold.nii.gz")
    layout = make_layout(raw)
    return layout, make_derivative_layouts({"fmriprep": prep})


@pytest.mark.parametrize("naming", sorted(SURFACE_NAMES))
def test_surfaces_found_in_every_fmriprep_naming_order(tmp_path, naming):
    layout, derivs = _dataset(tmp_path, naming, volumes=False)
    runs = collect_runs(layout, "01", derivatives=derivs, space="fsaverage5")
    assert [r.run for r in runs] == ["1", "2"]
    run = runs[0]
    assert run.kind == "surface" and run.n_volumes == 5 and run.tr == 2.0
    assert sorted(run.surface_files) == ["L", "R"]
    assert "hemi-L" in run.surface_files["L"].name and "hemi-R" in run.surface_files["R"].name
    assert run.events_file.name == "sub-01_task-a_run-1_events.tsv"
    assert run.confounds_file.name == "sub-01_task-a_run-1_desc-confounds_timeseries.tsv"


def test_volume_run_with_mask_start_time_and_confounds(tmp_path):
    layout, derivs = _dataset(tmp_path)
    runs = collect_runs(layout, "01", derivatives=derivs, space="MNI152NLin2009cAsym")
    assert len(runs) == 2  # neither native space nor the other desc
    run = runs[0]
    assert run.kind == "volume" and run.space == "MNI152NLin2009cAsym"
    assert run.entities["res"] == "2"
    assert run.bold_file.name.endswith("_res-2_desc-preproc_bold.nii.gz")
    assert run.mask_file.name.endswith("_res-2_desc-brain_mask.nii.gz")
    assert run.start_time == 0.75  # the sidecar's StartTime is kept
    assert run.source == "fmriprep"
    again = type(run).from_dict(json.loads(json.dumps(run.to_dict())))
    assert again == run


def test_unknown_space_lists_the_spaces_that_exist(tmp_path):
    layout, derivs = _dataset(tmp_path)
    with pytest.raises(NoMatchError) as info:
        collect_runs(layout, "01", derivatives=derivs, space="MNI152NLin6Asym")
    message = str(info.value)
    assert "MNI152NLin6Asym" in message
    assert "MNI152NLin2009cAsym:res-2" in message and "fsaverage5" in message


def test_several_spaces_need_a_choice(tmp_path):
    layout, derivs = _dataset(tmp_path)
    with pytest.raises(UsageError, match="--space"):
        collect_runs(layout, "01", derivatives=derivs, space=None)


def test_space_without_preprocessed_inputs_is_refused(tmp_path):
    layout, _ = _dataset(tmp_path)
    with pytest.raises(NoMatchError, match="-d fmriprep="):
        collect_runs(layout, "01", space="MNI152NLin2009cAsym")


def test_bids_filter_file_entries_restrict_runs(tmp_path):
    layout, derivs = _dataset(tmp_path)
    runs = collect_runs(layout, "01", derivatives=derivs, space="fsaverage5",
                        filters={"run": [2], "datatype": "func", "suffix": "bold"})
    assert [r.run for r in runs] == ["2"]
    runs = collect_runs(layout, "01", derivatives=derivs, space="fsaverage5",
                        filters={"session": None})  # fMRIPrep's null: entity absent
    assert len(runs) == 2


def test_filter_translation_and_space_parsing():
    from bids.layout import Query

    terms = bids_filters({"session": None, "acquisition": "*", "run": [1], "suffix": "bold"})
    assert terms == {"session": Query.NONE, "acquisition": Query.ANY, "run": [1]}
    assert parse_space("fsLR:den-91k") == {"space": "fsLR", "den": "91k"}
    with pytest.raises(UsageError, match="res-<label>"):
        parse_space("MNI:foo")


def test_parse_derivatives(tmp_path):
    assert parse_derivatives([f"fmriprep={tmp_path}"]) == {"fmriprep": tmp_path}
    assert parse_derivatives([str(tmp_path)]) == {tmp_path.name: tmp_path}
    with pytest.raises(UsageError, match="does not exist"):
        parse_derivatives([f"fmriprep={tmp_path / 'missing'}"])


def test_derivatives_without_description_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="dataset_description.json"):
        make_derivative_layouts({"fmriprep": tmp_path})


def test_database_dir_is_reused(tmp_path):
    layout, _ = _dataset(tmp_path)
    db = tmp_path / "db"
    first = make_layout(layout.root, database_dir=db)
    assert any(db.iterdir())
    second = make_layout(layout.root, database_dir=db)
    assert sorted(first.get(return_type="filename")) == sorted(second.get(return_type="filename"))
