"""``--dry-run``: every input checked, the plan and an estimate printed, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bids_app.errors import EXIT_DATASET, EXIT_NO_MATCH, EXIT_OK, EXIT_USAGE
from tests.helpers.tuned_spec import tiny_tuned_spec, write_sentiment_task


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert):
    from bids_app.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("dry")
    bids = make_demo_dataset(root / "bids", n_subjects=2, seed=1, words_per_story=100)
    write_sentiment_task(root / "sent.tsv", 40)
    spec = root / "spec.toml"
    spec.write_text(tiny_tuned_spec(tiny_bert, "sent.tsv", """
[training]
max_steps = 2
eval_every = 2
batch_size = 8

[features]
layers = [1.0]

[statistics]
heldout_permutations = 0
n_bootstrap = 0
"""), encoding="utf-8")
    return {"root": root, "bids": bids, "spec": spec}


def _main(setup, out, *extra):
    from bids_app.cli import main

    return main([str(setup["bids"]), str(out), "participant", "-w", str(setup["root"] / "work"),
                 "--config-file", str(setup["spec"]), "--nprocs", "1", *extra])


def test_plan_and_estimate_without_writing(setup, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _files(setup["root"])
    assert _main(setup, setup["root"] / "out", "--dry-run") == EXIT_OK
    text = capsys.readouterr().out
    assert _files(setup["root"]) == before  # neither OUTPUT_DIR nor the work dir appeared
    assert not any(tmp_path.iterdir())
    assert "sub-01: 3 runs" in text and "sub-02: 3 runs" in text
    assert re.search(r"tinylora\w*synth \[lora\]: to train on 'synth' \(\d+ train", text)
    assert "tinyfrozen [frozen]: pretrained, not trained; features 0/3 stories cached" in text
    for stage in ("tuning", "featurization", "encoding"):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(stage + ":"))
        assert re.search(r"= \d+(\.\d)? (s|min|h) \[(calibrated|recorded)", line), line
    assert "total: about" in text


def test_cached_models_and_features_are_reported(setup, capsys):
    out = setup["root"] / "out_cached"
    assert _main(setup, out) == EXIT_OK  # a real run fills the caches
    capsys.readouterr()
    models = sorted(p.name for p in (out / "models").iterdir() if p.is_dir())
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert _main(setup, out, "--dry-run") == EXIT_OK
    text = capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    assert "tuned model cached; features 3/3 stories cached" in text
    assert "tinyfrozen [frozen]: pretrained, not trained; features 3/3 stories cached" in text
    assert "tuning: nothing to train" in text
    assert "featurization: every story's features are cached" in text
    assert len(models) == 2
    from bids_app.cli import main

    assert main([str(setup["bids"]), str(out), "group", "--dry-run"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "Participants with outputs (2): sub-01, sub-02" in text
    assert not (out / "group").exists()
    # a changed training setting makes the tuned model stale: reported as to train again
    spec = setup["spec"].read_text(encoding="utf-8")
    setup["spec"].write_text(spec.replace("max_steps = 2", "max_steps = 3"), encoding="utf-8")
    try:
        assert _main(setup, out, "--dry-run") == EXIT_OK
    finally:
        setup["spec"].write_text(spec, encoding="utf-8")
    text = capsys.readouterr().out
    assert "to train on 'synth'" in text and "features 0/3 stories cached" in text
    assert re.search(r"tuning: 1 model\(s\), about \d+ step-equivalents x [\d.]+ s = .*"
                     r"\[recorded by 1 earlier tuning run", text)


def test_exit_codes_as_for_a_real_run(setup, capsys, tmp_path):
    out = tmp_path / "out"
    bad_spec = tmp_path / "bad.toml"
    bad_spec.write_text('[features]\nunit = "paragraph"\n', encoding="utf-8")
    from bids_app.cli import main

    code = main([str(setup["bids"]), str(out), "participant", "--config-file", str(bad_spec),
                 "--dry-run"])
    assert code == EXIT_USAGE and "'features.unit' must be one of" in capsys.readouterr().err
    assert _main(setup, out, "--dry-run", "--participant-label", "09") == EXIT_NO_MATCH
    assert "09" in capsys.readouterr().err
    task = setup["root"] / "sent.tsv"
    saved = task.read_bytes()
    task.unlink()
    try:
        code = _main(setup, out, "--dry-run")
    finally:
        task.write_bytes(saved)
    err = capsys.readouterr().err
    assert code in (EXIT_USAGE, EXIT_DATASET) and "sent.tsv" in err and "does not exist" in err
    assert not out.exists()
    assert main([str(setup["bids"]), str(out), "group", "--dry-run"]) == EXIT_NO_MATCH
    assert "run the participant level first" in capsys.readouterr().err
    code = main([str(tmp_path / "nowhere"), str(out), "participant", "--dry-run"])
    assert code == EXIT_USAGE and not out.exists()


def test_untrained_controls_are_planned_without_training_steps(setup, capsys, tmp_path):
    """A prompt variant's untrained control is listed as such and adds no tuning time."""
    from bids_app.cli import main

    spec = tmp_path / "prompt.toml"
    spec.write_text(tiny_tuned_spec(_model_source(setup), setup["root"] / "sent.tsv", "",
                                    methods=("frozen", "prompt")), encoding="utf-8")
    assert main([str(setup["bids"]), str(tmp_path / "out"), "participant", "--config-file",
                 str(spec), "--dry-run", "-w", str(tmp_path / "work")]) == EXIT_OK
    text = capsys.readouterr().out
    assert re.search(r"tinypromptnvt4untrained \[prompt\]: untrained control "
                     r"\(the same for every task, not trained\)", text)
    assert re.search(r"tinypromptnvt4synth \[prompt\]: to train on 'synth'", text)
    assert re.search(r"tuning: 1 model\(s\), about \d+ step-equivalents", text)


def _model_source(setup) -> str:
    """The tiny model folder named in the module's spec."""
    text = setup["spec"].read_text(encoding="utf-8")
    return re.search(r'source = "([^"]+)"', text).group(1)
