"""Uncertainty and paired tests for statements like "A beats B" on the same queries.

Queries are not independent: the 14 edits of one source video succeed or fail together. So
the unit of every interval and test is the *cluster* (:class:`Clusters`; in the study, the
source video), and the query level is the special case of one query per cluster.

- :func:`bootstrap`: resample the clusters with replacement, within each stratum (in the
  study: the sources in the gallery and the held-out ones, so every resample keeps the
  share of distractor queries), one seeded set of resamples shared by every statistic, so
  differences between methods are paired. A resample is given to a statistic as how often
  it draws each cluster (a row of counts), so a statistic computes every resample at once
  (:func:`resampled_mean`, :func:`~storyhash_core.detection.micro_ap_resampled`);
  :func:`percentile_ci` turns the resampled values into an interval.
- :func:`sign_flip_test`: the paired test of two methods' per-query hits (R@1). Under "no
  difference" the two methods' results on one source are exchangeable, so the sign of the
  source's difference (hits of A minus hits of B) is a fair coin; the p-value is exact (the
  distribution of the signed sum, by convolution). With one query per source it is the
  exact McNemar test. :func:`paired_table` runs it for every comparison of a table.
- One correction rule: a table of tests is one family (one research question, listed in
  the README), Bonferroni over every test in it, i.e. its rows times the measures each row
  tests (R@1 and μAP, or R@1 and the similarity) (:func:`bonferroni`); an interval in a
  family of *m* tests has level 1 − α/m (:func:`corrected_level`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

ALPHA = 0.05  # the family-wise error rate of every table of tests


class Clusters(NamedTuple):
    """The cluster of each item (codes ``0..n-1`` in order of appearance) and the stratum of
    each cluster."""

    codes: np.ndarray
    strata: np.ndarray

    @classmethod
    def of(cls, groups: Sequence, strata: Sequence | None = None) -> Clusters:
        """Clusters from one label per item (``strata``: one label per item, constant within
        a cluster; none: a single stratum)."""
        if pd.isna(pd.Series(list(groups), dtype=object)).any():
            raise ValueError("a cluster label is missing")
        codes, first = _codes(groups)
        if strata is None:
            return cls(codes, np.zeros(len(first), np.int64))
        item_strata, _ = _codes(strata)
        per_cluster = item_strata[first]
        if (item_strata != per_cluster[codes]).any():
            raise ValueError("a cluster spans two strata")
        return cls(codes, per_cluster)

    @classmethod
    def singletons(cls, n_items: int) -> Clusters:
        """Every item its own cluster (the query-level bootstrap)."""
        return cls(np.arange(n_items), np.zeros(n_items, np.int64))

    @property
    def size(self) -> int:
        return len(self.strata)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums of per-item ``values`` (items × ... -> clusters × ...)."""
        values = np.asarray(values, np.float64)
        out = np.zeros((self.size, *values.shape[1:]))
        np.add.at(out, self.codes, values)
        return out


