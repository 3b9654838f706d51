"""A catalogue of broken inputs: each row breaks the valid base dataset one way.

Every row gives the expected exit code and a pattern of the message (which names
the file or value). For every row the run must also: print no traceback (no
``-v``), leave no temporary file in OUTPUT_DIR, and write no stat map for the
participant that failed. Rows that run both participants check that the good one
completes and that the bad one is reported at the end.
"""

from __future__ import annotations

import errno
import gzip
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from bids_app.errors import (
    EXIT_DATASET,
    EXIT_FAILED,
    EXIT_NO_MATCH,
    EXIT_OK,
    EXIT_RESOURCE,
    EXIT_USAGE,
)

from .conftest import Case


# --------------------------------------------------------------------------- paths
def missing_bids(case: Case) -> list[str]:
    return [str(case.root / "nowhere"), *case.argv()[1:]]


def bids_is_file(case: Case) -> list[str]:
    (case.root / "ds.txt").write_text("not a folder")
    return [str(case.root / "ds.txt"), *case.argv()[1:]]


def out_equals_bids(case: Case) -> list[str]:
    argv = case.argv()
    argv[1] = str(case.bids)
    return argv


def out_inside_bids(case: Case) -> list[str]:
    argv = case.argv()
    argv[1] = str(case.bids / "results")
    return argv


def make_unreadable(monkeypatch, target: Path) -> None:
    """Opening ``target`` fails as after ``chmod 000`` for a user other than root.

    Tests run as root, whom permissions do not stop: every ``open`` of the file
    (built-in, :mod:`io`, :mod:`os`) raises the ``PermissionError`` it would raise.
    """
    import builtins
    import errno
    import io
    import os

    target = os.path.abspath(target)

    def refuse(file) -> None:
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))

    for module, name in ((builtins, "open"), (io, "open"), (os, "open")):
        real = getattr(module, name)

        def guarded(file, *args, _real=real, **kwargs):
            refuse(file)
            return _real(file, *args, **kwargs)

        monkeypatch.setattr(module, name, guarded)


def fail_writes_under(monkeypatch, folder: Path, code: int = errno.ENOSPC) -> list[str]:
    """Every write under ``folder`` fails with ``code``, as on a full disk; returns the files.

    Opening a file for writing (built-in, :mod:`io`, :mod:`os`; so also
    ``tempfile`` and ``gzip``) raises the ``OSError`` the kernel would raise.
    """
    import builtins
    import io
    import os

    folder = os.path.abspath(folder)
    failed: list[str] = []
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def refuse(file, is_write: bool) -> None:
        if (is_write and isinstance(file, (str, os.PathLike))
                and os.path.abspath(file).startswith(folder + os.sep)):
            failed.append(os.fspath(file))
            raise OSError(code, os.strerror(code), os.fspath(file))

    for module, name in ((builtins, "open"), (io, "open")):
        real = getattr(module, name)

        def guarded(file, mode="r", *args, _real=real, **kwargs):
            refuse(file, any(flag in mode for flag in "wax+"))
            return _real(file, mode, *args, **kwargs)

        monkeypatch.setattr(module, name, guarded)
    real_os_open = os.open

    def guarded_os_open(path, flags, *args, **kwargs):
        refuse(path, bool(flags & writing))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_os_open)
    return failed


def work_dir_full(case: Case, monkeypatch) -> list[str]:
    """The disk under -w is full from the start (the run's own inputs cannot be written)."""
    case.work.mkdir(parents=True)
    fail_writes_under(monkeypatch, case.work)
    return case.argv("--participant-label", "02")


def output_cache_full(case: Case, monkeypatch) -> list[str]:
    """OUTPUT_DIR fills up when a step caches the stories' features."""
    fail_writes_under(monkeypatch, case.out / "stimuli" / "features")
    return case.argv("--participant-label", "02")


def bids_unreadable(case: Case, monkeypatch) -> list[str]:
    """Permissions cannot be taken from root: the permission check itself answers 'no'."""
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: (
        Path(path) != case.bids and real(path, mode, *a, **k)))
    return case.argv()


def out_symlink_into_bids(case: Case) -> list[str]:
    (case.root / "link").symlink_to(case.bids / "sub-01", target_is_directory=True)
    argv = case.argv()
    argv[1] = str(case.root / "link" / "out")
    return argv


def out_in_derivatives(case: Case) -> list[str]:
    """Allowed by design; an unknown participant then stops the run (fast)."""
    argv = case.argv("--participant-label", "77")
    argv[1] = str(case.bids / "derivatives" / "brainenc")
    return argv


def out_is_file(case: Case) -> list[str]:
    case.out.parent.mkdir(parents=True, exist_ok=True)
    case.out.write_text("a file")
    return case.argv()


def out_not_writable(case: Case) -> list[str]:
    blocker = case.root / "blocker"
    blocker.write_text("a file where a folder is needed")
    argv = case.argv()
    argv[1] = str(blocker / "out")
    return argv


def _work_dir(case: Case, folder: Path) -> list[str]:
    argv = case.argv()
    argv[argv.index("-w") + 1] = str(folder)
    return argv


def work_dir_in_bids(case: Case) -> list[str]:
    return _work_dir(case, case.bids / "work")


def work_dir_is_output(case: Case) -> list[str]:
    return _work_dir(case, case.out)


def work_dir_is_file(case: Case) -> list[str]:
    (case.root / "wfile").write_text("a file")
    return _work_dir(case, case.root / "wfile")


def database_dir_is_file(case: Case) -> list[str]:
    (case.root / "db").write_text("a file")
    return case.argv("--bids-database-dir", str(case.root / "db"))


def not_bids(case: Case) -> list[str]:
    (case.bids / "dataset_description.json").unlink()
    return case.argv()


def bad_description(case: Case) -> list[str]:
    (case.bids / "dataset_description.json").write_text("{'Name': oops", encoding="utf-8")
    return case.argv()


def unknown_participant(case: Case) -> list[str]:
    return case.argv("--participant-label", "01", "77")


def bad_label(case: Case) -> list[str]:
    return case.argv("--participant-label", "sub-0!1")


def unknown_task(case: Case) -> list[str]:
    return case.argv("--task-id", "reading")


def unknown_space(case: Case) -> list[str]:
    return case.argv("--space", "MNI999")


# --------------------------------------------------------------------------- images
def no_bold(case: Case) -> list[str]:
    for path in case.func("02").glob("*_bold.nii.gz"):
        path.unlink()
    return case.argv()


def no_tr(case: Case) -> list[str]:
    sidecar = case.bids / "task-listening_bold.json"
    meta = json.loads(sidecar.read_text())
    del meta["RepetitionTime"]
    sidecar.write_text(json.dumps(meta))

    def zero_tr(data, header):
        header["pixdim"][4] = 0.0
        return data

    case.edit_image(case.bold("02", 2), zero_tr)
    return case.argv("--participant-label", "02")


