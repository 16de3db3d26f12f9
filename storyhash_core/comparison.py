"""Comparing methods on the same queries: retrieval, detection, uncertainty, paired tests.

A *method* is a queries × gallery similarity matrix (NaN where it gave no score). Every
method is judged on the same rows (queries, some of them distractors without a true match
in the gallery) and the same columns, so differences between methods are paired:

- :func:`evaluate`: per-query rows (:func:`~storyhash_core.metrics.query_rows`) of every method;
- :func:`summarize`: per method and transform, and overall: R@1/R@3, margins, μAP, ROC AUC,
  TPR at FPR 1 % / 0.1 %;
- :func:`overall_with_ci`: overall R@1 and μAP with bootstrap 95 % intervals over queries;
- :func:`compare`: for pairs of methods, the McNemar test on R@1 and the paired bootstrap
  interval of the μAP difference, both Bonferroni-corrected over the pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics
from .detection import micro_ap_resampled
from .significance import (
    PairedHits,
    bootstrap,
    corrected_level,
    mcnemar_table,
    percentile_ci,
    weighted_mean,
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


def bootstrap_methods(
    rows: pd.DataFrame,
    matrices: dict[str, np.ndarray],
    truth: np.ndarray,
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    """R@1 and μAP of every method on the same query resamples (columns ``<method>|r1``,
    ``<method>|uap``)."""
    stats: dict = {}
    matched = truth.any(axis=1)
    for name, sims in matrices.items():
        hits = (rows.loc[rows["method"] == name, "rank"] <= 1).to_numpy()
        stats[f"{name}|r1"] = lambda c, h=hits: 100.0 * weighted_mean(h[matched], c[:, matched])
        stats[f"{name}|uap"] = lambda c, s=sims: micro_ap_resampled(s, truth, c)
    return bootstrap(stats, len(truth), n_resamples, seed)


def overall_with_ci(summary: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """The overall rows of ``summary`` with 95 % intervals of R@1 and μAP from ``samples``."""
    overall = (
        summary[summary["transform"] == "overall"].drop(columns="transform").reset_index(drop=True)
    )
    for stat, column in (("r1", "recall_at_1"), ("uap", "micro_ap")):
        intervals = [
            percentile_ci(samples[f"{m}|{stat}"]) if len(samples) else None
            for m in overall["method"]
        ]
        texts = [f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "" for ci in intervals]
        overall.insert(overall.columns.get_loc(column) + 1, f"{column}_ci", texts)
    return overall


def compare(
    rows: pd.DataFrame, samples: pd.DataFrame, pairs: list[tuple[str, str]]
) -> pd.DataFrame:
    """For each (A, B): :func:`~storyhash_core.significance.mcnemar_table` on the queries with a
    true match, and the μAP difference with its paired bootstrap interval at the corrected
    level. Without bootstrap samples the μAP columns are empty."""
    matched = rows[~rows["distractor"]]
    hits = {m: (part["rank"] <= 1).to_numpy() for m, part in matched.groupby("method", sort=False)}
    table = mcnemar_table([PairedHits({"a": a, "b": b}, hits[a], hits[b]) for a, b in pairs])
    level = corrected_level(len(pairs))
    intervals, significant = [], []
    for a, b in pairs:
        low, high = (
            percentile_ci(samples[f"{a}|uap"] - samples[f"{b}|uap"], level)
            if len(samples)
            else (np.nan, np.nan)
        )
        intervals.append(f"[{low:.3g}, {high:.3g}]" if low == low else "")
        significant.append(bool(low > 0 or high < 0) if low == low else None)
    return table.assign(uap_diff_ci=intervals, uap_significant=significant) if len(table) else table
