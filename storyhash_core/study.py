"""The study's main job, stage by stage, from a :class:`StudyParams`.

corpus -> query set (every transform of every query reference) -> visual features of
references and queries -> per configuration: fuse, index, search -> per-query rows and
per-transform tables. Every stage writes open files into ``<output_dir>/<run_name>/``;
failures are rows with their error, never dropped, and ``run.json`` records parameters,
the backbone and why it was chosen, versions, counts and timings.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .backbones import BackboneSpec, resolve_auto
from .cache import ArtifactCache, atomic_path
from .corpus import Video, load_manifest, scan_directory
from .errors import ParamsError
from .features import VideoFeatures, extract_features
from .fusion import fuse
from .index import build_index, save_index, search
from .metrics import latency_stats, per_transform_table, query_rows
from .params import StudyParams, resolve_path
from .parallel import Failure, dask_client
from .queries import Query, generate_queries
from .report import beside_paper, paper_table1, write_table
from .synthetic import synthetic_corpus
from .transforms import resolve


@dataclass
class Timer:
    """Wall time per named stage."""

    seconds: dict[str, float] = field(default_factory=dict)

    def __call__(self, name: str):
        timer = self

        class _Stage:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = round(time.perf_counter() - self.t0, 3)

        return _Stage()


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


def concrete_backbone(spec: BackboneSpec, models_dir: str) -> tuple[BackboneSpec, str]:
    """Resolve ``auto`` and expand a weights path; return the spec and why it was chosen."""
    if spec.weights and (spec.name == "mobilenetv2-onnx" or "$" in spec.weights):
        spec = spec.model_copy(update={"weights": str(resolve_path(spec.weights))})
    return resolve_auto(spec, resolve_path(models_dir))


def _failure_map(failures: list[Failure]) -> dict[str, str]:
    return {f.key: f.error for f in failures}


def reference_table(videos: list[Video], feats: dict[str, VideoFeatures], errors: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{
        "video_id": v.video_id, "collection": v.collection, "path": str(v.path),
        "frames_sampled": len(feats[v.video_id].timestamps) if v.video_id in feats else 0,
        "duration_s": feats[v.video_id].duration_s if v.video_id in feats else np.nan,
        "error": errors.get(v.video_id, ""),
    } for v in videos])


def query_table(queries: list[Query], feats: dict[str, VideoFeatures], errors: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{
        "query_id": q.query_id, "reference_id": q.reference_id, "transform": q.transform,
        "family": q.family, "path": str(q.path or ""), "cached": q.cached,
        "frames_sampled": len(feats[q.query_id].timestamps) if q.query_id in feats else 0,
        "error": q.error or errors.get(q.query_id, ""),
    } for q in queries])


def evaluate(params: StudyParams, gallery_ids: list[str], gallery: dict[str, np.ndarray],
             queries: pd.DataFrame, probes: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict, dict]:
    """Per configuration: fuse, index, search every query; return rows, latencies and indexes."""
    rows, latency, indexes = [], {}, {}
    for configuration in params.evaluation.configurations:
        g = fuse(gallery, configuration, params.evaluation.weights)
        q = fuse(probes, configuration, params.evaluation.weights)
        index = build_index(g, params.index)
        result = search(index, q, params.evaluation.k)
        found = query_rows(q, g, gallery_ids, list(queries["reference_id"]), result.rows, result.scores)
        rows.append(pd.concat([queries[["query_id", "reference_id", "transform", "family"]]
                               .reset_index(drop=True).assign(configuration=configuration), found], axis=1))
        latency[configuration] = latency_stats(result.latency_ms)
        indexes[configuration] = index
    return pd.concat(rows, ignore_index=True), latency, indexes


def run_study(params: StudyParams) -> Path:
    """Run every stage; return the run's output folder."""
    out = resolve_path(params.output_dir) / params.run_name
    tables = out / "tables"
    cache = ArtifactCache(resolve_path(params.cache_dir))
    timer = Timer()
    backbone, why = concrete_backbone(params.backbone, params.models_dir)
    with timer("corpus"):
        videos = load_corpus(params, cache)
    transforms = resolve(params.transforms)
    with dask_client(params.cluster) as client:
        with timer("transforms"):
            queries = generate_queries(client, query_sources(params, videos), transforms, cache)
        with timer("reference_features"):
            ref_feats, ref_failed = extract_features(
                client, {v.video_id: (v.path, v.fps) for v in videos}, backbone, params.sampling.fps,
                cache, "reference features")
        with timer("query_features"):
            q_feats, q_failed = extract_features(
                client, {q.query_id: (q.path, 24.0) for q in queries if q.path}, backbone,
                params.sampling.fps, cache, "query features")
    references = reference_table(videos, ref_feats, _failure_map(ref_failed))
    query_df = query_table(queries, q_feats, _failure_map(q_failed))
    gallery_ids = [v.video_id for v in videos if v.video_id in ref_feats]
    orphan = (query_df["error"] == "") & ~query_df["reference_id"].isin(gallery_ids)
    query_df.loc[orphan, "error"] = "reference has no features (see references.csv)"
    usable = query_df[query_df["error"] == ""]

    with timer("evaluate"):
        pooled = {"visual": np.stack([ref_feats[i].pooled(params.pooling) for i in gallery_ids])}
        probes = {"visual": np.stack([q_feats[i].pooled(params.pooling) for i in usable["query_id"]])}
        rows, latency, indexes = evaluate(params, gallery_ids, pooled, usable, probes)
        table = per_transform_table(rows, [t.name for t in transforms])

    main = params.evaluation.configurations[0]
    save_index(indexes[main], gallery_ids, {
        "configuration": main, "backbone": backbone.model_dump(), "pooling": params.pooling,
        "sampling_fps": params.sampling.fps, "index": params.index.model_dump(),
        "weights": params.evaluation.weights}, out / "index")
    write_table(references, tables / "references")
    write_table(query_df, tables / "queries")
    write_table(rows, tables / "robustness_per_query")
    write_table(table, tables / "table1", ("csv", "md", "tex"))
    paper_json = resolve_path(params.paper_results)
    if paper_json.is_file():
        write_table(beside_paper(table, paper_table1(paper_json)), tables / "table1_vs_paper", ("csv", "md"))

    summary = {
        "backbone": backbone.name, "backbone_reason": why,
        "references": len(videos), "references_failed": int((references["error"] != "").sum()),
        "queries": len(query_df), "queries_failed": int((query_df["error"] != "").sum()),
        "queries_cached": int(query_df["cached"].sum()),
        "overall": table[table["transform"] == "overall"].drop(columns="transform").to_dict("records"),
        "search_latency": latency,
    }
    record = {"params": params.model_dump(), "summary": summary, "timings_s": timer.seconds,
              "versions": {"storyhash": __version__, "python": platform.python_version()}}
    with atomic_path(out / "run.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    return out
