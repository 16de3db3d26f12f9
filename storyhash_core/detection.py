"""Detection metrics: how well true copies separate from non-copies under one threshold.

Recall@k (:mod:`storyhash_core.metrics`) asks whether the right reference comes first; a copy
detector must also decide *whether* a query has a match at all, with one global threshold
for every query. The measures here score every (query, reference) pair by its similarity,
the true copies being the positives:

- **μAP** (micro average precision, the VSC2022 / DISC21 definition): one precision-recall
  curve over the pairs of all queries at once. Recall counts every positive, including
  those a method never scored (a re-ranker scores only its candidates). Pairs with equal
  scores enter the curve together — a threshold takes all of them or none — so the value
  never depends on the order of ties.
- **ROC AUC** and **TPR at FPR** 1 % / 0.1 %: the best true-positive rate of an operating
  point whose false-positive rate is at most the target. Unscored pairs rank below every
  scored one.

Queries without a match in the gallery (distractors) add negatives only. A similarity
matrix (queries × gallery) holds NaN where a method gave no score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .significance import Clusters

FPR_TARGETS = (0.01, 0.001)


@dataclass(frozen=True)
class Pairs:
    """Scored pairs (flat), which of them are true copies, and how many true copies and
    non-copies exist in all (scored or not)."""

    scores: np.ndarray
    positive: np.ndarray
    n_positives: int
    n_negatives: int

    @classmethod
    def from_matrix(cls, sims: np.ndarray, truth: np.ndarray) -> Pairs:
        """Pairs of a queries × gallery matrix; ``truth`` marks the true copies, NaN = unscored."""
        scored = ~np.isnan(sims)
        return cls(
            sims[scored].astype(np.float64),
            truth[scored].astype(bool),
            int(truth.sum()),
            int((~truth).sum()),
        )


def top_hits(sims: np.ndarray, truth: np.ndarray) -> Pairs:
    """Each query's best-scoring reference, as a decision about the query: positive when it
    is the query's true reference. Every query with a match counts as a positive (one whose
    best hit is wrong is missed); a query's best hit that is not its match, or a query without
    any, is a negative. Its FPR is the share of such queries called a copy."""
    top = np.nanmax(sims, axis=1)
    correct = truth[np.arange(len(sims)), np.nanargmax(sims, axis=1)]
    return Pairs(
        top.astype(np.float64), correct, int(truth.any(axis=1).sum()), int((~correct).sum())
    )


def _cumulative(pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives above each distinct threshold, from the highest score down."""
    order = np.argsort(-pairs.scores, kind="stable")
    scores, positive = pairs.scores[order], pairs.positive[order]
    last_of_tie = (
        np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1] if len(scores) else []
    )
    return np.cumsum(positive)[last_of_tie], np.cumsum(~positive)[last_of_tie]


def micro_ap(pairs: Pairs) -> float:
    """Average precision of one PR curve over all pairs; NaN when there is no positive."""
    if pairs.n_positives == 0:
        return float("nan")
    tp, fp = _cumulative(pairs)
    precision = tp / np.maximum(tp + fp, 1)
    return float(np.sum(np.diff(tp / pairs.n_positives, prepend=0.0) * precision))


def micro_ap_resampled(
    sims: np.ndarray, truth: np.ndarray, counts: np.ndarray, clusters: Clusters
) -> np.ndarray:
    """:func:`micro_ap` of ``(sims, truth)`` for every row of ``counts`` (how often a bootstrap
    resample takes each cluster of queries), without building the resampled matrices.

    Only thresholds at a positive's score move recall, so the curve is read there: at each
    one, a cluster contributes its count times its positives and negatives scoring at least
    that much (ties enter together, as in :func:`micro_ap`).
    """
    scored = ~np.isnan(sims)
    positive, negative = truth & scored, ~truth & scored
    thresholds = np.unique(sims[positive])[::-1]  # distinct positive scores, highest first
    counts = np.asarray(counts, np.float64)
    n_pos = counts @ clusters.sums(truth.sum(axis=1))

    def at_or_above(mask: np.ndarray) -> np.ndarray:  # clusters × thresholds
        out = np.empty((len(sims), len(thresholds)))
        for q in range(len(sims)):
            s = np.sort(sims[q, mask[q]])
            out[q] = len(s) - np.searchsorted(s, thresholds, side="left")
        return clusters.sums(out)

    tp, fp = counts @ at_or_above(positive), counts @ at_or_above(negative)  # resamples × thr.
    precision = tp / np.maximum(tp + fp, 1)
    found = np.sum(np.diff(tp, axis=1, prepend=0.0) * precision, axis=1)
    return np.divide(found, n_pos, out=np.full(len(counts), np.nan), where=n_pos > 0)


