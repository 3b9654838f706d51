"""Fuzzing of the command line: any argv gives a documented exit code and a short message.

``brainenc`` is called in-process with random argument lists built from its own
option names, plausible and absurd values, and paths to things that exist or not.
The participant and group stages are replaced by stubs, so what is fuzzed is the
parsing, the option checks and the path checks that precede any work.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bids_app.cli import command, main
from bids_app.errors import EXIT_CODES, EXIT_OK

OPTIONS = sorted({opt for param in command.params for opt in param.opts if opt.startswith("-")})
OPTIONS += ["--help", "-h", "--version", "-v", "-vv", "-vvv", "--", "-", "--no-such-option"]
VALUES = st.one_of(
    st.sampled_from(["participant", "group", "subject", "01", "sub-01", "sub-0!1", "01,02",
                     "01 02", "", " ", "0", "-1", "4", "1.5", "16G", "16 GB", "-5M", "abc",
                     "cpu", "cuda", "auto", "tpu", "fmriprep=/nonexistent", "=", "x=",
                     "MNI152NLin2009cAsym", "é", "\x00", "--", "nan", "1e309"]),
    st.text(max_size=10),
    st.integers(-10, 10 ** 12).map(str),
)


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Paths the fuzzer may name: a BIDS-looking folder, a file, an empty folder, nothing."""
    root = tmp_path_factory.mktemp("cli_fuzz")
    bids = root / "bids"
    (bids / "sub-01" / "func").mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "fuzz", "BIDSVersion": "1.10.0"}))
    (root / "file.txt").write_text("not a folder")
    (root / "empty").mkdir()
    (root / "filter.json").write_text('{"bold": {"run": [1]}}')
    (root / "bad.json").write_text("{oops")
    (root / "spec.toml").write_text("[encoding]\ninner_folds = 'x'\n")
    return [str(bids), str(root / "out"), str(root / "file.txt"), str(root / "empty"),
            str(root / "missing"), str(bids / "derivatives" / "x"), str(bids),
            str(root / "filter.json"), str(root / "bad.json"), str(root / "spec.toml")]


@pytest.fixture(scope="module")
def stub_levels(tmp_path_factory):
    """Replace the stages by stubs that record the options they were given.

    The fuzzer's relative paths (any token can become OUTPUT_DIR) land in a
    temporary folder.
    """
    import bids_app.run as run

    seen = []

    def stage(options, spec):
        seen.append(options)
        return EXIT_OK

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cli_fuzz_cwd"))
        patch.setattr(run, "run_participant_level", stage)
        patch.setattr(run, "run_group_level", stage)
        yield seen


def _argv(places):
    token = st.one_of(st.sampled_from(OPTIONS), VALUES, st.sampled_from(places))
    positional = st.tuples(st.sampled_from(places), st.sampled_from(places),
                           st.sampled_from(["participant", "group", "bogus"]))
    return st.one_of(
        st.lists(token, max_size=8),
        st.builds(lambda pos, rest, where: (list(rest[:where]) + list(pos) + list(rest[where:])),
                  positional, st.lists(token, max_size=6), st.integers(0, 6)),
    )


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue() + out.getvalue()


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_argv_gives_a_documented_code(places, stub_levels, data):
    argv = data.draw(_argv(places))
    code, text = _run(argv)
    assert code in EXIT_CODES, (argv, code, text)
    verbose = sum(a.count("v") for a in argv if a.startswith("-v") and set(a[1:]) == {"v"})
    verbose += argv.count("--verbose")
    assert "Traceback" not in text or verbose >= 1, (argv, text)  # -v shows tracebacks
    assert "internal error" not in text, (argv, text)
    if code != EXIT_OK:
        assert "brainenc: " in text or "Error" in text or "Usage" in text, (argv, text)


def test_stub_sees_parsed_options(places, stub_levels):
    """The stubs are reached with cleaned labels (the fuzzer exercises real parsing)."""
    code, text = _run([places[0], places[1], "participant", "--participant-label", "sub-01",
                       "02", "--nprocs", "2", "--mem", "4G"])
    assert code == EXIT_OK, text
    options = stub_levels[-1]
    assert options.participant_label == ["01", "02"]
    assert options.nprocs == 2 and options.mem_mb == 4096.0