def _codes(labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Codes in order of first appearance, and the first item of each code."""
    codes, _ = pd.factorize(pd.Series(list(labels)))
    return codes.astype(np.int64), np.unique(codes, return_index=True)[1]


def resample_counts(clusters: Clusters, n_resamples: int, seed: int = 0) -> np.ndarray:
    """``n_resamples`` × clusters: how often each resample takes each cluster; within each
    stratum, a resample draws as many clusters as the stratum has, with replacement."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_resamples, clusters.size), np.int64)
    rows = np.arange(n_resamples)[:, None]
    for stratum in np.unique(clusters.strata):
        members = np.flatnonzero(clusters.strata == stratum)
        drawn = members[rng.integers(0, len(members), (n_resamples, len(members)))]
        np.add.at(counts, (rows, drawn), 1)
    return counts


def bootstrap(
    statistics: dict[str, Callable[[np.ndarray], np.ndarray]],
    clusters: Clusters,
    n_resamples: int,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per resample, one column per statistic; each statistic maps the
    :func:`resample_counts` matrix to one value per resample."""
    counts = resample_counts(clusters, n_resamples, seed)
    return pd.DataFrame(
        {name: np.asarray(f(counts), float) for name, f in statistics.items()},
        columns=list(statistics),
    )


def resampled_mean(
    values: np.ndarray, counts: np.ndarray, clusters: Clusters, among: np.ndarray | None = None
) -> np.ndarray:
    """The mean of per-item ``values`` (over the items marked in ``among``; all by default) in
    every resample (rows of cluster ``counts``); NaN for an empty one."""
    among = np.ones(len(values), bool) if among is None else np.asarray(among, bool)
    n = counts @ clusters.sums(among)
    total = counts @ clusters.sums(np.where(among, values, 0))
    return np.divide(total, n, out=np.full(len(counts), np.nan), where=n > 0)


def percentile_ci(samples: pd.Series | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap samples (NaNs ignored)."""
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(np.asarray(samples, float), [tail, 100 - tail])
    return float(low), float(high)


def sign_flip_test(hits_a: np.ndarray, hits_b: np.ndarray, clusters: Clusters) -> dict:
    """Exact two-sided test of "A and B are exchangeable within every cluster" on per-item
    hits: the p-value of the summed difference among all sign flips of the clusters'
    differences. The counts of items only A / only B got right, and of the clusters holding
    any of them, come with it."""
    a, b = np.asarray(hits_a, bool), np.asarray(hits_b, bool)
    disagreeing = int((clusters.sums(a != b) > 0).sum())
    diffs = clusters.sums(a.astype(int) - b.astype(int)).round().astype(np.int64)
    diffs = np.abs(diffs[diffs != 0])
    total = int(diffs.sum())
    distribution = np.zeros(2 * total + 1)  # P(signed sum = s - total)
    distribution[total] = 1.0
    for d in diffs:
        distribution = 0.5 * (np.roll(distribution, d) + np.roll(distribution, -d))
    observed = abs(int((a & ~b).sum()) - int((~a & b).sum()))
    extreme = np.abs(np.arange(-total, total + 1)) >= observed
    p = min(1.0, float(distribution[extreme].sum())) if total else 1.0
    return {
        "only_a": int((a & ~b).sum()),
        "only_b": int((~a & b).sum()),
        "clusters_disagreeing": disagreeing,  # with a query only one of A and B got right
        "p_value": p,
    }


def bonferroni(p_values: np.ndarray | pd.Series, n_tests: int | None = None) -> np.ndarray:
    """The p-values of a family, each multiplied by its number of tests (default: the p-values
    given), at most 1."""
    p = np.asarray(p_values, float)
    return np.minimum(1.0, p * (n_tests or len(p)))


def corrected_level(n_tests: int) -> float:
    """The level of each interval in a table of ``n_tests`` comparisons (Bonferroni)."""
    return 1 - ALPHA / max(n_tests, 1)


class PairedHits(NamedTuple):
    """Two methods' R@1 hits on the same queries, the queries' clusters, and the labels of
    the comparison."""

    labels: dict[str, object]
    hits_a: np.ndarray
    hits_b: np.ndarray
    clusters: Clusters


PAIRED_COLUMNS = [
    "r1_a",
    "r1_b",
    "only_a_correct",
    "only_b_correct",
    "sources_disagreeing",
    "r1_p",
    "r1_p_bonferroni",
    "r1_significant",
]


def paired_table(
    comparisons: list[PairedHits], label_columns: list[str], n_tests: int | None = None
) -> pd.DataFrame:
    """One row per comparison: its labels, R@1 (%) of A and B, the queries only A / only B got
    right, the sources holding them, :func:`sign_flip_test`'s p-value, the one corrected for
    ``n_tests`` tests in the family (default: the rows), and whether that is below α (the
    columns exist when empty)."""
    rows = []
    for labels, hits_a, hits_b, clusters in comparisons:
        test = sign_flip_test(hits_a, hits_b, clusters)
        rows.append(
            {
                **labels,
                "r1_a": 100 * np.mean(hits_a),
                "r1_b": 100 * np.mean(hits_b),
                "only_a_correct": test["only_a"],
                "only_b_correct": test["only_b"],
                "sources_disagreeing": test["clusters_disagreeing"],
                "r1_p": test["p_value"],
            }
        )
    table = pd.DataFrame(rows, columns=[*label_columns, *PAIRED_COLUMNS[:-2]])
    return corrected(table, n_tests)


def corrected(table: pd.DataFrame, n_tests: int | None = None) -> pd.DataFrame:
    """``table`` with its ``r1_p`` Bonferroni-corrected for the ``n_tests`` tests of its family
    (default: one per row)."""
    p = bonferroni(table["r1_p"], n_tests)
    return table.assign(r1_p_bonferroni=p, r1_significant=p < ALPHA)
