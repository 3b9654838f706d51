"""Paired group comparisons of variants (e.g. prompt-tuned vs frozen).

For each pair ``(a, b)`` and each subject with both maps, the difference of
Fisher-z r is tested across subjects (two-sided t and sign-flip permutation,
FDR). Pairs come from ``[statistics] compare`` in the experiment spec; with none,
every tuned variant is compared with the frozen variant of the same model and layer,
and every prompt-family variant with its untrained control (same virtual tokens,
not trained): the tuning effect without the shift the virtual tokens cause.
A pair whose variants are identical by construction (see :func:`identical_variants`)
is left out: its difference is zero by definition, not a result.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .methods import join_labels
from .one_sample import fisher_z, one_sample_test
from .variant_maps import GroupData, one_sample_maps, write_group_maps


def _method(summary: dict) -> str:
    return str(summary.get("metadata", {}).get("TuningMethod") or "")


def _model_layer(summary: dict) -> tuple:
    meta = summary.get("metadata", {})
    return (meta.get("ModelName") or meta.get("Model"), meta.get("Layer"))


def resolve_pairs(requested: list, summaries: list[dict]) -> list[tuple[str, str]]:
    """Choose the variant pairs to compare.

    Parameters
    ----------
    requested : list
        Pairs ``[a, b]`` (or strings ``"a-b"``) of variant labels; empty for the default.
    summaries : list of dict
        Group summaries (``variant`` and sidecar ``metadata``).

    Returns
    -------
    list of (str, str)
        Unique pairs ``(a, b)``: maps show ``a - b``.
    """
    labels = sorted({s["variant"] for s in summaries})
    pairs = []
    if requested:
        for item in requested:
            pair = item.split("-") if isinstance(item, str) else list(item)
            if len(pair) != 2:
                raise UsageError(f"'statistics.compare' entries must be pairs of variant labels "
                                 f"like [\"a\", \"b\"]; got {item!r}.")
            for label in pair:
                if label not in labels:
                    raise UsageError(
                        f"'statistics.compare' names variant '{label}', which has no participant "
                        f"results; must be one of {{{', '.join(labels)}}}.")
            pairs.append((pair[0], pair[1]))
    else:
        frozen = {}
        for summary in summaries:
            if _method(summary) == "frozen":
                frozen.setdefault(_model_layer(summary), summary["variant"])
        for summary in summaries:
            reference = frozen.get(_model_layer(summary))
            if _method(summary) not in ("", "frozen") and reference:
                pairs.append((summary["variant"], reference))
        controls = {_control_key(s): s["variant"] for s in summaries if _is_control(s)}
        for summary in summaries:  # a control set up without a task serves every task
            control = None if _is_control(summary) else (
                controls.get(_control_key(summary))
                or controls.get(_control_key(summary, any_task=True)))
            if control:
                pairs.append((summary["variant"], control))
    same = identical_variants(summaries)
    pairs = [(a, b) for a, b in pairs if same.get(a) != b and same.get(b) != a
             and not (a in same and b in same and same[a] == same[b])]
    return list(dict.fromkeys(pairs))


def identical_variants(summaries: list[dict]) -> dict[str, str]:
    """Variants whose features are identical to another's, by construction or in fact.

    A variant is identical to the one its sidecar names (``IdenticalTo``, set when
    the spec makes it so, e.g. a layer below the layers ``partial`` tunes), and to
    an earlier variant (frozen ones first) with the same ``FeatureDigest``.

    Returns
    -------
    dict
        Label -> label (or description) of the variant it duplicates.
    """
    out, first = {}, {}
    ordered = sorted(summaries, key=lambda s: (_method(s) != "frozen", s["variant"]))
    for summary in ordered:
        meta = summary.get("metadata", {})
        label = summary["variant"]
        if meta.get("IdenticalTo"):
            out[label] = str(meta["IdenticalTo"])
            continue
        digest = meta.get("FeatureDigest")
        if digest and first.get(digest, label) != label:
            out[label] = first[digest]
        elif digest:
            first[digest] = label
    return out


def _is_control(summary: dict) -> bool:
    settings = summary.get("metadata", {}).get("TuningSettings") or {}
    return isinstance(settings, dict) and bool(settings.get("untrained"))


def _control_key(summary: dict, *, any_task: bool = False) -> str:
    """Model, layer, method, task (None with ``any_task``) and settings but ``untrained``."""
    import json

    meta = summary.get("metadata", {})
    settings = {k: v for k, v in (meta.get("TuningSettings") or {}).items() if k != "untrained"}
    task = None if any_task else meta.get("TaskName")
    return json.dumps([_model_layer(summary), _method(summary), task, settings],
                      sort_keys=True, default=str)


def compare_pair(a, b, output_dir, *, fdr_alpha: float, n_permutations: int,
                 seed: int) -> dict | None:
    """Paired comparison maps of two :class:`~bids_app.group.run.GroupData`.

    Returns
    -------
    dict or None
        ``row`` (table row), ``maps``, ``label`` and ``methods`` (the test, from
        :meth:`~bids_app.group.one_sample.OneSampleResult.methods`); None when fewer than two
        subjects have both variants or the maps differ in geometry.
    """
    common = [s for s in a.subjects if s in b.subjects]
    if len(common) < 2 or a.values.shape[1] != b.values.shape[1]:
        return None
    ia = [a.subjects.index(s) for s in common]
    ib = [b.subjects.index(s) for s in common]
    valid = a.valid & b.valid
    diff_z = fisher_z(a.values[ia][:, valid]) - fisher_z(b.values[ib][:, valid])
    diff_r = (a.values[ia] - b.values[ib])[:, valid]
    result = one_sample_test(diff_z, two_sided=True, n_permutations=n_permutations, seed=seed)
    label = f"{a.variant}vs{b.variant}"
    maps = one_sample_maps(
        result, fdr_alpha, mean_name="rdiff", mean_values=diff_r.mean(axis=0),
        mean_description=f"Mean over participants of r({a.variant}) - r({b.variant}).",
        hypothesis=f"of Fisher-z r({a.variant}) - r({b.variant}) (H1: difference != 0)")
    for stat in ("p", "pperm", "pfwe"):
        if stat in maps:
            maps[stat] = (maps[stat][0], maps[stat][1].replace("One-sided", "Two-sided"))
    paired = GroupData(label, a.entities, a.kind, common, [a.paths[i] for i in ia],
                       a.values[ia], valid)
    written = write_group_maps(paired, maps, output_dir, {
        "desc": label, "VariantA": a.variant, "VariantB": b.variant, "FDRAlpha": fdr_alpha,
        "Permutations": result.n_permutations, "RandomSeed": seed})
    significant = result.q < fdr_alpha
    t = np.nan_to_num(result.t)
    per_subject = diff_r.mean(axis=1)
    row = {
        "variant_a": a.variant, "variant_b": b.variant, "task": a.entities["task"],
        "hemi": a.entities["hemi"], "n_subjects": len(common),
        "mean_rdiff": float(per_subject.mean()),
        "sd_rdiff": float(per_subject.std(ddof=1)),
        "subjects_a_better": int((per_subject > 0).sum()),
        "n_significant_a_gt_b": int((significant & (t > 0)).sum()),
        "n_significant_b_gt_a": int((significant & (t < 0)).sum()),
    }
    if result.q_perm is not None:
        row["n_significant_perm"] = int((result.q_perm < fdr_alpha).sum())
    return {"label": label, "row": row, "maps": written,
            "methods": result.methods("The differences")}


def compare_variants(pairs: list[tuple[str, str]], datasets: dict, output_dir, *,
                     fdr_alpha: float = 0.05, n_permutations: int = 1000,
                     seed: int = 0) -> list[dict]:
    """Run :func:`compare_pair` for each pair on every task/space/hemisphere both share."""
    out = []
    for first, second in pairs:
        for key, data in sorted(datasets.items()):
            if key[0] != first:
                continue
            other = datasets.get((second, *key[1:]))
            if other is None:
                continue
            result = compare_pair(data, other, output_dir, fdr_alpha=fdr_alpha,
                                  n_permutations=n_permutations, seed=seed)
            if result is not None:
                out.append(result)
    return out


def comparison_methods(comparisons: list[dict], *, requested: bool) -> str:
    """Methods sentences of the paired comparisons that ran ('' when none did).

    Parameters
    ----------
    comparisons : list of dict
        From :func:`compare_variants` (``row`` and ``methods`` of each pair).
    requested : bool
        True when the pairs came from ``statistics.compare``, False for the default pairs.

    Returns
    -------
    str
        Which pairs, how they were chosen, what was tested, and each distinct test
        (participants, sign patterns) with the pairs it served.
    """
    if not comparisons:
        return ""
    origin = ("named in statistics.compare" if requested else
              "chosen by default: each tuned variant against the frozen variant of the same "
              "model and layer, and each prompt-family variant against its untrained control")
    pairs = list(dict.fromkeys(f"{c['row']['variant_a']} minus {c['row']['variant_b']}"
                               for c in comparisons))
    text = (f"Paired comparisons of variants ({join_labels(pairs)}; {origin}) tested each "
            "participant's difference of Fisher-z r between the two variants, on the elements "
            "analysed in both.")
    tests: dict[str, list] = {}
    for comparison in comparisons:
        row = comparison["row"]
        pair = f"{row['variant_a']} minus {row['variant_b']}"
        tests.setdefault(comparison["methods"], [])
        if pair not in tests[comparison["methods"]]:
            tests[comparison["methods"]].append(pair)
    for sentence, served in tests.items():
        text += " " + (sentence if len(tests) == 1 else f"For {join_labels(served)}: {sentence}")
    return text
