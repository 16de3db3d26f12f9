"""Ranking one video against an index a study saved, with the same features the study used."""

from __future__ import annotations

from pathlib import Path

from .backbones import BackboneSpec, load_backbone
from .features import l2_normalize, pool
from .fusion import fuse
from .index import load_index, search
from .video import sample_frames


def rank_video(video: Path, index_dir: Path, k: int = 5, folder_fps: float = 24.0) -> list[tuple[str, float]]:
    """Top-``k`` (video id, similarity) for ``video``."""
    index, ids, meta = load_index(index_dir)
    backbone = load_backbone(BackboneSpec.model_validate(meta["backbone"]))
    sampled = sample_frames(video, meta["sampling_fps"], folder_fps)
    visual = pool(l2_normalize(backbone.embed(sampled.frames)), meta["pooling"])
    vector = fuse({"visual": visual[None]}, meta["configuration"], meta.get("weights"))
    result = search(index, vector, k)
    return [(ids[r], float(s)) for r, s in zip(result.rows[0], result.scores[0]) if r >= 0]
