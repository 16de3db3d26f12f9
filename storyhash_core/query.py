"""Ranking one video against an index a study saved. The video goes through the study's own
per-video :mod:`~storyhash_core.pipeline` (one decode; features and tracks cached by content),
with the backbone, sampling, pooling and tracker the index records, and the motion blocks
scaled with the references' bounds: its vector is the one the study would have made."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backbones import BackboneSpec
from .features import load_features
from .fusion import fuse
from .index import load_index, search
from .motion import MinMax, motion_blocks
from .params import local_backbone, resolve_location
from .pipeline import VideoJob, process_video
from .tracking import TrackerSpec, load_tracks

DEFAULT_CACHE = ".cache/storyhash"  # the params' default cache_dir


def rank_video(
    video: Path,
    index_dir: Path,
    k: int = 5,
    folder_fps: float = 24.0,
    cache_dir: str = DEFAULT_CACHE,
) -> list[tuple[str, float]]:
    """Top-``k`` (video id, similarity) for ``video``."""
    index, ids, meta = load_index(index_dir)
    backbone = local_backbone(BackboneSpec.model_validate(meta["backbone"]))
    motion = meta.get("motion")
    tracker = TrackerSpec.model_validate(motion["tracker"]) if motion else None
    job = VideoJob(Path(video), folder_fps, meta["sampling_fps"], ((backbone, ""),), tracker)
    found = process_video(job, str(resolve_location(cache_dir)))
    blocks = {"visual": load_features(found.features[0]).pooled(meta["pooling"])[None]}
    if motion:
        action, graph = motion_blocks([load_tracks(found.tracks)[0]])
        scaler = MinMax(np.array(motion["action_low"]), np.array(motion["action_high"]))
        blocks |= {"action": scaler.apply(action), "graph": graph}
    vector = fuse(blocks, meta["configuration"], meta.get("weights"))
    result = search(index, vector, k)
    found_rows = zip(result.rows[0], result.scores[0], strict=True)
    return [(ids[r], float(s)) for r, s in found_rows if r >= 0]
