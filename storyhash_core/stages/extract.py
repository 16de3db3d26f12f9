"""Notebook 01: the corpus, the query set, and every video's features and tracks (cached).

Writes ``tables/references.csv``, ``queries.csv``, ``failed_videos.csv``,
``extraction_cost.csv`` (wall-clock seconds per video, the one table a rerun does not
reproduce) and ``extraction_cost_summary.csv``, ``artifacts/files.csv`` (the cache entries
later stages read), a strip of tracked frames for the first references
(``figures/tracks_<id>.png``) and, on the synthetic corpus, ``tables/tracking_vs_truth``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..cache import ArtifactCache
from ..corpus import Video
from ..errors import StoryHashError
from ..params import portable_backbone
from ..plots import track_strip
from ..queries import run_jobs
from ..report import write_table
from ..synthetic import GROUND_TRUTH, synthetic_corpus
from ..tracking import load_tracks
from ..tracking.evaluate import score_tracks
from ..transforms import resolve
from ..video import sample_frames
from .inputs import (
    concrete_backbone,
    corpus_root,
    extract_items,
    flip_outputs,
    hard_outputs,
    hash_outputs,
    load_corpus,
    portable_path,
    query_items,
    query_jobs,
    reference_items,
    worker_cpus,
)
from .records import ExtractRecord, TrackingScore
from .run import Run, Stopwatch

TIMING = ["decode_s", "visual_s", "tracking_s"]  # wall-clock: only in the cost tables


def run(run: Run) -> ExtractRecord:
    """Corpus, queries, features and tracks of every video; writes the files listed above."""
    with run.client() as client:
        return extract(run, client)


def extract(run: Run, client) -> ExtractRecord:
    """:func:`run` on a Dask client of the caller's."""
    params, clock = run.params, Stopwatch()
    backbone, why = concrete_backbone(params)
    videos = load_corpus(params, run.cache)
    transforms = resolve(params.transforms)
    queries = run_jobs(client, query_jobs(params, run.cache, videos), run.cache)
    transforms_s = clock()
    extra = hash_outputs(params) + flip_outputs(params, backbone)
    refs = extract_items(run, client, backbone, reference_items(videos), "reference", extra)
    if (refs["error"] != "").all():
        first = "; ".join(f"{r.id}: {r.error}" for r in refs.head(2).itertuples())
        raise StoryHashError(f"every one of the {len(refs)} references failed, first {first}")
    paper = [q for q in queries if q.suite == "paper"]
    hard = [q for q in queries if q.suite == "hard"]
    probes = extract_items(run, client, backbone, query_items(paper), "query", extra)
    if hard:
        outputs = hard_outputs(params, backbone)
        found = extract_items(run, client, backbone, query_items(hard), "hard query", outputs)
        probes = pd.concat([probes, found.assign(role="query")], ignore_index=True)
    files = pd.concat([refs, probes], ignore_index=True)

    root = corpus_root(params, run.cache)
    kept = ["role", "features", "tracks", *TIMING]
    references = pd.DataFrame(
        [
            {
                "video_id": v.video_id,
                "collection": v.collection,
                "path": portable_path(v.path, root),
            }
            for v in videos
        ]
    ).merge(refs.drop(columns=kept).rename(columns={"id": "video_id"}), on="video_id")
    query_table = pd.DataFrame(
        [
            {
                "query_id": q.query_id,
                "reference_id": q.reference_id,
                "transform": q.transform,
                "family": q.family,
                "suite": q.suite,
                "transform_error": q.error,
            }
            for q in queries
        ]
    ).merge(probes.drop(columns=kept).rename(columns={"id": "query_id"}), on="query_id", how="left")
    transform_failed = query_table["transform_error"] != ""
    query_table["error"] = query_table["transform_error"].where(
        transform_failed, query_table["error"]
    )
    query_table = query_table.drop(columns="transform_error")
    query_table = query_table.fillna({"error": "", "frames_sampled": 0, "objects": 0})
    usable_refs = set(references.loc[references["error"] == "", "video_id"])
    orphan = (query_table["error"] == "") & ~query_table["reference_id"].isin(usable_refs)
    query_table.loc[orphan, "error"] = "reference has no features (see references.csv)"

    write_table(references, run.path("tables", "references"))
    write_table(query_table, run.path("tables", "queries"))
    write_table(files, run.path("artifacts", "files"))
    failed = pd.concat(
        [
            references.loc[references["error"] != "", ["video_id", "error"]],
            query_table.loc[query_table["error"] != "", ["query_id", "error"]],
        ]
    )
    write_table(
        failed.reindex(columns=["video_id", "query_id", "error"]),
        run.path("tables", "failed_videos"),
    )
    costs = files.loc[files["error"] == "", ["id", "role", *TIMING]]
    costs = costs.assign(tracking_share=costs["tracking_s"] / costs[TIMING].sum(axis=1))
    write_table(costs, run.path("tables", "extraction_cost"))
    summary = costs.groupby("role")[[*TIMING, "tracking_share"]].describe().T.round(3)
    write_table(
        summary.reset_index(names=["step", "statistic"]),
        run.path("tables", "extraction_cost_summary"),
    )

    record = ExtractRecord(
        backbone=portable_backbone(backbone),
        backbone_reason=why,
        worker_cpus=worker_cpus(client),
        tracker=params.motion.tracker if params.motion.enabled else None,
        references=len(videos),
        references_failed=int((references["error"] != "").sum()),
        queries=len(query_table),
        queries_failed=int((query_table["error"] != "").sum()),
        queries_cached=sum(q.cached for q in queries),
        transforms=[t.name for t in transforms],
        hard_edits=params.hard_suite.names,
        hard_queries=len(hard),
        seconds={"transforms": transforms_s},
        seconds_per_video_median={
            step.removesuffix("_s"): float(costs[step].median()) for step in TIMING
        },
    )
    if params.motion.enabled:
        record.tracking_share_of_extraction = float(
            costs["tracking_s"].sum() / costs[TIMING].sum().sum()
        )
        draw_tracks(run, videos, refs)
        if params.corpus.kind == "synthetic":
            truth_csv = synthetic_corpus(params.corpus.synthetic, run.cache).parent / GROUND_TRUTH
            truth = tracking_vs_truth(videos, refs, truth_csv, run.cache)
            write_table(truth, run.path("tables", "tracking_vs_truth"), ("csv", "md"))
            record.tracking_vs_truth = TrackingScore(
                recall=float(truth["matched"].sum() / truth["truth_points"].sum()),
                precision=float(truth["matched"].sum() / truth["tracked_points"].sum()),
                centroid_error_px=float(truth["centroid_error_px"].mean()),
            )
    record.seconds["total"] = clock()
    run.record(record)
    return record


