"""Scoring a run's queries, shared by the stages that evaluate:

- :func:`search_configurations`: every query searched in every configuration's saved index
  (the index's ranking; notebooks 04 and 07);
- the *detection gallery* (:func:`detection_setup`): the references minus a seeded share of
  the query sources (``detection.distractor_fraction``), whose transformed copies then become
  queries without a match, real negatives; methods are scored against it exactly (every
  query × every gallery item, :func:`configuration_matrices`), so the measures do not depend
  on the approximate index;
- :func:`report_methods`: the per-query, per-transform, overall and paired-test tables of a
  set of methods on that gallery (notebooks 04 and 08).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..comparison import bootstrap_methods, compare, evaluate, overall_with_ci, summarize
from ..detection import split_distractors, truth_matrix
from ..errors import StoryHashError
from ..fusion import fuse
from ..index import load_index, search
from ..metrics import latency_stats, query_rows
from ..report import write_table
from ..similarity import inner_products
from .fuse import Blocks
from .inputs import transform_order
from .records import Latency
from .run import Run


def search_configurations(
    run: Run, meta: pd.DataFrame, probe_blocks: dict, gallery_ids: list[str], gallery_blocks: dict
) -> tuple[pd.DataFrame, dict[str, Latency]]:
    """Every query of ``meta`` (query_id, reference_id, transform, family; rows in the order of
    ``probe_blocks``) in every configuration's saved index: per-query rows and latencies."""
    params = run.params
    truth = truth_matrix(list(meta["reference_id"]), gallery_ids)
    rows, latency = [], {}
    for configuration in params.evaluation.configurations:
        folder = run.path("indexes", configuration)
        index, ids, _ = load_index(folder)
        if ids != gallery_ids:
            raise StoryHashError(f"index {folder} is stale: rerun notebooks/03_index")
        gallery = fuse(gallery_blocks, configuration, params.evaluation.weights)
        probes = fuse(probe_blocks, configuration, params.evaluation.weights)
        result = search(index, probes, params.evaluation.k)
        found = query_rows(inner_products(probes, gallery), truth, ids, result.rows)
        rows.append(
            pd.concat(
                [
                    meta.reset_index(drop=True).assign(configuration=configuration),
                    found.drop(columns="distractor"),
                ],
                axis=1,
            )
        )
        latency[configuration] = Latency(**latency_stats(result.latency_ms))
    return pd.concat(rows, ignore_index=True), latency


@dataclass
class DetectionSetup:
    """Which references form the gallery, and every query's row and truth against it."""

    gallery: list[str]  # reference ids kept in the gallery
    held_out: list[str]  # query sources held out: their copies are distractor queries
    meta: pd.DataFrame  # query_id, reference_id, transform, family (one row per query)
    truth: np.ndarray  # queries × gallery, True at the true match


def detection_setup(run: Run, ref_ids: list[str], meta: pd.DataFrame) -> DetectionSetup:
    """Hold out a seeded share of the query sources; the rest of the references is the gallery."""
    settings = run.params.detection
    sources = sorted(set(meta["reference_id"]) & set(ref_ids))
    held = split_distractors(sources, settings.distractor_fraction, settings.seed)
    gallery = [r for r in ref_ids if r not in held]
    truth = truth_matrix(list(meta["reference_id"]), gallery)
    return DetectionSetup(gallery, held, meta.reset_index(drop=True), truth)


def configuration_matrices(run: Run, blocks: Blocks, gallery: list[str]) -> dict[str, np.ndarray]:
    """Exact similarities of every query to the gallery, per configuration."""
    params = run.params
    columns = [blocks.ref_ids.index(r) for r in gallery]
    out = {}
    for configuration in params.evaluation.configurations:
        refs = fuse(blocks.refs, configuration, params.evaluation.weights)[columns]
        out[configuration] = inner_products(
            fuse(blocks.queries, configuration, params.evaluation.weights), refs
        )
    return out


def report_methods(
    run: Run,
    setup: DetectionSetup,
    matrices: dict[str, np.ndarray],
    name: str,
    pairs: list[tuple[str, str]],
) -> tuple[dict, pd.DataFrame]:
    """Evaluate ``matrices`` and write ``tables/<name>_per_query``, ``<name>`` (per transform),
    ``<name>_overall`` (with intervals) and ``<name>_significance``; return the fields of a
    :class:`~storyhash_core.stages.records.DetectionRecord` and the per-transform summary."""
    settings = run.params.detection
    present = set(setup.meta["transform"])
    order = [t for t in transform_order(run) if t in present] or list(
        dict.fromkeys(setup.meta["transform"])
    )
    rows = evaluate(matrices, setup.truth, setup.gallery, setup.meta)
    summary = summarize(rows, matrices, setup.truth, order)
    samples = bootstrap_methods(rows, matrices, setup.truth, settings.bootstrap, settings.seed)
    overall = overall_with_ci(summary, samples)
    tests = compare(rows, samples, pairs)
    write_table(rows, run.path("tables", f"{name}_per_query"))
    write_table(summary, run.path("tables", name), ("csv", "md", "tex"))
    write_table(overall, run.path("tables", f"{name}_overall"), ("csv", "md", "tex"))
    write_table(tests, run.path("tables", f"{name}_significance"), ("csv", "md"))
    fields = {
        "gallery": len(setup.gallery),
        "held_out": setup.held_out,
        "queries": len(setup.meta),
        "distractor_queries": int((~setup.truth.any(axis=1)).sum()),
        "bootstrap": settings.bootstrap,
        "overall": overall.to_dict("records"),
        "significance": tests.to_dict("records"),
    }
    return fields, summary
