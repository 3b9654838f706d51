"""HCP-pipeline layouts read through the [inputs] mapping of the spec."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from bids_app.config import spec_from_dict
from bids_app.errors import NoMatchError, UsageError
from bids_app.io.bids import collect_runs, make_layout
from bids_app.io.hcp import find_mapped_files, pattern_regex
from bids_app.spec_inputs import InputsConfig

VOLUME = "sub-{subject}/MNI/sub-{subject}_task-{task}_run-{run}_bold.nii.gz"
CIFTI = "sub-{subject}/CIFTI/sub-{subject}_task-{task}_run-{run}_bold.dtseries.nii"


def _placeholder_volume(path, n=6):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.zeros((2, 2, 2, n), np.int16), np.diag([2.0, 2, 2, 1]))
    nib.save(img, path)


def _placeholder_cifti(path, n=6, tr=0.71):
    path.parent.mkdir(parents=True, exist_ok=True)
    models = nib.cifti2.BrainModelAxis.from_surface(np.arange(10), 32492,
                                                    "CIFTI_STRUCTURE_CORTEX_LEFT")
    series = nib.cifti2.SeriesAxis(0.0, tr, n, "SECOND")
    header = nib.cifti2.Cifti2Header.from_axes((series, models))
    nib.save(nib.cifti2.Cifti2Image(np.zeros((n, 10), np.float32), header), path)


def test_pattern_regex_and_matching(tmp_path):
    regex = pattern_regex(VOLUME)
    match = regex.match("sub-01/MNI/sub-01_task-RDR_run-12_bold.nii.gz")
    assert match.groupdict() == {"subject": "01", "task": "RDR", "run": "12"}
    assert regex.match("sub-01/MNI/sub-02_task-RDR_run-1_bold.nii.gz") is None
    for run in (1, 2, 10):
        _placeholder_volume(tmp_path / f"sub-01/MNI/sub-01_task-RDR_run-{run}_bold.nii.gz")
    (tmp_path / "sub-01/MNI/notes.txt").write_text("x")
    found = find_mapped_files(tmp_path, VOLUME, "01")
    assert sorted(e["run"] for _, e in found) == ["1", "10", "2"]


@pytest.mark.parametrize("inputs, message", [
    ({"layout": "hcp"}, "path pattern"),
    ({"layout": "hcp", "volume": "sub-{subject}/{foo}.nii.gz"}, "{foo}"),
    ({"layout": "hcp", "volume": "MNI/{task}.nii.gz"}, "{subject}"),
    ({"layout": "fsl"}, "inputs.layout"),
])
def test_bad_mappings_are_refused(inputs, message):
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("}", r"\}")):
        spec_from_dict({"inputs": inputs})


@pytest.mark.realdata
def test_smn4lang_layout_through_the_mapping(tmp_path, shared_data):
    """The real ds004078 metadata (60 runs of sub-01) with placeholder preprocessed files."""
    source = shared_data / "openneuro-ds004078-smn4lang"
    bids = tmp_path / "ds004078"
    shutil.copytree(source, bids)
    prep = bids / "derivatives" / "preprocessed_data"
    for run in range(1, 61):
        _placeholder_volume(prep / f"sub-01/MNI/sub-01_task-RDR_run-{run}_bold.nii.gz")
        if run <= 3:
            _placeholder_cifti(prep / f"sub-01/CIFTI/sub-01_task-RDR_run-{run}_bold.dtseries.nii")
    inputs = InputsConfig(layout="hcp", volume=VOLUME, cifti=CIFTI, resolution="2")
    layout = make_layout(bids)
    runs = collect_runs(layout, "01", inputs=inputs, bids_dir=bids)
    assert [r.run for r in runs] == [str(i) for i in range(1, 61)]  # numeric order
    first = runs[0]
    real = json.loads((source / "sub-01/func/sub-01_task-RDR_run-1_bold.json").read_text())
    assert first.tr == real["RepetitionTime"] == 0.71  # from the real raw sidecar
    assert first.kind == "volume" and first.source == "hcp"
    assert first.space == "MNI152NLin6Asym" and first.entities["res"] == "2"
    assert first.events_file.name == "sub-01_task-RDR_run-1_events.tsv"
    onset = float(first.events_file.read_text().splitlines()[1].split("\t")[0])
    assert onset == pytest.approx(10.65)  # audio onset of SMN4Lang
    assert len(first.metadata["SliceTiming"]) == len(real["SliceTiming"])
    cifti = collect_runs(layout, "01", inputs=inputs, bids_dir=bids, space="fsLR",
                         tasks=["RDR"])
    assert len(cifti) == 3 and cifti[0].kind == "cifti"
    assert cifti[0].entities["den"] == "91k" and cifti[0].tr == 0.71
    with pytest.raises(NoMatchError, match="MNI152NLin6Asym, fsLR"):
        collect_runs(layout, "01", inputs=inputs, bids_dir=bids, space="MNI152NLin2009cAsym")
    filtered = collect_runs(layout, "01", inputs=inputs, bids_dir=bids,
                            filters={"run": [5, 6]})
    assert [r.run for r in filtered] == ["5", "6"]
