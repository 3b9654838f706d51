"""The command-line contract: exit codes, messages, label parsing, start-up time."""

import json
import subprocess
import sys
import time

import pytest

from bids_app.cli import main
from bids_app.cli.options import normalise_argv, parse_labels, parse_memory
from bids_app.errors import EXIT_CODES, EXIT_FAILED


@pytest.fixture
def tiny_bids(tmp_path):
    root = tmp_path / "ds"
    (root / "sub-01" / "func").mkdir(parents=True)
    (root / "sub-02" / "func").mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "tiny", "BIDSVersion": "1.9.0"}))
    for sub in ("01", "02"):
        (root / f"sub-{sub}" / "func" / f"sub-{sub}_task-story_bold.nii.gz").write_bytes(b"")
    return root


def test_help_is_fast_and_lists_exit_codes():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from bids_app.cli import entrypoint; "
                           "import sys; sys.argv=['brainenc','--help']; entrypoint()"],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0
    assert "--participant-label" in proc.stdout and "Exit codes" in proc.stdout
    for code in EXIT_CODES:
        assert f"  {code}  " in proc.stdout
    assert elapsed < 2.0, f"--help took {elapsed:.2f} s"


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from bids_app.cli import main; main(['--help']); "
            "heavy = [m for m in ('torch', 'nipype', 'bids', 'transformers', 'himalaya', "
            "'nilearn') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip().endswith("[]"), proc.stdout


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "brainenc v" in capsys.readouterr().out


def test_missing_bids_dir(tmp_path, capsys):
    code = main([str(tmp_path / "nope"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not exist" in err and "nope" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_output_equal_to_input(tiny_bids, capsys):
    code = main([str(tiny_bids), str(tiny_bids), "participant"])
    assert code == 2
    assert "OUTPUT_DIR must differ from BIDS_DIR" in capsys.readouterr().err


def test_output_inside_input(tiny_bids, capsys):
    code = main([str(tiny_bids), str(tiny_bids / "results"), "participant"])
    assert code == 2
    assert "inside BIDS_DIR but not under its derivatives/" in capsys.readouterr().err
    assert not (tiny_bids / "results").exists()


def test_unknown_analysis_level(tiny_bids, tmp_path, capsys):
    code = main([str(tiny_bids), str(tmp_path / "out"), "subject"])
    assert code == 2
    assert "subject" in capsys.readouterr().err


def test_unknown_option(tiny_bids, tmp_path, capsys):
    code = main([str(tiny_bids), str(tmp_path / "out"), "participant", "--particpant-label", "1"])
    assert code == 2
    assert "--particpant-label" in capsys.readouterr().err


def test_unknown_participant_lists_existing(tiny_bids, tmp_path, capsys):
    code = main([str(tiny_bids), str(tmp_path / "out"), "participant",
                 "--participant-label", "07", "--skip-bids-validation"])
    err = capsys.readouterr().err
    assert code == 4
    assert "07" in err and "01" in err and "02" in err


def test_bad_config_key(tiny_bids, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text("[features]\nlayer = 3\n")
    code = main([str(tiny_bids), str(tmp_path / "out"), "participant", "--config-file",
                 str(spec)])
    err = capsys.readouterr().err
    assert code == 2
    assert "'layer'" in err and "layers" in err


@pytest.mark.parametrize("argv, expected", [
    (["ds", "out", "participant", "--participant-label", "01", "02"],
     ["ds", "out", "participant", "--participant-label", "01", "--participant-label", "02"]),
    (["--participant-label", "01", "02", "ds", "out", "participant"],
     ["--participant-label", "01", "--participant-label", "02", "ds", "out", "participant"]),
    (["--participant-label", "01", "ds", "out", "participant"],
     ["--participant-label", "01", "ds", "out", "participant"]),
    (["ds", "out", "group", "-w", "work"], ["ds", "out", "group", "-w", "work"]),
])
def test_multi_value_flags(argv, expected):
    assert normalise_argv(argv) == expected


def test_labels_are_split_and_stripped():
    assert parse_labels(["sub-01,02", "03 sub-04", "01"], "sub-") == ["01", "02", "03", "04"]
    import click

    with pytest.raises(click.BadParameter, match="not a valid BIDS label"):
        parse_labels(["01_a"], "sub-")


@pytest.mark.parametrize("value, mb", [("16G", 16384.0), ("512M", 512.0), ("2000", 2000.0),
                                       ("1.5GB", 1536.0), (None, None)])
def test_memory_sizes(value, mb):
    assert parse_memory(value) == mb


def test_bad_memory_size(tiny_bids, tmp_path, capsys):
    code = main([str(tiny_bids), str(tmp_path / "out"), "participant", "--mem", "lots"])
    assert code == 2
    assert "lots" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [[], ["-v"], ["--verbose"], ["-vv"]])
def test_traceback_only_with_verbose(tmp_path, capsys, flags):
    """A user error is one sentence; ``-v`` adds the traceback of where it was raised."""
    code = main([str(tmp_path / "nope"), str(tmp_path / "out"), "participant", *flags])
    err = capsys.readouterr().err
    assert code == 2
    message = [line for line in err.splitlines() if line.startswith("brainenc: error: ")]
    assert len(message) == 1 and "nope" in message[0] and "does not exist" in message[0]
    if flags:
        assert "Traceback (most recent call last)" in err
        assert "UsageError" in err and "check_paths" in err
    else:
        assert "Traceback" not in err
        assert err.strip() == message[0]


@pytest.mark.parametrize("verbose", [False, True])
def test_internal_error_traceback_with_verbose(tiny_bids, tmp_path, capsys, monkeypatch,
                                               verbose):
    """An unexpected exception gives a short message; with ``-v`` also its traceback."""
    import bids_app.run as run

    def broken(options):
        raise ZeroDivisionError("planted fault")

    monkeypatch.setattr(run, "execute", broken)
    code = main([str(tiny_bids), str(tmp_path / "out"), "participant",
                 *(["-v"] if verbose else [])])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "brainenc: internal error: ZeroDivisionError: planted fault" in err
    assert "rerun with -v" in err
    assert ("Traceback (most recent call last)" in err) is verbose
