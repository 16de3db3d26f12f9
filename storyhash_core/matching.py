"""Copied segments in VSC2022's matching-track format, and the segment AP that scores them.

A :class:`Match` is one copied segment of a (query, reference) pair: its start and end, in
seconds, on the query's time axis and on the reference's, and a score (1 for ground truth).
:func:`write_matches` / :func:`read_matches` keep them in the CSV layout of the VSC2022
matching track (``query_id, ref_id, query_start, query_end, ref_start, ref_end[, score]``).

:func:`segment_ap` is that track's metric (VCSL's copy-overlap precision and recall):

- predictions enter in order of score, highest first; equal scores enter as one group;
- per pair, the union of its predicted intervals on each axis is intersected with the union
  of its ground-truth intervals, counting only the ground-truth segments whose (query ×
  reference) box overlaps some prediction's box;
- over all pairs so far, an axis's recall is the intersected length over all ground-truth
  length on that axis, its precision the intersected length over all predicted length;
- recall and precision are the geometric means of the two axes', and
  AP = Σ precision_i · (recall_i − recall_{i−1}) over the score groups.

:func:`pair_scores` gives each pair its best segment's score, for the pairwise μAP.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from math import sqrt
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .cache import atomic_path
from .errors import StoryHashError

COLUMNS = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end"]
AXES = ("query", "ref")

Interval = tuple[float, float]


class Match(NamedTuple):
    """One copied segment of a (query, reference) pair, in seconds on each video's axis."""

    query_id: str
    ref_id: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float = 1.0

    def interval(self, axis: str) -> Interval:
        return (
            (self.query_start, self.query_end)
            if axis == "query"
            else (self.ref_start, self.ref_end)
        )

    def overlaps(self, other: Match) -> bool:
        """Whether the two (query × reference) boxes share a positive area."""
        return all(_overlap(self.interval(a), other.interval(a)) > 0 for a in AXES)


def write_matches(matches: Iterable[Match], path: Path, scored: bool = True) -> None:
    """``matches`` as a VSC2022 matching CSV (with ``score`` unless ``scored`` is False)."""
    columns = [*COLUMNS, "score"] if scored else COLUMNS
    frame = pd.DataFrame([m._asdict() for m in matches], columns=list(Match._fields))
    with atomic_path(Path(path)) as tmp:
        frame[columns].to_csv(tmp, index=False)


def read_matches(path: Path) -> list[Match]:
    """The matches of a VSC2022 matching CSV (any column order; ``score`` 1 when absent)."""
    frame = pd.read_csv(path, dtype={"query_id": str, "ref_id": str})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise StoryHashError(
            f"{path}: missing column(s) {', '.join(missing)}; a matching CSV has"
            f" {', '.join(COLUMNS)} and, for predictions, score"
        )
    if "score" not in frame.columns:
        frame["score"] = 1.0
    return [Match(*row) for row in frame[list(Match._fields)].itertuples(index=False)]


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same time as ``intervals``."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def length(intervals: Sequence[Interval]) -> float:
    """Total length of disjoint intervals."""
    return float(sum(end - start for start, end in intervals))


def _overlap(a: Interval, b: Interval) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def shared(a: Sequence[Interval], b: Sequence[Interval]) -> float:
    """Length of the intersection of two disjoint, sorted interval lists."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        total += _overlap(a[i], b[j])
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


class SegmentAP(NamedTuple):
    """The segment AP and its precision-recall curve, one point per score group that moved
    recall."""

    ap: float
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray


def segment_ap(ground_truth: Sequence[Match], predictions: Sequence[Match]) -> SegmentAP:
    """VSC2022's matching-track AP of ``predictions`` against ``ground_truth`` (see the
    module); NaN when there is no ground truth."""
    truth: dict[tuple[str, str], list[Match]] = defaultdict(list)
    for g in ground_truth:
        truth[(g.query_id, g.ref_id)].append(g)
    truth_length = {
        a: sum(length(union(g.interval(a) for g in segs)) for segs in truth.values()) for a in AXES
    }
    if not truth or min(truth_length.values()) <= 0:
        return SegmentAP(float("nan"), np.array([]), np.array([]), np.array([]))
    predicted: dict[tuple[str, str], list[Match]] = defaultdict(list)
    found = dict.fromkeys(AXES, 0.0)  # intersected length, summed over pairs
    spent = dict.fromkeys(AXES, 0.0)  # predicted length, summed over pairs
    pair_found: dict[tuple[str, str], dict[str, float]] = {}
    pair_spent: dict[tuple[str, str], dict[str, float]] = {}
    ap, recall = 0.0, 0.0
    points: list[tuple[float, float, float]] = []
    ordered = sorted(predictions, key=lambda m: -m.score)
    for score, group in itertools.groupby(ordered, key=lambda m: m.score):
        for p in group:
            pair = (p.query_id, p.ref_id)
            predicted[pair].append(p)
            mine = predicted[pair]
            counted = [g for g in truth.get(pair, []) if any(g.overlaps(q) for q in mine)]
            for a in AXES:
                preds = union(q.interval(a) for q in mine)
                now_found = shared(preds, union(g.interval(a) for g in counted))
                now_spent = length(preds)
                found[a] += now_found - pair_found.setdefault(pair, dict.fromkeys(AXES, 0.0))[a]
                spent[a] += now_spent - pair_spent.setdefault(pair, dict.fromkeys(AXES, 0.0))[a]
                pair_found[pair][a], pair_spent[pair][a] = now_found, now_spent
        new_recall = sqrt(np.prod([found[a] / truth_length[a] for a in AXES]))
        precision = sqrt(np.prod([found[a] / spent[a] if spent[a] > 0 else 0.0 for a in AXES]))
        if new_recall > recall:
            ap += precision * (new_recall - recall)
            points.append((precision, new_recall, score))
            recall = new_recall
    curve = np.array(points).reshape(-1, 3)
    return SegmentAP(float(ap), curve[:, 0], curve[:, 1], curve[:, 2])


def pair_scores(matches: Iterable[Match]) -> dict[tuple[str, str], float]:
    """Each (query, reference) pair's best segment score: its score for the pairwise μAP."""
    best: dict[tuple[str, str], float] = {}
    for m in matches:
        pair = (m.query_id, m.ref_id)
        best[pair] = max(best.get(pair, -np.inf), m.score)
    return best
