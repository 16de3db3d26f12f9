"""Ranking one video against an index a study saved, with the same features the study used
(visual, and the motion blocks scaled with the references' bounds when the index has them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backbones import BackboneSpec, load_backbone
from .features import l2_normalize, pool
from .fusion import fuse
from .index import load_index, search
from .motion import MinMax, motion_blocks
from .params import local_backbone
from .tracking import TrackerSpec, load_tracker
from .video import sample_frames


def rank_video(
    video: Path, index_dir: Path, k: int = 5, folder_fps: float = 24.0
) -> list[tuple[str, float]]:
    """Top-``k`` (video id, similarity) for ``video``."""
    index, ids, meta = load_index(index_dir)
    backbone = load_backbone(local_backbone(BackboneSpec.model_validate(meta["backbone"])))
    sampled = sample_frames(video, meta["sampling_fps"], folder_fps)
    blocks = {"visual": pool(l2_normalize(backbone.embed(sampled.frames)), meta["pooling"])[None]}
    if "motion" in meta:
        spec = TrackerSpec.model_validate(meta["motion"]["tracker"])
        frames = sample_frames(video, spec.fps, folder_fps)
        action, graph = motion_blocks([load_tracker(spec).track(frames.frames, frames.timestamps)])
        scaler = MinMax(
            np.array(meta["motion"]["action_low"]), np.array(meta["motion"]["action_high"])
        )
        blocks |= {"action": scaler.apply(action), "graph": graph}
    vector = fuse(blocks, meta["configuration"], meta.get("weights"))
    result = search(index, vector, k)
    found = zip(result.rows[0], result.scores[0], strict=True)
    return [(ids[r], float(s)) for r, s in found if r >= 0]
