"""Ranking one video against an index a study saved. The video goes through the study's own
per-video :mod:`~storyhash_core.pipeline` (one decode; features and tracks cached by content),
with the backbone, sampling, pooling and tracker the index records, and the motion blocks
scaled with the references' bounds: its vector is the one the study would have made.

An index made by another feature or track version, or whose vectors do not have the query's
width, is refused with a message saying which; a ranking whose query is too short to track
any motion, or that lists fewer videos than asked for, says so in its notes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from .backbones import BackboneSpec
from .cache import is_url
from .errors import IndexFileError, StoryHashError, problems
from .features import FEATURE_VERSION, load_features
from .fusion import CONFIGURATIONS, fuse, used_blocks
from .index import damaged, faiss_index, load_index, search
from .motion import ACTION_NAMES, MinMax, motion_blocks
from .params import local_backbone, resolve_location
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
    """The top (video id, similarity) of a query, the index that ranked them, and notes on
    what limits them."""

    hits: list[tuple[str, float]]
    index_dir: Path
    notes: list[str] = field(default_factory=list)


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
    blocks = {"visual": load_features(found.features[0]).pooled(recipe.pooling)[None]}
    notes = []
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
    return Ranking(hits, index_dir, notes)
