"""Defects of real TextGrids: repaired with a message naming file and line, or refused.

Each defect is tested on a minimal file written here, where the line it sits on
is known, and in strict mode (``[annotations] strict = true``), where the same
defect is an error naming the same line. Parse errors that are not known
defects name the line and what was found there.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bids_app.config import spec_from_dict
from bids_app.errors import DatasetError, UsageError
from bids_app.io.stimuli import read_annotation
from bids_app.io.stimuli.gentle import read_gentle_csv
from bids_app.io.stimuli.table import read_table
from bids_app.io.stimuli.textgrid import read_textgrid
from tests.helpers.stimuli import textgrid_text

WORDS = [(0.0, 0.5, ""), (0.5, 0.9, "ONE / 1.1"), (0.9, 1.4, "TWO / 1.2"),
         (1.4, 2.0, "THREE / 1.3"), (2.0, 2.6, "FOUR / 1.4"), (2.6, 3.0, "")]


def _lines(tiers=None, **kw) -> list[str]:
    return textgrid_text(tiers or {"words": WORDS}, **kw).split("\n")


def _line_of(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines, start=1) if needle in line)


def _write(tmp_path, lines, name="story.TextGrid", encoding="utf-8", newline="\n"):
    path = tmp_path / name
    path.write_bytes(newline.join(lines).encode(encoding))
    return path


def _check(path, line: int, pattern: str):
    """Read leniently (one repair naming file and line) and strictly (refused at that line)."""
    timings = read_textgrid(path)
    assert len(timings.repairs) == 1, timings.repairs
    message = timings.repairs[0]
    assert message.startswith(f"'{path}' line {line}: ")
    assert re.search(pattern, message), message
    with pytest.raises(DatasetError, match=rf"line {line}: .*annotations\.strict is true"):
        read_textgrid(path, strict=True)
    return timings


def test_clean_file_has_no_repairs(tmp_path):
    timings = read_textgrid(_write(tmp_path, _lines()), strict=True)
    assert timings.words == ["ONE", "TWO", "THREE", "FOUR"] and timings.repairs == []


def test_doubled_closing_quote_at_line_end(tmp_path):
    lines = _lines()
    line = _line_of(lines, '"TWO / 1.2"')
    lines[line - 1] = lines[line - 1].replace('"TWO / 1.2"', '"TWO / 1.2""')
    timings = _check(_write(tmp_path, lines), line, r"doubled closing quote; the stray quote "
                                                    r"was ignored")
    assert timings.words == ["ONE", "TWO", "THREE", "FOUR"]
    np.testing.assert_allclose(timings.onsets, [0.5, 0.9, 1.4, 2.0])
    assert timings.source_text[1] == "TWO / 1.2"


def test_doubled_quote_in_short_format(tmp_path):
    lines = _lines(short=True)
    line = _line_of(lines, '"THREE / 1.3"')
    lines[line - 1] += '"'
    timings = _check(_write(tmp_path, lines), line, "doubled closing quote")
    assert timings.words == ["ONE", "TWO", "THREE", "FOUR"]


def test_escaped_quotes_inside_a_label_are_not_a_defect(tmp_path):
    lines = textgrid_text({"words": [(0.0, 0.5, 'say "hi" now'), (0.5, 1.0, 'end"')]}).split("\n")
    timings = read_textgrid(_write(tmp_path, lines), strict=True)
    assert timings.words == ['say "hi" now', 'end"'] and timings.repairs == []


def test_overlapping_intervals_are_trimmed(tmp_path):
    items = [(0.5, 0.95, "ONE"), (0.9, 1.4, "TWO"), (1.4, 2.0, "THREE"), (1.98, 2.6, "FOUR")]
    lines = _lines({"words": items})
    first = _line_of(lines, "xmin = 0.5")
    second = _line_of(lines, "xmin = 1.4")
    timings = _check(_write(tmp_path, lines), first,
                     rf"2 word interval\(s\) of tier 'words' overlap the next word \(by up to 50 "
                     rf"ms; lines {first}, {second}\); each was trimmed")
    np.testing.assert_allclose(timings.offsets, [0.9, 1.4, 1.98, 2.6])
    np.testing.assert_allclose(timings.onsets, [0.5, 0.9, 1.4, 1.98])


def test_out_of_order_intervals_are_sorted(tmp_path):
    items = [(0.5, 0.9, "ONE"), (1.4, 2.0, "THREE"), (0.9, 1.4, "TWO"), (2.0, 2.6, "FOUR")]
    lines = _lines({"words": items})
    line = _line_of(lines, "xmin = 0.9")
    timings = _check(_write(tmp_path, lines), line,
                     r"1 word interval\(s\) of tier 'words' start before the previous word "
                     r"\(first: 'TWO' at 0\.9 s\); the words were sorted by start time")
    assert timings.words == ["ONE", "TWO", "THREE", "FOUR"]
    assert timings.source_index.tolist() == [0, 2, 1, 3]  # positions in the file


def test_interval_ending_before_its_start(tmp_path):
    items = [(0.5, 0.9, "ONE"), (0.9, 0.85, "TWO"), (1.4, 2.0, "THREE")]
    lines = _lines({"words": items})
    line = _line_of(lines, "xmin = 0.9")
    timings = _check(_write(tmp_path, lines), line, r"end before they start .* zero duration")
    assert timings.offsets[1] == pytest.approx(0.9)


def test_tier_xmax_beyond_the_files(tmp_path):
    lines = _lines()
    tier_line = next(i for i, line in enumerate(lines, start=1)
                     if line.strip() == "xmax = 3.0" and line.startswith("        "))
    lines[tier_line - 1] = "        xmax = 3.5"
    timings = _check(_write(tmp_path, lines), tier_line,
                     r"tier 'words' ends at 3\.5 s, after the file's xmax of 3 s; the tier's "
                     r"times were kept")
    assert len(timings) == 4


def test_utf8_byte_order_mark(tmp_path):
    path = _write(tmp_path, _lines(), encoding="utf-8-sig")
    assert len(_check(path, 1, r"byte-order mark \(BOM\).*ignored")) == 4


def test_utf16_from_praat_is_not_a_defect(tmp_path):
    timings = read_textgrid(_write(tmp_path, _lines(), encoding="utf-16"), strict=True)
    assert len(timings) == 4


def test_crlf_line_ends(tmp_path):
    path = _write(tmp_path, _lines(), newline="\r\n")
    timings = _check(path, 1, r"Windows \(CRLF\) line ends; they were read as plain line ends")
    np.testing.assert_allclose(timings.onsets, [0.5, 0.9, 1.4, 2.0])


def test_mixed_tabs_and_spaces(tmp_path):
    lines = _lines()
    line = _line_of(lines, '"THREE / 1.3"')
    lines[line - 1] = "\t" + lines[line - 1].lstrip()
    timings = _check(_write(tmp_path, lines), line, "indentation mixing tabs and spaces")
    assert timings.words == ["ONE", "TWO", "THREE", "FOUR"]


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda s: s.replace('text = "TWO / 1.2"', 'text = "TWO / 1.2" / x'),
     r"line {line}: unexpected '/' in 'text = \"TWO / 1\.2\" / x'"),
    (lambda s: s.replace('xmax = 1.4', 'xmax = "late"', 1),
     r"line {line}: found 'late' where an interval xmax was expected"),
    (lambda s: s.replace('text = "TWO / 1.2"', 'text = "TWO'),
     r"line {line}: .*never closed"),
])
def test_parse_errors_name_line_and_what_was_found(tmp_path, edit, pattern):
    lines = _lines()
    line = _line_of(lines, '"TWO / 1.2"') if "TWO" in pattern or "never" in pattern else \
        _line_of(lines, "xmax = 1.4")
    text = edit("\n".join(lines))
    path = tmp_path / "bad.TextGrid"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=f"'{re.escape(str(path))}' " + pattern.format(
            line=line)):
        read_textgrid(path)


def test_truncated_file_names_the_last_line(tmp_path):
    lines = _lines()[:20]
    path = _write(tmp_path, lines)
    with pytest.raises(DatasetError, match=r"ends \(line 2\d\) before .*truncated"):
        read_textgrid(path)


def test_strict_reaches_the_reader_through_the_spec(tmp_path):
    path = _write(tmp_path, _lines(), newline="\r\n")
    assert read_annotation(path).repairs
    with pytest.raises(DatasetError, match="annotations.strict is true"):
        read_annotation(path, strict=True)
    assert spec_from_dict({"annotations": {"strict": True}}).annotations.strict is True
    with pytest.raises(UsageError, match=r"'annotations\.strict' must be of type bool"):
        spec_from_dict({"annotations": {"strict": "yes"}})


def test_other_readers_name_the_line(tmp_path):
    csv_path = tmp_path / "align.csv"
    csv_path.write_text("One,one,0.5,0.9\n\nTwo,two,0.9,1.4\nThree,three,x,2.0\n",
                        encoding="utf-8")
    with pytest.raises(DatasetError, match=r"align\.csv' line 4 has a start/end that is not a "
                                           r"number \('x', '2\.0'\)"):
        read_gentle_csv(csv_path)
    csv_path.write_text("One,one,0.5,0.9\n,two,0.9,1.4\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2 is not 'word,alignedWord,start,end' "
                                           r"\(found ',two,0\.9,1\.4'\)"):
        read_gentle_csv(csv_path)
    info = tmp_path / "lppEN_word_information.csv"
    info.write_text("word,onset,offset,section\nthe,0.1,0.3,1\n\nlittle,0.3,abc,1\n",
                    encoding="utf-8")
    with pytest.raises(DatasetError, match=r"word_information\.csv' line 4 column 'offset' is "
                                           r"not a number \('abc'\)"):
        read_table(info)
    info.write_text("word,onset,offset,section\nthe,0.1,0.3,1\n\n\nprince,0.3,0.5\n",
                    encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 5 has 3 fields but the header has 4"):
        read_table(info)


def test_events_tsv_errors_name_the_line(tmp_path):
    from bids_app.io.annotations import read_word_events

    events = tmp_path / "sub-01_task-a_events.tsv"
    events.write_text("onset\tduration\tword\n0.5\t0.3\tthe\n\n1,5\t0.3\tprince\n",
                      encoding="utf-8")
    with pytest.raises(DatasetError, match=r"column 'onset' row 3 is not a number \('1,5'\) on "
                                           r"line 4; fix the value"):
        read_word_events(events)


# --- copies of the real Natural Stories TextGrids with defects injected ------------------------

def _real_copy(shared_data, tmp_path, number: int = 1):
    source = shared_data / "naturalstories" / "audio" / f"{number}_aligned.TextGrid"
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    return source, source.read_text(encoding="utf-8").split("\n")


def _block(lines: list[str], label: str) -> int:
    """0-based index of the ``intervals [k]:`` line of the word labelled ``label``."""
    text_line = next(i for i, line in enumerate(lines) if line.strip() == f'text = "{label}"')
    return text_line - 3


@pytest.mark.realdata
def test_real_textgrid_with_injected_defects(shared_data, tmp_path):
    source, lines = _real_copy(shared_data, tmp_path)
    clean = read_textgrid(source)
    # doubled closing quote on the label of 'PEOPLE'
    quote = next(i for i, line in enumerate(lines) if line.strip() == 'text = "PEOPLE / 1.232"')
    lines[quote] += '"'
    # two consecutive words swapped ('YOU' and 'WERE' blocks of 4 lines)
    you, were = _block(lines, "YOU / 1.2"), _block(lines, "WERE / 1.3")
    assert were == you + 4
    lines[you:you + 4], lines[were:were + 4] = lines[were:were + 4], lines[you:you + 4]
    # 'THE / 1.231' starts 20 ms before 'THAT / 1.230' ends
    the = _block(lines, "THE / 1.231")
    that = _block(lines, "THAT / 1.230")
    that_end = float(lines[that + 2].split("=")[1])
    lines[the + 1] = f"\t\t\txmin = {that_end - 0.02!r}"
    # the tier ends after the file; one line indented with spaces among tabs
    tier_xmax = next(i for i, line in enumerate(lines) if line.startswith("\t\txmax = "))
    lines[tier_xmax] = "\t\txmax = 306.0"
    spaces = quote + 2
    lines[spaces] = "      " + lines[spaces].lstrip("\t")
    path = tmp_path / source.name
    path.write_bytes(("\ufeff" + "\r\n".join(lines)).encode("utf-8"))

    timings = read_textgrid(path)
    assert timings.words == clean.words
    np.testing.assert_allclose(np.sort(timings.onsets), timings.onsets)  # time order
    moved = clean.source_text.index("THE / 1.231")
    np.testing.assert_allclose(np.delete(timings.onsets, moved),
                               np.delete(clean.onsets, moved), atol=1e-9)
    assert timings.offsets[moved - 1] == pytest.approx(that_end - 0.02)  # 'THAT' trimmed
    found = "\n".join(timings.repairs)
    for line, what in ((1, "byte-order mark"), (1, "CRLF"), (quote + 1, "doubled closing quote"),
                       (you + 6, "start before the previous word"),
                       (that + 2, "overlap the next word"),
                       (tier_xmax + 1, "ends at 306 s, after the file's xmax of 305.18 s"),
                       (spaces + 1, "indentation mixing tabs and spaces")):
        assert f"'{path}' line {line}: " in found and what in found, (line, what, found)
    with pytest.raises(DatasetError, match=r"line 1: a UTF-8 byte-order mark"):
        read_textgrid(path, strict=True)
    lines[spaces] = "\t\t\t" + lines[spaces].lstrip()
    path.write_text("\n".join(lines), encoding="utf-8")  # only the data defects left
    with pytest.raises(DatasetError, match=rf"line {quote + 1}: .*doubled closing quote"):
        read_textgrid(path, strict=True)


@pytest.mark.realdata
@pytest.mark.parametrize("number", range(1, 8))
def test_every_real_textgrid_reads_and_strict_agrees(shared_data, tmp_path, number):
    source, _ = _real_copy(shared_data, tmp_path, number)
    timings = read_textgrid(source)
    assert len(timings) > 900
    assert (np.diff(timings.onsets) >= 0).all()
    assert (timings.offsets[:-1] <= timings.onsets[1:] + 1e-9).all()  # no overlap left
    if timings.repairs:
        line = re.search(r"line (\d+)", timings.repairs[0]).group(1)
        with pytest.raises(DatasetError, match=rf"line {line}: "):
            read_textgrid(source, strict=True)
    else:
        assert len(read_textgrid(source, strict=True)) == len(timings)


@pytest.mark.realdata
def test_repairs_reach_warnings_sidecar_and_report(shared_data, tmp_path):
    import json

    from bids_app.config import default_spec
    from bids_app.io.annotations import StoryRegistry, annotate_run
    from bids_app.io.bids import BoldRun
    from bids_app.io.stimuli.tables import write_story_table
    from bids_app.reports.stimuli import stimuli_section
    from bids_app.spec_inputs import AnnotationConfig

    source, lines = _real_copy(shared_data, tmp_path, 6)
    stimuli = tmp_path / "bids" / "stimuli"
    stimuli.mkdir(parents=True)
    (stimuli / "story6.TextGrid").write_text("\n".join(lines), encoding="utf-8")
    func = tmp_path / "bids" / "sub-01" / "func"
    func.mkdir(parents=True)
    events = func / "sub-01_task-a_events.tsv"
    events.write_text("onset\tduration\ttrial_type\tstim_file\n4.0\t320\tstory\tstory6.TextGrid\n",
                      encoding="utf-8")
    run = BoldRun(subject="01", session="", task="a", run="", bold_file=func /
                  "sub-01_task-a_bold.nii.gz", events_file=events, tr=2.0, n_volumes=200,
                  entities={"subject": "01", "task": "a"})
    registry, warnings = StoryRegistry(), []
    annotate_run(run, registry, AnnotationConfig(), bids_dir=tmp_path / "bids",
                 warnings=warnings)
    repaired = [w for w in warnings if "story6.TextGrid' line 1956: 1 word interval(s) of tier "
                "'words' overlap the next word" in w]
    assert len(repaired) == 1
    out = tmp_path / "out"
    story = next(iter(registry.stories.values()))
    table = write_story_table(out, story)
    sidecar = json.loads(table.with_suffix(".json").read_text(encoding="utf-8"))
    assert repaired[0] in sidecar["Repairs"]
    words = tmp_path / "words.tsv"
    annotate_run(run, StoryRegistry(), AnnotationConfig(), bids_dir=tmp_path / "bids") \
        .to_csv(words, sep="\t", index=False)
    html = stimuli_section([run], [str(words)], default_spec(), output_dir=out)
    assert "Repaired while reading the annotation" in html and "line 1956" in html
    with pytest.raises(DatasetError, match="line 1960: .*annotations.strict is true"):
        annotate_run(run, StoryRegistry(), AnnotationConfig(strict=True),
                     bids_dir=tmp_path / "bids")


def test_events_word_without_onset_names_the_line(tmp_path):
    from bids_app.io.annotations import read_word_events

    events = tmp_path / "sub-01_task-a_events.tsv"
    events.write_text("onset\tduration\tword\n0.5\t0.3\tthe\n\n\nn/a\t0.3\tprince\n",
                      encoding="utf-8")
    with pytest.raises(DatasetError, match=r"has a word without an onset on line 5 \('prince'\)"):
        read_word_events(events)


def test_gentle_json_error_names_the_line(tmp_path):
    from bids_app.io.stimuli.gentle import read_gentle_json

    path = tmp_path / "align.json"
    path.write_text('{"words": [\n  {"word": "one", "start": 0.1, "end": 0.3},\n'
                    '  {"word": "two" "start": 0.4}\n]}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"align\.json' line 3 is not valid JSON \(Expecting "
                                           r"',' delimiter at column 18\)"):
        read_gentle_json(path)
