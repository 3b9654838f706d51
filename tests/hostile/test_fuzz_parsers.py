"""Fuzzing of every text parser: only the project's own errors come out, and fast.

Each parser gets random bytes and random text built from the characters and
tokens that matter to it (tabs, line ends, quotes, numbers, ``n/a``, BOMs ...).
It must either return a result of the documented shape or raise the project's
error class naming the file; any other exception, or an example slower than the
deadline (a hang), fails the test.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bids_app.errors import BrainencError
from stimuli_models.errors import StimuliModelsError

FUZZ = settings(max_examples=60, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

CELL = st.one_of(
    st.sampled_from(["0", "1.5", "-3", "1e3", "nan", "inf", "n/a", "", "NaN", "1,5", "word",
                     "\"quoted\"", "'", "é", "你好", "\x00", " ", "onset", "duration",
                     "text", "label", "start", "end"]),
    st.text(max_size=6),
)
SEP = st.sampled_from(["\t", "\t", ",", " ", ";"])
EOL = st.sampled_from(["\n", "\n", "\r\n", "\r", ""])


@st.composite
def table_bytes(draw, header=("onset", "duration", "word")) -> bytes:
    """Text tables: mostly tab-separated, with ragged rows, odd cells and encodings."""
    columns = list(draw(st.permutations(header))) + draw(st.lists(CELL, max_size=2))
    rows = [columns] + draw(st.lists(st.lists(CELL, min_size=0, max_size=len(columns) + 1),
                                     max_size=8))
    eol, sep = draw(EOL), draw(SEP)
    text = eol.join(sep.join(cells) for cells in rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@pytest.fixture(scope="module", autouse=True)
def _warm_up(tmp_path_factory):
    """Import what the parsers import lazily, so that the deadline measures parsing only."""
    from bids_app.config import load_spec

    load_spec(_write(tmp_path_factory.mktemp("warm"), "spec.toml", b""))
    for module in ("bids_app.io.stimuli", "stimuli_models.tasks.readers"):
        _expect_own_error(lambda name=module: importlib.import_module(name), ImportError)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _expect_own_error(call, *errors):
    """Run ``call``; the only exceptions allowed are the project's own."""
    try:
        return call()
    except errors:
        return None


# --------------------------------------------------------------------------- events TSV
@FUZZ
@given(data=st.one_of(table_bytes(), st.binary(max_size=300)))
def test_events_tsv(tmp_path, data):
    from bids_app.io.annotations import WORD_COLUMNS, read_tsv, read_word_events

    path = _write(tmp_path, "sub-01_task-x_events.tsv", data)
    table = _expect_own_error(lambda: read_tsv(path), BrainencError)
    if table is not None:
        assert all(isinstance(c, str) for c in table.columns)
    words = _expect_own_error(lambda: read_word_events(path), BrainencError)
    if words is not None:
        assert list(words.columns)[:len(WORD_COLUMNS)] == WORD_COLUMNS
        assert len(words) > 0
        assert words["onset"].notna().all()
        assert words["onset"].is_monotonic_increasing


# --------------------------------------------------------------------------- spec TOML
KEYS = st.sampled_from(["name", "source", "model", "method", "task", "layers", "alphas",
                        "inner_folds", "outer_cv", "backend", "delays", "method", "unit",
                        "pooling", "context_words", "fdr_alpha", "detrend", "type", "train",
                        "label", "settings", "allow_pickle", "trust_remote_code", "bogus"])
VALUES = st.recursive(
    st.one_of(st.booleans(), st.integers(-5, 10 ** 6), st.floats(allow_nan=True),
              st.text(max_size=8), st.sampled_from(["minilm", "frozen", "hrf", "auto", "0.5",
                                                    "/dev/zero", "../x", "~/m"])),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)
SECTIONS = st.sampled_from(["features", "annotations", "bold", "alignment", "encoding",
                            "statistics", "training", "inputs", "nonsense"])


