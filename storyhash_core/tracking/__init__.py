"""Object trackers behind one interface: sampled frames in, per-object tracks out.

- ``flow`` (default): camera-compensated dense optical flow -> moving-object masks ->
  connected components -> Hungarian association; no weights (OpenCV + SciPy)
- ``sam2``: SAM 2 video predictor, point-grid prompts on the first frame, propagated; a
  user-provided checkpoint

Tracks are cached per video (content, tracker spec, sampling rate) like visual features;
each cache entry also records how long tracking took (the decode, shared with the visual
features by :mod:`storyhash_core.pipeline`, is not counted).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..cache import ArtifactCache, atomic_path, read_npz, spec_key
from ..errors import StoryHashError
from ..video import SampledFrames

TRACK_VERSION = 4  # 4: decoded and tracked with the CPU-independent paths of ..opencv, ..video


class TrackerError(StoryHashError):
    """A tracker cannot be loaded or run (missing checkpoint, package not installed)."""


class TrackerSpec(BaseModel):
    """Which tracker and its settings (``sam2_*`` fields apply to the SAM 2 backend only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["flow", "sam2"] = "flow"
    fps: float = Field(6.0, gt=0)  # frames per second that are tracked
    max_side: int = Field(320, ge=64)  # flow: frames are shrunk to this longer side
    min_area: float = Field(0.002, gt=0, lt=1)  # flow: smallest object, fraction of the frame
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml"
    sam2_checkpoint: str | None = None
    sam2_image_size: int | None = None  # None: the config's (1024)
    sam2_grid: int = Field(3, ge=1)  # prompts: a grid x grid lattice of points on the first frame


@dataclass(frozen=True)
class Tracks:
    """One row per (tracked frame, object): centroid, box (x0, y0, x1, y1) and area, in pixels."""

    times: np.ndarray  # (T,) seconds of the tracked frames
    width: int
    height: int
    frame: np.ndarray  # (K,) index into times
    object_id: np.ndarray  # (K,)
    centroid: np.ndarray  # (K, 2)
    box: np.ndarray  # (K, 4)
    area: np.ndarray  # (K,)

    @property
    def n_objects(self) -> int:
        return len(np.unique(self.object_id))

    @classmethod
    def from_rows(cls, times, width, height, rows: list[tuple]) -> Tracks:
        """``rows``: (frame, object_id, cx, cy, x0, y0, x1, y1, area)."""
        a = np.asarray(rows, np.float64).reshape(-1, 9)
        return cls(
            np.asarray(times, np.float64),
            int(width),
            int(height),
            a[:, 0].astype(int),
            a[:, 1].astype(int),
            a[:, 2:4],
            a[:, 4:8],
            a[:, 8],
        )


class Tracker(Protocol):
    def track(self, frames: np.ndarray, times: np.ndarray) -> Tracks: ...


@functools.lru_cache(maxsize=2)
def load_tracker(spec: TrackerSpec) -> Tracker:
    if spec.name == "sam2":
        from .sam2 import Sam2Tracker

        return Sam2Tracker(spec)
    from .flow import FlowTracker

    return FlowTracker(spec)


def save_tracks(tracks: Tracks, seconds: float, path: Path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                times=tracks.times,
                size=np.array([tracks.width, tracks.height]),
                frame=tracks.frame,
                object_id=tracks.object_id,
                centroid=tracks.centroid,
                box=tracks.box,
                area=tracks.area,
                seconds=np.float64(seconds),
            )


def load_tracks(path: Path) -> tuple[Tracks, float]:
    """Tracks and the seconds tracking took."""
    z = read_npz(path)
    return Tracks(
        z["times"],
        int(z["size"][0]),
        int(z["size"][1]),
        z["frame"],
        z["object_id"],
        z["centroid"],
        z["box"],
        z["area"],
    ), float(z["seconds"])


def track_path(
    digest: str, folder_fps: float | None, spec: TrackerSpec, cache: ArtifactCache
) -> Path:
    """The cache file of a video's tracks: keyed by the source's content ``digest``, the
    tracker spec and (for a frame folder, else None) ``folder_fps``."""
    key = spec_key(
        source=digest, tracker=spec.model_dump(), folder_fps=folder_fps, version=TRACK_VERSION
    )
    return cache.path("tracks", key, ".npz")


def track_frames(sampled: SampledFrames, spec: TrackerSpec) -> tuple[Tracks, float]:
    """Tracks of frames sampled at ``spec.fps``, and the seconds tracking took (decode excluded)."""
    tracker = load_tracker(spec)
    t0 = time.perf_counter()
    tracks = tracker.track(sampled.frames, sampled.timestamps)
    return tracks, time.perf_counter() - t0
