"""The study's main job, stage by stage, from a :class:`StudyParams`.

corpus -> query set (every transform of every query reference) -> visual features and
object tracks of references and queries -> blocks (visual pooled; action min-max scaled
on the references; graph) -> per configuration: fuse, index, search -> per-query rows and
per-transform tables. Every stage writes open files into ``<output_dir>/<run_name>/``;
failures are rows with their error, never dropped, and ``run.json`` records parameters,
the backbone and why it was chosen, versions, counts and timings.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
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
from .motion import ACTION_NAMES, GRAPH_NAMES, MinMax, motion_blocks
from .params import StudyParams, resolve_path
from .parallel import dask_client
from .queries import Query, generate_queries
from .report import beside_paper, paper_table1, track_strip, write_table
from .synthetic import GROUND_TRUTH, synthetic_corpus
from .tracking import Tracks, track_videos
from .tracking.evaluate import score_tracks
from .transforms import resolve
from .video import sample_frames


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


@dataclass
class Extracted:
    """Per-video features, tracks and the errors of those that failed."""

    feats: dict[str, VideoFeatures]
    tracks: dict[str, tuple[Tracks, float]]
    errors: dict[str, str]

    def usable(self, video_id: str, motion: bool) -> bool:
        return video_id in self.feats and (not motion or video_id in self.tracks)


def extract(client, params: StudyParams, backbone: BackboneSpec, items: dict[str, tuple[Path, float]],
            cache: ArtifactCache, what: str, timer: Timer) -> Extracted:
    """Visual features (and tracks, if motion is on) for ``{id: (path, folder_fps)}``."""
    with timer(f"{what}_features"):
        feats, failed = extract_features(client, items, backbone, params.sampling.fps, cache, f"{what} features")
    tracks: dict[str, tuple[Tracks, float]] = {}
    if params.motion.enabled:
        with timer(f"{what}_tracks"):
            tracks, track_failed = track_videos(client, items, params.motion.tracker, cache, f"{what} tracks")
        failed = failed + track_failed
    errors: dict[str, str] = {}
    for f in failed:
        errors[f.key] = "; ".join(filter(None, [errors.get(f.key), f.error]))
    return Extracted(feats, tracks, errors)


def blocks_for(ids: list[str], ex: Extracted, params: StudyParams, scaler: MinMax | None):
    """Blocks for ``ids``; the action scaler is fitted here when none is given (references)."""
    blocks = {"visual": np.stack([ex.feats[i].pooled(params.pooling) for i in ids])}
    if params.motion.enabled:
        action, graph = motion_blocks([ex.tracks[i][0] for i in ids])
        scaler = scaler or MinMax.fit(action)
        blocks |= {"action": scaler.apply(action), "graph": graph, "action_raw": action}
    return blocks, scaler


def cost_table(kind: str, ids: list[str], ex: Extracted) -> pd.DataFrame:
    """Per-video extraction seconds: visual, tracking and tracking's share."""
    visual = np.array([ex.feats[i].seconds for i in ids])
    tracking = np.array([ex.tracks[i][1] if i in ex.tracks else np.nan for i in ids])
    return pd.DataFrame({"id": ids, "kind": kind, "visual_s": visual, "tracking_s": tracking,
                         "tracking_share": tracking / (visual + tracking)})


def motion_table(ids: list[str], blocks: dict) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"id": ids}),
                      pd.DataFrame(blocks["action_raw"], columns=list(ACTION_NAMES)),
                      pd.DataFrame(blocks["graph"], columns=[f"graph_{n}" for n in GRAPH_NAMES])], axis=1)


def tracking_vs_truth(videos: list[Video], ex: Extracted, truth_csv: Path) -> pd.DataFrame:
    """Reference tracks scored against the synthetic corpus's known trajectories."""
    truth = pd.read_csv(truth_csv)
    rows = []
    for v in videos:
        if v.video_id in ex.tracks:
            score = score_tracks(ex.tracks[v.video_id][0], truth[truth["video_id"] == v.video_id], v.fps)
            rows.append({"video_id": v.video_id, **asdict(score), "recall": score.recall,
                         "precision": score.precision})
    return pd.DataFrame(rows)


