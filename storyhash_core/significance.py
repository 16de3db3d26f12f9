"""Uncertainty and paired tests for statements like "A beats B" on the same queries.

- :func:`bootstrap`: resample the queries with replacement (one seeded set of resamples
  shared by every statistic, so differences between methods are paired) and return the
  statistic of each resample; :func:`percentile_ci` turns those into a 95 % interval.
- :func:`mcnemar`: the exact McNemar test on two methods' per-query hits (R@1): only the
  queries where they disagree count, and under "no difference" each disagreement is a
  fair coin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import binomtest


def bootstrap(statistics: dict[str, Callable[[np.ndarray], float]], n_items: int, n_resamples: int,
              seed: int = 0) -> pd.DataFrame:
    """One row per resample, one column per statistic; each statistic takes the resampled
    item indices."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n_items, n_items)
        rows.append({name: f(idx) for name, f in statistics.items()})
    return pd.DataFrame(rows, columns=list(statistics))


def percentile_ci(samples: pd.Series | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap samples (NaNs ignored)."""
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(np.asarray(samples, float), [tail, 100 - tail])
    return float(low), float(high)


def mcnemar(hits_a: np.ndarray, hits_b: np.ndarray) -> dict[str, float]:
    """Exact two-sided McNemar test: queries only A got right, only B got right, and the p-value."""
    a, b = np.asarray(hits_a, bool), np.asarray(hits_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    p = binomtest(min(only_a, only_b), n, 0.5).pvalue if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p)}
