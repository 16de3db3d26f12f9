"""Per-video visual features: frame embeddings at the sampling rate, pooled into one vector.

A video's frames are sampled (:mod:`storyhash_core.video`), embedded by a backbone, and
each frame embedding is L2-normalised; the per-frame matrix and its timestamps are cached
as an ``.npz`` keyed by the video's content, the backbone's weights and the sampling
parameters. Pooling (median as in the paper, mean or max, then L2) is computed from the
cached frames, so changing it never re-runs a model. A frame ``variant`` (flip or rotation,
:mod:`storyhash_core.augment`) is applied before the backbone and is part of the key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from dask.distributed import Client

from .augment import apply_variant
from .backbones import BackboneSpec, load_backbone
from .cache import ArtifactCache, atomic_path, content_digest, spec_key
from .parallel import Failure, run_batch
from .video import sample_frames

FEATURE_VERSION = 2
Pooling = Literal["median", "mean", "max"]


@dataclass(frozen=True)
class VideoFeatures:
    """L2-normalised frame embeddings (N×D) with their timestamps (s)."""

    timestamps: np.ndarray
    frames: np.ndarray
    duration_s: float
    seconds: float = 0.0  # wall time of decoding and embedding

    def pooled(self, method: Pooling = "median") -> np.ndarray:
        return pool(self.frames, method)


@dataclass(frozen=True)
class FeatureJob:
    """Everything one extraction task needs."""

    path: Path
    folder_fps: float
    backbone: BackboneSpec
    fps: float
    variant: str = ""  # "" (the frames as decoded) or a name from storyhash_core.augment


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Divide by the L2 norm along ``axis``; all-zero rows stay zero."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x, dtype=np.float32), where=norm > 0).astype(np.float32)


def pool(frames: np.ndarray, method: Pooling = "median") -> np.ndarray:
    """Pool frame embeddings over time, then L2-normalise."""
    reducers = {"median": np.median, "mean": np.mean, "max": np.max}
    if method not in reducers:
        raise ValueError(f"unknown pooling {method!r} (median, mean or max)")
    return l2_normalize(reducers[method](frames, axis=0))


def save_features(features: VideoFeatures, path: Path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, timestamps=features.timestamps, frames=features.frames,
                     duration_s=np.float64(features.duration_s), seconds=np.float64(features.seconds))


def load_features(path: Path) -> VideoFeatures:
    with np.load(path) as z:
        return VideoFeatures(z["timestamps"], z["frames"], float(z["duration_s"]), float(z["seconds"]))


def feature_path(job: FeatureJob, cache_root: str, digest: str | None = None) -> Path:
    """The cache file of ``job``: keyed by content (``digest``, computed if not given), weights,
    sampling and frame variant."""
    key = spec_key(source=digest or content_digest(job.path), weights=load_backbone(job.backbone).weights_id, fps=job.fps,
                   folder_fps=job.folder_fps if job.path.is_dir() else None, version=FEATURE_VERSION,
                   **({"variant": job.variant} if job.variant else {}))
    return ArtifactCache(cache_root).path("features", key, ".npz")


def extract_many(jobs: tuple[FeatureJob, ...], cache_root: str) -> list[Path]:
    """Features of one video for several (backbone, variant) jobs, decoding it once; each
    output is computed unless cached, and its ``seconds`` are the decode plus its own embedding."""
    first = jobs[0]
    if any((j.path, j.folder_fps, j.fps) != (first.path, first.folder_fps, first.fps) for j in jobs):
        raise ValueError("extract_many: jobs must share the video and the sampling")
    digest = content_digest(first.path)
    outs = [feature_path(j, cache_root, digest) for j in jobs]
    todo = [(j, o) for j, o in zip(jobs, outs) if not o.is_file()]
    if todo:
        t0 = time.perf_counter()
        sampled = sample_frames(first.path, first.fps, first.folder_fps)
        decode_s = time.perf_counter() - t0
        for job, out in todo:
            t0 = time.perf_counter()
            frames = apply_variant(sampled.frames, job.variant) if job.variant else sampled.frames
            frames = l2_normalize(load_backbone(job.backbone).embed(frames))
            seconds = decode_s + time.perf_counter() - t0
            save_features(VideoFeatures(sampled.timestamps, frames, sampled.duration_s, seconds), out)
    return outs


def extract_one(job: FeatureJob, cache_root: str) -> Path:
    """Features of one video, computed unless cached; returns the cache file."""
    return extract_many((job,), cache_root)[0]


def extract_feature_sets(client: Client, items: dict[str, tuple[Path, float]],
                         outputs: list[tuple[BackboneSpec, str]], fps: float, cache: ArtifactCache,
                         desc: str = "features") -> tuple[dict[str, list[Path]], list[Failure]]:
    """Several (backbone, variant) features of every ``{id: (path, folder_fps)}``, one decode per
    video, in parallel; returns (cache files by id, in ``outputs`` order; failures)."""
    keys = list(items)
    jobs = [tuple(FeatureJob(items[k][0], items[k][1], b, fps, v) for b, v in outputs) for k in keys]
    return run_batch(client, extract_many, jobs, keys, desc, cache_root=str(cache.root))


def extract_features(client: Client, items: dict[str, tuple[Path, float]], backbone: BackboneSpec, fps: float,
                     cache: ArtifactCache, desc: str = "features") -> tuple[dict[str, Path], list[Failure]]:
    """Features for ``{id: (path, folder_fps)}`` in parallel; returns (cache file by id, failures)."""
    done, failed = extract_feature_sets(client, items, [(backbone, "")], fps, cache, desc)
    return {k: v[0] for k, v in done.items()}, failed
