"""Synthetic stand-ins with the layout of public story-listening datasets.

Each stand-in reproduces a dataset's file names, folder layout, annotation
formats and timing metadata (TR, story onsets, volume counts, echoes), with
synthetic story text, word timings and BOLD that carries a planted signal in
known voxels (``sourcedata/planted/``). The example specs under ``examples/``
run on the real datasets and on these stand-ins alike::

    python -m bids_app.standins lebel /tmp/ds003020
    brainenc /tmp/ds003020 /tmp/out participant --config-file examples/lebel.toml

=================  ====================  ==========================================
name               dataset               reader exercised
=================  ====================  ==========================================
``narratives``     OpenNeuro ds002345    story rows of events.tsv + Gentle align.csv
``lebel``          OpenNeuro ds003020    runs named by story + TextGrids, no events
``lepetitprince``  OpenNeuro ds003643    sections as runs + TextGrids, multi-echo
=================  ====================  ==========================================
"""

from __future__ import annotations

import argparse
import sys

from .lebel import make_lebel
from .lepetitprince import make_lepetitprince
from .narratives import make_narratives

#: Stand-in generators by name.
STANDINS = {"narratives": make_narratives, "lebel": make_lebel,
            "lepetitprince": make_lepetitprince}

__all__ = ["STANDINS", "main", "make_lebel", "make_lepetitprince", "make_narratives"]


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m bids_app.standins NAME OUT_DIR [--scale S] [--seed N]``."""
    parser = argparse.ArgumentParser(prog="python -m bids_app.standins",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(STANDINS))
    parser.add_argument("out_dir", help="folder to write the dataset into")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the real story lengths (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0.0 < args.scale <= 1.0:
        parser.error(f"'--scale' must be in (0, 1]; got {args.scale}")
    path = STANDINS[args.name](args.out_dir, scale=args.scale, seed=args.seed)
    print(f"{args.name} stand-in written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
