"""Bands of design columns (e.g. language features and word rate), as column ranges."""

from __future__ import annotations


def band_slices(bands: dict, n_features: int) -> list[tuple[str, slice]]:
    """Check ``{name: [start, stop]}`` column ranges and return them in column order.

    Raises
    ------
    ValueError
        When bands overlap, leave columns out or exceed the design.
    """
    if not bands:
        raise ValueError("banded ridge needs at least one band")
    items = sorted(((str(k), slice(int(v[0]), int(v[1]))) for k, v in bands.items()),
                   key=lambda kv: kv[1].start)
    position = 0
    for name, sl in items:
        if sl.start != position or sl.stop <= sl.start:
            raise ValueError(f"band '{name}' covers columns [{sl.start}, {sl.stop}); bands must "
                             f"tile the {n_features} design columns in order without gaps")
        position = sl.stop
    if position != n_features:
        raise ValueError(f"bands cover {position} columns but the design has {n_features}")
    return items
