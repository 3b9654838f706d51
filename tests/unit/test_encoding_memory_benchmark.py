"""The whole-brain memory benchmark runs at its small size: streaming memory stays flat."""

import json

from tests.helpers.benchmarks import load_benchmark


def _load():
    return load_benchmark("encoding_memory")


def test_streamed_fit_memory_does_not_grow_with_voxels(tmp_path):
    bench = _load()
    out = tmp_path / "memory.json"
    assert bench.main(["--size", "small", "--threads", "1", "--workdir", str(tmp_path),
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    cfg = report["config"]
    rows = report["rows"]
    streaming = [r for r in rows if r["method"] == "brainenc streaming"]
    assert [r["voxels"] for r in streaming] == cfg["voxels"]
    folds = int(cfg["outer_cv"].split("-")[0])
    for row in rows:
        assert row["complete"] and row["peak_private_mib"] > 0
        assert row["batches_run"] == folds * -(-row["voxels"] // report["voxel_batch"])
    # the BOLD is 4 bytes x volumes per voxel; streaming keeps well under half of that
    bold_mib_per_1k = 4 * report["volumes"] * 1000 / 2 ** 20
    assert report["streaming_private_mib_per_1k_voxels"] < 0.4 * bold_mib_per_1k
    # the same fit with the BOLD in memory gives the same scores
    in_memory = [r for r in rows if r["method"] != "brainenc streaming"][0]
    assert in_memory["voxels"] == streaming[0]["voxels"]
    assert abs(in_memory["mean_r"] - streaming[0]["mean_r"]) < 1e-6
    assert not list(tmp_path.glob("tmp*")), "the runs written are removed"
