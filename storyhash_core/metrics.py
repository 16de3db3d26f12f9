"""Retrieval measures: one evaluator of per-query rows, one summary of them (pure numpy / pandas).

:func:`query_rows` turns a queries × gallery similarity matrix (NaN where a method gave no
score) into one row per query: the rank of the true reference, the exact similarity to it,
the first-ranked and the most similar wrong reference, and the margin between them. The
rank is the exact one (ties count against the true reference), or the index's (the position
in its returned top-k) when the caller passes what the index retrieved. Queries
without a true reference in the gallery (distractors) have rank and ``sim_true`` NaN.

:func:`summarize` groups those rows per transform and overall (the paper's Table 1 shape),
with the detection measures of :mod:`storyhash_core.detection` when the matrices are given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .detection import Pairs, detection_summary

ROW_COLUMNS = [
    "rank",
    "top1_id",
    "top1_sim",
    "sim_true",
    "best_wrong_id",
    "best_wrong_sim",
    "margin",
    "distractor",
]
TABLE1_COLUMNS = [
    "queries",
    "recall_at_1",
    "recall_at_3",
    "recall_at_1_index",
    "recall_at_3_index",
    "sim_mean",
    "sim_min",
    "sim_max",
    "best_wrong_mean",
    "margin_mean",
    "margin_min",
]
DETECTION_COLUMNS = [
    "queries",
    "distractors",
    "recall_at_1",
    "recall_at_3",
    "sim_mean",
    "best_wrong_mean",
    "margin_mean",
]


def query_rows(
    sims: np.ndarray, truth: np.ndarray, gallery_ids: list[str], retrieved: np.ndarray | None = None
) -> pd.DataFrame:
    """Per-query rows (:data:`ROW_COLUMNS`) of a similarity matrix; ``truth`` marks the true
    reference of each query; ``retrieved`` (queries × k gallery rows, -1 = none) gives the
    index's ranking. Similarities are exact (every gallery item), whatever ranked them."""
    n = np.arange(len(sims))
    filled = np.where(np.isnan(sims), -np.inf, sims)
    has_true = truth.any(axis=1)
    sim_true = np.where(truth, filled, -np.inf).max(axis=1, initial=-np.inf)
    wrong = np.where(truth, -np.inf, filled)
    best_wrong = wrong.argmax(axis=1)
    if retrieved is None:
        rank = 1.0 + (wrong >= sim_true[:, None]).sum(axis=1)
        # first-ranked: the most similar, a wrong reference where it ties the true one (as the rank)
        tied = filled == filled.max(axis=1, keepdims=True)
        top1 = np.where(tied, np.where(truth, 1, 2), 0).argmax(axis=1)
    else:
        hit = (retrieved >= 0) & truth[n[:, None], np.maximum(retrieved, 0)]
        rank = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.nan)
        top1 = retrieved[:, 0]
    scored = np.isfinite(sim_true)
    top1_sim = np.where(top1 >= 0, filled[n, np.maximum(top1, 0)], -np.inf)
    best_wrong_sim = wrong[n, best_wrong]
    sim_true, top1_sim, best_wrong_sim = (
        np.where(np.isfinite(x), x, np.nan) for x in (sim_true, top1_sim, best_wrong_sim)
    )
    return pd.DataFrame(
        {
            "rank": np.where(has_true & scored, rank, np.nan),
            "top1_id": [
                gallery_ids[r] if s == s else "" for r, s in zip(top1, top1_sim, strict=True)
            ],
            "top1_sim": top1_sim,
            "sim_true": sim_true,
            "best_wrong_id": [
                gallery_ids[r] if s == s else ""
                for r, s in zip(best_wrong, best_wrong_sim, strict=True)
            ],
            "best_wrong_sim": best_wrong_sim,
            "margin": sim_true - best_wrong_sim,
            "distractor": ~has_true,
        }
    )


def _mean(values: pd.Series) -> float:
    return float(values.astype(np.float64).mean())


def retrieval_summary(rows: pd.DataFrame) -> dict[str, float]:
    """R@1/R@3 (%) and similarity statistics of a group of rows; recall and the similarity to
    the true reference are over the queries that have one (all, without a ``distractor`` column).
    With an ``index_rank`` column (the rank in what the index returned), its R@1/R@3 too.
    Means accumulate in float64 (the similarities are float32)."""
    distractor = rows["distractor"] if "distractor" in rows else np.zeros(len(rows), bool)
    matched = rows[~distractor]
    index_rank = matched["index_rank"] if "index_rank" in matched else None
    return {
        "queries": len(rows),
        "distractors": int(distractor.sum()),
        "recall_at_1": 100.0 * (matched["rank"] <= 1).mean(),
        "recall_at_3": 100.0 * (matched["rank"] <= 3).mean(),
        "recall_at_1_index": np.nan if index_rank is None else 100.0 * (index_rank <= 1).mean(),
        "recall_at_3_index": np.nan if index_rank is None else 100.0 * (index_rank <= 3).mean(),
        "sim_mean": _mean(matched["sim_true"]),
        "sim_min": matched["sim_true"].min(),
        "sim_max": matched["sim_true"].max(),
        "best_wrong_mean": _mean(rows["best_wrong_sim"]),
        "margin_mean": _mean(matched["margin"]),
        "margin_min": matched["margin"].min(),
    }


def summarize(
    rows: pd.DataFrame,
    key: str,
    order: list[str],
    columns: list[str],
    matrices: dict[str, np.ndarray] | None = None,
    truth: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per value of ``key`` (in order of appearance) × transform (in ``order``) and
    ``overall``: ``columns`` of :func:`retrieval_summary`, then, with ``matrices`` (one per
    value of ``key``, rows in the order of that value's rows) and ``truth``, the detection
    measures of its pairs."""
    out = []
    for name in dict.fromkeys(rows[key]):
        mine = rows[rows[key] == name].reset_index(drop=True)
        for transform in [*order, "overall"]:
            idx = (
                mine.index if transform == "overall" else mine.index[mine["transform"] == transform]
            )
            if len(idx):
                found = retrieval_summary(mine.loc[idx])
                entry = {key: name, "transform": transform} | {c: found[c] for c in columns}
                if matrices is not None:
                    entry |= detection_summary(Pairs.from_matrix(matrices[name][idx], truth[idx]))
                out.append(entry)
    return pd.DataFrame(out)


def latency_stats(latency_ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(latency_ms)),
        "p99_ms": float(np.percentile(latency_ms, 99)),
        "queries": int(len(latency_ms)),
    }


def flip_pivot(
    summary: pd.DataFrame,
    key: str,
    values: list[str],
    transforms: tuple[str, ...] = ("flip_h", "flip_v"),
) -> pd.DataFrame:
    """``values`` of ``summary`` under each of ``transforms`` side by side (columns
    ``<value>_<transform>``), one row per ``key`` in order of appearance; a transform the
    run did not have shows NaN."""
    keep = summary[summary["transform"].isin(transforms)]
    wide = keep.pivot(index=key, columns="transform", values=values)
    wide.columns = [f"{value}_{transform}" for value, transform in wide.columns]
    wide = wide.reindex(columns=[f"{v}_{t}" for v in values for t in transforms])
    return wide.loc[[k for k in dict.fromkeys(summary[key]) if k in wide.index]]
