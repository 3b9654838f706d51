"""Run the participant steps on a synthetic dataset without a language model.

The steps the workflow chains (plan, prepare_bold, build_designs, fit_encoding,
outputs) are called one after the other; word features are random vectors, so
what is recovered is the word rate the synthetic datasets plant.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np


def auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` separating ``positives`` from the rest."""
    order = np.argsort(np.argsort(scores))
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((order[positives].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg))


def run_steps(bids: Path, spec, out: Path, work: Path, *, space: str | None = None,
              derivatives: dict | None = None) -> dict:
    """Plan, clean, align, fit and write one participant (sub-01, variant ``test``).

    Parameters
    ----------
    bids : Path
        Raw dataset.
    spec : Spec
        Experiment spec (its ``[inputs]`` and ``[bold]`` are used).
    out, work : Path
        OUTPUT_DIR and working directory.
    space : str, optional
        ``--space``.
    derivatives : dict, optional
        ``{name: path}`` of ``-d NAME=PATH``.

    Returns
    -------
    dict
        ``result`` (EncodingResult), ``written`` (output files, maps first), ``runs``,
        ``mask`` (mask file), ``info`` (bold_info.json content), ``bold`` (cleaned
        runs), ``designs`` (design files), ``runs_json``, ``word_tables`` and the
        ``encoding`` settings of the fit.
    """
    from bids_app.encoding.engine import EncodingResult
    from bids_app.io.bids import make_derivative_layouts, make_layout
    from bids_app.io.derivatives import update_descriptions, write_dataset_description
    from bids_app.outputs import write_mask, write_variant_outputs
    from bids_app.participant import build_designs, fit_encoding, load_runs, prepare_bold
    from bids_app.plan import make_plan

    layout = make_layout(bids)
    layouts = make_derivative_layouts(derivatives or {})
    plan = make_plan(layout, ["01"], spec, work_dir=work, output_dir=out, derivatives=layouts,
                     space=space, bids_dir=bids)
    assert not plan.failures, plan.failures
    subject = plan.subjects[0]
    bold_spec = dataclasses.asdict(spec.bold)
    mask, bold_files, info = prepare_bold(subject.runs_json, bold_spec, str(work / "bold"))
    rng = np.random.default_rng(0)
    features = []
    for name, story in zip(plan.story_names, plan.story_files, strict=True):
        n_words = len(json.loads(Path(story).read_text(encoding="utf-8"))["words"])
        path = work / f"{name}_features.npy"
        np.save(path, rng.normal(1.0, 1.0, (1, n_words, 6)).astype(np.float32))
        features.append(str(path))
    designs = build_designs(subject.runs_json, subject.word_tables, features, plan.story_names,
                            0, dataclasses.asdict(spec.alignment), bold_spec, str(work / "x"))
    from bids_app.config import trim_volumes

    encoding = {**dataclasses.asdict(spec.encoding), "alphas": [1.0, 10.0, 100.0, 1000.0],
                "inner_folds": 2,
                "trim_edges": trim_volumes(spec.encoding, min(r.tr for r in subject.runs))}
    result_file = fit_encoding(designs, bold_files, encoding, "numpy", str(work / "res.npz"))
    runs = load_runs(subject.runs_json)
    write_dataset_description(out, bids, {"Name": "synthetic stories"})
    update_descriptions(out, {"test": "random word features"})
    write_mask(out, runs, mask, bids)
    written = write_variant_outputs(str(out), str(bids), runs, result_file, mask,
                                    {"variant": "test"})
    return {"result": EncodingResult.load(result_file), "written": written, "runs": runs,
            "mask": mask, "info": json.loads(Path(info).read_text(encoding="utf-8")),
            "bold": bold_files, "designs": designs, "runs_json": subject.runs_json,
            "word_tables": subject.word_tables, "encoding": encoding}