def roc_points(pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold, from (0, 0), over all pairs: unscored pairs are
    below every threshold, so they are never found (positives) nor false alarms (negatives)."""
    tp, fp = _cumulative(pairs)
    return np.r_[0.0, fp / max(pairs.n_negatives, 1)], np.r_[0.0, tp / max(pairs.n_positives, 1)]


def roc_auc(pairs: Pairs) -> float:
    """Area under the ROC curve; pairs never scored tie below all others, which closes the
    curve with a straight line to (1, 1)."""
    if pairs.n_positives == 0 or pairs.n_negatives == 0:
        return float("nan")
    fpr, tpr = roc_points(pairs)
    fpr, tpr = np.r_[fpr, 1.0], np.r_[tpr, 1.0]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tpr_at_fpr(pairs: Pairs, target: float) -> float:
    """Best TPR among thresholds with FPR <= ``target``."""
    if pairs.n_positives == 0:
        return float("nan")
    fpr, tpr = roc_points(pairs)
    return float(tpr[fpr <= target].max())


def threshold_at_fpr(pairs: Pairs, target: float) -> float:
    """The lowest score threshold (a pair at or above it is called a copy) whose FPR is at most
    ``target``: the operating point of :func:`tpr_at_fpr`; ``inf`` when none is."""
    if not len(pairs.scores):
        return float("inf")
    scores = pairs.scores[np.argsort(-pairs.scores, kind="stable")]
    _, fp = _cumulative(pairs)
    distinct = scores[np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]]
    ok = np.flatnonzero(fp / max(pairs.n_negatives, 1) <= target)
    return float(distinct[ok[-1]]) if len(ok) else float("inf")


def rates_at(pairs: Pairs, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) of calling every pair scoring at least ``threshold`` a copy (NaN without
    positives or negatives)."""
    called = pairs.scores >= threshold
    tp, fp = int((called & pairs.positive).sum()), int((called & ~pairs.positive).sum())
    return (
        tp / pairs.n_positives if pairs.n_positives else np.nan,
        fp / pairs.n_negatives if pairs.n_negatives else np.nan,
    )


def detection_summary(pairs: Pairs) -> dict[str, float]:
    """μAP, ROC AUC and TPR at the FPR targets, with the pair counts."""
    out = {"micro_ap": micro_ap(pairs), "roc_auc": roc_auc(pairs)}
    out |= {f"tpr_at_fpr_{t:g}": tpr_at_fpr(pairs, t) for t in FPR_TARGETS}
    return out | {"positives": pairs.n_positives, "pairs": len(pairs.scores)}


def truth_matrix(true_ids: list[str], gallery_ids: list[str]) -> np.ndarray:
    """queries × gallery booleans: True where the gallery item is the query's source."""
    return (
        np.asarray(true_ids, dtype=object)[:, None]
        == np.asarray(gallery_ids, dtype=object)[None, :]
    )


def split_distractors(ids: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded, order-independent choice of ``round(fraction * len(ids))`` ids to hold out
    (at most all but one, so some queries keep their match)."""
    ordered = sorted(ids)
    n = min(round(fraction * len(ordered)), max(len(ordered) - 1, 0))
    chosen = np.random.default_rng(seed).choice(len(ordered), size=n, replace=False)
    return sorted(ordered[i] for i in chosen)
