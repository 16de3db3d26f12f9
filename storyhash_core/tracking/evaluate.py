"""Tracks against known trajectories (the synthetic corpus's ``ground_truth.csv``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from . import Tracks


@dataclass(frozen=True)
class TrackScore:
    """Per-frame Hungarian matching of tracked centroids to true ones, within ``gate`` of the
    frame diagonal."""

    truth_points: int
    tracked_points: int
    matched: int
    centroid_error_px: float  # mean over matches
    fragmentation: float  # distinct track ids per matched true object

    @property
    def recall(self) -> float:
        return self.matched / self.truth_points if self.truth_points else float("nan")

    @property
    def precision(self) -> float:
        return self.matched / self.tracked_points if self.tracked_points else float("nan")


def score_tracks(
    tracks: Tracks, truth: pd.DataFrame, source_fps: float, gate: float = 0.1
) -> TrackScore:
    """``truth``: rows (frame, object_id, cx, cy) of one video at ``source_fps``."""
    diag = float(np.hypot(tracks.width, tracks.height))
    errors, ids_per_object = [], {}
    n_truth = 0
    for f, t in enumerate(tracks.times):
        gt = truth[truth["frame"] == int(round(t * source_fps))]
        n_truth += len(gt)
        here = tracks.frame == f
        if not len(gt) or not here.any():
            continue
        cost = np.linalg.norm(
            gt[["cx", "cy"]].to_numpy()[:, None] - tracks.centroid[here][None], axis=2
        )
        for r, c in zip(*linear_sum_assignment(cost), strict=True):
            if cost[r, c] <= gate * diag:
                errors.append(cost[r, c])
                ids_per_object.setdefault(gt["object_id"].iloc[r], set()).add(
                    tracks.object_id[here][c]
                )
    frag = np.mean([len(v) for v in ids_per_object.values()]) if ids_per_object else float("nan")
    return TrackScore(
        n_truth,
        len(tracks.frame),
        len(errors),
        float(np.mean(errors)) if errors else float("nan"),
        float(frag),
    )
