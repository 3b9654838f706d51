"""A tiny tuned design for integration tests: a learnable task file and its spec."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.nlu import make_examples

#: Variant lines of the tiny design, by method (``frozen`` and ``lora`` are always there).
_VARIANTS = {
    "frozen": '[[variants]]\nmodel = "tiny"\nmethod = "frozen"\n',
    "lora": '[[variants]]\nmodel = "tiny"\nmethod = "lora"\ntask = "synth"\n'
            "settings = {r = 4}\n",
    "prompt": '[[variants]]\nmodel = "tiny"\nmethod = "prompt"\ntask = "synth"\n'
              "settings = {num_virtual_tokens = 4}\n",
}


def write_sentiment_task(path: Path, n: int, *, seed: int = 0) -> Path:
    """Write ``n`` learnable sentence-classification examples as ``text<TAB>label`` lines."""
    rows = make_examples("sequence-classification", n, seed=seed)
    path.write_text("".join(f"{r['text']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    return path


def tiny_tuned_spec(model: str | Path, task: str | Path, sections: str, *,
                    methods: tuple[str, ...] = ("frozen", "lora")) -> str:
    """Spec text: the tiny model, the task file as task 'synth', one variant per method.

    Parameters
    ----------
    model : str or Path
        Folder of the tiny model.
    task : str or Path
        The task file (TSV ``text<TAB>label``), as the spec should name it.
    sections : str
        The spec's other tables (``[features]``, ``[training]``, ...), verbatim.
    methods : tuple of str
        Variants, among 'frozen', 'lora' (r = 4) and 'prompt' (4 virtual tokens).
    """
    head = (f'[[models]]\nname = "tiny"\nsource = "{model}"\n\n'
            f'[[tasks]]\nname = "synth"\ntype = "sequence-classification"\ntrain = "{task}"\n'
            'format = "tsv"\ncolumns = ["text", "label"]\n\n')
    return head + "\n".join(_VARIANTS[m] for m in methods) + "\n" + sections


def run_design(spec_file: Path, root: Path, *, subjects: int = 2, words: int = 200,
               nprocs: int = 2) -> tuple[Path, dict]:
    """Participant and group levels of a spec on a demo dataset written under ``root``.

    Returns
    -------
    out : Path
        OUTPUT_DIR.
    records : dict
        Folder name under ``models/`` -> its ``tuning.json`` (one per tuned model).
    """
    import json

    from bids_app.cli import main
    from bids_app.demo import make_demo_dataset

    bids = make_demo_dataset(root / "bids", n_subjects=subjects, seed=3, words_per_story=words)
    out, work = root / "out", root / "work"
    assert main([str(bids), str(out), "participant", "-w", str(work), "--config-file",
                 str(spec_file), "--nprocs", str(nprocs)]) == 0
    assert main([str(bids), str(out), "group", "-w", str(work)]) == 0
    return out, {p.parent.name: json.loads(p.read_text(encoding="utf-8"))
                 for p in out.glob("models/*/tuning.json")}
