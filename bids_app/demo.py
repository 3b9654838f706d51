"""Write the embedded demo: a small BIDS dataset with a planted language signal.

``brainenc-demo-data DIR`` (or ``python -m bids_app.demo DIR``) writes 3
participants x 3 runs of story listening. Each run is one story (text from
:mod:`bids_app.demo_text`) with word-level ``events.tsv``. BOLD lives in
nilearn's MNI152 grey-matter mask at 4 mm. In *planted* voxels (spheres around
classic language regions) the signal is driven by the packaged MiniLM model's
features of the words - computed with the same defaults as brainenc's built-in
spec, convolved with the Glover HRF, through voxel weights that participants partly
share - plus AR(1) noise and slow drifts; all other
voxels hold noise and drifts only. The ground truth is saved under
``sourcedata/planted/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from stimuli_models.features import FeatureSettings, resolve_layers
from stimuli_models.models import DEFAULT_MODEL, hash_model_dir, resolve_model
from stimuli_models.story_features import Story, featurize_stories
from stimuli_models.tuning import get_method

from .alignment import align_run, frame_times
from .config import default_spec
from .demo_text import story_words

TR = 2.0
TASK = "listening"
STORIES = ("lighthouse", "market", "journey")
#: MNI coordinates (mm) of the planted regions (left/right temporal, left IFG, left AngG).
PLANTED_CENTRES = ((-56, -20, 4), (56, -20, 4), (-50, -44, 12), (-46, 20, 14), (-44, -62, 30))


def word_timings(words: list[str], rng: np.random.Generator, start: float):
    """Onsets and durations of spoken words (about 2.5 words per second)."""
    onsets, durations = [], []
    t = start
    for word in words:
        duration = 0.16 + 0.045 * len(word.strip(".,!?\"")) + rng.uniform(0.0, 0.06)
        onsets.append(round(t, 3))
        durations.append(round(duration, 3))
        t += duration + rng.uniform(0.03, 0.09)
        if word.rstrip("\"").endswith((".", "!", "?")):
            t += rng.uniform(0.3, 0.6)
    return np.array(onsets), np.array(durations)


def _planted_mask(mask: np.ndarray, affine: np.ndarray, radius: float = 13.0) -> np.ndarray:
    ijk = np.argwhere(mask)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    near = np.zeros(len(ijk), dtype=bool)
    for centre in PLANTED_CENTRES:
        near |= np.linalg.norm(xyz - np.asarray(centre), axis=1) <= radius
    planted = np.zeros(mask.shape, dtype=bool)
    planted[tuple(ijk[near].T)] = True
    return planted


def _features(stories: dict, work: Path) -> dict:
    """Default-spec features of each story (packaged model, its default layer)."""
    spec = default_spec()
    model_dir = resolve_model(DEFAULT_MODEL)
    settings = spec.features.settings()
    method = get_method("frozen")

    layers = resolve_layers(settings.layers, 6)
    settings = FeatureSettings(**{**settings.to_dict(), "layers": layers, "dtype": "float32"})
    paths = featurize_stories(
        [Story(name, words) for name, words in stories.items()],
        load=lambda: method.load_for_features(model_dir, None, device="cpu"),
        model_fingerprint=hash_model_dir(model_dir), settings=settings, cache_dir=work)
    return {name: np.load(path)[0] for name, path in zip(stories, paths, strict=False)}


def _ar1(rng, n_time, n_vox, phi=0.4):
    noise = rng.standard_normal((n_time, n_vox)).astype(np.float32)
    for t in range(1, n_time):
        noise[t] = phi * noise[t - 1] + np.sqrt(1 - phi ** 2) * noise[t]
    return noise


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def make_demo_dataset(out_dir: str | Path, *, n_subjects: int = 3, seed: int = 42,
                      words_per_story: int = 600, snr: float = 0.9) -> Path:
    """Write the demo BIDS dataset.

    Parameters
    ----------
    out_dir : path-like
        Destination (created; existing demo files are overwritten).
    n_subjects : int
        Participants (all hear the same stories).
    seed : int
        Seed of text, timing, weights and noise.
    words_per_story : int
        Approximate length of each story.
    snr : float
        Amplitude of the planted signal relative to the noise (standard deviations).

    Returns
    -------
    Path
        The dataset root.
    """
    import nibabel as nib
    from nilearn import datasets, image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gm = image.crop_img(datasets.load_mni152_gm_mask(resolution=4), pad=True)
    mask = np.asanyarray(gm.dataobj) > 0
    planted = _planted_mask(mask, gm.affine)
    stories = {name: story_words(name, words_per_story, seed) for name in STORIES}
    features = _features(stories, out / "sourcedata" / "planted" / "features")
    timings, designs, n_vols = {}, {}, {}
    for name, words in stories.items():
        onsets, durations = word_timings(words, rng, start=6.0)
        n_vols[name] = int(np.ceil((onsets[-1] + durations[-1] + 16.0) / TR))
        times = frame_times(n_vols[name], TR, reference=0.5 * TR)
        designs[name] = align_run(onsets, durations, features[name], times, TR)
        timings[name] = (onsets, durations)
    n_latent = 6
    projection = rng.standard_normal((designs[STORIES[0]].shape[1], n_latent))
    n_planted = int(planted.sum())
    flat_planted = planted[mask]
    baseline = (700 + 200 * rng.random(int(mask.sum()))).astype(np.float32)

    _write_dataset_files(out, n_subjects, seed, snr, n_planted)
    for name, (onsets, durations) in timings.items():
        _write_events(out, name, stories[name], onsets, durations, n_subjects)
    # voxel weights shared by every participant plus a participant's own part, so that the
    # stimulus-driven response is partly common (as the inter-subject noise ceiling assumes)
    common = np.random.default_rng([seed, 1]).standard_normal((n_latent, n_planted))
    for s in range(1, n_subjects + 1):
        sub = f"{s:02d}"
        own = rng.standard_normal((n_latent, n_planted))
        weights = (0.8 * common + 0.6 * own).astype(np.float32)
        for r, name in enumerate(STORIES, start=1):
            latent = designs[name] @ projection
            signal = latent @ weights
            signal = (signal - signal.mean(0)) / signal.std(0)
            n_time = n_vols[name]
            noise = _ar1(rng, n_time, int(mask.sum()))
            t = np.arange(n_time)[:, None] / n_time
            drift = (rng.standard_normal(int(mask.sum())) * t
                     + 0.5 * np.cos(2 * np.pi * t * rng.uniform(1, 3)))
            ts = noise + drift.astype(np.float32)
            ts[:, flat_planted] += snr * signal
            volume = np.zeros(mask.shape + (n_time,), dtype=np.int16)
            volume[mask] = np.round(baseline + 10.0 * ts).T.astype(np.int16)
            img = nib.Nifti1Image(volume, gm.affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = TR
            path = out / f"sub-{sub}" / "func" / f"sub-{sub}_task-{TASK}_run-{r}_bold.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(img, path)
    truth = out / "sourcedata" / "planted"
    truth.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(planted.astype(np.uint8), gm.affine), truth / "planted_mask.nii.gz")
    _write_json(truth / "planted.json", {
        "Description": "Voxels whose BOLD was driven by the default model's features",
        "Seed": seed, "SNR": snr, "NPlanted": n_planted, "NVoxels": int(mask.sum()),
        "CentresMNI": PLANTED_CENTRES, "RadiusMM": 13.0, "Layer": "default spec (middle)",
    })
    return out


def _write_dataset_files(out: Path, n_subjects: int, seed: int, snr: float,
                         n_planted: int) -> None:
    _write_json(out / "dataset_description.json", {
        "Name": "brainenc demo: story listening with a planted language signal",
        "BIDSVersion": "1.10.0", "DatasetType": "raw", "License": "CC0",
        "Authors": ["brainenc demo generator"],
        "GeneratedBy": [{"Name": "brainenc-demo-data",
                         "Description": f"seed {seed}, SNR {snr}, {n_planted} planted voxels"}],
    })
    (out / "README").write_text(
        "Synthetic story-listening fMRI dataset written by brainenc-demo-data.\n"
        "Word timings are in the events files; the planted ground truth is in "
        "sourcedata/planted/.\n", encoding="utf-8")
    (out / "CHANGES").write_text("1.0.0 2026-01-01\n  - Generated.\n", encoding="utf-8")
    lines = ["participant_id\tage\tsex"] + [
        f"sub-{s:02d}\t{20 + 3 * s}\t{'F' if s % 2 else 'M'}" for s in range(1, n_subjects + 1)]
    (out / "participants.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_json(out / "participants.json", {
        "age": {"Description": "Age of the participant", "Units": "year"},
        "sex": {"Description": "Sex of the participant",
                "Levels": {"F": "female", "M": "male"}},
    })
    _write_json(out / f"task-{TASK}_bold.json", {
        "TaskName": TASK, "RepetitionTime": TR, "SliceTiming": [0.0, TR / 2],
        "TaskDescription": "Passive listening to spoken stories.",
    })
    _write_json(out / f"task-{TASK}_events.json", {
        "word": {"Description": "The word heard (punctuation attached as written)"},
        "onset": {"Description": "Word onset from the start of the run", "Units": "s"},
        "duration": {"Description": "Spoken duration of the word", "Units": "s"},
    })


def _write_events(out: Path, story: str, words, onsets, durations, n_subjects: int) -> None:
    run = STORIES.index(story) + 1
    rows = ["onset\tduration\tword"] + [f"{o:.3f}\t{d:.3f}\t{w}"
                                        for o, d, w in zip(onsets, durations, words, strict=False)]
    for s in range(1, n_subjects + 1):
        path = out / f"sub-{s:02d}" / "func" / f"sub-{s:02d}_task-{TASK}_run-{run}_events.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line of the demo generator."""
    parser = argparse.ArgumentParser(prog="brainenc-demo-data", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="folder to write the BIDS dataset into")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--words", type=int, default=600, help="words per story")
    parser.add_argument("--snr", type=float, default=0.9)
    args = parser.parse_args(argv)
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = make_demo_dataset(args.out_dir, n_subjects=args.subjects, seed=args.seed,
                             words_per_story=args.words, snr=args.snr)
    print(f"demo dataset written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
