"""Multi-echo runs: raw echoes are refused with the fix; fMRIPrep's combined series is used."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from bids_app.errors import DatasetError
from bids_app.io.bids import collect_runs, make_derivative_layouts, make_layout

SPACE = "MNI152NLin2009cAsym"


def _raw(tmp_path, echoes=(1, 2, 3)):
    raw = tmp_path / "raw"
    func = raw / "sub-01" / "func"
    func.mkdir(parents=True)
    (raw / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "BIDSVersion": "1.10.0"}))
    (raw / "task-a_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    for run in (1, 2):
        (func / f"sub-01_task-a_run-{run}_events.tsv").write_text("onset\tduration\tword\n")
        for echo in echoes:
            img = nib.Nifti1Image(np.full((2, 2, 2, 5), echo, np.float32), np.eye(4))
            nib.save(img, func / f"sub-01_task-a_run-{run}_echo-{echo}_bold.nii.gz")
            (func / f"sub-01_task-a_run-{run}_echo-{echo}_bold.json").write_text(
                json.dumps({"EchoTime": 0.01 * echo}))
    return raw


def test_raw_echoes_are_refused_naming_the_fix(tmp_path):
    layout = make_layout(_raw(tmp_path))
    with pytest.raises(DatasetError, match=(
            r"'sub-01_task-a_run-1' is a multi-echo run \(echoes 1, 2, 3: "
            r"sub-01_task-a_run-1_echo-1_bold\.nii\.gz, .*echo-3_bold\.nii\.gz\).*"
            r'--bids-filter-file holding \{"bold": \{"echo": 2\}\}.*optimally combined')):
        collect_runs(layout, "01")


def test_one_echo_chosen_by_filter(tmp_path):
    layout = make_layout(_raw(tmp_path))
    runs = collect_runs(layout, "01", filters={"echo": 2})
    assert [r.bold_file.name for r in runs] == ["sub-01_task-a_run-1_echo-2_bold.nii.gz",
                                                "sub-01_task-a_run-2_echo-2_bold.nii.gz"]
    assert all(r.events_file.name.endswith("_events.tsv") and "echo" not in r.name
               for r in runs)


def _fmriprep(tmp_path, combined=True):
    prep = tmp_path / "fmriprep"
    func = prep / "sub-01" / "func"
    func.mkdir(parents=True)
    (prep / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
    for run in (1, 2):
        base = f"sub-01_task-a_run-{run}"
        names = [f"{base}_echo-{e}_space-{SPACE}_desc-preproc_bold.nii.gz" for e in (1, 2, 3)]
        if combined:
            names.append(f"{base}_space-{SPACE}_desc-preproc_bold.nii.gz")
        for name in names:
            value = 0.0 if "_echo-" not in name else 1.0
            nib.save(nib.Nifti1Image(np.full((2, 2, 2, 5), value, np.float32), np.eye(4)),
                     func / name)
            (func / name.replace(".nii.gz", ".json")).write_text(
                json.dumps({"RepetitionTime": 2.0}))
    return prep


def test_fmriprep_optimally_combined_is_chosen_and_said(tmp_path, caplog):
    layout = make_layout(_raw(tmp_path, echoes=(1,)))
    derivs = make_derivative_layouts({"fmriprep": _fmriprep(tmp_path)})
    with caplog.at_level(logging.WARNING, logger="brainenc"):
        runs = collect_runs(layout, "01", derivatives=derivs, space=SPACE)
    assert [r.bold_file.name for r in runs] == [
        f"sub-01_task-a_run-{run}_space-{SPACE}_desc-preproc_bold.nii.gz" for run in (1, 2)]
    assert "optimally combined BOLD is used; its 6 echo-wise output(s) are ignored" in caplog.text


def test_fmriprep_echoes_without_combined_are_refused(tmp_path):
    layout = make_layout(_raw(tmp_path, echoes=(1,)))
    derivs = make_derivative_layouts({"fmriprep": _fmriprep(tmp_path, combined=False)})
    with pytest.raises(DatasetError, match=r"split into echoes and no optimally combined"):
        collect_runs(layout, "01", derivatives=derivs, space=SPACE)
    runs = collect_runs(layout, "01", derivatives=derivs, space=SPACE, filters={"echo": 3})
    assert all("_echo-3_" in r.bold_file.name for r in runs)
