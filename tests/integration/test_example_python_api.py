"""examples/encoding_in_python.py runs as a script on the demo and finds the planted signal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "encoding_in_python.py"


def test_example_runs_and_recovers_the_planted_voxels(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    assert summary["variants"] == ["minilmfrozenL1", "minilmfrozenL3"]
    assert summary["feature_shape"][0] == 2 and summary["feature_shape"][2] == 384
    for variant in summary["variants"]:
        assert summary["mean_r_planted"][variant] > summary["mean_r_other"][variant] + 0.2
        assert abs(summary["mean_r_other"][variant]) < 0.05
    assert summary["estimator"] == "EncodingJointRidgeCV"  # the CLI's fit of the word-rate band
    assert summary["loop_mean_r_planted"] > summary["loop_mean_r_other"] + 0.2
    figure = Path(summary["figure"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    assert "planted voxels" in done.stdout and "minilmfrozenL3" in done.stdout
