"""Frame-level copy matching: which references a query copies from, and where.

The pooled clip vector of the paper dilutes a short copied stretch in a long query. Here
every reference frame (at the study's 2 fps) is a row of one exact FAISS inner-product index
(:class:`FrameIndex`). A query's frames search it; the references of the most similar frames
found (:meth:`FrameIndex.candidates`) are the candidate pairs, and on each candidate's query
× reference frame-similarity matrix :func:`~storyhash_core.localise.localise` finds the
copied segments (:func:`match_query`). The pooled method's prediction for a pair is the
whole query against the whole reference at the pooled score (:func:`pooled_matches`): it can
detect a copy but not say where it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from .cache import atomic_path
from .features import VideoFeatures
from .localise import localise
from .matching import Match


class FrameIndex:
    """Every reference frame in one exact inner-product index, with its reference and time."""

    def __init__(self, ref_ids: Sequence[str], features: Sequence[VideoFeatures]) -> None:
        self.ref_ids = list(ref_ids)
        self.features = dict(zip(self.ref_ids, features, strict=True))
        frames = np.concatenate([f.frames for f in features]).astype(np.float32)
        self.owner = np.concatenate(
            [np.full(len(f.frames), i) for i, f in enumerate(features)]
        ).astype(np.int64)
        self.index = faiss.IndexFlatIP(frames.shape[1])
        self.index.add(frames)

    @property
    def bytes_per_frame(self) -> int:
        """Memory of one reference frame in the index (float32 vector and its owner)."""
        return self.index.d * 4 + self.owner.itemsize

    def candidates(
        self, query: VideoFeatures, k: int = 5, max_refs: int = 5
    ) -> list[tuple[str, float]]:
        """The references whose frames are among the ``k`` nearest of some query frame, by
        the best such similarity, highest first (ties by gallery order)."""
        k = min(k, self.index.ntotal)
        sims, rows = self.index.search(np.ascontiguousarray(query.frames, np.float32), k)
        best: dict[int, float] = {}
        for s, r in zip(sims.ravel(), rows.ravel(), strict=True):
            if r >= 0:
                owner = int(self.owner[r])
                best[owner] = max(best.get(owner, -np.inf), float(s))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:max_refs]
        return [(self.ref_ids[i], s) for i, s in ranked]


def match_query(
    query_id: str,
    query: VideoFeatures,
    index: FrameIndex,
    threshold: float,
    k: int = 5,
    max_refs: int = 5,
    **localise_options,
) -> list[Match]:
    """The copied segments of ``query`` in its candidate references, scored by their mean
    frame similarity; a segment's last frame lasts to the next sample or the video's end."""
    out = []
    for ref_id, _ in index.candidates(query, k, max_refs):
        ref = index.features[ref_id]
        sims = query.frames @ ref.frames.T
        for s in localise(sims, query.timestamps, ref.timestamps, threshold, **localise_options):
            ends = min(s.query_end, query.duration_s), min(s.ref_end, ref.duration_s)
            out.append(
                Match(query_id, ref_id, s.query_start, ends[0], s.ref_start, ends[1], s.score)
            )
    return out


def pooled_matches(
    query_id: str, scores: dict[str, float], query_s: float, ref_s: dict[str, float], top: int = 5
) -> list[Match]:
    """The pooled method's predictions: its ``top`` references by pooled similarity, each as
    the whole query against the whole reference."""
    best = sorted(scores.items(), key=lambda kv: -kv[1])[:top]
    return [Match(query_id, r, 0.0, query_s, 0.0, ref_s[r], float(s)) for r, s in best]


FRAMES_FILE = "frames.npz"  # beside a run's index folders: the frame index of the query command


def cross_reference_threshold(refs: Sequence[VideoFeatures], quantile: float) -> float:
    """The ``quantile`` of the similarities between frames of different references: a frame
    similarity that unrelated videos of the gallery rarely reach (fitted on the gallery only)."""
    frames = np.concatenate([r.frames for r in refs])
    owner = np.concatenate([np.full(len(r.frames), i) for i, r in enumerate(refs)])
    sims = frames @ frames.T
    return float(np.quantile(sims[owner[:, None] != owner[None, :]], quantile))


def save_frames(
    path: Path, ref_ids: Sequence[str], refs: Sequence[VideoFeatures], threshold: float
) -> None:
    """Every reference's frame embeddings (as float16: half the bytes, similarities to about
    1e-3) and timestamps, and the chain threshold, for :func:`load_frames` (atomically)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            ids=np.array(ref_ids),
            frames=np.concatenate([r.frames for r in refs]).astype(np.float16),
            timestamps=np.concatenate([r.timestamps for r in refs]),
            lengths=np.array([len(r.frames) for r in refs]),
            durations=np.array([r.duration_s for r in refs]),
            threshold=np.array(threshold),
        )


def load_frames(path: Path) -> tuple[FrameIndex, float]:
    """The frame index and chain threshold saved by :func:`save_frames`."""
    with np.load(path) as z:
        cuts = np.cumsum(z["lengths"])[:-1]
        frames = np.split(z["frames"].astype(np.float32), cuts)
        times = np.split(z["timestamps"], cuts)
        refs = [
            VideoFeatures(t, f, float(d))
            for t, f, d in zip(times, frames, z["durations"], strict=True)
        ]
        return FrameIndex([str(i) for i in z["ids"]], refs), float(z["threshold"])
