"""Workflow factories of the participant level (``init_*_wf``).

Subject-independent work (tuning, featurization) gets one node per extractor
in the top workflow, each followed by a ``ds_*`` :class:`StoreSink` publishing
what it staged in OUTPUT_DIR's shared stores; every participant's sub-workflow
reads the published entries.
Inside a participant's workflow, steps compute and render in their node folders
and ``ds_*`` sink nodes publish the rendered derivatives in OUTPUT_DIR; the
report's Methods text is generated from the steps (:mod:`.methods`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..config import trim_volumes
from ..encoding.design_checks import identical_by_construction
from ..featurization import nuisance_settings
from ..interfaces import (
    BuildDesigns,
    CompareVariants,
    DerivativesSink,
    FeaturizeStories,
    FitEncoding,
    ParticipantReport,
    PrepareBold,
    StoreSink,
    TuneModel,
    WriteCleanBold,
    WriteComparison,
    WriteVariant,
    write_settings,
)
from ..provenance import variant_sidecar_metadata
from .methods import methods_text


def _node_name(label: str) -> str:
    return label.replace("-", "_")


def _variant_metadata(variant, spec, seed: int, backend: str) -> dict:
    """Sidecar provenance of one variant (see :mod:`bids_app.provenance`)."""
    return variant_sidecar_metadata(variant, spec, seed, backend)


def write_section_files(spec, folder: str | Path) -> dict[str, str]:
    """Write each spec section the interfaces read as a settings file.

    Parameters
    ----------
    spec : ExperimentSpec
        The resolved spec.
    folder : path
        Where to write them (``<work>/brainenc_inputs/settings``).

    Returns
    -------
    dict
        Section name (``bold``, ``alignment``, ``encoding``, ``statistics``,
        ``features``, ``training``, ``nuisance``) → file. A file is rewritten only
        when its section changed, so finished steps that do not read the section
        are reused on reruns.
    """
    folder = Path(folder)
    files = {name: write_settings(folder / f"{name}.json",
                                  dataclasses.asdict(getattr(spec, name)))
             for name in ("bold", "alignment", "encoding", "statistics", "training")}
    # the flat [features] table, as written in a spec (its nested settings inline)
    files["features"] = write_settings(folder / "features.json", spec.features.to_dict())
    nuisance = nuisance_settings(spec)
    files["nuisance"] = write_settings(folder / "nuisance.json",
                                       nuisance if nuisance["bands"] else {})
    return files


def _sink(workflow, source, name: str, output_dir: str) -> pe.Node:
    """A :class:`DerivativesSink` publishing the files ``source`` rendered."""
    sink = pe.Node(DerivativesSink(output_dir=output_dir), name=name)
    workflow.connect(source, "staged_dir", sink, "staged_dir")
    workflow.connect(source, "out_files", sink, "in_files")
    return sink


def _store_sink(workflow, source, store: str, name: str, output_dir: str) -> pe.Node:
    """A :class:`StoreSink` publishing what ``source`` staged for ``store``."""
    sink = pe.Node(StoreSink(store=store, output_dir=output_dir), name=name)
    workflow.connect([(source, sink, [("staged_dir", "staged_dir"), ("out_files", "in_files"),
                                      ("entries", "entries")])])
    return sink


def init_brainenc_wf(*, plan, extractors, variants, spec, spec_file: str, output_dir: str,
                     bids_dir: str, work_dir: str, seed: int, device: str, backend: str,
                     omp_nthreads: int = 0, mem_gb_per_fit: float = 2.0) -> pe.Workflow:
    """Build the participant-level workflow.

    Parameters
    ----------
    plan : Plan
        Participants, runs and stories (see :func:`bids_app.plan.make_plan`).
    extractors, variants : list
        From :func:`bids_app.variants.plan_variants`.
    spec : ExperimentSpec
        The resolved experiment spec.
    spec_file : str
        Where the resolved spec was saved.
    output_dir, bids_dir, work_dir : str
        Folders.
    seed : int
        Random seed.
    device : {'cpu', 'cuda'}
        Torch device for tuning and featurization.
    backend : str
        himalaya backend for the encoding models.
    omp_nthreads : int
        Threads per encoding fit (0: library default).
    mem_gb_per_fit : float
        Memory estimate of one encoding fit (for MultiProc scheduling).

    Returns
    -------
    Workflow
        ``brainenc_wf``.
    """
    workflow = pe.Workflow(name="brainenc_wf", base_dir=work_dir)
    use_gpu = device == "cuda"
    settings_dir = Path(work_dir) / "brainenc_inputs" / "settings"
    sections = write_section_files(spec, settings_dir)
    feature_nodes, tune_nodes = {}, {}
    for extractor in extractors:
        name = _node_name(extractor.label)
        extractor_file = write_settings(settings_dir / f"extractor-{extractor.label}.json",
                                        json.loads(extractor.to_json()))
        tune = pe.Node(TuneModel(extractor_file=extractor_file, store_dir=output_dir,
                                 seed=seed, device=device, training_file=sections["training"],
                                 use_gpu=use_gpu, story_files=plan.story_files,
                                 features_file=sections["features"]),
                       name=f"tune_{name}")
        featurize = pe.Node(FeaturizeStories(
            extractor_file=extractor_file, story_files=plan.story_files,
            store_dir=output_dir, features_file=sections["features"],
            device=device, use_gpu=use_gpu), name=f"featurize_{name}")
        ds_model = _store_sink(workflow, tune, "models", f"ds_model_{name}", output_dir)
        ds_features = _store_sink(workflow, featurize, "features", f"ds_features_{name}",
                                  output_dir)
        workflow.connect(ds_model, "out_file", featurize, "tuning_json")
        tune_nodes[extractor.label] = (tune, ds_model)
        feature_nodes[extractor.label] = (featurize, ds_features)
    for subject_plan in plan.subjects:
        subject_wf = init_single_subject_wf(
            subject_plan=subject_plan, extractors=extractors, variants=variants, spec=spec,
            spec_file=spec_file, story_names=plan.story_names, output_dir=output_dir,
            story_files=plan.story_files,
            bids_dir=bids_dir, seed=seed, backend=backend, omp_nthreads=omp_nthreads,
            mem_gb_per_fit=mem_gb_per_fit, use_gpu=backend == "torch_cuda",
            sections=sections, settings_dir=str(settings_dir),
            upstream=[node for extractor in extractors
                      for node in (tune_nodes[extractor.label][0],
                                   feature_nodes[extractor.label][0])])
        for extractor in extractors:
            name = _node_name(extractor.label)
            workflow.connect([
                (feature_nodes[extractor.label][1], subject_wf,
                 [("out_files", f"inputnode.features_{name}")]),
                (tune_nodes[extractor.label][1], subject_wf,
                 [("out_file", f"inputnode.tuning_{name}")]),
            ])
    return workflow


def init_single_subject_wf(*, subject_plan, extractors, variants, spec, spec_file: str,
                           story_names: list[str], output_dir: str, bids_dir: str, seed: int,
                           backend: str, sections: dict[str, str], settings_dir: str,
                           omp_nthreads: int = 0, mem_gb_per_fit: float = 2.0,
                           use_gpu: bool = False, story_files: list[str] | None = None,
                           upstream=()) -> pe.Workflow:
    """Build the workflow of one participant: BOLD, designs, fits, derivatives, report.

    Compute and rendering steps work in their node folders; ``ds_*`` sinks
    (:class:`~bids_app.interfaces.DerivativesSink`) publish the rendered trees in
    OUTPUT_DIR, and the report reads what they published.

    Parameters
    ----------
    sections : dict
        Settings files of the spec's sections (:func:`write_section_files`).
    settings_dir : str
        Folder of the settings files (per-variant provenance goes there too).
    upstream : sequence of Node
        Tuning and featurization steps the participant reads (Methods text).

    Returns
    -------
    Workflow
        ``sub_<label>_wf`` with an ``inputnode`` holding ``features_<extractor>``
        and ``tuning_<extractor>`` fields and an ``outputnode`` with ``report``.
    """
    subject = subject_plan.subject
    workflow = pe.Workflow(name=f"sub_{_node_name(subject)}_wf")
    fields = [f"features_{_node_name(e.label)}" for e in extractors]
    fields += [f"tuning_{_node_name(e.label)}" for e in extractors]
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["report"]), name="outputnode")
    # volumes trimmed at run edges: trim_seconds at the shortest TR covers them in every run
    trs = [run.tr for run in subject_plan.runs]
    trim = (trim_volumes(spec.encoding, min(trs)) if trs
            else [int(t) for t in spec.encoding.trim_edges or (0, 0)])
    encoding_file = write_settings(
        Path(settings_dir) / f"encoding_sub-{subject}.json",
        {**dataclasses.asdict(spec.encoding), "trim_edges": trim})
    prepare = pe.Node(PrepareBold(runs_json=subject_plan.runs_json, bold_file=sections["bold"]),
                      name="prepare_bold", mem_gb=4.0)
    if spec.statistics.noise_ceiling:  # what the group level's noise ceiling reads
        clean = pe.Node(WriteCleanBold(
            bids_dir=bids_dir, runs_json=subject_plan.runs_json, bold_file=sections["bold"],
            outer_cv=spec.encoding.outer_cv, trim_edges=trim,
            clean_bold_dtype=spec.statistics.clean_bold_dtype,
            word_tables=subject_plan.word_tables), name="write_clean_bold", mem_gb=4.0)
        workflow.connect([(prepare, clean, [("bold_files", "bold_files"),
                                            ("mask_file", "mask_file")])])
        _sink(workflow, clean, "ds_clean_bold", output_dir)
    labels = {v.label for v in variants}
    pairs = [list(p) for p in spec.statistics.compare
             if len(p) == 2 and p[0] in labels and p[1] in labels]
    compared = {label for pair in pairs for label in pair}
    fits = {}
    nuisance = nuisance_settings(spec)
    identical = identical_by_construction(variants)
    published = pe.Node(niu.Merge(len(variants), ravel_inputs=True), name="merge_outputs")
    for index, variant in enumerate(variants, start=1):
        name = _node_name(variant.label)
        ex_name = _node_name(variant.extractor.label)
        bands = variant.bands()
        design = pe.Node(BuildDesigns(
            runs_json=subject_plan.runs_json, word_tables=subject_plan.word_tables,
            story_names=story_names, layer_position=variant.layer_position,
            alignment_file=sections["alignment"], bold_file=sections["bold"],
            band_positions=[position for _, position, _ in bands],
            band_names=[band for _, _, band in bands],
            band_sources=[source for source, _, _ in bands],
            story_files=list(story_files or [])), name=f"design_{name}")
        if nuisance["bands"]:
            design.inputs.nuisance_file = sections["nuisance"]
        # bands of other extractors: fitted by banded ridge whatever [encoding] banded says;
        # nuisance bands: fitted jointly (bids_app.unique_variance), and their unique variance
        fit = pe.Node(FitEncoding(
            encoding_file=encoding_file, statistics_file=sections["statistics"],
            variant=variant.label, seed=seed, mem_gb=float(mem_gb_per_fit),
            banded=bool(variant.with_extractors), nuisance_bands=list(nuisance["bands"]),
            save_predictions=variant.label in compared, backend=backend,
            omp_nthreads=omp_nthreads, use_gpu=use_gpu),
            name=f"fit_{name}", mem_gb=mem_gb_per_fit, n_procs=max(omp_nthreads, 1))
        metadata = _variant_metadata(variant, spec, seed, backend)
        if variant.label in identical:
            metadata["IdenticalTo"] = identical[variant.label]
        metadata_file = write_settings(
            Path(settings_dir) / f"variant-{variant.label}.json", metadata)
        write = pe.Node(WriteVariant(bids_dir=bids_dir, runs_json=subject_plan.runs_json,
                                     metadata_file=metadata_file), name=f"write_{name}")
        sink = _sink(workflow, write, f"ds_{name}", output_dir)
        if variant.with_extractors:  # every extractor's files, one after the other
            gather = pe.Node(niu.Merge(len(variant.sources)), name=f"features_{name}")
            workflow.connect([
                (inputnode, gather, [(f"features_{_node_name(source.label)}", f"in{k}")])
                for k, source in enumerate(variant.sources, start=1)])
            workflow.connect(gather, "out", design, "feature_files")
        else:
            workflow.connect(inputnode, f"features_{ex_name}", design, "feature_files")
        workflow.connect([
            (design, fit, [("design_files", "design_files")]),
            (prepare, fit, [("bold_files", "bold_files")]),
            (fit, write, [("result_file", "result_file")]),
            (prepare, write, [("mask_file", "mask_file")]),
            (inputnode, write, [(f"tuning_{ex_name}", "tuning_json")]),
            (sink, published, [("out_files", f"in{index}")]),
        ])
        fits[variant.label] = fit
    for pair in pairs:  # participant-level stat-rdiff maps of explicitly compared variants
        name = f"{_node_name(pair[0])}_{_node_name(pair[1])}"
        compare = pe.Node(CompareVariants(statistics_file=sections["statistics"], pair=pair),
                          name=f"compare_{name}")
        render = pe.Node(WriteComparison(bids_dir=bids_dir, runs_json=subject_plan.runs_json,
                                         pair=pair, statistics_file=sections["statistics"]),
                         name=f"write_comparison_{name}")
        workflow.connect([
            (fits[pair[0]], compare, [("result_file", "result_a")]),
            (fits[pair[1]], compare, [("result_file", "result_b")]),
            (compare, render, [("comparison_file", "comparison_file")]),
            (prepare, render, [("mask_file", "mask_file")]),
        ])
        _sink(workflow, render, f"ds_comparison_{name}", output_dir)
    report = pe.Node(ParticipantReport(output_dir=output_dir, subject=subject,
                                       runs_json=subject_plan.runs_json,
                                       word_tables=subject_plan.word_tables, spec_file=spec_file,
                                       variants=[v.label for v in variants],
                                       warnings=subject_plan.warnings),
                     name="report")
    ds_report = _sink(workflow, report, "ds_report", output_dir)
    workflow.connect([
        (prepare, report, [("info_file", "bold_info")]),
        (published, report, [("out", "derivative_files")]),
        (ds_report, outputnode, [("out_files", "report")]),
    ])
    # set last: the text describes every step connected above, in execution order
    report.inputs.methods = methods_text(workflow, upstream)
    return workflow
