"""Build participant and group reports from fabricated outputs (for report tests)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from tests.helpers.fake_outputs import TASK, VARIANTS, make_fake_outputs

REPORT_VARIANTS = ["minilmfrozenL3", "minilmfrozenL5", "minilmlorasstL3"]


def make_participant_report(root: Path, out: Path | None = None, subject: str = "01") -> Path:
    """Write ``sub-<subject>.html`` from fabricated maps, runs and word tables."""
    from bids_app.config import default_spec
    from bids_app.interfaces import FitEncoding, write_settings
    from bids_app.io.bids import BoldRun
    from bids_app.reports.participant import write_participant_report

    root = Path(root)
    if out is None:
        out = make_fake_outputs(root, n_subjects=1,
                                variants={k: VARIANTS[k] for k in REPORT_VARIANTS[:2]})
    rng = np.random.default_rng(0)
    runs, tables = [], []
    for index in range(1, 3):
        run = BoldRun(subject=subject, session="", task=TASK, run=str(index),
                      bold_file=root / f"sub-{subject}_task-{TASK}_run-{index}_bold.nii.gz",
                      events_file=None, tr=2.0, n_volumes=150)
        onsets = np.sort(rng.uniform(4, 290, 400))
        words = pd.DataFrame({"onset": onsets, "duration": 0.25,
                              "word": [f"w{i}" for i in range(400)],
                              "story": f"story{index}", "word_index": range(400)})
        path = root / f"words_run{index}.tsv"
        words.to_csv(path, sep="\t", index=False)
        runs.append(run)
        tables.append(str(path))
    info = root / "bold_info.json"
    info.write_text(json.dumps({"runs": [{"run": runs[0].name, "volumes": 150},
                                         {"run": runs[1].name, "volumes": 150,
                                          "bad_voxels": 12}],
                                "n_voxels": 28000, "n_bad_voxels_removed": 12}))
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / f"sub-{subject}_run.log").write_text(
        "12:00:00 [brainenc] INFO fitting\n12:00:01 [brainenc] WARNING 3 words fall after "
        "the last volume of run 2\n")
    func = out / f"sub-{subject}" / "func"
    outputs = {}
    for label in REPORT_VARIANTS[:2]:
        prefix = f"sub-{subject}_task-{TASK}_space-MNI152NLin2009cAsym"
        outputs[label] = {stat: str(func / f"{prefix}_stat-{stat}_desc-{label}_statmap.nii.gz")
                          for stat in ("r", "r2", "alpha")}
        outputs[label]["scores"] = str(func / f"{prefix}_desc-{label}_scores.tsv")
    spec = default_spec()
    settings = {name: write_settings(root / f"{name}.json", dataclasses.asdict(getattr(spec, name)))
                for name in ("encoding", "statistics")}
    methods = FitEncoding(encoding_file=settings["encoding"],
                          statistics_file=settings["statistics"],
                          variant=REPORT_VARIANTS[0]).methods()
    report = write_participant_report(str(out), subject, runs, tables, str(info), outputs,
                                      spec, ["run 2 has 4 dummy scans"], methods=methods)
    return Path(report)


def make_group_report(root: Path) -> Path:
    """Run the group stage on a small fabricated OUTPUT_DIR and return ``group.html``."""
    from bids_app.group.run import run_group

    out = make_fake_outputs(Path(root), n_subjects=3,
                            variants={k: VARIANTS[k] for k in REPORT_VARIANTS}, with_alpha=False)
    stats = SimpleNamespace(fdr_alpha=0.05, compare=[], atlas="", n_permutations=50,
                            top_percent=10.0)
    return Path(run_group(str(out), statistics=stats)["report"])
