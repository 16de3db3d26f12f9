"""Comparing methods on the same queries: retrieval, detection, uncertainty, paired tests.

A *method* is a queries × gallery similarity matrix (NaN where it gave no score). Every
method is judged on the same rows (queries, some of them distractors without a true match
in the gallery) and the same columns, so differences between methods are paired. Queries
come in clusters (the edits of one source video, :class:`~storyhash_core.significance.Clusters`),
the unit of every interval and test:

- :func:`evaluate`: per-query rows (:func:`~storyhash_core.metrics.query_rows`) of every method;
- :func:`summarize`: per method and transform, and overall: R@1/R@3, margins, μAP, ROC AUC,
  TPR at FPR 1 % / 0.1 %;
- :func:`bootstrap_methods` and :func:`overall_with_ci`: overall R@1 and μAP with 95 %
  intervals from the cluster bootstrap;
- :func:`compare`: for pairs of methods, the sign-flip test over clusters on R@1 and the
  paired bootstrap intervals of the R@1 and μAP differences, Bonferroni-corrected over the
  family's tests (pairs × the two measures).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics
from .detection import micro_ap_resampled
from .significance import (
    Clusters,
    PairedHits,
    bootstrap,
    corrected_level,
    paired_table,
    percentile_ci,
    resampled_mean,
)


def evaluate(
    matrices: dict[str, np.ndarray], truth: np.ndarray, gallery_ids: list[str], meta: pd.DataFrame
) -> pd.DataFrame:
    """One row per (method, query): ``meta``'s columns, ``method``, then the per-query rows."""
    parts = [
        pd.concat(
            [
                meta.reset_index(drop=True).assign(method=name),
                metrics.query_rows(sims, truth, gallery_ids),
            ],
            axis=1,
        )
        for name, sims in matrices.items()
    ]
    return pd.concat(parts, ignore_index=True)


def summarize(
    rows: pd.DataFrame, matrices: dict[str, np.ndarray], truth: np.ndarray, order: list[str]
) -> pd.DataFrame:
    """Per method × transform (in ``order``) and ``overall``: retrieval and detection measures."""
    return metrics.summarize(rows, "method", order, metrics.DETECTION_COLUMNS, matrices, truth)


def source_clusters(meta: pd.DataFrame, truth: np.ndarray) -> Clusters:
    """The queries' clusters: one per source video, stratified into sources in the gallery and
    held-out sources (whose copies are the distractor queries)."""
    return Clusters.of(list(meta["reference_id"]), list(~truth.any(axis=1)))


def bootstrap_methods(
    rows: pd.DataFrame,
    matrices: dict[str, np.ndarray],
    truth: np.ndarray,
    clusters: Clusters,
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    """R@1 and μAP of every method on the same resamples of ``clusters`` (columns
    ``<method>|r1``, ``<method>|uap``)."""
    stats: dict = {}
    matched = truth.any(axis=1)
    for name, sims in matrices.items():
        hits = (rows.loc[rows["method"] == name, "rank"] <= 1).to_numpy()
        stats[f"{name}|r1"] = lambda c, h=hits: 100.0 * resampled_mean(h, c, clusters, matched)
        stats[f"{name}|uap"] = lambda c, s=sims: micro_ap_resampled(s, truth, c, clusters)
    return bootstrap(stats, clusters, n_resamples, seed)


def _text(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0]:.3g}, {interval[1]:.3g}]"


def overall_with_ci(summary: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """The overall rows of ``summary`` with 95 % intervals of R@1 and μAP from ``samples``."""
    overall = (
        summary[summary["transform"] == "overall"].drop(columns="transform").reset_index(drop=True)
    )
    for stat, column in (("r1", "recall_at_1"), ("uap", "micro_ap")):
        texts = [
            _text(percentile_ci(samples[f"{m}|{stat}"]) if len(samples) else None)
            for m in overall["method"]
        ]
        overall.insert(overall.columns.get_loc(column) + 1, f"{column}_ci", texts)
    return overall


def compare(
    rows: pd.DataFrame,
    samples: pd.DataFrame,
    pairs: list[tuple[str, str]],
    clusters: Clusters,
    family: int | None = None,
) -> pd.DataFrame:
    """For each (A, B): :func:`~storyhash_core.significance.paired_table` on the queries with a
    true match (clustered by source), and the R@1 and μAP differences A − B with their paired
    bootstrap intervals. The family is ``family`` comparisons (default: the pairs), each
    tested on R@1 and, with bootstrap samples, on μAP (its interval excluding 0): p-values
    and intervals are corrected for all of those tests. Without samples the intervals are
    empty."""
    matched = ~rows.loc[rows["method"] == rows["method"].iloc[0], "distractor"].to_numpy(bool)
    sources = Clusters.of(clusters.codes[matched])
    hits = {
        m: (part["rank"] <= 1).to_numpy()[matched] for m, part in rows.groupby("method", sort=False)
    }
    n_tests = (family or len(pairs)) * (2 if len(samples) else 1)
    table = paired_table(
        [PairedHits({"a": a, "b": b}, hits[a], hits[b], sources) for a, b in pairs],
        ["a", "b"],
        n_tests,
    )
    level = corrected_level(n_tests)
    for stat in ("r1", "uap"):
        cis = [
            percentile_ci(samples[f"{a}|{stat}"] - samples[f"{b}|{stat}"], level)
            if len(samples)
            else None
            for a, b in pairs
        ]
        table[f"{stat}_diff_ci"] = [_text(ci) for ci in cis]
    table["uap_significant"] = [None if ci is None else bool(ci[0] > 0 or ci[1] < 0) for ci in cis]
    return table
