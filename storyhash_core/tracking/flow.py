"""The weight-free default tracker: moving objects from camera-compensated optical flow.

For each tracked frame, against its next one (the last frame: its previous one):
1. dense optical flow (DIS);
2. camera motion: a similarity transform (pan, zoom, roll) fitted with RANSAC to a lattice
   of flow vectors; the flow it does not explain is object motion;
3. pixels whose residual motion exceeds ``max(1 px, 3 x median)`` form the moving mask,
   cleaned by morphological opening/closing, split into connected components, and
   components smaller than ``min_area`` of the frame dropped;
4. detections are linked into tracks by a Hungarian match on the distance between each
   track's predicted position (constant velocity) and each detection, gated at 15 % of the
   frame diagonal; a track survives 2 frames without detection, and tracks seen on a single
   frame are dropped as flicker.
Frames are shrunk to ``max_side`` first; results are reported in original pixels.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..opencv import cv2
from . import TrackerSpec, Tracks

MAX_GAP = 2
GATE = 0.15  # of the frame diagonal


def camera_motion(flow: np.ndarray, step: int = 8) -> np.ndarray:
    """2×3 similarity transform (pan, zoom, roll) that best explains ``flow``, fitted with RANSAC
    on a lattice of flow vectors; the moving objects are its outliers."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0)
    return m if m is not None else np.array([[1.0, 0, 0], [0, 1.0, 0]])


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(y, x) coordinates of every pixel, float32, computed once per frame size."""
    grid = np.mgrid[0:h, 0:w].astype(np.float32)
    grid.flags.writeable = False
    return grid


def moving_mask(g0: np.ndarray, g1: np.ndarray, flow_engine, border: float = 0.03) -> np.ndarray:
    """Pixels of g0 that move differently from the camera (frame borders, where content
    enters and flow is unreliable, are left out)."""
    h, w = g0.shape
    flow = flow_engine.calc(g0, g1, None)
    m = camera_motion(flow)
    ys, xs = _pixel_grid(h, w)
    cam_x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs
    cam_y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys
    residual = np.hypot(flow[..., 0] - cam_x, flow[..., 1] - cam_y)
    mask = (residual > max(1.0, 3.0 * float(np.median(residual)))).astype(np.uint8)
    by, bx = max(1, int(border * h)), max(1, int(border * w))
    mask[:by], mask[-by:], mask[:, :bx], mask[:, -bx:] = 0, 0, 0, 0
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))


def detections(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Rows (cx, cy, x0, y0, x1, y1, area) of the mask's large connected components."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rows = [
        (
            *centroids[i],
            stats[i, 0],
            stats[i, 1],
            stats[i, 0] + stats[i, 2],
            stats[i, 1] + stats[i, 3],
            stats[i, 4],
        )
        for i in range(1, n)
        if stats[i, 4] >= min_pixels
    ]
    return np.asarray(rows, np.float64).reshape(-1, 7)


def link(per_frame: list[np.ndarray], diag: float) -> list[tuple]:
    """Associate detections across frames; rows (frame, object_id, cx, cy, x0, y0, x1, y1, area)."""
    active: dict[int, dict] = {}  # id -> {"pos", "vel", "last"}
    rows, next_id, lengths = [], 0, {}
    for f, dets in enumerate(per_frame):
        ids = list(active)
        matched_dets, matched_ids = set(), set()
        if ids and len(dets):
            predicted = np.array(
                [active[i]["pos"] + active[i]["vel"] * (f - active[i]["last"]) for i in ids]
            )
            cost = np.linalg.norm(predicted[:, None, :] - dets[None, :, :2], axis=2)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if cost[r, c] <= GATE * diag:
                    i = ids[r]
                    gap = f - active[i]["last"]
                    active[i]["vel"] = (dets[c, :2] - active[i]["pos"]) / gap
                    active[i]["pos"], active[i]["last"] = dets[c, :2], f
                    rows.append((f, i, *dets[c]))
                    lengths[i] += 1
                    matched_dets.add(c)
                    matched_ids.add(i)
        for c in range(len(dets)):
            if c not in matched_dets:
                active[next_id] = {"pos": dets[c, :2], "vel": np.zeros(2), "last": f}
                rows.append((f, next_id, *dets[c]))
                lengths[next_id] = 1
                next_id += 1
        for i in [i for i in active if f - active[i]["last"] > MAX_GAP]:
            del active[i]
    return [r for r in rows if lengths[r[1]] > 1]


class FlowTracker:
    def __init__(self, spec: TrackerSpec) -> None:
        self.spec = spec

    def track(self, frames: np.ndarray, times: np.ndarray) -> Tracks:
        h, w = frames.shape[1:3]
        scale = min(1.0, self.spec.max_side / max(h, w))
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        grey = [
            cv2.cvtColor(cv2.resize(f, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
            for f in frames
        ]
        engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        min_pixels = int(self.spec.min_area * size[0] * size[1])
        per_frame = []
        for i in range(len(grey)):
            j = i + 1 if i + 1 < len(grey) else i - 1
            if j < 0:
                per_frame.append(np.zeros((0, 7)))
                continue
            dets = detections(moving_mask(grey[i], grey[j], engine), min_pixels)
            dets[:, :6] /= scale
            dets[:, 6] /= scale * scale
            per_frame.append(dets)
        rows = link(per_frame, float(np.hypot(w, h)))
        return Tracks.from_rows(times, w, h, rows)
