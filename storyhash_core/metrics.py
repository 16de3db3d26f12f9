"""Retrieval metrics on tidy per-query tables (pure numpy / pandas).

One row per (configuration, query): the rank the index gave the true reference, the
exact similarity to it, the most similar wrong reference and the margin between them.
Summaries group those rows, e.g. per transform (the paper's Table 1) and overall.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .similarity import inner_products


def query_rows(queries: np.ndarray, gallery: np.ndarray, gallery_ids: list[str], true_ids: list[str],
               retrieved_rows: np.ndarray) -> pd.DataFrame:
    """Per-query results; ``rank`` is 1-based in the retrieved list, NaN if absent.

    ``top1_sim``, ``sim_true``, ``best_wrong_sim`` and ``margin`` are exact (all gallery items),
    so they do not depend on the index being approximate, nor on the CPU (the index's own
    scores differ in their last bits between CPUs).
    """
    sims = inner_products(queries, gallery)
    position = {v: i for i, v in enumerate(gallery_ids)}
    true_rows = np.array([position[t] for t in true_ids])
    n = np.arange(len(queries))
    sim_true = sims[n, true_rows]
    wrong = sims.copy()
    wrong[n, true_rows] = -np.inf
    best_wrong = wrong.argmax(axis=1)
    hit = retrieved_rows == true_rows[:, None]
    rank = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.nan)
    top1 = retrieved_rows[:, 0]
    return pd.DataFrame({
        "rank": rank,
        "top1_id": [gallery_ids[r] if r >= 0 else "" for r in top1],
        "top1_sim": np.where(top1 >= 0, sims[n, np.maximum(top1, 0)], np.nan),
        "sim_true": sim_true,
        "best_wrong_id": [gallery_ids[r] for r in best_wrong],
        "best_wrong_sim": sims[n, best_wrong],
        "margin": sim_true - sims[n, best_wrong],
    })


def summarize(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Recall@1/@3 (%), similarity to the true reference, best wrong and margin, per group."""
    grouped = rows.groupby(by, sort=False)
    out = pd.DataFrame({
        "queries": grouped.size(),
        "recall_at_1": grouped["rank"].apply(lambda r: 100.0 * (r <= 1).mean()),
        "recall_at_3": grouped["rank"].apply(lambda r: 100.0 * (r <= 3).mean()),
        "sim_mean": grouped["sim_true"].mean(),
        "sim_min": grouped["sim_true"].min(),
        "sim_max": grouped["sim_true"].max(),
        "best_wrong_mean": grouped["best_wrong_sim"].mean(),
        "margin_mean": grouped["margin"].mean(),
        "margin_min": grouped["margin"].min(),
    })
    return out.reset_index()


def per_transform_table(rows: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Table 1 shape: one row per (configuration, transform) in ``order``, plus ``overall``."""
    table = summarize(rows, ["configuration", "transform"])
    overall = summarize(rows, ["configuration"]).assign(transform="overall")
    table = pd.concat([table, overall], ignore_index=True)
    position = {
        "configuration": {c: i for i, c in enumerate(rows["configuration"].unique())},
        "transform": {t: i for i, t in enumerate([*order, "overall"])},
    }
    table = table.sort_values(["configuration", "transform"], key=lambda col: col.map(position[col.name]))
    return table.reset_index(drop=True)


def latency_stats(latency_ms: np.ndarray) -> dict[str, float]:
    return {"median_ms": float(np.median(latency_ms)), "p99_ms": float(np.percentile(latency_ms, 99)),
            "queries": int(len(latency_ms))}
