"""Workflow factories of the participant level (``init_*_wf``).

Subject-independent work (tuning, featurization) gets one node per extractor
in the top workflow; every participant's sub-workflow reads those nodes' outputs.
"""

from __future__ import annotations

import dataclasses
import json

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..config import trim_volumes
from ..encoding.design_checks import identical_by_construction
from ..featurization import nuisance_settings
from ..interfaces import (
    BuildDesigns,
    CompareVariants,
    FeaturizeStories,
    FitEncoding,
    ParticipantReport,
    PrepareBold,
    TuneModel,
    WriteCleanBold,
    WriteVariant,
)
from ..provenance import variant_sidecar_metadata


def _node_name(label: str) -> str:
    return label.replace("-", "_")


def _variant_metadata(variant, spec, seed: int, backend: str) -> dict:
    """Sidecar provenance of one variant (see :mod:`bids_app.provenance`)."""
    return variant_sidecar_metadata(variant, spec, seed, backend)


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
    feature_nodes, tune_nodes = {}, {}
    for extractor in extractors:
        name = _node_name(extractor.label)
        tune = pe.Node(TuneModel(extractor_json=extractor.to_json(), output_dir=output_dir,
                                 seed=seed, device=device,
                                 training=dataclasses.asdict(spec.training), use_gpu=use_gpu,
                                 story_files=plan.story_files,
                                 feature_settings=dataclasses.asdict(spec.features)),
                       name=f"tune_{name}")
        featurize = pe.Node(FeaturizeStories(
            extractor_json=extractor.to_json(), story_files=plan.story_files,
            output_dir=output_dir, feature_settings=dataclasses.asdict(spec.features),
            device=device, use_gpu=use_gpu), name=f"featurize_{name}")
        workflow.connect(tune, "tuning_json", featurize, "tuning_json")
        tune_nodes[extractor.label] = tune
        feature_nodes[extractor.label] = featurize
    for subject_plan in plan.subjects:
        subject_wf = init_single_subject_wf(
            subject_plan=subject_plan, extractors=extractors, variants=variants, spec=spec,
            spec_file=spec_file, story_names=plan.story_names, output_dir=output_dir,
            story_files=plan.story_files,
            bids_dir=bids_dir, seed=seed, backend=backend, omp_nthreads=omp_nthreads,
            mem_gb_per_fit=mem_gb_per_fit, use_gpu=backend == "torch_cuda")
        for extractor in extractors:
            name = _node_name(extractor.label)
            workflow.connect([
                (feature_nodes[extractor.label], subject_wf,
                 [("feature_files", f"inputnode.features_{name}")]),
                (tune_nodes[extractor.label], subject_wf,
                 [("tuning_json", f"inputnode.tuning_{name}")]),
            ])
    return workflow


