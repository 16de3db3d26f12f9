"""Ranking videos against an index a study saved, and deciding copy / no copy.

A video goes through the study's own per-video :mod:`~storyhash_core.pipeline` (one decode;
features and tracks cached by content), with the backbone, sampling, pooling and tracker the
index records, and the motion blocks scaled with the references' bounds: its vector is the one
the study would have made.

An index made by another feature or track version, or whose vectors do not have the query's
width, is refused with a message saying which; a ranking whose query is too short to track
any motion, or that lists fewer videos than asked for, says so in its notes.

A decision compares each hit's score with an operating threshold: the one notebook 04 measured
for a false-positive rate (stored as ``operating_points.json`` in the index folder), or a score
given. A batch (files, folders, globs, manifests) is one row per hit, or per failed video."""

from __future__ import annotations

import glob
import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .backbones import BackboneSpec
from .cache import FRAME_SUFFIXES, atomic_path, is_url
from .corpus import VIDEO_SUFFIXES, Video, load_manifest, scan_directory
from .detection import Pairs, threshold_at_fpr, tpr_at_fpr
from .errors import IndexFileError, StoryHashError, problems
from .features import FEATURE_VERSION, load_features
from .frame_matching import FRAMES_FILE, load_frames, match_query
from .fusion import CONFIGURATIONS, fuse, used_blocks
from .index import damaged, faiss_index, load_index, search
from .matching import Match
from .motion import ACTION_NAMES, MinMax, motion_blocks
from .parallel import dask_client, run_batch
from .params import local_backbone, portable, resolve_location
from .pipeline import VideoJob, process_video
from .preflight import check_writable
from .tracking import TRACK_VERSION, TrackerSpec, Tracks, load_tracks

DEFAULT_CACHE = ".cache/storyhash"  # the params' default cache_dir
MOTION_FRAMES = 3  # acceleration and direction consistency need three tracked frames
ACTION_WIDTH = len(ACTION_NAMES)


class MotionRecipe(BaseModel):
    """How the index's motion blocks were made: tracker, track version, action bounds."""

    tracker: TrackerSpec
    track_version: int
    action_low: list[float] = Field(min_length=ACTION_WIDTH, max_length=ACTION_WIDTH)
    action_high: list[float] = Field(min_length=ACTION_WIDTH, max_length=ACTION_WIDTH)


class Recipe(BaseModel):
    """What an index's ``meta.json`` must say to embed a query as the study embedded its
    references (other keys are kept for readers)."""

    configuration: str
    backbone: BackboneSpec
    pooling: Literal["median", "mean", "max"]
    sampling_fps: float = Field(gt=0, le=1000)
    feature_version: int
    weights: dict[str, float] | None = None
    motion: MotionRecipe | None = None

    @field_validator("configuration")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in (*CONFIGURATIONS, "weighted"):
            raise ValueError(f"unknown configuration {value!r}")
        return value

    @model_validator(mode="after")
    def _blocks_recorded(self) -> Recipe:
        if self.uses_motion and self.motion is None:
            raise ValueError(f"configuration {self.configuration} needs motion, none recorded")
        return self

    @property
    def uses_motion(self) -> bool:
        """Whether the configuration reads the action or graph block."""
        return bool(set(used_blocks(self.configuration, self.weights)) - {"visual"})


@dataclass(frozen=True)
class Ranking:
    """The top (video id, similarity) of a query, the index that ranked them, notes on what
    limits them, and the copied segments found by the run's frame index
    (:mod:`~storyhash_core.frame_matching`, when notebook 10 saved one beside the index)."""

    hits: list[tuple[str, float]]
    index_dir: Path
    notes: list[str] = field(default_factory=list)
    segments: list[Match] = field(default_factory=list)  # copied stretches, best first


