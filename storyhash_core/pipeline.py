"""The per-video pipeline: one task per video decodes it once and computes every artifact.

A :class:`VideoJob` asks for visual features of some (backbone, frame variant) outputs and,
optionally, tracks. The task looks each artifact up in the cache (keys: the source's
content digest, remembered by :meth:`ArtifactCache.digest`, and each artifact's spec),
decodes only if something is missing, at the rates the missing artifacts need (one decode
when the visual rate divides the tracking rate, :func:`~storyhash_core.video.sample_rates`),
and writes each artifact atomically (and, for a cache at a URL, uploads it). :func:`process_videos`
runs the tasks on a Dask client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from .backbones import BackboneSpec
from .cache import ArtifactCache
from .features import embed_frames, feature_path, save_features
from .opencv import baseline_kernels
from .parallel import Failure, Workers, run_batch
from .tracking import TrackerSpec, save_tracks, track_frames, track_path
from .video import check_exists, sample_rates

Output = tuple[BackboneSpec, str]  # a backbone and a frame variant ("" = the frames as decoded)


@dataclass(frozen=True)
class VideoJob:
    """One video (a file, or a frame folder played at ``folder_fps``) and what to compute."""

    path: Path
    folder_fps: float
    fps: float  # visual sampling rate
    outputs: tuple[Output, ...] = ()
    tracker: TrackerSpec | None = None


@dataclass(frozen=True)
class VideoArtifacts:
    """Cache files of a job: features in ``outputs`` order, and the tracks (None: not asked)."""

    features: tuple[Path, ...]
    tracks: Path | None


def artifact_paths(job: VideoJob, cache: ArtifactCache) -> VideoArtifacts:
    """Where the cache keeps ``job``'s artifacts (whether or not they exist yet)."""
    digest = cache.digest(check_exists(cache.fetch(job.path)))  # a query video may be a cache entry
    folder_fps = job.folder_fps if job.path.is_dir() else None
    return VideoArtifacts(
        tuple(feature_path(digest, folder_fps, b, job.fps, v, cache) for b, v in job.outputs),
        track_path(digest, folder_fps, job.tracker, cache) if job.tracker else None,
    )


def cached_artifacts(job: VideoJob, cache: ArtifactCache) -> VideoArtifacts | None:
    """``job``'s artifacts if every one is in the cache, else None."""
    a = artifact_paths(job, cache)
    return a if all(cache.exists(f) for f in (*a.features, *filter(None, [a.tracks]))) else None


def process_video(job: VideoJob, cache_root: str) -> VideoArtifacts:
    """Every artifact of ``job``, computed unless cached; returns the cache files."""
    cache = ArtifactCache(cache_root)
    job = replace(job, path=cache.fetch(job.path))  # a query video is a cache entry
    artifacts = artifact_paths(job, cache)
    features, tracks = artifacts.features, artifacts.tracks
    missing = [(o, f) for o, f in zip(job.outputs, features, strict=True) if not cache.exists(f)]
    track_missing = tracks is not None and not cache.exists(tracks)
    if missing or track_missing:
        baseline_kernels()  # this thread's OpenCV: the same floats on every CPU
        rates = ([job.fps] if missing else []) + ([job.tracker.fps] if track_missing else [])
        t0 = time.perf_counter()
        sampled = sample_rates(job.path, rates, job.folder_fps)
        decode_s = time.perf_counter() - t0
        for (backbone, variant), out in missing:
            save_features(embed_frames(sampled[job.fps], backbone, variant, decode_s), out)
            cache.publish(out)
        if track_missing:
            save_tracks(*track_frames(sampled[job.tracker.fps], job.tracker), tracks)
            cache.publish(tracks)
    return artifacts


def process_videos(
    client: Workers,
    items: dict[str, tuple[Path, float]],
    fps: float,
    outputs: list[Output],
    tracker: TrackerSpec | None,
    cache: ArtifactCache,
    desc: str = "videos",
) -> tuple[dict[str, VideoArtifacts], list[Failure]]:
    """:func:`process_video` for every ``{id: (path, folder_fps)}`` in parallel; returns the
    artifacts by id (on this machine: fetched from a cache at a URL) and the failures (each
    with its error). Videos whose artifacts are all cached are answered here, without a task."""
    keys = list(items)
    jobs = [VideoJob(items[k][0], items[k][1], fps, tuple(outputs), tracker) for k in keys]
    done, failed = run_batch(
        client,
        process_video,
        jobs,
        keys,
        desc,
        cached=lambda job: cached_artifacts(job, cache),
        cache_root=cache.url,
    )
    local = {
        k: VideoArtifacts(tuple(map(cache.fetch, a.features)), a.tracks and cache.fetch(a.tracks))
        for k, a in done.items()
    }
    return local, failed
