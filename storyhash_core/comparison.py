"""Comparing methods on the same queries: retrieval, detection, uncertainty, paired tests.

A *method* is a queries × gallery similarity matrix (NaN where it gave no score). Every
method is judged on the same rows (queries, some of them distractors without a true match
in the gallery) and the same columns, so differences between methods are paired:

- :func:`evaluate`: per-query rows (rank, similarity to the true match, best wrong, margin)
  for every method;
- :func:`summarize`: per method and transform, and overall: R@1/R@3, margins, μAP, ROC AUC,
  TPR at FPR 1 % / 0.1 %;
- :func:`overall_with_ci`: overall R@1 and μAP with bootstrap 95 % intervals over queries;
- :func:`compare`: for pairs of methods, the McNemar test on R@1 and the paired bootstrap
  interval of the μAP difference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .detection import Pairs, detection_summary, matrix_rows, micro_ap_resampled
from .significance import bootstrap, mcnemar, percentile_ci, weighted_mean


def evaluate(matrices: dict[str, np.ndarray], truth: np.ndarray, meta: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, query): ``meta``'s columns plus :func:`matrix_rows`."""
    parts = [pd.concat([meta.reset_index(drop=True).assign(method=name), matrix_rows(sims, truth)], axis=1)
             for name, sims in matrices.items()]
    return pd.concat(parts, ignore_index=True)


def _group_summary(rows: pd.DataFrame, sims: np.ndarray, truth: np.ndarray) -> dict:
    matched = rows[~rows["distractor"]]
    out = {"queries": len(rows), "distractors": int(rows["distractor"].sum()),
           "recall_at_1": 100.0 * (matched["rank"] <= 1).mean(),
           "recall_at_3": 100.0 * (matched["rank"] <= 3).mean(),
           "sim_mean": matched["sim_true"].mean(), "best_wrong_mean": rows["best_wrong_sim"].mean(),
           "margin_mean": matched["margin"].mean()}
    return out | detection_summary(Pairs.from_matrix(sims, truth))


def summarize(rows: pd.DataFrame, matrices: dict[str, np.ndarray], truth: np.ndarray,
              order: list[str]) -> pd.DataFrame:
    """Per method × transform (in ``order``) and ``overall``: retrieval and detection measures."""
    out = []
    for name, sims in matrices.items():
        mine = rows[rows["method"] == name].reset_index(drop=True)
        for transform in [*order, "overall"]:
            idx = mine.index if transform == "overall" else mine.index[mine["transform"] == transform]
            if len(idx):
                out.append({"method": name, "transform": transform,
                            **_group_summary(mine.loc[idx], sims[idx], truth[idx])})
    return pd.DataFrame(out)


def _statistics(name: str, hits: np.ndarray, matched: np.ndarray, sims: np.ndarray, truth: np.ndarray) -> dict:
    return {f"{name}|r1": lambda counts: 100.0 * weighted_mean(hits[matched], counts[:, matched]),
            f"{name}|uap": lambda counts: micro_ap_resampled(sims, truth, counts)}


def bootstrap_methods(rows: pd.DataFrame, matrices: dict[str, np.ndarray], truth: np.ndarray,
                      n_resamples: int, seed: int) -> pd.DataFrame:
    """R@1 and μAP of every method on the same query resamples (columns ``<method>|r1``, ``|uap``)."""
    stats: dict = {}
    matched = truth.any(axis=1)
    for name, sims in matrices.items():
        hits = (rows.loc[rows["method"] == name, "rank"] <= 1).to_numpy()
        stats |= _statistics(name, hits, matched, sims, truth)
    return bootstrap(stats, len(truth), n_resamples, seed)


def overall_with_ci(summary: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """The overall rows of ``summary`` with 95 % intervals of R@1 and μAP from ``samples``."""
    overall = summary[summary["transform"] == "overall"].drop(columns="transform").reset_index(drop=True)
    for stat, col in (("r1", "recall_at_1"), ("uap", "micro_ap")):
        cis = [percentile_ci(samples[f"{m}|{stat}"]) if len(samples) else None for m in overall["method"]]
        overall.insert(overall.columns.get_loc(col) + 1, f"{col}_ci",
                       [f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "" for ci in cis])
    return overall


def compare(rows: pd.DataFrame, samples: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """For each (A, B): R@1 of both, McNemar on the queries with a true match, and the μAP
    difference with its paired bootstrap interval. Both are Bonferroni-corrected for the
    number of pairs: R@1 is ``significant`` when ``p × pairs < 5 %``, and the μAP interval has
    level ``1 − 5 % / pairs``. Without bootstrap samples the μAP columns are empty."""
    level = 1 - 0.05 / max(len(pairs), 1)
    out = []
    for a, b in pairs:
        ra, rb = (rows[(rows["method"] == m) & ~rows["distractor"]] for m in (a, b))
        hits_a, hits_b = (ra["rank"] <= 1).to_numpy(), (rb["rank"] <= 1).to_numpy()
        test = mcnemar(hits_a, hits_b)
        diff = samples[f"{a}|uap"] - samples[f"{b}|uap"] if len(samples) else pd.Series(dtype=float)
        low, high = percentile_ci(diff, level) if len(diff) else (np.nan, np.nan)
        out.append({"a": a, "b": b, "r1_a": 100 * hits_a.mean(), "r1_b": 100 * hits_b.mean(),
                    "only_a_correct": test["only_a"], "only_b_correct": test["only_b"],
                    "mcnemar_p": test["p_value"], "mcnemar_p_bonferroni": min(1.0, test["p_value"] * len(pairs)),
                    "r1_significant": test["p_value"] * len(pairs) < 0.05,
                    "uap_diff_ci": f"[{low:.3g}, {high:.3g}]" if low == low else "",
                    "uap_significant": bool(low > 0 or high < 0) if low == low else None})
    return pd.DataFrame(out)
