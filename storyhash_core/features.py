"""Per-video visual features: frame embeddings at the sampling rate, pooled into one vector.

A video's sampled frames (:mod:`storyhash_core.video`) are embedded by a backbone and each
frame embedding is L2-normalised; the per-frame matrix and its timestamps are cached as an
``.npz`` keyed by the video's content, the backbone's weights and the sampling parameters
(:func:`feature_path`). Pooling (median as in the paper, mean or max, then L2) is computed
from the cached frames, so changing it never re-runs a model. A frame ``variant`` (flip or
rotation, :mod:`storyhash_core.augment`) is applied before the backbone and is part of the
key. :mod:`storyhash_core.pipeline` runs the extraction, one decode per video.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .augment import apply_variant
from .backbones import BackboneSpec, load_backbone, weights_id
from .cache import ArtifactCache, atomic_path, read_npz, spec_key
from .video import SampledFrames

# 5: two-step anti-aliased shrink (box for the whole factor, then bilinear or area)
# 6: frames converted to RGB by integer arithmetic, OpenCV without CPU-specific kernels
# 7: ... and without IPP in every thread (6 still had it in worker threads)
FEATURE_VERSION = 7
Pooling = Literal["median", "mean", "max"]


@dataclass(frozen=True)
class VideoFeatures:
    """L2-normalised frame embeddings (N×D) with their timestamps (s), and what they cost:
    the decode (shared by every output of one decode) and this output's embedding."""

    timestamps: np.ndarray
    frames: np.ndarray
    duration_s: float
    decode_s: float = 0.0
    embed_s: float = 0.0

    def pooled(self, method: Pooling = "median") -> np.ndarray:
        return pool(self.frames, method)


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Divide by the L2 norm along ``axis``; all-zero rows stay zero."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x, dtype=np.float32), where=norm > 0).astype(
        np.float32
    )


def pool(frames: np.ndarray, method: Pooling = "median") -> np.ndarray:
    """Pool frame embeddings over time, then L2-normalise."""
    reducers = {"median": np.median, "mean": np.mean, "max": np.max}
    if method not in reducers:
        raise ValueError(f"unknown pooling {method!r} (median, mean or max)")
    return l2_normalize(reducers[method](frames, axis=0))


def save_features(features: VideoFeatures, path: Path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                timestamps=features.timestamps,
                frames=features.frames,
                duration_s=np.float64(features.duration_s),
                decode_s=np.float64(features.decode_s),
                embed_s=np.float64(features.embed_s),
            )


def load_features(path: Path) -> VideoFeatures:
    z = read_npz(path)
    return VideoFeatures(
        z["timestamps"],
        z["frames"],
        float(z["duration_s"]),
        float(z["decode_s"]),
        float(z["embed_s"]),
    )


def feature_path(
    digest: str,
    folder_fps: float | None,
    backbone: BackboneSpec,
    fps: float,
    variant: str,
    cache: ArtifactCache,
) -> Path:
    """The cache file of one output: keyed by the source's content ``digest``, the weights,
    the sampling (``folder_fps`` only for a frame folder, else None) and the frame variant."""
    key = spec_key(
        source=digest,
        weights=weights_id(backbone),
        fps=fps,
        folder_fps=folder_fps,
        version=FEATURE_VERSION,
        **({"variant": variant} if variant else {}),
    )
    return cache.path("features", key, ".npz")


def embed_frames(
    sampled: SampledFrames, backbone: BackboneSpec, variant: str = "", decode_s: float = 0.0
) -> VideoFeatures:
    """Features of sampled frames (after ``variant``), timing the embedding."""
    t0 = time.perf_counter()
    frames = apply_variant(sampled.frames, variant) if variant else sampled.frames
    embedded = l2_normalize(load_backbone(backbone).embed(frames))
    return VideoFeatures(
        sampled.timestamps, embedded, sampled.duration_s, decode_s, time.perf_counter() - t0
    )
