"""Motion features from object tracks: the paper's 15-D action block and 8-D scene-graph block.

Positions are centroids divided by the frame diagonal and times are in seconds, so the
features do not change with resolution or frame rate; the paper's pixel thresholds (50 px
for interaction, 100 px for ``near``, on 854×480 DAVIS frames) become fractions of the
diagonal (:data:`INTERACT`, :data:`NEAR`). Statistics pool every sample of every object
(the paper's "aggregate" leaves open whether per-object values are averaged first); a
statistic over an empty set is 0, so a video with no tracked object has all-zero raw blocks.

Action (15): ``ACTION_NAMES``
- velocity: speed |p(t) - p(t')| / (t - t') between consecutive tracked frames of an object:
  mean, std, max
- acceleration: |v(t) - v(t')| / (t - t'): mean, std
- direction consistency: cos of the angle between consecutive displacements: mean, std
- spatial spread: centroid distance of every pair of objects present in a frame: mean, std, max
- interaction: per frame, the number of pairs closer than ``INTERACT``: mean, std, max;
  edge ratio (fraction of frames with at least one such pair); temporal coherence (mean
  length of a pair's unbroken run of interacting frames, as a fraction of the video's frames)

Graph (8): a histogram of relation instances over all tracked frames, divided by its total
(``GRAPH_NAMES``): ``co_occurs`` (pair present together), ``near`` (pair closer than
``NEAR``), ``far`` (farther than 3 x ``NEAR``), ``overlaps`` (boxes intersect), ``approaches`` /
``recedes`` (pair distance falls / rises by more than 1 % of the diagonal between consecutive
frames), ``follows`` (pair present together where one object appeared strictly before the
other: the paper's temporal order of appearance), ``alone`` (frame with exactly one object).

:class:`MinMax` (the paper's scaling) maps action features to [0, 1] with bounds fitted on
the references only and applied unchanged (clipped) to queries; :class:`ZScore` and
:class:`Ranks` are the alternatives the fusion-weight study compares (:data:`SCALERS`), fitted
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, pairwise

import numpy as np

from .tracking import Tracks

DAVIS_DIAGONAL = float(np.hypot(854, 480))
INTERACT = 50 / DAVIS_DIAGONAL  # the paper's 50 px, as a fraction of the diagonal
NEAR = 100 / DAVIS_DIAGONAL  # the paper's 100 px
MOVE = 0.01  # distance change that counts as approaching / receding

ACTION_NAMES = (
    "velocity_mean",
    "velocity_std",
    "velocity_max",
    "acceleration_mean",
    "acceleration_std",
    "direction_cos_mean",
    "direction_cos_std",
    "spread_mean",
    "spread_std",
    "spread_max",
    "interaction_mean",
    "interaction_std",
    "interaction_max",
    "interaction_edge_ratio",
    "interaction_coherence",
)
GRAPH_NAMES = ("co_occurs", "near", "far", "overlaps", "approaches", "recedes", "follows", "alone")


def _stats(values: list[float], *which: str) -> list[float]:
    a = np.asarray(values, np.float64)
    if not len(a):
        return [0.0] * len(which)
    fns = {"mean": np.mean, "std": np.std, "max": np.max}
    return [float(fns[w](a)) for w in which]


def _positions(tracks: Tracks) -> dict[int, dict[int, np.ndarray]]:
    """object id -> {frame: normalised centroid}."""
    diag = float(np.hypot(tracks.width, tracks.height))
    out: dict[int, dict[int, np.ndarray]] = {}
    for f, i, c in zip(tracks.frame, tracks.object_id, tracks.centroid, strict=True):
        out.setdefault(int(i), {})[int(f)] = c / diag
    return out


def _pair_distances(tracks: Tracks) -> dict[tuple[int, int], dict[int, float]]:
    """(object a, object b) -> {frame: normalised centroid distance} for frames with both."""
    pos = _positions(tracks)
    out: dict[tuple[int, int], dict[int, float]] = {}
    for a, b in combinations(sorted(pos), 2):
        shared = sorted(set(pos[a]) & set(pos[b]))
        if shared:
            out[(a, b)] = {f: float(np.linalg.norm(pos[a][f] - pos[b][f])) for f in shared}
    return out


def _runs(frames: list[int]) -> list[int]:
    """Lengths of runs of consecutive integers in sorted ``frames``."""
    runs, length = [], 0
    for i, f in enumerate(frames):
        length = length + 1 if i and f == frames[i - 1] + 1 else 1
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            runs.append(length)
    return runs


def action_features(tracks: Tracks) -> np.ndarray:
    """The 15 raw action statistics (before min-max scaling)."""
    speeds, accels, cosines = [], [], []
    for by_frame in _positions(tracks).values():
        frames = sorted(by_frame)
        steps = []  # (displacement, dt, speed)
        for f0, f1 in pairwise(frames):
            dt = tracks.times[f1] - tracks.times[f0]
            d = by_frame[f1] - by_frame[f0]
            steps.append((d, dt, float(np.linalg.norm(d)) / dt))
        speeds += [s for _, _, s in steps]
        for (d0, _, s0), (d1, dt1, s1) in pairwise(steps):
            accels.append(abs(s1 - s0) / dt1)
            n0, n1 = np.linalg.norm(d0), np.linalg.norm(d1)
            if n0 > 1e-9 and n1 > 1e-9:
                cosines.append(float(d0 @ d1 / (n0 * n1)))
    pairs = _pair_distances(tracks)
    spread = [d for per_frame in pairs.values() for d in per_frame.values()]
    n_frames = len(tracks.times)
    counts = np.zeros(n_frames)
    run_lengths = []
    for per_frame in pairs.values():
        close = sorted(f for f, d in per_frame.items() if d < INTERACT)
        counts[close] += 1
        run_lengths += _runs(close)
    return np.array(
        [
            *_stats(speeds, "mean", "std", "max"),
            *_stats(accels, "mean", "std"),
            *_stats(cosines, "mean", "std"),
            *_stats(spread, "mean", "std", "max"),
            *(_stats(list(counts), "mean", "std", "max") if n_frames else [0.0] * 3),
            float((counts > 0).mean()) if n_frames else 0.0,
            float(np.mean(run_lengths)) / n_frames if run_lengths else 0.0,
        ]
    )


def _boxes_intersect(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def graph_features(tracks: Tracks) -> np.ndarray:
    """The 8-bin relation histogram, normalised to sum 1 (all zeros without relations)."""
    counts = dict.fromkeys(GRAPH_NAMES, 0)
    first_seen = {
        int(i): int(tracks.frame[tracks.object_id == i].min()) for i in np.unique(tracks.object_id)
    }
    triples = zip(tracks.frame, tracks.object_id, tracks.box, strict=True)
    box = {(int(f), int(i)): b for f, i, b in triples}
    for (a, b), per_frame in _pair_distances(tracks).items():
        frames = sorted(per_frame)
        for f in frames:
            d = per_frame[f]
            counts["co_occurs"] += 1
            counts["near"] += d < NEAR
            counts["far"] += d > 3 * NEAR
            counts["overlaps"] += _boxes_intersect(box[(f, a)], box[(f, b)])
            counts["follows"] += first_seen[a] != first_seen[b]
        for f0, f1 in pairwise(frames):
            if f1 == f0 + 1:
                change = per_frame[f1] - per_frame[f0]
                counts["approaches"] += change < -MOVE
                counts["recedes"] += change > MOVE
    objects_per_frame = (
        np.bincount(tracks.frame, minlength=len(tracks.times)) if len(tracks.frame) else []
    )
    counts["alone"] = int(np.sum(np.asarray(objects_per_frame) == 1))
    h = np.array([counts[n] for n in GRAPH_NAMES], np.float64)
    return h / h.sum() if h.sum() else h


@dataclass(frozen=True)
class MinMax:
    """Per-feature [0, 1] scaling; fit on references, apply to anything (clipped)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> MinMax:
        return cls(x.min(axis=0), x.max(axis=0))

    def apply(self, x: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        scaled = np.divide(
            x - self.low, span, out=np.zeros_like(x, dtype=np.float64), where=span > 0
        )
        return np.clip(scaled, 0.0, 1.0)


@dataclass(frozen=True)
class ZScore:
    """Per-feature standardisation with the references' mean and standard deviation (a
    constant feature maps to 0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> ZScore:
        return cls(x.mean(axis=0), x.std(axis=0))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.divide(
            x - self.mean, self.std, out=np.zeros_like(x, dtype=np.float64), where=self.std > 0
        )


@dataclass(frozen=True)
class Ranks:
    """Per-feature empirical quantile among the references, in [0, 1]: the share of
    references below a value, ties counted half (a constant feature maps to 0.5)."""

    sorted_refs: np.ndarray  # references × features, each column sorted

    @classmethod
    def fit(cls, x: np.ndarray) -> Ranks:
        return cls(np.sort(np.asarray(x, np.float64), axis=0))

    def apply(self, x: np.ndarray) -> np.ndarray:
        refs = self.sorted_refs
        out = np.empty(np.shape(x), np.float64)
        for j in range(refs.shape[1]):
            below = np.searchsorted(refs[:, j], x[:, j], side="left")
            at_or_below = np.searchsorted(refs[:, j], x[:, j], side="right")
            out[:, j] = (below + at_or_below) / (2 * len(refs))
        return out


SCALERS = {"minmax": MinMax, "zscore": ZScore, "rank": Ranks}


def motion_blocks(tracks: list[Tracks]) -> tuple[np.ndarray, np.ndarray]:
    """Raw action (n×15) and graph (n×8) blocks for a list of videos' tracks."""
    if not tracks:
        return np.zeros((0, len(ACTION_NAMES))), np.zeros((0, len(GRAPH_NAMES)))
    return (
        np.stack([action_features(t) for t in tracks]),
        np.stack([graph_features(t) for t in tracks]),
    )
