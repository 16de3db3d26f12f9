"""Uncertainty and paired tests for statements like "A beats B" on the same queries.

- :func:`bootstrap`: resample the queries with replacement (one seeded set of resamples
  shared by every statistic, so differences between methods are paired) and return the
  statistic of each resample; :func:`percentile_ci` turns those into a 95 % interval. A
  resample is given to the statistics as how often it draws each item (a row of counts),
  so a statistic computes all resamples at once (e.g. :func:`~storyhash_core.detection.micro_ap_resampled`).
- :func:`mcnemar`: the exact McNemar test on two methods' per-query hits (R@1): only the
  queries where they disagree count, and under "no difference" each disagreement is a
  fair coin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def resample_counts(n_items: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """``n_resamples`` × ``n_items``: how often each resample (``n_items`` draws with
    replacement) takes each item."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_resamples, n_items), np.int64)
    for r in range(n_resamples):
        counts[r] = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items)
    return counts


def bootstrap(statistics: dict[str, Callable[[np.ndarray], np.ndarray]], n_items: int, n_resamples: int,
              seed: int = 0) -> pd.DataFrame:
    """One row per resample, one column per statistic; each statistic maps the
    :func:`resample_counts` matrix to one value per resample."""
    counts = resample_counts(n_items, n_resamples, seed)
    return pd.DataFrame({name: np.asarray(f(counts), float) for name, f in statistics.items()},
                        columns=list(statistics))


def weighted_mean(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of ``values`` in every resample (rows of ``counts``); NaN for an empty one."""
    n = counts.sum(axis=1)
    return np.divide(counts @ np.asarray(values, float), n, out=np.full(len(counts), np.nan), where=n > 0)


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
