"""Run edges are trimmed by default, in seconds, so that the choice holds at any TR."""

from __future__ import annotations

import pytest

from bids_app.config import default_spec, spec_from_dict, trim_volumes
from bids_app.errors import UsageError


@pytest.mark.parametrize(("tr", "expected"), [(2.0, [10, 5]), (0.71, [29, 15]),
                                              (1.5, [14, 7]), (1.0, [20, 10])])
def test_default_trims_20_s_then_10_s_whatever_the_tr(tr, expected):
    """10 + 5 volumes at TR 2 s (Huth et al. 2016; LeBel et al. 2023), the same time at others."""
    spec = default_spec()
    assert spec.encoding.trim_edges == [] and spec.encoding.trim_seconds == [20.0, 10.0]
    assert trim_volumes(spec.encoding, tr) == expected
    start, end = expected
    assert start * tr >= 20.0 - 1e-6 and (start - 1) * tr < 20.0
    assert end * tr >= 10.0 - 1e-6 and (end - 1) * tr < 10.0


def test_volumes_given_by_the_user_win_and_zero_turns_trimming_off():
    spec = spec_from_dict({"encoding": {"trim_edges": [3, 1]}})
    assert trim_volumes(spec.encoding, 0.71) == [3, 1]
    assert trim_volumes({"trim_edges": [], "trim_seconds": [0, 0]}, 2.0) == [0, 0]
    assert trim_volumes(spec_from_dict({"encoding": {"trim_seconds": [6.0, 0.0]}}).encoding,
                        2.0) == [3, 0]


@pytest.mark.parametrize("value", [[20.0], [-1.0, 0.0], ["20", 10], [True, 1.0]])
def test_bad_trim_seconds_are_refused(value):
    # the typed check names the element ('trim_seconds[0]'), the range check the pair
    with pytest.raises(UsageError, match=r"'encoding\.trim_seconds(\[\d\])?' must be .*; got "):
        spec_from_dict({"encoding": {"trim_seconds": value}})


def test_bad_trim_edges_are_still_refused():
    with pytest.raises(UsageError, match=r"'encoding\.trim_edges' must be two non-negative "
                                         r"integers .* or empty; got \[1\]"):
        spec_from_dict({"encoding": {"trim_edges": [1]}})