def init_single_subject_wf(*, subject_plan, extractors, variants, spec, spec_file: str,
                           story_names: list[str], output_dir: str, bids_dir: str, seed: int,
                           backend: str, omp_nthreads: int = 0, mem_gb_per_fit: float = 2.0,
                           use_gpu: bool = False,
                           story_files: list[str] | None = None) -> pe.Workflow:
    """Build the workflow of one participant: BOLD, designs, fits, outputs, report.

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
    bold_spec = dataclasses.asdict(spec.bold)
    # volumes trimmed at run edges: trim_seconds at the shortest TR covers them in every run
    trim = trim_volumes(spec.encoding, min(run.tr for run in subject_plan.runs))
    prepare = pe.Node(PrepareBold(runs_json=subject_plan.runs_json, bold_spec=bold_spec),
                      name="prepare_bold", mem_gb=4.0)
    merge = pe.Node(niu.Merge(len(variants)), name="merge_outputs")
    if spec.statistics.noise_ceiling:  # what the group level's noise ceiling reads
        clean = pe.Node(WriteCleanBold(
            output_dir=output_dir, bids_dir=bids_dir, runs_json=subject_plan.runs_json,
            bold_spec=bold_spec,
            encoding={"outer_cv": spec.encoding.outer_cv, "trim_edges": trim},
            statistics={"noise_ceiling": True,
                        "clean_bold_dtype": spec.statistics.clean_bold_dtype},
            word_tables=subject_plan.word_tables), name="write_clean_bold", mem_gb=4.0)
        workflow.connect([(prepare, clean, [("bold_files", "bold_files"),
                                            ("mask_file", "mask_file")])])
    encoding = {**dataclasses.asdict(spec.encoding), "trim_edges": trim,
                "statistics": dataclasses.asdict(spec.statistics), "mem_gb": mem_gb_per_fit,
                "seed": seed}
    labels = {v.label for v in variants}
    pairs = [list(p) for p in spec.statistics.compare
             if len(p) == 2 and p[0] in labels and p[1] in labels]
    compared = {label for pair in pairs for label in pair}
    fits = {}
    nuisance = nuisance_settings(spec)
    identical = identical_by_construction(variants)
    for index, variant in enumerate(variants, start=1):
        name = _node_name(variant.label)
        ex_name = _node_name(variant.extractor.label)
        bands = variant.bands()
        design = pe.Node(BuildDesigns(
            runs_json=subject_plan.runs_json, word_tables=subject_plan.word_tables,
            story_names=story_names, layer_position=variant.layer_position,
            alignment=dataclasses.asdict(spec.alignment), bold_spec=bold_spec,
            band_positions=[position for _, position, _ in bands],
            band_names=[band for _, _, band in bands],
            band_sources=[source for source, _, _ in bands],
            nuisance=nuisance if nuisance["bands"] else {}, story_files=list(story_files or [])),
            name=f"design_{name}")
        # bands of other extractors: fitted by banded ridge whatever [encoding] banded says;
        # nuisance bands: fitted jointly (bids_app.unique_variance), and their unique variance
        banded = {"banded": True} if variant.with_extractors else {}
        if nuisance["bands"]:
            banded["nuisance_bands"] = list(nuisance["bands"])
        fit = pe.Node(FitEncoding(encoding={**encoding, **banded, "variant": variant.label,
                                            "save_predictions": variant.label in compared},
                                  backend=backend, omp_nthreads=omp_nthreads, use_gpu=use_gpu),
                      name=f"fit_{name}", mem_gb=mem_gb_per_fit, n_procs=max(omp_nthreads, 1))
        metadata = _variant_metadata(variant, spec, seed, backend)
        if variant.label in identical:
            metadata["IdenticalTo"] = identical[variant.label]
        write = pe.Node(WriteVariant(output_dir=output_dir, bids_dir=bids_dir,
                                     runs_json=subject_plan.runs_json,
                                     metadata=json.loads(json.dumps(metadata, default=str))),
                        name=f"write_{name}")
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
            (write, merge, [("outputs_json", f"in{index}")]),
        ])
        fits[variant.label] = fit
    for pair in pairs:  # participant-level stat-rdiff maps of explicitly compared variants
        compare = pe.Node(CompareVariants(output_dir=output_dir, bids_dir=bids_dir,
                                          runs_json=subject_plan.runs_json, pair=pair,
                                          statistics=dataclasses.asdict(spec.statistics)),
                          name=f"compare_{_node_name(pair[0])}_{_node_name(pair[1])}")
        workflow.connect([
            (fits[pair[0]], compare, [("result_file", "result_a")]),
            (fits[pair[1]], compare, [("result_file", "result_b")]),
            (prepare, compare, [("mask_file", "mask_file")]),
        ])
    report = pe.Node(ParticipantReport(output_dir=output_dir, subject=subject,
                                       runs_json=subject_plan.runs_json,
                                       word_tables=subject_plan.word_tables, spec_file=spec_file,
                                       warnings=subject_plan.warnings),
                     name="report")
    workflow.connect([
        (prepare, report, [("info_file", "bold_info")]),
        (merge, report, [("out", "variant_outputs")]),
        (report, outputnode, [("report", "report")]),
    ])
    return workflow