def draw_tracks(videos: list[Video], ex: Extracted, params: StudyParams, folder: Path) -> None:
    """A strip of frames with tracks drawn, for the first few references."""
    import cv2

    for v in [v for v in videos if v.video_id in ex.tracks][: params.motion.figures]:
        frames = sample_frames(v.path, params.motion.tracker.fps, v.fps).frames
        image = track_strip(frames, ex.tracks[v.video_id][0])
        with atomic_path(folder / f"tracks_{v.video_id}.png") as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def run_study(params: StudyParams) -> Path:
    """Run every stage; return the run's output folder."""
    out = resolve_path(params.output_dir) / params.run_name
    tables = out / "tables"
    cache = ArtifactCache(resolve_path(params.cache_dir))
    timer = Timer()
    backbone, why = concrete_backbone(params.backbone, params.models_dir)
    motion = params.motion.enabled
    with timer("corpus"):
        videos = load_corpus(params, cache)
    transforms = resolve(params.transforms)
    with dask_client(params.cluster) as client:
        with timer("transforms"):
            queries = generate_queries(client, query_sources(params, videos), transforms, cache)
        refs = extract(client, params, backbone, {v.video_id: (v.path, v.fps) for v in videos}, cache,
                       "reference", timer)
        probes = extract(client, params, backbone, {q.query_id: (q.path, 24.0) for q in queries if q.path},
                         cache, "query", timer)
    references = reference_table(videos, refs.feats, refs.errors)
    query_df = query_table(queries, probes.feats, probes.errors)
    gallery_ids = [v.video_id for v in videos if refs.usable(v.video_id, motion)]
    orphan = (query_df["error"] == "") & ~query_df["reference_id"].isin(gallery_ids)
    query_df.loc[orphan, "error"] = "reference has no features (see references.csv)"
    usable = query_df[query_df["error"] == ""]
    probe_ids = list(usable["query_id"])

    with timer("evaluate"):
        gallery, scaler = blocks_for(gallery_ids, refs, params, None)
        probe_blocks, _ = blocks_for(probe_ids, probes, params, scaler)
        rows, latency, indexes = evaluate(params, gallery_ids, gallery, usable, probe_blocks)
        table = per_transform_table(rows, [t.name for t in transforms])

    main = params.evaluation.configurations[0]
    tracking_score = None
    meta = {"configuration": main, "backbone": backbone.model_dump(), "pooling": params.pooling,
            "sampling_fps": params.sampling.fps, "index": params.index.model_dump(),
            "weights": params.evaluation.weights}
    if motion:
        meta["motion"] = {"tracker": params.motion.tracker.model_dump(),
                          "action_low": scaler.low.tolist(), "action_high": scaler.high.tolist()}
    save_index(indexes[main], gallery_ids, meta, out / "index")
    write_table(references, tables / "references")
    write_table(query_df, tables / "queries")
    write_table(rows, tables / "robustness_per_query")
    write_table(table, tables / "table1", ("csv", "md", "tex"))
    paper_json = resolve_path(params.paper_results)
    if paper_json.is_file():
        write_table(beside_paper(table, paper_table1(paper_json)), tables / "table1_vs_paper", ("csv", "md"))
    costs = pd.concat([cost_table("reference", gallery_ids, refs), cost_table("query", probe_ids, probes)])
    write_table(costs, tables / "extraction_cost")
    if motion:
        write_table(pd.concat([motion_table(gallery_ids, gallery), motion_table(probe_ids, probe_blocks)]),
                    tables / "motion_features")
        draw_tracks(videos, refs, params, out / "figures")
        if params.corpus.kind == "synthetic":
            truth = tracking_vs_truth(videos, refs, synthetic_corpus(params.corpus.synthetic, cache).parent / GROUND_TRUTH)
            write_table(truth, tables / "tracking_vs_truth", ("csv", "md"))
            tracking_score = {"recall": float(truth["matched"].sum() / truth["truth_points"].sum()),
                              "precision": float(truth["matched"].sum() / truth["tracked_points"].sum()),
                              "centroid_error_px": float(truth["centroid_error_px"].mean())}

    summary = {
        "tracking_vs_truth": tracking_score,
        "backbone": backbone.name, "backbone_reason": why,
        "tracker": params.motion.tracker.name if motion else None,
        "references": len(videos), "references_failed": int((references["error"] != "").sum()),
        "queries": len(query_df), "queries_failed": int((query_df["error"] != "").sum()),
        "queries_cached": int(query_df["cached"].sum()),
        "overall": table[table["transform"] == "overall"].drop(columns="transform").to_dict("records"),
        "search_latency": latency,
        "extraction_s_per_video": {"visual_median": float(costs["visual_s"].median()),
                                   "tracking_median": float(costs["tracking_s"].median()),
                                   "tracking_share_of_total": float(costs["tracking_s"].sum()
                                                                    / costs[["visual_s", "tracking_s"]].sum().sum())}
        if motion else {"visual_median": float(costs["visual_s"].median())},
    }
    record = {"params": params.model_dump(), "summary": summary, "timings_s": timer.seconds,
              "versions": {"storyhash": __version__, "python": platform.python_version()}}
    with atomic_path(out / "run.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    return out