@st.composite
def spec_documents(draw) -> bytes:
    import tomli_w

    document = {}
    for section in draw(st.lists(SECTIONS, max_size=3, unique=True)):
        document[section] = draw(st.dictionaries(KEYS, VALUES, max_size=3))
    for array in draw(st.lists(st.sampled_from(["models", "variants", "tasks"]), max_size=2,
                               unique=True)):
        document[array] = draw(st.lists(st.dictionaries(KEYS, VALUES, max_size=4), max_size=2))
    try:
        return tomli_w.dumps(document).encode()
    except (TypeError, ValueError):  # e.g. mixed-type arrays some TOML writers refuse
        return json.dumps(document, default=str).encode()


@FUZZ
@given(data=st.one_of(spec_documents(), st.binary(max_size=200),
                      st.text(max_size=200).map(str.encode)))
def test_spec_toml(tmp_path, data):
    from bids_app.config import ExperimentSpec, load_spec

    path = _write(tmp_path, "spec.toml", data)
    spec = _expect_own_error(lambda: load_spec(path), BrainencError)
    if spec is not None:
        assert isinstance(spec, ExperimentSpec) and spec.models and spec.variants


# --------------------------------------------------------------------------- annotations
TG_TOKENS = st.sampled_from([
    'File type = "ooTextFile"\n', 'Object class = "TextGrid"\n', "xmin = 0\n", "xmax = 3.5\n",
    "tiers? <exists>\n", "size = 1\n", "item []:\n", "item [1]:\n", 'class = "IntervalTier"\n',
    'name = "words"\n', "intervals: size = 2\n", "intervals [1]:\n", "xmin = 0.5\n",
    "xmax = -1\n", 'text = "hello"\n', 'text = ""\n', 'text = "a ""quoted"" word"\n',
    'text = "unterminated\n', "xmax = nan\n", "1e309\n", '"IntervalTier"\n', '"words"\n',
    "0\n", "2\n", "<exists>\n", "\x00", "\r\n",
])


@st.composite
def textgrids(draw) -> bytes:
    text = "".join(draw(st.lists(TG_TOKENS, max_size=30)))
    return text.encode(draw(st.sampled_from(["utf-8", "utf-16", "utf-8-sig"])))


def _reader(module: str, name: str):
    """The parser under test (an import error fails the test: every parser must exist)."""
    return getattr(importlib.import_module(module), name)


@FUZZ
@given(data=st.one_of(textgrids(), st.binary(max_size=200)))
def test_textgrid(tmp_path, data):
    read = _reader("bids_app.io.stimuli.textgrid", "read_textgrid")
    path = _write(tmp_path, "story.TextGrid", data)
    timings = _expect_own_error(lambda: read(path), BrainencError)
    if timings is not None:
        assert len(timings.words) == len(timings.onsets)


GENTLE_WORD = st.fixed_dictionaries(
    {"word": st.one_of(st.text(max_size=5), st.integers())},
    optional={"case": st.sampled_from(["success", "not-found-in-audio", "bogus", 3]),
              "start": st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.none()),
              "end": st.one_of(st.floats(allow_nan=True), st.none()),
              "alignedWord": st.text(max_size=4), "startOffset": st.integers(-2, 50),
              "endOffset": st.integers(-2, 50)})


@st.composite
def gentle_json(draw) -> bytes:
    document = draw(st.one_of(
        st.fixed_dictionaries({"transcript": st.text(max_size=40),
                               "words": st.lists(GENTLE_WORD, max_size=6)}),
        st.fixed_dictionaries({"words": st.one_of(st.integers(), st.text(max_size=3))}),
        st.lists(GENTLE_WORD, max_size=3)))
    return json.dumps(document).encode()


@FUZZ
@given(data=st.one_of(gentle_json(), st.binary(max_size=200)))
def test_gentle_json(tmp_path, data):
    read = _reader("bids_app.io.stimuli.gentle", "read_gentle_json")
    path = _write(tmp_path, "align.json", data)
    timings = _expect_own_error(lambda: read(path), BrainencError)
    if timings is not None:
        assert len(timings.words) == len(timings.onsets)


@FUZZ
@given(data=st.one_of(table_bytes(header=("word", "alignedWord", "start", "end")),
                      st.binary(max_size=200)))
def test_gentle_csv(tmp_path, data):
    read = _reader("bids_app.io.stimuli.gentle", "read_gentle_csv")
    path = _write(tmp_path, "align.csv", data)
    timings = _expect_own_error(lambda: read(path), BrainencError)
    if timings is not None:
        assert len(timings.words) == len(timings.onsets)