def check_recipe(folder: Path, meta: dict) -> Recipe:
    """The recipe of an index's metadata; refused if it cannot make the study's query vector
    with this code."""
    try:
        recipe = Recipe.model_validate(meta)
    except ValidationError as exc:
        where, message = problems(exc)[0]
        raise damaged(folder, f"meta.json: {where + ': ' if where else ''}{message}") from None
    made = {"features": (recipe.feature_version, FEATURE_VERSION)}
    if recipe.motion:
        made["tracks"] = (recipe.motion.track_version, TRACK_VERSION)
    for what, (theirs, ours) in made.items():
        if theirs != ours:
            raise IndexFileError(
                f"index {folder} holds {what} v{theirs}; this storyhash computes v{ours}, so a"
                " query's vector would not be the study's (rerun the study that made it)"
            )
    return recipe


def motion_shortfall(tracks: Tracks) -> str | None:
    """Why a query's tracks give no motion to match, or None when they do."""
    if len(tracks.times) < MOTION_FRAMES:
        return (
            f"the query is too short for motion: {len(tracks.times)} tracked frame(s),"
            f" the motion features need {MOTION_FRAMES}"
        )
    if tracks.n_objects == 0:
        return "no object was tracked in the query"
    return None


def visual_index(folder: Path) -> Path:
    """The visual-only index saved beside ``folder`` by the same study."""
    for sibling in sorted(folder.parent.iterdir()):
        meta = sibling / "meta.json"
        if meta.is_file():
            try:
                configuration = json.loads(meta.read_text()).get("configuration")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                continue
            if CONFIGURATIONS.get(configuration) == ("visual",):
                return sibling
    raise StoryHashError(
        f"no visual-only index beside {folder} to fall back on (the study saves one when"
        " evaluation.configurations lists visual_padded)"
    )


def rank_video(
    video: Path,
    index_dir: Path,
    k: int = 5,
    folder_fps: float = 24.0,
    cache_dir: str = DEFAULT_CACHE,
    visual_fallback: bool = False,
) -> Ranking:
    """The top ``k`` of ``video`` in the index at ``index_dir``. With ``visual_fallback``, a
    query too short for motion is ranked by the visual-only index beside it instead."""
    if k < 1:
        raise StoryHashError(f"k must be at least 1 (got {k})")
    index, ids, meta = load_index(index_dir)
    recipe = check_recipe(index_dir, meta)
    backbone, motion = local_backbone(recipe.backbone), recipe.motion
    tracker = motion.tracker if motion else None
    job = VideoJob(Path(video), folder_fps, recipe.sampling_fps, ((backbone, ""),), tracker)
    cache = resolve_location(cache_dir)
    if not is_url(cache):
        check_writable(Path(cache), "cache folder", "--cache")
    found = process_video(job, cache)
    features = load_features(found.features[0])
    blocks = {"visual": features.pooled(recipe.pooling)[None]}
    notes, segments = [], []
    frames = Path(index_dir).parent / FRAMES_FILE
    if frames.is_file():
        frame_index, chain_threshold = load_frames(frames)
        segments = match_query(Path(video).stem, features, frame_index, chain_threshold)
        segments.sort(key=lambda m: -m.score)  # without one (no notebook 10), no segments
    if motion:
        tracks = load_tracks(found.tracks)[0]
        if recipe.uses_motion and (shortfall := motion_shortfall(tracks)):
            if visual_fallback:
                fallback = visual_index(index_dir)
                ranking = rank_video(video, fallback, k, folder_fps, cache_dir)
                return Ranking(
                    ranking.hits,
                    fallback,
                    [f"{shortfall}: ranked by the visual index {fallback}", *ranking.notes],
                    ranking.segments,
                )
            notes.append(
                f"{shortfall}; its motion blocks are zeros, so this ranking is not evidence"
                " of fusion (--visual-fallback ranks by the visual index instead)"
            )
        action, graph = motion_blocks([tracks])
        scaler = MinMax(np.array(motion.action_low), np.array(motion.action_high))
        blocks |= {"action": scaler.apply(action), "graph": graph}
    vector = fuse(blocks, recipe.configuration, recipe.weights)
    width = faiss_index(index).d
    if vector.shape[1] != width:
        raise IndexFileError(
            f"the query's vector has {vector.shape[1]} dimensions, index {index_dir} has"
            f" {width}: it was built with another backbone than {backbone.name}"
            f"{f' ({backbone.weights})' if backbone.weights else ''}, which its meta.json names"
        )
    result = search(index, vector, k)
    found = zip(result.rows[0], result.scores[0], strict=True)
    hits = [(ids[r], float(s)) for r, s in found if r >= 0]
    if len(hits) < min(k, index.ntotal):
        notes.append(
            f"the index returned {len(hits)} of the {min(k, index.ntotal)} videos asked for"
            " (an approximate index does not reach every video; a flat one lists all)"
        )
    if k > index.ntotal:
        notes.append(f"-k {k} exceeds the {index.ntotal} videos of the index")
    return Ranking(hits, index_dir, notes, segments)


