"""Uncertainty and paired tests for statements like "A beats B" on the same queries.

- :func:`bootstrap`: resample the queries with replacement (one seeded set of resamples
  shared by every statistic, so differences between methods are paired) and return the
  statistic of each resample; :func:`percentile_ci` turns those into a 95 % interval. A
  resample is given to the statistics as how often it draws each item (a row of counts),
  so a statistic computes all resamples at once (e.g.
  :func:`~storyhash_core.detection.micro_ap_resampled`).
- :func:`mcnemar`: the exact McNemar test on two methods' per-query hits (R@1): only the
  queries where they disagree count, and under "no difference" each disagreement is a
  fair coin; :func:`mcnemar_table` runs it for every comparison of a table.
- One correction rule for every table of tests: Bonferroni over the table's rows
  (:func:`bonferroni`; an interval of a table of *m* comparisons has level 1 − α/m,
  :func:`corrected_level`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

ALPHA = 0.05  # the family-wise error rate of every table of tests


def resample_counts(n_items: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """``n_resamples`` × ``n_items``: how often each resample (``n_items`` draws with
    replacement) takes each item."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_resamples, n_items), np.int64)
    for r in range(n_resamples):
        counts[r] = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items)
    return counts


def bootstrap(
    statistics: dict[str, Callable[[np.ndarray], np.ndarray]],
    n_items: int,
    n_resamples: int,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per resample, one column per statistic; each statistic maps the
    :func:`resample_counts` matrix to one value per resample."""
    counts = resample_counts(n_items, n_resamples, seed)
    return pd.DataFrame(
        {name: np.asarray(f(counts), float) for name, f in statistics.items()},
        columns=list(statistics),
    )


def weighted_mean(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of ``values`` in every resample (rows of ``counts``); NaN for an empty one."""
    n = counts.sum(axis=1)
    return np.divide(
        counts @ np.asarray(values, float), n, out=np.full(len(counts), np.nan), where=n > 0
    )


def percentile_ci(samples: pd.Series | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap samples (NaNs ignored)."""
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(np.asarray(samples, float), [tail, 100 - tail])
    return float(low), float(high)


def mcnemar(hits_a: np.ndarray, hits_b: np.ndarray) -> dict[str, float]:
    """Exact two-sided McNemar test: queries only A got right, only B got right, and the p-value."""
    from scipy.stats import binomtest  # imported here: scipy.stats alone takes ~1 s to import

    a, b = np.asarray(hits_a, bool), np.asarray(hits_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    p = binomtest(min(only_a, only_b), n, 0.5).pvalue if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p)}


def bonferroni(p_values: np.ndarray | pd.Series) -> np.ndarray:
    """The p-values of a table of tests, each multiplied by the number of tests (at most 1)."""
    p = np.asarray(p_values, float)
    return np.minimum(1.0, p * len(p))


def corrected_level(n_tests: int) -> float:
    """The level of each interval in a table of ``n_tests`` comparisons (Bonferroni)."""
    return 1 - ALPHA / max(n_tests, 1)


class PairedHits(NamedTuple):
    """Two methods' R@1 hits on the same queries (or sources), with the labels of the comparison."""

    labels: dict[str, object]
    hits_a: np.ndarray
    hits_b: np.ndarray


def mcnemar_table(comparisons: list[PairedHits]) -> pd.DataFrame:
    """One row per comparison: its labels, R@1 (%) of A and B, the queries only A / only B got
    right, McNemar's p-value, the Bonferroni-corrected one, and whether that is below α."""
    rows = []
    for labels, hits_a, hits_b in comparisons:
        test = mcnemar(hits_a, hits_b)
        rows.append(
            {
                **labels,
                "r1_a": 100 * np.mean(hits_a),
                "r1_b": 100 * np.mean(hits_b),
                "only_a_correct": test["only_a"],
                "only_b_correct": test["only_b"],
                "mcnemar_p": test["p_value"],
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table["mcnemar_p_bonferroni"] = bonferroni(table["mcnemar_p"])
        table["r1_significant"] = table["mcnemar_p_bonferroni"] < ALPHA
    return table
