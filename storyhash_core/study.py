"""The study's main job, stage by stage, from a :class:`StudyParams`.

Stages so far: build the corpus, generate the query set (every transform of every query
reference), and decode every reference and query at the sampling rate. Each stage writes a
tidy table into ``<output_dir>/<run_name>/``; failures are rows with their error, never
dropped, and ``run.json`` records parameters, versions, counts and timings.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from . import __version__
from .cache import ArtifactCache, atomic_path
from .corpus import Video, load_manifest, scan_directory
from .errors import ParamsError
from .params import StudyParams, resolve_path
from .parallel import dask_client, run_batch
from .queries import Query, generate_queries
from .synthetic import synthetic_corpus
from .transforms import resolve
from .video import sample_frames


@dataclass(frozen=True)
class DecodeStats:
    """What sampling found in one video."""

    n_sampled: int
    duration_s: float
    source_fps: float
    width: int
    height: int


def load_corpus(params: StudyParams, cache: ArtifactCache) -> list[Video]:
    """The reference videos the params select."""
    c = params.corpus
    if c.kind == "synthetic":
        videos = load_manifest(synthetic_corpus(c.synthetic, cache))
    elif c.path is None:
        raise ParamsError(f"corpus.kind {c.kind!r} needs corpus.path")
    elif c.kind == "manifest":
        videos = load_manifest(resolve_path(c.path))
    else:
        videos = scan_directory(resolve_path(c.path), c.folder_fps, "davis" if c.kind == "davis" else "")
    return videos[: c.limit] if c.limit else videos


def query_sources(params: StudyParams, videos: list[Video]) -> list[Video]:
    """The references that are transformed into queries."""
    wanted = params.corpus.query_collections
    return [v for v in videos if wanted is None or v.collection in wanted]


def decode_stats(path: Path, fps: float, folder_fps: float) -> DecodeStats:
    s = sample_frames(path, fps, folder_fps)
    return DecodeStats(len(s), s.duration_s, s.source_fps, s.frames.shape[2], s.frames.shape[1])


def _decode_table(client, items: dict[str, tuple[Path, float]], fps: float) -> pd.DataFrame:
    keys = list(items)
    done, failed = run_batch(client, _decode_item, [items[k] for k in keys], keys, "decode", fps=fps)
    rows = [{"id": k, **asdict(v), "error": ""} for k, v in done.items()]
    rows += [{"id": f.key, "error": f.error} for f in failed]
    return pd.DataFrame(rows).sort_values("id").reset_index(drop=True)


def _decode_item(item: tuple[Path, float], fps: float) -> DecodeStats:
    return decode_stats(item[0], fps, item[1])


def write_table(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def run_study(params: StudyParams) -> Path:
    """Run every stage; return the run's output folder."""
    out = resolve_path(params.output_dir) / params.run_name
    cache = ArtifactCache(resolve_path(params.cache_dir))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    videos = load_corpus(params, cache)
    timings["corpus_s"] = time.perf_counter() - t0
    with dask_client(params.cluster) as client:
        t0 = time.perf_counter()
        queries = generate_queries(client, query_sources(params, videos), resolve(params.transforms), cache)
        timings["transforms_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        items = {v.video_id: (v.path, v.fps) for v in videos}
        items |= {q.query_id: (q.path, 24.0) for q in queries if q.path is not None}
        decoded = _decode_table(client, items, params.sampling.fps)
        timings["decode_s"] = time.perf_counter() - t0
    references = pd.DataFrame([{"video_id": v.video_id, "collection": v.collection, "path": str(v.path)}
                               for v in videos])
    query_table = pd.DataFrame([_query_row(q) for q in queries])
    write_table(references, out / "references.csv")
    write_table(query_table, out / "queries.csv")
    write_table(decoded, out / "decoded.csv")
    summary = {
        "references": len(videos),
        "queries": len(queries),
        "queries_failed": int((query_table["error"] != "").sum()) if len(query_table) else 0,
        "queries_cached": int(query_table["cached"].sum()) if len(query_table) else 0,
        "decode_failed": int((decoded["error"] != "").sum()),
    }
    record = {"params": params.model_dump(), "summary": summary, "timings": timings,
              "versions": {"storyhash": __version__, "python": platform.python_version()}}
    with atomic_path(out / "run.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    return out


def _query_row(q: Query) -> dict:
    row = asdict(q)
    row["path"] = str(q.path) if q.path else ""
    return row