# ---- decisions: an operating threshold stored with the index ------------------------------

OPERATING_FILE = "operating_points.json"
FPR_LEVELS = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0001)
DEFAULT_FPR = 0.01


class OperatingPoint(BaseModel):
    """A score threshold (a hit at or above it is a copy), the false-positive rate it was
    chosen for and the true-positive rate it reached, over the best hits of the study's
    detection queries (:func:`~storyhash_core.detection.top_hits`): FPR is the share of queries
    without a match (or with a wrong best hit) called a copy, TPR the share of queries with a
    match whose true reference is found first at or above it. Unreachable: ``inf``."""

    model_config = ConfigDict(ser_json_inf_nan="constants")
    fpr: float
    threshold: float
    tpr: float


class OperatingPoints(BaseModel):
    measured_on: str
    points: list[OperatingPoint]


def save_operating_points(folder: Path, pairs: Pairs, measured_on: str) -> None:
    """Store the thresholds for :data:`FPR_LEVELS` of ``pairs`` (the best hits of queries) in
    the index ``folder`` (rebuilding the index removes them: they belong to its vectors)."""
    points = [
        OperatingPoint(fpr=f, threshold=threshold_at_fpr(pairs, f), tpr=tpr_at_fpr(pairs, f))
        for f in FPR_LEVELS
    ]
    with atomic_path(folder / OPERATING_FILE) as tmp:
        tmp.write_text(
            OperatingPoints(measured_on=measured_on, points=points).model_dump_json(indent=2)
        )


def operating_point(folder: Path, fpr: float = DEFAULT_FPR) -> OperatingPoint:
    """The stored threshold of ``folder``'s index for ``fpr`` (one of :data:`FPR_LEVELS`)."""
    path = folder / OPERATING_FILE
    if not path.is_file():
        raise StoryHashError(
            f"index {folder} has no operating thresholds ({OPERATING_FILE}): notebook 04 stores"
            " them (storyhash study --params <its params> --only 04_robustness), or give"
            " --threshold"
        )
    try:
        stored = OperatingPoints.model_validate_json(path.read_text())
    except (ValidationError, UnicodeDecodeError) as exc:
        raise damaged(folder, f"{OPERATING_FILE} is not valid ({exc.__class__.__name__})") from None
    for point in stored.points:
        if point.fpr == fpr:
            return point
    levels = ", ".join(f"{p.fpr:g}" for p in stored.points)
    raise StoryHashError(f"index {folder} stores thresholds for FPR {levels}, not {fpr:g}")


