"""Every example spec works from a clean clone: it names no file outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
QUOTED = re.compile(r'"([^"\n]*)"')


def _relative_paths(text: str) -> list[str]:
    """Quoted values that read as relative file paths (outside comments)."""
    found = []
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        found += [v for v in QUOTED.findall(code) if v.startswith(("../", "./"))]
    return found


def test_examples_are_found():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_names_no_file_outside_the_repository(spec):
    text = spec.read_text(encoding="utf-8")
    assert not [line for line in text.splitlines() if "shared/" in line.split("#", 1)[0]]
    for value in _relative_paths(text):
        target = (spec.parent / value).resolve()
        assert target.is_relative_to(ROOT), (spec.name, value)


def test_the_check_catches_a_path_outside(tmp_path):
    assert _relative_paths('train = "../../shared/data/x.txt"  # a comment "../y"') == [
        "../../shared/data/x.txt"]
    assert _relative_paths('# train = "../../x"') == []


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_the_spec_check(spec):
    from bids_app.config import load_spec

    loaded = load_spec(spec)
    assert loaded.variants or spec.name in ("default.toml", "annotations.toml",
                                            "fmriprep_confounds.toml", "local_model.toml")