def tracking_vs_truth(
    videos: list[Video], files: pd.DataFrame, truth_csv: Path, cache: ArtifactCache
) -> pd.DataFrame:
    """Reference tracks scored against the synthetic corpus's known trajectories."""
    truth = pd.read_csv(truth_csv)
    tracks_of = files.set_index("id")["tracks"]
    rows = []
    for video in videos:
        if tracks_of.get(video.video_id):
            tracks = load_tracks(cache.fetch(tracks_of[video.video_id]))[0]
            score = score_tracks(tracks, truth[truth["video_id"] == video.video_id], video.fps)
            rows.append(
                {
                    "video_id": video.video_id,
                    **asdict(score),
                    "recall": score.recall,
                    "precision": score.precision,
                }
            )
    return pd.DataFrame(rows)


def draw_tracks(run: Run, videos: list[Video], files: pd.DataFrame) -> list[Path]:
    """Strips of frames with their tracks drawn, for the first few references."""
    tracks_of = files.set_index("id")["tracks"]
    tracked = [v for v in videos if tracks_of.get(v.video_id)]
    for stale in run.path("figures").glob("tracks_*.png"):
        stale.unlink()
    written = []
    for video in tracked[: run.params.motion.figures]:
        frames = sample_frames(video.path, run.params.motion.tracker.fps, video.fps).frames
        tracks = load_tracks(run.cache.fetch(tracks_of[video.video_id]))[0]
        written.append(run.save_image(track_strip(frames, tracks), f"tracks_{video.video_id}.png"))
    return written