@dataclass(frozen=True)
class QueryResult:
    """One row of a batch query: a hit of one query video with its decision, or the query's
    error (then ``rank`` is 0)."""

    query: str
    path: str
    rank: int = 0
    reference: str = ""
    score: float = float("nan")
    decision: str = ""  # "copy" or "no copy"
    threshold: float = float("nan")
    error: str = ""

    @classmethod
    def write(cls, rows: list[QueryResult], out: Path) -> None:
        """``out`` as CSV or JSON (by its suffix), atomically."""
        table = pd.DataFrame([asdict(r) for r in rows], columns=[f.name for f in fields(cls)])
        with atomic_path(out) as tmp:
            if out.suffix.lower() == ".json":
                records = table.astype(object).where(table.notna(), None).to_dict("records")
                tmp.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
            else:
                table.to_csv(tmp, index=False)

    @classmethod
    def read(cls, path: Path) -> list[QueryResult]:
        table = pd.read_csv(
            path, keep_default_na=False, na_values={"score": [""], "threshold": [""]}
        )
        return [cls(**row) for row in table.to_dict("records")]


def is_frame_folder(path: Path) -> bool:
    """A folder of frames (images and nothing that is a video or a folder), not a folder of
    videos."""
    inside = list(path.iterdir())
    return any(p.suffix.lower() in FRAME_SUFFIXES for p in inside) and not any(
        p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES for p in inside
    )


def query_videos(specs: list[str], folder_fps: float = 24.0) -> list[Video]:
    """The videos named by ``specs``: each a video file or frame folder, a folder of them, a
    manifest CSV, or a glob pattern. A path that does not exist is kept: ranking it fails
    with the error (a row of a batch)."""
    videos: list[Video] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file() and path.suffix.lower() == ".csv":
            videos += load_manifest(path)
        elif path.is_dir() and not is_frame_folder(path):
            videos += scan_directory(path, folder_fps)
        elif not path.exists() and any(c in spec for c in "*?["):
            matched = sorted(glob.glob(spec))
            if not matched:
                raise StoryHashError(f"{spec} matches no file")
            videos += query_videos(matched, folder_fps)
        else:
            videos.append(Video(path.stem, path, fps=folder_fps))
    return videos


def _rank_one(item: tuple[Path, float], **kwargs) -> Ranking:
    return rank_video(item[0], folder_fps=item[1], **kwargs)


def rank_videos(
    videos: list[Video],
    index_dir: Path,
    k: int,
    threshold: float,
    cache_dir: str = DEFAULT_CACHE,
    visual_fallback: bool = False,
    client=None,
) -> tuple[list[QueryResult], list[str]]:
    """Every video's top ``k`` with a decision against ``threshold`` (a failed video is a row
    with its error; when every video failed, the first error is raised), the notes on the
    rankings, and every video's copied segments (:class:`Ranking`). More than one video runs
    as tasks on ``client`` (a local Dask cluster when None)."""
    keys = [str(v.path) for v in videos]
    items = [(v.path, v.fps) for v in videos]
    options = {
        "index_dir": index_dir,
        "k": k,
        "cache_dir": cache_dir,
        "visual_fallback": visual_fallback,
    }
    if not videos:
        raise StoryHashError("no videos to query")
    if len(videos) == 1:  # no cluster to start; an error is the command's
        found, failures = {keys[0]: _rank_one(items[0], **options)}, []
    else:
        with dask_client() if client is None else nullcontext(client) as live:
            found, failures = run_batch(live, _rank_one, items, keys, "queries", **options)
        if len(failures) == len(videos):
            raise StoryHashError(f"no video could be ranked; the first: {failures[0].error}")
    errors = {f.key: f.error for f in failures}
    rows, notes, segments = [], [], []
    for video, key in zip(videos, keys, strict=True):
        where = {"query": video.video_id, "path": portable(video.path)}
        if key in errors:
            rows.append(QueryResult(**where, error=errors[key]))
            continue
        ranking = found[key]
        notes += [f"{video.video_id}: {n}" if len(videos) > 1 else n for n in ranking.notes]
        segments += [m._replace(query_id=video.video_id) for m in ranking.segments]
        for rank, (reference, score) in enumerate(ranking.hits, 1):
            decision = "copy" if score >= threshold else "no copy"
            rows.append(
                QueryResult(
                    **where,
                    rank=rank,
                    reference=reference,
                    score=score,
                    decision=decision,
                    threshold=threshold,
                )
            )
    return rows, notes, segments