def three_d(case: Case) -> list[str]:
    case.edit_image(case.bold("02", 1), lambda data, header: data[..., 0])
    return case.argv("--participant-label", "02")


def garbage_nifti(case: Case) -> list[str]:
    case.bold("02", 3).write_bytes(gzip.compress(b"this is not a NIfTI image" * 20))
    return case.argv("--participant-label", "02")


def truncated_nifti(case: Case) -> list[str]:
    path = case.bold("02", 2)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return case.argv("--participant-label", "02")


def truncated_nifti_two_subjects(case: Case) -> list[str]:
    truncated_nifti(case)
    return case.argv()


def different_grids(case: Case) -> list[str]:
    import nibabel as nib

    path = case.bold("02", 2)
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[1:, 1:], img.affine, img.header), path)
    return case.argv("--participant-label", "02")


def mask_other_grid(case: Case) -> list[str]:
    """fMRIPrep-style inputs whose brain mask is not on the grid of the BOLD run."""
    import nibabel as nib

    prep = case.root / "fmriprep"
    (prep / "dataset_description.json").parent.mkdir(parents=True)
    (prep / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
    func = prep / "sub-02" / "func"
    func.mkdir(parents=True)
    for run in (1, 2, 3):
        stem = f"sub-02_task-listening_run-{run}_space-MNI152NLin2009cAsym"
        img = nib.load(case.bold("02", run))
        shutil.copy(case.bold("02", run), func / f"{stem}_desc-preproc_bold.nii.gz")
        (func / f"{stem}_desc-preproc_bold.json").write_text(json.dumps(
            {"RepetitionTime": 2.0, "SkullStripped": False}))
        mask = np.ones(img.shape[:3], dtype=np.uint8)
        if run == 2:
            mask = mask[:-2]
        nib.save(nib.Nifti1Image(mask, img.affine), func / f"{stem}_desc-brain_mask.nii.gz")
    return case.argv("--participant-label", "02", "-d", f"fmriprep={prep}")


def all_nan(case: Case) -> list[str]:
    case.edit_image(case.bold("02", 1),
                    lambda data, header: np.full(data.shape, np.nan, dtype=np.float32))
    return case.argv("--participant-label", "02")


def bad_voxels(case: Case) -> list[str]:
    """NaN, Inf and constant voxels are dropped from the mask with a warning."""

    def spoil(data, header):
        data = data.astype(np.float32)
        data[19, 24, 4, 3] = np.nan
        data[18, 24, 4, :] = np.inf
        data[17, 24, 4, :] = 800.0
        return data

    case.edit_image(case.bold("02", 1), spoil)
    return case.argv("--participant-label", "02")


def bad_voxels_dropped(case: Case) -> None:
    import nibabel as nib

    mask_file = next((case.out / "sub-02" / "func").glob("*_desc-brain_mask.nii.gz"))
    mask = np.asanyarray(nib.load(mask_file).dataobj) > 0
    assert not mask[17:20, 24, 4].any() and mask[20:23, 24, 4].all()
    r_map = next((case.out / "sub-02" / "func").glob("*_stat-r_*_statmap.nii.gz"))
    assert np.isfinite(np.asanyarray(nib.load(r_map).dataobj)).all()


def bold_unreadable(case: Case, monkeypatch) -> list[str]:
    make_unreadable(monkeypatch, case.bold("02", 2))
    return case.argv("--participant-label", "02")


def one_run(case: Case) -> list[str]:
    for run in (2, 3):
        case.bold("02", run).unlink()
    return case.argv("--participant-label", "02")


def duplicate_run(case: Case) -> list[str]:
    import nibabel as nib

    source = case.bold("02", 1)
    nib.save(nib.load(source), str(source).replace(".nii.gz", ".nii"))
    return case.argv("--participant-label", "02")


def multi_echo(case: Case) -> list[str]:
    """Every run of sub-02 stored as two echoes (as Le Petit Prince's raw runs are)."""
    for run in (1, 2, 3):
        source = case.bold("02", run)
        for echo in (1, 2):
            shutil.copy(source, str(source).replace("_bold.", f"_echo-{echo}_bold."))
        source.unlink()
    return case.argv("--participant-label", "02")


def multi_echo_one_chosen(case: Case) -> list[str]:
    """The fix the refusal names: a BIDS filter keeping one echo."""
    argv = multi_echo(case)
    (case.root / "echo.json").write_text('{"bold": {"echo": 1}}', encoding="utf-8")
    return [*argv, "--bids-filter-file", str(case.root / "echo.json")]


def tr_disagrees(case: Case) -> list[str]:
    """The sidecar wins (BIDS), with a warning naming both values."""

    def header_tr(data, header):
        header["pixdim"][4] = 2.5
        return data

    case.edit_image(case.bold("02", 1), header_tr)
    return case.argv("--participant-label", "02")


def _set_sidecar_tr(case: Case, tr) -> None:
    sidecar = case.bids / "task-listening_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = tr
    sidecar.write_text(json.dumps(meta))


def tr_in_milliseconds(case: Case) -> list[str]:
    """2000 (ms) in the sidecar, 2 s in the header: a factor of 1000 is a unit mistake."""
    _set_sidecar_tr(case, 2000)
    return case.argv("--participant-label", "02")


def tr_in_milliseconds_no_header(case: Case) -> list[str]:
    _set_sidecar_tr(case, 2000)

    def zero_tr(data, header):
        header["pixdim"][4] = 0.0
        return data

    for run in (1, 2, 3):
        case.edit_image(case.bold("02", run), zero_tr)
    return case.argv("--participant-label", "02")


def start_time_in_milliseconds(case: Case) -> list[str]:
    """StartTime shifts every volume's time: 980 (ms) would move the words by 16 minutes."""
    sidecar = case.bids / "task-listening_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["StartTime"] = 980
    sidecar.write_text(json.dumps(meta))
    return case.argv("--participant-label", "02")


def high_pass_above_nyquist(case: Case) -> list[str]:
    case.write_spec(case.spec.read_text() + "\n[bold]\nhigh_pass = 1.0\n")
    return case.argv("--participant-label", "02")


def trim_longer_than_run(case: Case) -> list[str]:
    case.write_spec(case.spec.read_text().replace("inner_folds = 2",
                                                  "inner_folds = 2\ntrim_edges = [20, 20]"))
    return case.argv("--participant-label", "02")


def fir_delay_longer_than_run(case: Case) -> list[str]:
    """A FIR delay beyond the run leaves all-zero features (r = 0 everywhere otherwise)."""
    case.write_spec(case.spec.read_text() + "\n[alignment]\nmethod = 'fir'\ndelays = [1, 100]\n")
    return case.argv("--participant-label", "02")


def dummy_scans_longer_than_run(case: Case) -> list[str]:
    return case.argv("--participant-label", "02", "--dummy-scans", "500")


# --------------------------------------------------------------------------- events
def _rewrite_events(case: Case, sub: str, run: int, func) -> None:
    path = case.events(sub, run)
    path.write_bytes(func(path.read_text(encoding="utf-8")))


def events_without_words(case: Case) -> list[str]:
    _rewrite_events(case, "02", 2, lambda text: "\n".join(
        "\t".join(line.split("\t")[:2]) for line in text.splitlines()).encode())
    return case.argv("--participant-label", "02")


def _unpunctuated(text: str) -> bytes:
    lines = text.splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    return "\n".join([lines[0]] + ["\t".join(r[:-1] + [re.sub(r"[^\w']", "", r[-1]).upper()])
                                   for r in rows]).encode()


def sentences_without_source(case: Case) -> list[str]:
    for run in (1, 2, 3):
        _rewrite_events(case, "02", run, _unpunctuated)
    case.write_spec(case.spec.read_text().replace("context_words = 5", 'unit = "sentence"'))
    return case.argv("--participant-label", "02")


def phoneme_rate_without_phones(case: Case) -> list[str]:
    case.write_spec(case.spec.read_text().replace(
        "context_words = 5", 'context_words = 5\nnuisance = ["word_rate", "phoneme_rate"]'))
    return case.argv("--participant-label", "02")


def events_empty_words(case: Case) -> list[str]:
    _rewrite_events(case, "02", 2, lambda text: "\n".join(
        [text.splitlines()[0]] + [line.rsplit("\t", 1)[0] + "\tn/a"
                                  for line in text.splitlines()[1:]]).encode())
    return case.argv("--participant-label", "02")


def events_ragged(case: Case) -> list[str]:
    def ragged(text):
        lines = text.splitlines()
        lines[5] = lines[5] + "\textra"
        return "\n".join(lines).encode()

    _rewrite_events(case, "02", 3, ragged)
    return case.argv()


def events_non_numeric(case: Case) -> list[str]:
    def spoil(text):
        lines = text.splitlines()
        lines[4] = "1,5" + lines[4][lines[4].index("\t"):]
        return "\n".join(lines).encode()

    _rewrite_events(case, "02", 1, spoil)
    return case.argv("--participant-label", "02")


def events_nan_onset(case: Case) -> list[str]:
    def spoil(text):
        lines = text.splitlines()
        lines[3] = "n/a" + lines[3][lines[3].index("\t"):]
        return "\n".join(lines).encode()

    _rewrite_events(case, "02", 1, spoil)
    return case.argv("--participant-label", "02")


def events_latin1(case: Case) -> list[str]:
    def spoil(text):
        lines = text.splitlines()
        lines[2] = lines[2].rsplit("\t", 1)[0] + "\tcafé"
        return "\n".join(lines).encode("latin-1")

    _rewrite_events(case, "02", 1, spoil)
    return case.argv("--participant-label", "02")


def events_bom_crlf(case: Case) -> list[str]:
    """A UTF-8 BOM and CRLF line ends are read as plain UTF-8 (common from spreadsheets)."""
    _rewrite_events(case, "02", 1, lambda text: b"\xef\xbb\xbf" + text.encode())
    _rewrite_events(case, "02", 2, lambda text: text.replace("\n", "\r\n").encode())
    return case.argv("--participant-label", "02")


def textgrid_story(case: Case, *, strict: bool = False) -> list[str]:
    """sub-02's run 1 timed by a TextGrid story row whose label has a doubled closing quote."""
    from tests.helpers.stimuli import textgrid_text, word_intervals

    events = case.events("02", 1)
    rows = [line.split("\t") for line in events.read_text().splitlines()[1:]]
    onsets = np.array([float(r[0]) for r in rows]) - 2.0
    durations = np.array([float(r[1]) for r in rows])
    words = [r[2] for r in rows]
    text = textgrid_text({"words": word_intervals(words, onsets, durations)}).split("\n")
    line = next(i for i, t in enumerate(text) if t.strip().startswith("text = ") and
                t.strip() != 'text = ""')
    text[line] += '"'
    (case.bids / "stimuli").mkdir(exist_ok=True)
    (case.bids / "stimuli" / "story1.TextGrid").write_text("\n".join(text), encoding="utf-8")
    events.write_text("onset\tduration\ttrial_type\tstim_file\n2.0\t100\tstory\t"
                      "story1.TextGrid\n", encoding="utf-8")
    if strict:
        case.write_spec(case.spec.read_text() + "\n[annotations]\nstrict = true\n")
    return case.argv("--participant-label", "02")


def _story_words(case: Case, story: str) -> list[str]:
    path = case.out / "stimuli" / f"stim-{story}_annot-words_events.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    column = lines[0].split("\t").index("word")
    return [line.split("\t")[column] for line in lines[1:]]


def _events_words(case: Case, sub: str, run: int) -> list[str]:
    lines = case.events(sub, run).read_text(encoding="utf-8").splitlines()
    column = lines[0].split("\t").index("word")
    return [line.split("\t")[column] for line in lines[1:]]


def story_differs_across_jobs(case: Case, run_cli) -> list[str]:
    """Two jobs share OUTPUT_DIR; sub-02 heard another text of the story of run 1."""
    code, err = run_cli(case.argv("--participant-label", "01"))
    assert code == EXIT_OK, err
    case.first_words = _story_words(case, "listeningrun1")

    def spoil(text):
        lines = text.splitlines()
        lines[3] = lines[3].rsplit("\t", 1)[0] + "\tzebra"
        return "\n".join(lines).encode()

    _rewrite_events(case, "02", 1, spoil)
    return case.argv("--participant-label", "02")


def each_story_keeps_its_record(case: Case) -> None:
    assert _story_words(case, "listeningrun1") == case.first_words  # sub-01's record kept
    assert _story_words(case, "listeningrun1") == _events_words(case, "01", 1)
    assert _story_words(case, "listeningrun1v2") == _events_words(case, "02", 1)
    assert "zebra" in _story_words(case, "listeningrun1v2")
    assert _story_words(case, "listeningrun2") == _events_words(case, "02", 2)  # same: shared
    assert not (case.out / "stimuli" / "stim-listeningrun2v2_annot-words_events.tsv").exists()


def words_after_run(case: Case) -> list[str]:
    def shift(text):
        lines = text.splitlines()
        rows = [line.split("\t") for line in lines[1:]]
        return "\n".join([lines[0]] + ["\t".join([str(float(r[0]) + 5000), *r[1:]])
                                       for r in rows]).encode()

    _rewrite_events(case, "02", 2, shift)
    return case.argv("--participant-label", "02")


def events_unreadable(case: Case, monkeypatch) -> list[str]:
    make_unreadable(monkeypatch, case.events("02", 3))
    return case.argv("--participant-label", "02")


def no_events(case: Case) -> list[str]:
    case.events("02", 3).unlink()
    return case.argv("--participant-label", "02")


# --------------------------------------------------------------------------- spec
def spec_invalid_toml(case: Case) -> list[str]:
    case.write_spec("[[models]\nname = 'x'\n")
    return case.argv()


def spec_unknown_key(case: Case) -> list[str]:
    case.write_spec((case.spec.read_text() + "\n[encoding]\nalpha = 3\n").replace(
        "[encoding]\nalphas = [1.0, 100.0, 10000.0]\ninner_folds = 2\n", ""))
    return case.argv()


def spec_unknown_section(case: Case) -> list[str]:
    case.write_spec(case.spec.read_text() + "\n[optimizer]\nlr = 1\n")
    return case.argv()


def spec_wrong_type(case: Case) -> list[str]:
    case.write_spec(case.spec.read_text().replace("inner_folds = 2", "inner_folds = 'two'"))
    return case.argv()


def spec_missing(case: Case) -> list[str]:
    argv = case.argv()
    argv[argv.index("--config-file") + 1] = str(case.root / "nope.toml")
    return argv


def spec_is_folder(case: Case) -> list[str]:
    argv = case.argv()
    argv[argv.index("--config-file") + 1] = str(case.root)
    return argv


def spec_device_path(case: Case) -> list[str]:
    case.write_spec(case.spec.read_text().replace(str(case.model), "/dev/zero"))
    return case.argv()


def spec_outside_roots(case: Case, monkeypatch) -> list[str]:
    monkeypatch.setenv("BRAINENC_ALLOWED_ROOTS", str(case.bids))
    return case.argv()


def spec_inside_roots(case: Case, monkeypatch) -> list[str]:
    monkeypatch.setenv("BRAINENC_ALLOWED_ROOTS", str(case.model.parent))
    return case.argv("--participant-label", "77")


def _spec_line(old: str, new: str):
    """Builder replacing one line of the base spec (e.g. a value the checks must refuse)."""

    def build(case: Case) -> list[str]:
        text = case.spec.read_text()
        assert old in text
        case.write_spec(text.replace(old, new))
        return case.argv()

    return build


def _option(*extra: str):
    """Builder adding command-line options to a valid run."""
    return lambda case: case.argv(*extra)


# --------------------------------------------------------------------------- models
def _model_copy(case: Case) -> Path:
    model = case.root / "model"
    shutil.copytree(case.model, model)
    case.write_spec(case.spec.read_text().replace(str(case.model), str(model)))
    return model


def model_missing(case: Case) -> list[str]:
    case.write_spec(case.spec.read_text().replace(str(case.model), str(case.root / "nomodel")))
    return case.argv()


def model_no_tokenizer(case: Case) -> list[str]:
    model = _model_copy(case)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        (model / name).unlink(missing_ok=True)
    return case.argv()


def model_no_weights(case: Case) -> list[str]:
    model = _model_copy(case)
    for path in model.glob("*.safetensors"):
        path.unlink()
    return case.argv()


def model_no_config(case: Case) -> list[str]:
    model = _model_copy(case)
    (model / "config.json").unlink()
    return case.argv()


def model_pickle_only(case: Case) -> list[str]:
    model = _model_copy(case)
    for path in model.glob("*.safetensors"):
        path.unlink()
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04pickled")
    return case.argv()


def model_pickle_allowed(case: Case) -> list[str]:
    """Opting in passes the safety check (an unknown participant then stops the run)."""
    model_pickle_only(case)
    case.write_spec(case.spec.read_text().replace('method = "frozen"', 'method = "frozen"')
                    .replace("[[variants]]", "allow_pickle = true\n\n[[variants]]", 1))
    return case.argv("--participant-label", "77")


def model_remote_code(case: Case) -> list[str]:
    model = _model_copy(case)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(config))
    (model / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    return case.argv()


def model_remote_code_allowed(case: Case) -> list[str]:
    model_remote_code(case)
    case.write_spec(case.spec.read_text().replace(
        "[[variants]]", "trust_remote_code = true\n\n[[variants]]", 1))
    return case.argv("--participant-label", "77")


# --------------------------------------------------------------------------- task data
TASK_SPEC = """
[[tasks]]
name = "sentiment"
type = "sequence-classification"
train = "train.tsv"
dev = "dev.tsv"

[training]
max_steps = 2
"""


def _task_case(case: Case, train: list[tuple[str, str]], dev: list[tuple[str, str]]) -> None:
    for name, rows in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["text\tlabel"] + [f"{text}\t{label}" for text, label in rows]
        (case.root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    case.write_spec(case.spec.read_text().replace(
        'method = "frozen"', 'method = "bitfit"\ntask = "sentiment"') + TASK_SPEC)


TRAIN = [("a fine story", "pos"), ("a dull story", "neg"), ("lovely", "pos"), ("awful", "neg")]


def tuning_setting_out_of_range(case: Case) -> list[str]:
    _task_case(case, TRAIN, TRAIN)
    case.write_spec(case.spec.read_text().replace(
        'method = "bitfit"', 'method = "lora"\nsettings = { r = 8, dropout = 1.5 }'))
    return case.argv()


def task_unknown_label(case: Case) -> list[str]:
    _task_case(case, TRAIN, [("so so", "neutral"), ("great", "pos")])
    return case.argv("--participant-label", "01")


def task_empty_split(case: Case) -> list[str]:
    _task_case(case, TRAIN, [])
    return case.argv("--participant-label", "01")


def task_malformed(case: Case) -> list[str]:
    _task_case(case, TRAIN, [])
    (case.root / "dev.tsv").write_bytes(b"text\tlabel\ncaf\xe9\tpos\n")
    return case.argv("--participant-label", "01")


def task_file_in_proc(case: Case) -> list[str]:
    _task_case(case, TRAIN, [])
    case.write_spec(case.spec.read_text().replace('dev = "dev.tsv"', 'dev = "/proc/self/environ"'))
    return case.argv("--participant-label", "01")


# --------------------------------------------------------------------------- group stage
def _participant(case: Case, *extra: str) -> int:
    """Run the participant level of ``case`` (a step before the command under test)."""
    from bids_app.cli import main

    return main(case.argv(*extra))


def rerun_with_changed_spec(case: Case) -> list[str]:
    """Both participants, then sub-01 again with other context, alphas and high-pass."""
    assert _participant(case) == EXIT_OK
    first = (case.out / "experiment_spec.toml").read_text(encoding="utf-8")
    changed = (case.spec.read_text(encoding="utf-8")
               .replace("context_words = 5", "context_words = 3")
               .replace("alphas = [1.0, 100.0, 10000.0]", "alphas = [10.0, 1000.0]")
               + "\n[bold]\nhigh_pass = 0.01\n")
    case.spec.write_text(changed, encoding="utf-8")
    hidden = case.events("01", 2).rename(case.root / "events.tsv")  # a failed run first
    assert _participant(case, "--participant-label", "01") == EXIT_DATASET
    hidden.rename(case.events("01", 2))
    assert (case.out / "experiment_spec.toml").read_text(encoding="utf-8") == first
    assert _participant(case, "--participant-label", "01") == EXIT_OK
    return [str(case.bids), str(case.out), "group", "--nprocs", "1"]


def rerun_refused(case: Case) -> None:
    saved = (case.out / "experiment_spec.toml").read_text(encoding="utf-8")
    assert "context_words = 3" in saved and "high_pass = 0.01" in saved  # the successful rerun
    assert not (case.out / "group" / "group_variants.tsv").exists()


SPEC_WITH_UNRUN = """\
[[models]]
name = "tiny"
source = "{model}"

[[variants]]
model = "tiny"
method = "frozen"

[[variants]]
model = "tiny"
method = "frozen"
label = "neverrun"

[features]
layers = [1]
context_words = 5

[encoding]
alphas = [1.0, 100.0, 10000.0]
inner_folds = 2
"""


def group_names_unrun_variant(case: Case) -> list[str]:
    """The group spec names a variant that no participant run produced."""
    assert _participant(case) == EXIT_OK
    case.write_spec(SPEC_WITH_UNRUN)
    return case.argv(level="group")


def unrun_variant_listed(case: Case) -> None:
    import pandas as pd

    table = pd.read_csv(case.out / "group" / "group_variants.tsv", sep="\t")
    assert list(table["variant"]) == ["tinyfrozenL1"] and list(table["n_subjects"]) == [2]
    assert "neverrunL1" in (case.out / "group" / "group.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- table
@dataclass
class Row:
    """One broken input: builder, expected exit code, message pattern."""

    id: str
    build: object
    code: int
    message: str
    bad: str | None = None  # participant that fails (no stat map may exist for it)
    complete: tuple = ()  # participants that must complete
    check: object = None  # further property of the outputs, check(case)
    marks: tuple = field(default_factory=tuple)


SLOW = (pytest.mark.slow,)
CATALOGUE = [
    # paths and command line
    Row("missing-bids-dir", missing_bids, EXIT_USAGE, r"nowhere.* does not exist"),
    Row("bids-dir-is-file", bids_is_file, EXIT_USAGE, r"ds\.txt.* is not a directory"),
    Row("bids-dir-unreadable", bids_unreadable, EXIT_USAGE, r"bids' is not readable"),
    Row("output-equals-input", out_equals_bids, EXIT_USAGE, r"OUTPUT_DIR must differ"),
    Row("output-inside-input-via-link", out_symlink_into_bids, EXIT_USAGE,
        r"link/out' is inside BIDS_DIR but not under its derivatives/",
        check=lambda case: not (case.bids / "sub-01" / "out").exists() or pytest.fail("written")),
    Row("output-inside-input", out_inside_bids, EXIT_USAGE,
        r"results.* inside BIDS_DIR but not under its derivatives/"),
    Row("output-in-derivatives-allowed", out_in_derivatives, EXIT_NO_MATCH,
        r"participant label\(s\) 77 not found"),
    Row("output-is-file", out_is_file, EXIT_USAGE, r"OUTPUT_DIR '.*out' exists and is not a"),
    Row("output-not-writable", out_not_writable, EXIT_RESOURCE,
        r"cannot write to OUTPUT_DIR '.*blocker/out'"),
    Row("work-dir-inside-input", work_dir_in_bids, EXIT_USAGE,
        r"-w/--work-dir '.*bids/work' is inside BIDS_DIR",
        check=lambda case: not (case.bids / "work").exists() or pytest.fail("written")),
    Row("work-dir-is-output", work_dir_is_output, EXIT_USAGE,
        r"-w/--work-dir '.*out' is OUTPUT_DIR"),
    Row("work-dir-is-file", work_dir_is_file, EXIT_USAGE,
        r"-w/--work-dir '.*wfile' exists and is not a directory"),
    Row("database-dir-is-file", database_dir_is_file, EXIT_USAGE,
        r"--bids-database-dir '.*db' exists and is not a directory"),
    Row("work-dir-disk-full", work_dir_full, EXIT_RESOURCE,
        r"cannot write in the folder '.*/work/.*' \(No space left on device, writing '.*'\); "
        r"free disk space there or choose another OUTPUT_DIR or -w/--work-dir"),
    Row("output-dir-disk-full-in-a-step", output_cache_full, EXIT_RESOURCE,
        r"cannot write in the folder '.*/out/stimuli/features.*' \(No space left on device",
        bad="02"),
    Row("not-bids", not_bids, EXIT_DATASET, r"is not a BIDS dataset.*dataset_description"),
    Row("bad-dataset-description", bad_description, EXIT_DATASET,
        r"dataset_description\.json.*valid JSON"),
    Row("unknown-participant", unknown_participant, EXIT_NO_MATCH,
        r"participant label\(s\) 77 not found.*available: 01, 02"),
    Row("bad-participant-label", bad_label, EXIT_USAGE, r"sub-0!1.* not a valid BIDS label"),
    Row("unknown-task", unknown_task, EXIT_NO_MATCH, r"task\(s\) reading not found.*listening"),
    Row("unknown-space", unknown_space, EXIT_NO_MATCH, r"--space 'MNI999'"),
    # images
    Row("no-bold-for-a-participant", no_bold, EXIT_FAILED,
        r"sub-02 failed: .*no BOLD runs? .*'02'", bad="02", complete=("01",), marks=SLOW),
    Row("no-tr-anywhere", no_tr, EXIT_DATASET, r"no RepetitionTime for 'sub-02_.*run-2_bold",
        bad="02"),
    Row("3d-image", three_d, EXIT_DATASET, r"run-1_bold\.nii\.gz' is not a 4-D BOLD run",
        bad="02"),
    Row("not-a-nifti", garbage_nifti, EXIT_DATASET, r"cannot read the image '.*run-3_bold",
        bad="02"),
    Row("truncated-nifti", truncated_nifti, EXIT_DATASET,
        r"run-2_bold\.nii\.gz.* truncated or corrupt", bad="02"),
    Row("truncated-nifti-others-complete", truncated_nifti_two_subjects, EXIT_FAILED,
        r"sub-02 failed: .*run-2_bold\.nii\.gz.* truncated or corrupt", bad="02",
        complete=("01",)),
    Row("bold-unreadable", bold_unreadable, EXIT_DATASET,
        r"the image '.*run-2_bold\.nii\.gz' is not readable \(permission denied\); fix its "
        r"permissions", bad="02"),
    Row("different-grids", different_grids, EXIT_DATASET, r"run-2_bold.*different grids",
        bad="02"),
    Row("mask-on-other-grid", mask_other_grid, EXIT_DATASET,
        r"mask '.*run-2_space-MNI152NLin2009cAsym_desc-brain_mask\.nii\.gz' is not on the grid",
        bad="02"),
    Row("all-nan-run", all_nan, EXIT_DATASET, r"no usable voxel.*02", bad="02"),
    Row("nan-inf-constant-voxels", bad_voxels, EXIT_OK,
        r"sub-02: 3 voxel\(s\) NaN, infinite or constant .*dropped.*run-1: 3",
        complete=("02",), check=bad_voxels_dropped, marks=SLOW),
    Row("fewer-runs-than-cv", one_run, EXIT_DATASET, r"sub-02 has 1 BOLD run.* at least 2",
        bad="02"),
    Row("duplicated-run", duplicate_run, EXIT_DATASET, r"run-1.* same entities", bad="02"),
    Row("multi-echo-run", multi_echo, EXIT_DATASET,
        r"'sub-02_task-listening_run-1' is a multi-echo run \(echoes 1, 2: .*run-1_echo-1_bold"
        r".*--bids-filter-file holding \{\"bold\": \{\"echo\": 2\}\}.*optimally combined",
        bad="02"),
    Row("multi-echo-one-echo-chosen", multi_echo_one_chosen, EXIT_OK, r"^", complete=("02",)),
    Row("tr-sidecar-vs-header", tr_disagrees, EXIT_OK,
        r"RepetitionTime of 'sub-02_.*run-1_bold.nii.gz' is 2 s in its sidecar but 2\.5 s in "
        r"the NIfTI header; using the sidecar", complete=("02",), marks=SLOW),
    Row("tr-in-milliseconds", tr_in_milliseconds, EXIT_DATASET,
        r"RepetitionTime of '.*sub-02_task-listening_run-1_bold\.nii\.gz' is 2000 in its JSON "
        r"sidecar but 2 s in the NIfTI header, a factor of 1000: one of them is in milliseconds",
        bad="02"),
    Row("tr-in-milliseconds-no-header", tr_in_milliseconds_no_header, EXIT_DATASET,
        r"run-1_bold\.nii\.gz' is 2000 s in its JSON sidecar.*probably in milliseconds.*"
        r"\(e\.g\. 2\)", bad="02"),
    Row("start-time-in-milliseconds", start_time_in_milliseconds, EXIT_DATASET,
        r"StartTime of 'sub-02_task-listening_run-1_bold\.nii\.gz' is 980 \(milliseconds\? "
        r"BIDS wants seconds\).*within the TR \(0 to 2 s\)", bad="02"),
    Row("high-pass-above-nyquist", high_pass_above_nyquist, EXIT_DATASET,
        r"'bold\.high_pass' = 1 Hz is at or above the Nyquist frequency \(0\.25 Hz at TR 2 s of "
        r"'sub-02_task-listening_run-1_bold\.nii\.gz'\)", bad="02"),
    Row("trim-edges-longer-than-run", trim_longer_than_run, EXIT_DATASET,
        r"run-1_bold\.nii\.gz' has \d+ volumes; .*trimming 20 \+ 20 \('encoding\.trim_edges'\) "
        r"would leave 0", bad="02"),
    Row("fir-delay-longer-than-run", fir_delay_longer_than_run, EXIT_DATASET,
        r"'alignment\.delays' holds 100 volumes, but 'sub-02_task-listening_run-1_bold\.nii\.gz' "
        r"keeps only \d+ volumes", bad="02"),
    Row("more-folds-than-runs", _spec_line("inner_folds = 2", "inner_folds = 2\n"
                                           "outer_cv = '5-fold'"), EXIT_DATASET,
        r"sub-0[12] failed: 'encoding\.outer_cv' = '5-fold' needs at least 5 runs .* has 3"),
    Row("dummy-scans-longer-than-run", dummy_scans_longer_than_run, EXIT_DATASET,
        r"run-1_bold\.nii\.gz' has \d+ volumes; dropping 500 dummy scan", bad="02"),
    # events
    Row("events-without-word-column", events_without_words, EXIT_DATASET,
        r"run-2_events\.tsv' has no column.*word", bad="02"),
    Row("sentence-unit-without-punctuation", sentences_without_source, EXIT_DATASET,
        r"no sentence boundaries for story .*punctuation \(no sentence ends", bad="02"),
    Row("phoneme-rate-without-phone-tier", phoneme_rate_without_phones, EXIT_DATASET,
        r"the annotation 'sub-02/func/.*_events\.tsv' of story .* has no phone tier", bad="02"),
    Row("events-without-words", events_empty_words, EXIT_DATASET,
        r"run-2_events\.tsv' lists no words", bad="02"),
    Row("events-ragged-others-complete", events_ragged, EXIT_FAILED,
        r"sub-02 failed: .*run-3_events\.tsv' line 6 has 4 tab-separated", bad="02",
        complete=("01",)),
    Row("events-non-numeric-onset", events_non_numeric, EXIT_DATASET,
        r"run-1_events\.tsv' column 'onset' row 5 is not a number \('1,5'\)", bad="02"),
    Row("events-nan-onset", events_nan_onset, EXIT_DATASET,
        r"run-1_events\.tsv' has a word without an onset", bad="02"),
    Row("events-latin1", events_latin1, EXIT_DATASET,
        r"run-1_events\.tsv' is not UTF-8.*iconv", bad="02"),
    Row("events-bom-crlf-accepted", events_bom_crlf, EXIT_OK, r"^", complete=("02",),
        marks=SLOW),
    Row("textgrid-defect-repaired", textgrid_story, EXIT_OK,
        r"story1\.TextGrid' line \d+: the label .* ends with a doubled closing quote; the stray "
        r"quote was ignored", complete=("02",)),
    Row("textgrid-defect-strict", lambda case: textgrid_story(case, strict=True), EXIT_DATASET,
        r"story1\.TextGrid' line \d+: the label .* doubled closing quote; fix the file "
        r"\(annotations\.strict is true", bad="02"),
    Row("events-unreadable", events_unreadable, EXIT_DATASET,
        r"'.*run-3_events\.tsv' is not readable \(permission denied\); fix its permissions",
        bad="02"),
    Row("events-missing", no_events, EXIT_DATASET, r"no events\.tsv for '.*run-3_bold",
        bad="02"),
    Row("story-words-differ-across-jobs", story_differs_across_jobs, EXIT_OK, r"^",
        complete=("01", "02"), check=each_story_keeps_its_record),
    Row("words-after-end-of-run", words_after_run, EXIT_DATASET,
        r"run-2_events\.tsv'\) end at 50\d\d\.\d s but run .*run-2' ends at 52\.0 s",
        bad="02"),
    # experiment spec
    Row("spec-not-toml", spec_invalid_toml, EXIT_USAGE, r"spec\.toml' is not valid TOML"),
    Row("spec-unknown-key", spec_unknown_key, EXIT_USAGE,
        r"unknown key\(s\) 'alpha' in \[encoding\]"),
    Row("spec-unknown-section", spec_unknown_section, EXIT_USAGE,
        r"unknown section\(s\) 'optimizer'"),
    Row("spec-wrong-type", spec_wrong_type, EXIT_USAGE,
        r"'encoding\.inner_folds' must be of type int; got 'two'"),
    Row("spec-missing", spec_missing, EXIT_USAGE, r"nope\.toml' does not exist"),
    Row("spec-is-a-folder", spec_is_folder, EXIT_USAGE, r"cannot read the experiment spec"),
    Row("spec-device-file", spec_device_path, EXIT_USAGE,
        r"'models\[0\]\.source' = '/dev/zero' points into the system folder '/dev'"),
    Row("spec-outside-allowed-roots", spec_outside_roots, EXIT_USAGE,
        r"'models\[0\]\.source' = '.*tiny_bert\d*' is outside the allowed roots.*"
        r"BRAINENC_ALLOWED_ROOTS"),
    Row("spec-inside-allowed-roots", spec_inside_roots, EXIT_NO_MATCH, r"label\(s\) 77 not"),
    Row("spec-nan-alpha", _spec_line("alphas = [1.0, 100.0, 10000.0]", "alphas = [nan, 10.0]"),
        EXIT_USAGE, r"'encoding\.alphas\[0\]' must be a finite number; got nan"),
    Row("spec-alpha-too-large", _spec_line("alphas = [1.0, 100.0, 10000.0]",
                                           "alphas = [10.0, 1e30]"), EXIT_USAGE,
        r"'encoding\.alphas' must be a list of positive numbers up to 1e\+12 .*"
        r"got \[10\.0, 1e\+30\]"),
    Row("spec-fir-without-delays", _spec_line("inner_folds = 2", "inner_folds = 2\n[alignment]\n"
                                              "method = 'fir'\ndelays = []"), EXIT_USAGE,
        r"'alignment\.delays' must name at least one delay .*method = 'fir'"),
    Row("spec-inf-in-list", _spec_line("layers = [1]", "layers = [1, inf]"), EXIT_USAGE,
        r"'features\.layers\[1\]' must be a finite number; got inf"),
    Row("spec-nan-high-pass", _spec_line("inner_folds = 2", "inner_folds = 2\n[bold]\n"
                                         "high_pass = nan"), EXIT_USAGE,
        r"'bold\.high_pass' must be a finite number; got nan"),
    Row("spec-outer-cv-0-fold", _spec_line("inner_folds = 2", "inner_folds = 2\n"
                                           "outer_cv = '0-fold'"), EXIT_USAGE,
        r"'encoding\.outer_cv' must be .* K at least 2; got '0-fold'"),
    Row("spec-outer-cv-1-fold", _spec_line("inner_folds = 2", "inner_folds = 2\n"
                                           "outer_cv = '1-fold'"), EXIT_USAGE,
        r"'encoding\.outer_cv' must be .* K at least 2; got '1-fold'"),
    Row("spec-negative-batch", _spec_line("inner_folds = 2", "inner_folds = 2\n"
                                          "n_targets_batch = -5"), EXIT_USAGE,
        r"'encoding\.n_targets_batch' must be >= 0; got -5"),
    Row("option-nprocs-negative", _option("--nprocs", "-3"), EXIT_USAGE,
        r"'--nprocs'.*-3 is not in the range x>=1"),
    Row("option-nprocs-zero", _option("--nprocs", "0"), EXIT_USAGE,
        r"'--nprocs'.*0 is not in the range x>=1"),
    Row("option-omp-nthreads-negative", _option("--omp-nthreads", "-2"), EXIT_USAGE,
        r"'--omp-nthreads'.*-2 is not in the range x>=0"),
    Row("option-seed-negative", _option("--random-seed", "-1"), EXIT_USAGE,
        r"'--random-seed'.*-1 is not in the range 0<=x<=4294967295"),
    Row("option-seed-too-large", _option("--random-seed", str(2**32)), EXIT_USAGE,
        r"'--random-seed'.*4294967296 is not in the range"),
    Row("option-dummy-scans-negative", _option("--dummy-scans", "-1"), EXIT_USAGE,
        r"'--dummy-scans'.*-1 is not in the range x>=0"),
    Row("option-mem-zero", _option("--mem", "0"), EXIT_USAGE, r"'--mem': must be positive"),
    Row("option-mem-not-a-size", _option("--mem", "lots"), EXIT_USAGE,
        r"'--mem': 'lots' is not a memory size"),
    # models
    Row("model-missing", model_missing, EXIT_RESOURCE, r"nomodel"),
    Row("model-no-config", model_no_config, EXIT_RESOURCE, r"model.*no config\.json"),
    Row("model-no-tokenizer", model_no_tokenizer, EXIT_RESOURCE, r"model' has no tokenizer"),
    Row("model-no-weights", model_no_weights, EXIT_RESOURCE, r"model' holds no weights"),
    Row("model-pickle-only", model_pickle_only, EXIT_USAGE,
        r"model' has only pickle weights.*allow_pickle = true"),
    Row("model-pickle-opt-in", model_pickle_allowed, EXIT_NO_MATCH, r"label\(s\) 77 not found"),
    Row("model-remote-code", model_remote_code, EXIT_USAGE,
        r"model' asks to run its own Python code.*trust_remote_code = true"),
    Row("model-remote-code-opt-in", model_remote_code_allowed, EXIT_NO_MATCH,
        r"label\(s\) 77 not found"),
    # NLU task data (read when the model is tuned, before any participant's model is fitted)
    Row("tuning-setting-out-of-range", tuning_setting_out_of_range, EXIT_USAGE,
        r"setting 'dropout' of tuning method 'lora' must be in \[0, 1\); got 1\.5"),
    Row("task-unknown-label", task_unknown_label, EXIT_DATASET,
        r"task 'sentiment' has labels \['neutral'\] that are not in 'labels'", bad="01"),
    Row("task-empty-split", task_empty_split, EXIT_DATASET,
        r"task 'sentiment' has 4 training and 0 dev examples", bad="01"),
    Row("task-not-utf8", task_malformed, EXIT_DATASET, r"dev\.tsv", bad="01"),
    Row("task-file-in-proc", task_file_in_proc, EXIT_USAGE,
        r"'tasks\[0\]\.dev' = '/proc/self/environ' points into the system folder '/proc'"),
    # group stage
    Row("rerun-with-changed-spec", rerun_with_changed_spec, EXIT_DATASET,
        r"the maps labelled 'tinyfrozenL1' were made under different settings \(.*differing in "
        r"BoldPreparation\.high_pass, Encoding\.alphas, Features\.context_words\); the current "
        r"spec made those of sub-01 only: rerun sub-02 with it, or restrict the group stage "
        r"with --participant-label 01\.", check=rerun_refused, marks=SLOW),
    Row("group-spec-names-unrun-variant", group_names_unrun_variant, EXIT_OK,
        r"no participant maps for variant\(s\) neverrunL1 of the current experiment spec",
        check=unrun_variant_listed, marks=SLOW),
]


def _params():
    return [pytest.param(row, id=row.id, marks=row.marks) for row in CATALOGUE]


@pytest.mark.parametrize("row", _params())
def test_catalogue(row: Row, case: Case, run_cli, monkeypatch):
    build = row.build
    extra = {"monkeypatch": monkeypatch, "run_cli": run_cli}
    names = build.__code__.co_varnames[1:build.__code__.co_argcount]
    argv = build(case, *(extra[name] for name in names))
    code, err = run_cli(argv)
    assert code == row.code, err
    assert re.search(row.message, err, re.DOTALL), err
    assert "Traceback" not in err, err
    assert not case.leftovers(), case.leftovers()
    if row.bad:
        assert not case.statmaps(row.bad)
    for sub in row.complete:
        maps = case.statmaps(sub)
        assert len(maps) >= 3, f"sub-{sub} did not complete:\n{err}"
        assert (case.out / f"sub-{sub}.html").exists()
    if row.complete and row.bad:  # the failure is summarised after everything else ran
        tail = err.strip().splitlines()[-3:]
        assert any(f"sub-{row.bad} failed" in line for line in tail), err
    if code == EXIT_USAGE:  # refused before anything was written
        assert not (case.out / "sub-01").exists()
    if row.check is not None:
        row.check(case)


# --------------------------------------------------------------------------- group level
def _group_file(case: Case, sub: str, pattern: str) -> Path:
    return next((case.out / f"sub-{sub}" / "func").glob(pattern))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def group_map_deleted(case: Case) -> list[str]:
    _group_file(case, "03", "*_stat-r_*_statmap.nii.gz").unlink()
    return case.argv(level="group")


def group_map_unreadable(case: Case, monkeypatch) -> list[str]:
    make_unreadable(monkeypatch, _group_file(case, "03", "*_stat-r_*_statmap.nii.gz"))
    return case.argv(level="group")


def group_r_truncated(case: Case) -> list[str]:
    _truncate(_group_file(case, "03", "*_stat-r_*_statmap.nii.gz"))
    return case.argv(level="group")


def group_clean_bold_truncated(case: Case) -> list[str]:
    _truncate(_group_file(case, "03", "*_run-2_desc-clean_bold.nii.gz"))
    return case.argv(level="group")


def two_of_three_included(case: Case) -> None:
    """The left-out participant is absent from every table and named in the report."""
    import pandas as pd

    group = case.out / "group"
    scores = pd.read_csv(group / "group_scores.tsv", sep="\t", dtype={"subject": str})
    assert set(scores["subject"]) == {"01", "02"}
    variants = pd.read_csv(group / "group_variants.tsv", sep="\t")
    assert (variants["n_subjects"] == 2).all()
    regions = pd.read_csv(group / "group_regions.tsv", sep="\t", dtype={"subject": str})
    if "subject" in regions:
        assert set(regions["subject"].dropna()) <= {"01", "02"}
    sidecar = json.loads(next(group.glob("*_stat-meanr_*_statmap.json")).read_text())
    assert sidecar["Participants"] == ["01", "02"]
    assert "sub-03 left out" in (group / "group.html").read_text(encoding="utf-8")


def group_one_participant(case: Case) -> list[str]:
    return case.argv("--participant-label", "02", level="group")


def group_unknown_participant(case: Case) -> list[str]:
    return case.argv("--participant-label", "01", "07", level="group")


GROUP_CATALOGUE = [
    Row("group-unknown-participant", group_unknown_participant, EXIT_NO_MATCH,
        r"participant label\(s\) 07 have no outputs in '.*out'; available: 01, 02, 03",
        check=lambda case: not (case.out / "group").exists() or pytest.fail("written")),
    Row("group-one-participant", group_one_participant, EXIT_OK,
        r"only sub-02 has a stat-r map, so no group test \(t, p, q\) was computed",
        check=lambda case: (not list((case.out / "group").glob("*_stat-p_*"))
                            and "only sub-02 has a stat-r map" in (
                                case.out / "group" / "group.html").read_text()
                            or pytest.fail("a group test or no warning in the report"))),
    Row("group-map-deleted", group_map_deleted, EXIT_OK,
        r"sub-03 left out: it has outputs of this variant but no stat-r map; rerun the "
        r"participant level", check=two_of_three_included),
    Row("group-map-unreadable", group_map_unreadable, EXIT_OK,
        r"sub-03 left out: its map '.*sub-03_.*_stat-r_.*' is not readable \(permission denied\)",
        check=two_of_three_included),
    Row("group-stat-r-truncated", group_r_truncated, EXIT_DATASET,
        r"participant output '.*sub-03_task-listening_stat-r_.*_statmap\.nii\.gz' is truncated "
        r"or corrupt .*rerun the participant level for sub-03"),
    Row("group-clean-bold-truncated", group_clean_bold_truncated, EXIT_DATASET,
        r"participant output '.*sub-03_task-listening_run-2_desc-clean_bold\.nii\.gz' is "
        r"truncated or corrupt"),
]


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=r.marks)
                                 for r in GROUP_CATALOGUE])
def test_group_catalogue(row: Row, group_case: Case, run_cli, monkeypatch):
    build = row.build
    argv = build(group_case, monkeypatch) if build.__code__.co_argcount == 2 else build(
        group_case)
    code, err = run_cli(argv)
    assert code == row.code, err
    assert re.search(row.message, err, re.DOTALL), err
    assert "Traceback" not in err, err
    assert not group_case.leftovers(), group_case.leftovers()
    if row.check is not None:
        row.check(group_case)
