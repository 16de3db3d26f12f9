"""Query sets: transformed copies of reference videos, generated in parallel into the cache.

Each (reference, transform) pair is one query video, cached under a key of the reference's
content digest, the transform's spec, the ffmpeg version and :data:`QUERY_VERSION`, and
written atomically, so a rerun does no work and an interrupted run resumes with only the
missing queries. One task makes up to :data:`SHARED_DECODE` queries of a source from one
decode (:func:`batches`), the same bytes as one ffmpeg call each.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .cache import ArtifactCache, atomic_path, spec_key
from .corpus import Video
from .errors import TransformError
from .parallel import Failure, Workers, refusing, run_batch
from .transforms import (
    Transform,
    apply_transform,
    apply_transforms,
    ffmpeg_exe,
    hard_transform,
    seeded,
    shares_decode,
)
from .video import check_exists

QUERY_VERSION = 1
SHARED_DECODE = 12  # queries written by one ffmpeg call (each holds its encoder's frames)


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


def make_queries(jobs: list[QueryJob], cache_root: str) -> list[tuple[Path, bool] | Failure]:
    """Several queries of one source (transforms that :func:`shares_decode`) from one decode,
    or, if that call fails, one call each, so each failure is its own row with its error."""
    cache = ArtifactCache(cache_root)
    outs = [query_path(job, cache) for job in jobs]
    source = jobs[0].video
    try:
        with ExitStack() as stack:
            tmps = [stack.enter_context(atomic_path(out)) for out in outs]
            apply_transforms(source.path, [j.transform for j in jobs], tmps, source.fps)
    except TransformError:
        return [refusing(make_query, job, cache_root=cache_root) for job in jobs]
    for out in outs:
        cache.publish(out)
    return [(out, False) for out in outs]


def _cached_query(job: QueryJob, cache: ArtifactCache) -> tuple[Path, bool] | None:
    out = query_path(job, cache)
    return (out, True) if cache.exists(out) else None


def batches(jobs: list[QueryJob]) -> list[list[QueryJob]]:
    """``jobs`` as the calls that make them: the transforms of a source that share its decode,
    :data:`SHARED_DECODE` at a time, and every other job alone."""
    shared: dict[str, list[QueryJob]] = {}
    out = []
    for job in jobs:
        if shares_decode(job.transform):
            shared.setdefault(job.video.video_id, []).append(job)
        else:
            out.append([job])
    for group in shared.values():
        out += [group[i : i + SHARED_DECODE] for i in range(0, len(group), SHARED_DECODE)]
    return out


def generate_queries(
    client: Workers, videos: list[Video], transforms: list[Transform], cache: ArtifactCache
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


def run_jobs(client: Workers, jobs: list[QueryJob], cache: ArtifactCache) -> list[Query]:
    """Every job, in parallel (:func:`batches`), cached; failures are kept with their error."""
    keys = [query_id(j.video.video_id, j.transform.name) for j in jobs]
    made: dict[str, tuple[Path, bool]] = {}
    todo = []
    for job, key in zip(jobs, keys, strict=True):
        if (hit := _cached_query(job, cache)) is not None:
            made[key] = hit
        else:
            todo.append(job)
    calls = batches(todo)
    call_keys = [query_id(c[0].video.video_id, c[0].transform.name) for c in calls]
    done, failed = run_batch(
        client,
        make_queries,
        calls,
        call_keys,
        f"transforms ({len(made)} cached, {len(todo)} in {len(calls)} ffmpeg calls)",
        cache_root=cache.url,
    )
    errors, call_errors = {}, {f.key: f.error for f in failed}
    for call, call_key in zip(calls, call_keys, strict=True):
        results = done.get(call_key) or [Failure(call_key, call_errors[call_key])] * len(call)
        for job, result in zip(call, results, strict=True):
            key = query_id(job.video.video_id, job.transform.name)
            if isinstance(result, Failure):
                errors[key] = result.error
            else:
                made[key] = result
    return [
        Query(
            k,
            j.video.video_id,
            j.transform.name,
            j.transform.family,
            *(made[k] if k in made else (None, False)),
            errors.get(k, ""),
            j.suite,
        )
        for j, k in zip(jobs, keys, strict=True)
    ]
