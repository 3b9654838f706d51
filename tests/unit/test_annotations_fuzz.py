"""Malformed annotation files raise the project's DatasetError, nothing else, and never hang."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bids_app.errors import DatasetError
from bids_app.io.stimuli import read_annotation, resolve_under
from tests.helpers.stimuli import textgrid_text

# no per-example deadline (the machine may be loaded); the module runs in about 30 s
FUZZ = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
VALID_GRID = textgrid_text({"words": [(0.0, 0.4, "HELLO / 1.1"), (0.4, 0.5, "sp"),
                                      (0.5, 0.9, "WORLD / 1.2")]}).encode()
VALID_SHORT = textgrid_text({"words": [(0.0, 0.4, "a"), (0.4, 0.9, "b")]}, short=True).encode()
VALID_JSON = (b'{"words": [{"word": "a", "case": "success", "start": 0.1, "end": 0.3}, '
              b'{"word": "b", "case": "not-found-in-audio"}]}')
VALID_CSV = b"a,a,0.1,0.3\nb,,,\nc,c,0.5,0.7\n"
VALID_TSV = b"onset\tduration\tword\n0.1\t0.2\ta\n0.4\t0.2\tb\n"


def _valid_mat() -> bytes:
    import numpy as np
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"word": np.array(["ab", "cd"], dtype=object),
                              "start": np.array([0.0, 1.0]), "end": np.array([0.5, 1.5])})
    return buffer.getvalue()


def _mutations(seed: bytes):
    """Valid files cut, spliced with random bytes, or with bytes flipped."""
    cut = st.integers(0, len(seed)).map(lambda k: seed[:k])
    splice = st.tuples(st.integers(0, len(seed)), st.binary(max_size=40)).map(
        lambda t: seed[:t[0]] + t[1] + seed[t[0]:])
    flips = st.lists(st.tuples(st.integers(0, max(len(seed) - 1, 0)), st.integers(0, 255)),
                     max_size=6).map(lambda fl: _flip(seed, fl))
    return st.one_of(cut, splice, flips, st.binary(max_size=200))


def _flip(seed: bytes, flips) -> bytes:
    data = bytearray(seed)
    for index, value in flips:
        if data:
            data[index % len(data)] = value
    return bytes(data)


def _check(tmp_path, name: str, data: bytes, **options) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        timings = read_annotation(path, **options)
    except DatasetError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert len(timings.words) == len(timings.onsets) == len(timings.offsets) > 0
    assert all(isinstance(w, str) and w for w in timings.words)


@FUZZ
@given(data=st.one_of(_mutations(VALID_GRID), _mutations(VALID_SHORT)))
def test_textgrid_fuzz(tmp_path, data):
    _check(tmp_path, "x.TextGrid", data)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list('"<>[]!=:0123456789.-e \n\tabcxyz')),
                    max_size=300))
def test_textgrid_text_fuzz(tmp_path, text):
    _check(tmp_path, "y.TextGrid", ('File type = "ooTextFile"\nObject class = "TextGrid"\n'
                                    + text).encode("utf-16"))


@FUZZ
@given(data=_mutations(VALID_JSON))
def test_gentle_json_fuzz(tmp_path, data):
    _check(tmp_path, "align.json", data)


@FUZZ
@given(data=st.one_of(_mutations(VALID_CSV), _mutations(VALID_TSV)))
def test_tables_fuzz(tmp_path, data):
    _check(tmp_path, "align.csv", data)
    _check(tmp_path, "w.tsv", data)


@settings(FUZZ, max_examples=10, deadline=None)
@given(data=_mutations(_valid_mat()))
def test_mat_fuzz(tmp_path, data):
    _check(tmp_path, "w.mat", data)


@settings(max_examples=80, deadline=1000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.sampled_from(list("ab./\\:~ \x00")), max_size=20))
def test_resolver_never_leaves_its_root(tmp_path, value):
    root = tmp_path / "stimuli"
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "a" / "b").write_text("x")
    try:
        found = resolve_under(root, value, what="stim_file")
    except DatasetError:
        return
    assert found.is_file() and found.resolve().is_relative_to(root.resolve())


@pytest.mark.parametrize("data", [b"\xff\xfe" + b"\x00\xd8" * 10, b"\x00" * 50, b""])
def test_undecodable_or_empty(tmp_path, data):
    path = tmp_path / "z.TextGrid"
    path.write_bytes(data)
    with pytest.raises(DatasetError):
        read_annotation(path)


@settings(FUZZ, max_examples=30)
@given(data=st.binary(max_size=120) | st.text(max_size=80).map(lambda t: t.encode("utf-8")))
def test_segmentation_and_dictionary_text_fuzz(tmp_path, data):
    from bids_app.io.stimuli import read_segmentation
    from bids_app.io.stimuli.segment import load_dictionary

    path = tmp_path / "seg.txt"
    path.write_bytes(data)
    for reader in (read_segmentation, load_dictionary):
        try:
            words = reader(path)
        except DatasetError:
            continue
        assert words and all(isinstance(w, str) and w for w in words)


@settings(FUZZ, max_examples=25)
@given(rows=st.lists(st.tuples(st.sampled_from(["0", "4.5", "x", "n/a", "", "-1", "1e400"]),
                               st.sampled_from(["a.TextGrid", "../a.tsv", "/abs.tsv", "n/a",
                                                "audio/s.wav", "b/../a.tsv", "nul\x00.tsv",
                                                "x.png", "c.unknown", ""])),
                     max_size=4))
def test_events_story_rows_fuzz(tmp_path, rows):
    from bids_app.io.annotations import StoryRegistry, annotate_run
    from bids_app.io.bids import BoldRun
    from bids_app.spec_inputs import AnnotationConfig

    (tmp_path / "stimuli").mkdir(exist_ok=True)
    (tmp_path / "stimuli" / "a.TextGrid").write_bytes(VALID_GRID)
    events = tmp_path / "run_events.tsv"
    events.write_text("onset\tduration\tstim_file\n" + "".join(
        f"{o}\t1\t{s}\n" for o, s in rows), encoding="utf-8")
    run = BoldRun(subject="01", session="", task="t", run="1", bold_file=tmp_path / "b.nii",
                  events_file=events, tr=2.0, n_volumes=10, entities={"task": "t"})
    try:
        table = annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path)
    except DatasetError:
        return
    assert set(table["word"]) == {"HELLO", "WORLD"}
