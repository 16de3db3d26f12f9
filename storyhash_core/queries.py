"""Query sets: transformed copies of reference videos, generated in parallel into the cache.

Each (reference, transform) pair is one task. Its output is cached under a key of the
reference's content digest, the transform's spec, the ffmpeg version and
:data:`QUERY_VERSION`, and written atomically, so a rerun does no work and an
interrupted run resumes with only the missing queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dask.distributed import Client

from .cache import ArtifactCache, atomic_path, spec_key
from .corpus import Video
from .errors import TransformError
from .parallel import run_batch
from .transforms import Transform, apply_transform, ffmpeg_exe, hard_transform, seeded
from .video import check_exists

QUERY_VERSION = 1


@dataclass(frozen=True)
class Query:
    """A transformed copy of ``reference_id``; ``path`` is None when generation failed."""

    query_id: str
    reference_id: str
    transform: str
    family: str
    path: Path | None
    cached: bool = False
    error: str = ""
    suite: str = "paper"  # "paper" (the paper's transforms and sweeps) or "hard"


@dataclass(frozen=True)
class QueryJob:
    """A reference, the transform to make of it, and the background videos it composes."""

    video: Video
    transform: Transform
    backgrounds: tuple[Video, ...] = ()
    suite: str = "paper"


def query_id(reference_id: str, transform: str) -> str:
    return f"{reference_id}@{transform}"


def query_path(job: QueryJob, cache: ArtifactCache) -> Path:
    """Where the cache keeps ``job``'s query video (whether or not it exists yet)."""
    extra = {"backgrounds": [cache.digest(check_exists(b.path)) for b in job.backgrounds]}
    key = spec_key(
        source=cache.digest(check_exists(job.video.path)),
        transform=job.transform.spec(),
        folder_fps=job.video.fps if job.video.is_frame_folder else None,
        ffmpeg=Path(ffmpeg_exe()).name,
        version=QUERY_VERSION,
        **(extra if job.backgrounds else {}),  # keys without backgrounds as before
    )
    return cache.path("queries", key, ".mp4")


def make_query(job: QueryJob, cache_root: str) -> tuple[Path, bool]:
    """Generate one query video unless cached; return its path and whether it was a cache hit."""
    cache = ArtifactCache(cache_root)
    out = query_path(job, cache)
    if cache.exists(out):
        return out, True
    with atomic_path(out) as tmp:
        backgrounds = tuple(b.path for b in job.backgrounds)
        apply_transform(job.video.path, job.transform, tmp, job.video.fps, backgrounds)
    cache.publish(out)
    return out, False


def _cached_query(job: QueryJob, cache: ArtifactCache) -> tuple[Path, bool] | None:
    out = query_path(job, cache)
    return (out, True) if cache.exists(out) else None


def generate_queries(
    client: Client, videos: list[Video], transforms: list[Transform], cache: ArtifactCache
) -> list[Query]:
    """Every transform of every video, in parallel; failures are kept with their error."""
    return run_jobs(client, [QueryJob(v, t) for v in videos for t in transforms], cache)


def hard_jobs(videos: list[Video], names: list[str], backgrounds: list[Video]) -> list[QueryJob]:
    """Each hard edit of each video (:func:`~storyhash_core.transforms.hard_transform`), with
    its background videos drawn from ``backgrounds`` (files, in no gallery) by a seed of the
    source and the edit, so every run and machine composes the same query."""
    jobs = []
    for video in videos:
        for name in names:
            edit = hard_transform(name, video.video_id)
            rng = seeded(video.video_id, name, "backgrounds")
            if edit.backgrounds > len(backgrounds):
                raise TransformError(
                    f"{name} composes {edit.backgrounds} background videos,"
                    f" {len(backgrounds)} given (params: raise hard_suite.backgrounds.n_videos)"
                )
            drawn = tuple(rng.sample(backgrounds, edit.backgrounds))
            jobs.append(QueryJob(video, edit, drawn, "hard"))
    return jobs


def run_jobs(client: Client, jobs: list[QueryJob], cache: ArtifactCache) -> list[Query]:
    """Every job, in parallel, cached; failures are kept with their error."""
    keys = [query_id(j.video.video_id, j.transform.name) for j in jobs]
    done, failed = run_batch(
        client,
        make_query,
        jobs,
        keys,
        "transforms",
        cached=lambda job: _cached_query(job, cache),
        cache_root=cache.url,
    )
    errors = {f.key: f.error for f in failed}
    return [
        Query(
            k,
            j.video.video_id,
            j.transform.name,
            j.transform.family,
            *(done[k] if k in done else (None, False)),
            errors.get(k, ""),
            j.suite,
        )
        for j, k in zip(jobs, keys, strict=True)
    ]
