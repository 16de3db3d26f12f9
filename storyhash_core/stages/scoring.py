"""Scoring a run's queries, shared by the stages that evaluate:

- :func:`search_configurations`: every query against every configuration's gallery: the
  exact rank (what the descriptors can do) and the rank in the saved index's results (what
  the paper's approximate index delivers; notebooks 04 and 07);
- the *detection gallery* (:func:`detection_setup`): the references minus a seeded share of
  the query sources (``detection.distractor_fraction``), whose transformed copies then become
  queries without a match, real negatives; methods are scored against it exactly (every
  query × every gallery item, :func:`configuration_matrices`, with the action scaler fitted
  on the gallery's references only), so the measures do not depend on the approximate index;
- :func:`report_methods`: the per-query, per-transform, overall and paired-test tables of a
  set of methods on that gallery, and the similarity matrices behind them (notebooks 04 and
  08); :func:`split_spread`: the same methods on ``detection.splits`` distractor splits, and
  the operating threshold chosen on half of the sources applied to the other half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..comparison import (
    bootstrap_methods,
    compare,
    evaluate,
    overall_with_ci,
    source_clusters,
    summarize,
)
from ..detection import Pairs, rates_at, split_distractors, threshold_at_fpr, truth_matrix
from ..errors import StoryHashError
from ..fusion import fuse
from ..index import load_index, search
from ..metrics import latency_stats, query_rows
from ..motion import MinMax
from ..report import write_table
from ..scores import Scores
from ..significance import Clusters, PairedHits, paired_table
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
        sims = inner_products(probes, gallery)
        found = query_rows(sims, truth, ids)
        found.insert(1, "index_rank", query_rows(sims, truth, ids, result.rows)["rank"])
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


def detection_setup(
    run: Run, ref_ids: list[str], meta: pd.DataFrame, seed: int | None = None
) -> DetectionSetup:
    """Hold out a seeded share of the query sources (``detection.seed`` unless ``seed`` is
    given); the rest of the references is the gallery."""
    settings = run.params.detection
    sources = sorted(set(meta["reference_id"]) & set(ref_ids))
    seed = settings.seed if seed is None else seed
    held = split_distractors(sources, settings.distractor_fraction, seed)
    gallery = [r for r in ref_ids if r not in held]
    truth = truth_matrix(list(meta["reference_id"]), gallery)
    return DetectionSetup(gallery, held, meta.reset_index(drop=True), truth)


def configuration_matrices(run: Run, blocks: Blocks, gallery: list[str]) -> dict[str, np.ndarray]:
    """Exact similarities of every query to the gallery, per configuration, the action block
    scaled with bounds fitted on the gallery's references (no held-out source leaks in)."""
    params = run.params
    columns = [blocks.ref_ids.index(r) for r in gallery]
    refs, queries = blocks.refs, blocks.queries
    if "action_raw" in refs:
        scaler = MinMax.fit(refs["action_raw"][columns])
        refs = refs | {"action": scaler.apply(refs["action_raw"])}
        queries = queries | {"action": scaler.apply(queries["action_raw"])}
    out = {}
    for configuration in params.evaluation.configurations:
        gallery_vectors = fuse(refs, configuration, params.evaluation.weights)[columns]
        out[configuration] = inner_products(
            fuse(queries, configuration, params.evaluation.weights), gallery_vectors
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
    ``<name>_overall`` (with intervals), ``<name>_significance`` (``pairs``: one family) and
    ``<name>_scores.npz``; return the fields of a
    :class:`~storyhash_core.stages.records.DetectionRecord` and the per-transform summary."""
    settings = run.params.detection
    present = set(setup.meta["transform"])
    order = [t for t in transform_order(run) if t in present] or list(
        dict.fromkeys(setup.meta["transform"])
    )
    rows = evaluate(matrices, setup.truth, setup.gallery, setup.meta)
    summary = summarize(rows, matrices, setup.truth, order)
    clusters = source_clusters(setup.meta, setup.truth)
    samples = bootstrap_methods(
        rows, matrices, setup.truth, clusters, settings.bootstrap, settings.seed
    )
    overall = overall_with_ci(summary, samples)
    tests = compare(rows, samples, pairs, clusters)
    write_table(rows, run.path("tables", f"{name}_per_query"))
    write_table(summary, run.path("tables", name), ("csv", "md", "tex"))
    write_table(overall, run.path("tables", f"{name}_overall"), ("csv", "md", "tex"))
    write_table(tests, run.path("tables", f"{name}_significance"), ("csv", "md"))
    save_scores(run, name, setup, matrices)
    fields = {
        "gallery": len(setup.gallery),
        "held_out": setup.held_out,
        "queries": len(setup.meta),
        "distractor_queries": int((~setup.truth.any(axis=1)).sum()),
        "sources": clusters.size,
        "bootstrap": settings.bootstrap,
        "seed": settings.seed,
        "splits": settings.splits,
        "overall": overall.to_dict("records"),
        "significance": tests.to_dict("records"),
    }
    return fields, summary


def save_scores(
    run: Run, name: str, setup: DetectionSetup, matrices: dict[str, np.ndarray]
) -> None:
    """The matrices behind ``tables/<name>*`` -> ``tables/<name>_scores.npz``."""
    queries, sources = list(setup.meta["query_id"]), list(setup.meta["reference_id"])
    Scores(queries, sources, setup.gallery, matrices).save(run.path("tables", f"{name}_scores.npz"))


SPLIT_MEASURES = ["recall_at_1", "micro_ap", "roc_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.001"]
TRANSFER_FPR = 0.01


def split_spread(
    run: Run,
    ref_ids: list[str],
    meta: pd.DataFrame,
    matrices_for: Callable[[list[str]], dict[str, np.ndarray]],
    name: str,
) -> pd.DataFrame:
    """The methods' overall measures on ``detection.splits`` distractor splits (seeds
    ``detection.seed`` on; ``matrices_for`` gives the methods' matrices against a gallery),
    with the FPR-1 % threshold transferred between halves of the sources
    (:func:`transferred_threshold`) -> ``tables/<name>_splits`` and the spread per method,
    ``tables/<name>_splits_spread``."""
    settings = run.params.detection
    parts = []
    for seed in range(settings.seed, settings.seed + settings.splits):
        setup = detection_setup(run, ref_ids, meta, seed)
        matrices = matrices_for(setup.gallery)
        rows = evaluate(matrices, setup.truth, setup.gallery, setup.meta)
        overall = summarize(rows, matrices, setup.truth, [])[["method", *SPLIT_MEASURES]]
        transfer = [transferred_threshold(m, setup, seed) for m in matrices.values()]
        parts.append(
            pd.concat([overall, pd.DataFrame(transfer)], axis=1).assign(
                split_seed=seed, held_out=" ".join(setup.held_out)
            )
        )
    table = pd.concat(parts, ignore_index=True)
    measures = [*SPLIT_MEASURES, "tpr_transferred_0.01", "fpr_transferred_0.01"]
    spread = table.groupby("method", sort=False)[measures].agg(["mean", "std", "min", "max"])
    spread.columns = [f"{m}_{stat}" for m, stat in spread.columns]
    write_table(table, run.path("tables", f"{name}_splits"))
    write_table(spread.reset_index(), run.path("tables", f"{name}_splits_spread"), ("csv", "md"))
    return spread.reset_index()


def transferred_threshold(sims: np.ndarray, setup: DetectionSetup, seed: int) -> dict[str, float]:
    """The operating threshold for FPR 1 % chosen on the queries of a seeded half of the
    sources (half of the gallery's sources and half of the held-out ones) and applied to the
    other half's queries, and back: the realised TPR and FPR (mean of the two directions;
    NaN when a half is empty)."""
    sources = setup.meta["reference_id"]
    held = set(setup.held_out)
    first_half = [
        s
        for part in (sorted(set(sources) - held), sorted(held & set(sources)))
        for s in split_distractors(part, 0.5, seed)
    ]
    first = np.isin(sources, first_half)
    if first.all() or not first.any():
        return {"tpr_transferred_0.01": np.nan, "fpr_transferred_0.01": np.nan}
    rates = []
    for fit, apply in ((first, ~first), (~first, first)):
        threshold = threshold_at_fpr(Pairs.from_matrix(sims[fit], setup.truth[fit]), TRANSFER_FPR)
        rates.append(rates_at(Pairs.from_matrix(sims[apply], setup.truth[apply]), threshold))
    tpr, fpr = np.mean(rates, axis=0)
    return {"tpr_transferred_0.01": float(tpr), "fpr_transferred_0.01": float(fpr)}


def paired_tests(
    rows: pd.DataFrame,
    pairs: list[tuple[str, str]],
    by: str,
    order: list | None = None,
    key: str = "configuration",
) -> pd.DataFrame:
    """Each pair (A, B) of values of ``key`` (configurations, or methods) on the same queries,
    per value of ``by`` (e.g. the angle or the transform, in ``order`` or sorted), one family:
    the paired R@1 test of :func:`~storyhash_core.significance.paired_table`, the queries
    clustered by source."""
    comparisons = []
    groups = dict(list(rows[rows[key].isin({m for pair in pairs for m in pair})].groupby(by)))
    for value in [v for v in order if v in groups] if order else groups:
        part = groups[value]
        for a, b in pairs:
            mine = part[part[key].isin([a, b])]
            hits = mine.assign(hit=mine["rank"] <= 1).pivot(
                index=["reference_id", "query_id"], columns=key, values="hit"
            )
            if {a, b} <= set(hits.columns):
                labels = {by: value, "a": a, "b": b, "queries": len(hits)}
                sources = Clusters.of(list(hits.index.get_level_values("reference_id")))
                comparisons.append(
                    PairedHits(labels, hits[a].to_numpy(bool), hits[b].to_numpy(bool), sources)
                )
    return paired_table(comparisons, [by, "a", "b", "queries"])