@FUZZ
@given(data=st.one_of(table_bytes(header=("start", "end", "word")), st.binary(max_size=200)))
def test_annotation_table(tmp_path, data):
    read = _reader("bids_app.io.stimuli", "read_annotation")
    path = _write(tmp_path, "story.tsv", data)
    timings = _expect_own_error(lambda: read(path), BrainencError)
    if timings is not None:
        assert len(timings.words) == len(timings.onsets)


# --------------------------------------------------------------------------- task data
CONLL_LINE = st.one_of(
    st.builds(lambda t, g: f"{t}\t{g}", st.text(max_size=5), st.sampled_from(
        ["O", "B-person", "I-person", "B-", "", "X"])),
    st.sampled_from(["", "-DOCSTART- O", "word", "a b c", "\t", " "]),
    st.text(max_size=8))


@st.composite
def conll(draw) -> bytes:
    return draw(EOL).join(draw(st.lists(CONLL_LINE, max_size=12))).encode(
        draw(st.sampled_from(["utf-8", "latin-1", "utf-16"])), errors="replace")


@FUZZ
@given(data=st.one_of(conll(), st.binary(max_size=200)))
def test_conll(tmp_path, data):
    read = _reader("stimuli_models.tasks.readers", "read_conll")
    path = _write(tmp_path, "train.conll", data)
    rows = _expect_own_error(lambda: read(path), StimuliModelsError)
    if rows is not None:
        assert isinstance(rows, list)


JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["text", "label", "sentence1",
                                                             "premise", "x"]), inner,
                                            max_size=3)), max_leaves=8)


@st.composite
def jsonl(draw) -> bytes:
    lines = [json.dumps(v) for v in draw(st.lists(JSON_VALUE, max_size=6))]
    lines += draw(st.lists(st.sampled_from(["{", "", "[1,", "{\"text\": \"a\"}", "null"]),
                           max_size=2))
    return draw(EOL).join(draw(st.permutations(lines))).encode()


@FUZZ
@given(data=st.one_of(jsonl(), st.binary(max_size=200)),
       columns=st.sampled_from([None, ["text", "label"], ["premise", "hypothesis", "label"]]))
def test_jsonl(tmp_path, data, columns):
    read = _reader("stimuli_models.tasks.readers", "read_table")
    path = _write(tmp_path, "train.jsonl", data)
    rows = _expect_own_error(lambda: read(path, "jsonl", columns), StimuliModelsError)
    if rows is not None:
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)


SQUAD = st.recursive(
    st.one_of(st.none(), st.integers(-3, 50), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["data", "paragraphs", "context", "qas", "question",
                                         "answers", "text", "answer_start", "id", "title"]),
                        inner, max_size=4)), max_leaves=12)


def _or_junk(strategy):
    return st.one_of(strategy, strategy, strategy, SQUAD)


@st.composite
def squad_documents(draw) -> bytes:
    answer = st.fixed_dictionaries({"text": _or_junk(st.text(max_size=5)),
                                    "answer_start": _or_junk(st.integers(-3, 40))})
    qa = st.fixed_dictionaries({"question": _or_junk(st.text(max_size=8)),
                                "id": st.text(max_size=3),
                                "answers": _or_junk(st.lists(answer, max_size=2))})
    paragraph = st.fixed_dictionaries({"context": _or_junk(st.text(max_size=30)),
                                       "qas": _or_junk(st.lists(qa, max_size=2))})
    article = st.fixed_dictionaries({"paragraphs": _or_junk(st.lists(paragraph, max_size=2))})
    return json.dumps({"data": draw(_or_junk(st.lists(article, max_size=2)))}).encode()


@FUZZ
@given(data=st.one_of(squad_documents(), SQUAD.map(lambda v: json.dumps(v).encode()),
                      st.binary(max_size=200)))
def test_squad_json(tmp_path, data):
    read = _reader("stimuli_models.tasks.readers", "read_squad")
    path = _write(tmp_path, "train.json", data)
    rows = _expect_own_error(lambda: read(path), StimuliModelsError)
    if rows is not None:
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
