"""Write the reduced version of an experiment spec that runs on a laptop in minutes.

``make paper-demo`` runs ``examples/paper_reproduction.toml`` this way: the
spec's variants (every tuning method) are kept, its first two tasks are
replaced by sample sets of the same task type written by
:mod:`stimuli_models.tasks.samples` (the real benchmarks it names are not
needed), training stops after a few steps, and every tuned model is read at the
last layer of ``[features] layers`` only (one encoding fit per tuned model and
participant: the fits are most of the time). The full version runs from the
same file unchanged::

    python -m bids_app.paper_demo examples/paper_reproduction.toml demo/paper --steps 10
    brainenc demo/bids demo/paper/out participant --config-file demo/paper/spec.toml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stimuli_models.errors import SettingsError
from stimuli_models.tasks import check_task_options
from stimuli_models.tasks.samples import write_sample_task

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: Options of a task entry that name where its data is (dropped for the sample set).
_DATA_KEYS = ("train", "dev", "format", "columns", "hub", "config", "path", "cache_dir",
              "allow_download", "revision", "train_split", "dev_split", "dev_fraction",
              "text_column", "text_pair_column", "label_column", "tokens_column",
              "tags_column", "token_index", "tag_index", "labels", "drop_labels")


def reduce_spec(spec: dict, out_dir: Path, *, steps: int = 10, n_tasks: int = 2,
                seed: int = 0, all_layers: bool = False) -> dict:
    """The reduced spec: sample-set tasks, variants of those tasks, ``steps`` training steps.

    Parameters
    ----------
    spec : dict
        The experiment spec as read from TOML.
    out_dir : Path
        Folder the sample sets are written to (``nlu/<task>/``).
    steps : int
        Training steps of every tuned variant.
    n_tasks : int
        Number of tasks kept (the first ones of the spec).
    seed : int
        Seed of the sample sets.
    all_layers : bool
        Keep every layer of ``[features] layers`` (default: the last one listed).

    Returns
    -------
    dict
        The reduced spec (TOML-ready).
    """
    reduced = {k: v for k, v in spec.items() if k not in ("tasks", "variants", "training")}
    tasks = []
    for entry in spec.get("tasks", [])[:n_tasks]:
        options = {k: v for k, v in entry.items() if k not in ("name", "type")}
        task_type = check_task_options(entry.get("type", ""), options)["type"]
        written = write_sample_task(task_type, out_dir / "nlu" / entry["name"], seed=seed)
        kept = {k: v for k, v in entry.items() if k not in _DATA_KEYS}
        tasks.append({**kept, **written})
    names = {t["name"] for t in tasks}
    reduced["tasks"] = tasks
    reduced["variants"] = [v for v in spec.get("variants", [])
                           if not v.get("task") or v["task"] in names]
    training = dict(spec.get("training", {}))
    training.update(max_steps=steps, eval_every=steps, epochs=0.0,
                    batch_size=min(int(training.get("batch_size", 16)), 16),
                    max_length=min(int(training.get("max_length", 128)), 64))
    reduced["training"] = training
    layers = spec.get("features", {}).get("layers")
    if isinstance(layers, list) and len(layers) > 1 and not all_layers:
        reduced["features"] = {**spec["features"], "layers": layers[-1:]}
    return reduced


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m bids_app.paper_demo SPEC OUT_DIR [--steps N]``."""
    import tomli_w

    parser = argparse.ArgumentParser(prog="python -m bids_app.paper_demo",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("spec", type=Path, help="the full experiment spec (TOML)")
    parser.add_argument("out_dir", type=Path, help="folder for spec.toml and the sample sets")
    parser.add_argument("--steps", type=int, default=10, help="training steps per variant")
    parser.add_argument("--tasks", type=int, default=2, help="tasks kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all-layers", action="store_true",
                        help="read every layer of [features] layers (default: the last one)")
    args = parser.parse_args(argv)
    try:
        spec = tomllib.loads(args.spec.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"paper_demo: error: cannot read the spec '{args.spec}' ({exc}).", file=sys.stderr)
        return 2
    if args.steps < 1 or args.tasks < 1:
        print("paper_demo: error: '--steps' and '--tasks' must be at least 1; got "
              f"{args.steps} and {args.tasks}.", file=sys.stderr)
        return 2

    out_dir = args.out_dir.absolute()
    try:
        reduced = reduce_spec(spec, out_dir, steps=args.steps, n_tasks=args.tasks,
                              seed=args.seed, all_layers=args.all_layers)
    except (SettingsError, ValueError) as exc:
        print(f"paper_demo: error: {exc}", file=sys.stderr)
        return 2
    for model in reduced.get("models", []):  # model folders relative to the full spec
        source = Path(str(model.get("source", ""))).expanduser()
        if not source.is_absolute() and (args.spec.parent / source).exists():
            model["source"] = str((args.spec.parent / source).resolve())
    target = out_dir / "spec.toml"
    target.write_text(f"# Reduced from {args.spec} by python -m bids_app.paper_demo\n"
                      + tomli_w.dumps(reduced), encoding="utf-8")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
