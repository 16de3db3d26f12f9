"""Partial copies: stretches of video spliced into one query, and where each copy sits.

A partial-copy query is a sequence of :class:`Piece` s: each a stretch of one video (a
reference or footage in no gallery), optionally edited by a
:class:`~storyhash_core.transforms.Transform` without backgrounds, scaled and padded to one
frame size and rate, and concatenated (:func:`splice`). Its ground truth
(:func:`copied_segments`) is one :class:`~storyhash_core.matching.Match` per piece taken from
a reference: where the piece lies in the query, and which seconds of the reference it shows
(a speed edit makes the two lengths differ). The output is encoded once, at the strongest
compression among the pieces' edits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .cache import ArtifactCache, atomic_path, spec_key
from .corpus import Video
from .errors import TransformError
from .matching import Match
from .transforms import (
    BASE_CRF,
    Transform,
    encode_args,
    ffmpeg_exe,
    ffmpeg_head,
    filters,
    input_args,
    run_ffmpeg,
    seeded,
)
from .video import check_exists


class Piece(NamedTuple):
    """``duration`` seconds of ``path`` from ``start``, edited by ``edit`` (None: as it is);
    ``reference_id`` names the gallery reference it copies, or is empty for other footage."""

    path: Path
    start: float
    duration: float
    reference_id: str = ""
    edit: Transform | None = None
    folder_fps: float = 24.0

    @property
    def length_in_query(self) -> float:
        """How long the piece lasts in the query (a speed edit shortens or stretches it)."""
        return self.duration / (self.edit.speed if self.edit else 1.0)


def copied_segments(query_id: str, pieces: list[Piece]) -> list[Match]:
    """The ground truth of a spliced query: one match per piece from a reference."""
    out, offset = [], 0.0
    for p in pieces:
        if p.reference_id:
            out.append(
                Match(
                    query_id,
                    p.reference_id,
                    round(offset, 6),
                    round(offset + p.length_in_query, 6),
                    p.start,
                    p.start + p.duration,
                )
            )
        offset += p.length_in_query
    return out


def splice_command(
    pieces: list[Piece], out: Path, width: int, height: int, fps: float
) -> list[str]:
    """The ffmpeg invocation that writes the concatenation of ``pieces`` to ``out``."""
    if any(p.edit is not None and p.edit.backgrounds for p in pieces):
        raise TransformError("a partial-copy piece cannot take an edit that composes backgrounds")
    inputs, chains = [], []
    for i, p in enumerate(pieces):
        inputs += input_args(p.path, p.folder_fps)
        edit = f",{filters(p.edit)}" if p.edit is not None else ""
        chains.append(
            f"[{i}:v]trim=start={p.start:g}:duration={p.duration:g},setpts=PTS-STARTPTS{edit},"
            f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps:g}[v{i}]"
        )
    joined = "".join(f"[v{i}]" for i in range(len(pieces)))
    graph = ";".join([*chains, f"{joined}concat=n={len(pieces)}:v=1:a=0[out]"])
    crf = max((p.edit.crf for p in pieces if p.edit is not None), default=BASE_CRF)
    return [
        *ffmpeg_head(),
        *inputs,
        "-filter_complex",
        graph,
        "-filter_complex_threads",
        "1",
        "-map",
        "[out]",
        *encode_args(crf),
        str(out),
    ]


def splice(pieces: list[Piece], out: Path, width: int, height: int, fps: float) -> None:
    """Write the spliced query; raise :class:`TransformError` naming the pieces on failure."""
    names = ", ".join(p.path.name for p in pieces)
    run_ffmpeg(splice_command(pieces, out, width, height, fps), [out], f"to splice {names}")


class PartialJob(NamedTuple):
    """One partial-copy query to make: its id, kind (``single``, ``double`` or
    ``negative``) and pieces."""

    query_id: str
    kind: str
    pieces: tuple[Piece, ...]


def _duration(video: Video) -> float:
    return float(video.meta["duration_s"])


def _piece(video: Video, start: float, duration: float, **kw) -> Piece:
    return Piece(video.path, round(start, 3), round(duration, 3), folder_fps=video.fps, **kw)


def _filler(rng: random.Random, fillers: Sequence[Video], seconds: float) -> list[Piece]:
    """``seconds`` of footage in no gallery: stretches of randomly drawn filler videos."""
    out = []
    while seconds > 0.05:
        video = rng.choice(fillers)
        take = min(seconds, _duration(video))
        start = rng.uniform(0.0, _duration(video) - take)
        out.append(_piece(video, start, take))
        seconds -= take
    return out


def _copy(
    rng: random.Random, ref: Video, seconds: float, edits: Sequence[Transform | None]
) -> Piece:
    seconds = min(max(seconds, 1.0), _duration(ref))
    start = rng.uniform(0.0, _duration(ref) - seconds)
    return _piece(ref, start, seconds, reference_id=ref.video_id, edit=rng.choice(edits))


def plan_queries(
    refs: Sequence[Video],
    fillers: Sequence[Video],
    edits: Sequence[Transform | None],
    counts: dict[str, int],
    query_s: Sequence[float],
    seed: int,
) -> list[PartialJob]:
    """Seeded partial-copy queries (every draw from :func:`~storyhash_core.transforms.seeded`
    of the seed, kind and number, so every run composes the same): ``single`` copies one
    stretch of a reference (1 s up to the whole of it; its share of the query log-uniform
    from 5 % to 100 %, at 100 % the query is the stretch alone), ``double`` two stretches of
    two references, ``negative`` only footage in no gallery; queries last ``query_s`` seconds
    (a 100 % copy lasts as long as its stretch)."""
    jobs = []
    for kind in ("single", "double", "negative"):
        for i in range(counts.get(kind, 0)):
            rng = seeded(str(seed), kind, str(i))
            total = rng.uniform(*query_s)
            if kind == "negative":
                pieces = _filler(rng, fillers, total)
            else:
                chosen = rng.sample(list(refs), 1 if kind == "single" else 2)
                share = math.exp(rng.uniform(math.log(0.05), 0.0)) / len(chosen)
                copies = [_copy(rng, r, share * total, edits) for r in chosen]
                rest = max(0.0, total - sum(c.length_in_query for c in copies))
                if kind == "single" and share > 0.95:
                    rest = 0.0
                cuts = sorted(rng.uniform(0.0, rest) for _ in copies)
                gaps = [b - a for a, b in zip([0.0, *cuts], [*cuts, rest], strict=True)]
                pieces = _filler(rng, fillers, gaps[0])
                for copy, gap in zip(copies, gaps[1:], strict=True):
                    pieces += [copy, *_filler(rng, fillers, gap)]
            jobs.append(PartialJob(f"partial-{kind}-{i:04d}", kind, tuple(pieces)))
    return jobs


PARTIAL_VERSION = 1


class Frame(NamedTuple):
    """The frame size and rate every piece of a partial-copy query is brought to."""

    width: int
    height: int
    fps: float


def partial_path(job: PartialJob, frame: Frame, cache: ArtifactCache) -> Path:
    """Where the cache keeps ``job``'s query video: keyed by every piece's source content,
    stretch and edit, the frame, ffmpeg and :data:`PARTIAL_VERSION`."""
    pieces = [
        {
            "source": cache.digest(check_exists(p.path)),
            "start": p.start,
            "duration": p.duration,
            "edit": p.edit.spec() if p.edit is not None else None,
            "folder_fps": p.folder_fps if p.path.is_dir() else None,
        }
        for p in job.pieces
    ]
    key = spec_key(
        pieces=pieces, frame=list(frame), ffmpeg=Path(ffmpeg_exe()).name, version=PARTIAL_VERSION
    )
    return cache.path("partial", key, ".mp4")


def make_partial(job: PartialJob, cache_root: str, frame: Frame) -> tuple[Path, bool]:
    """Splice one partial-copy query unless cached; its path and whether it was a cache hit."""
    cache = ArtifactCache(cache_root)
    out = partial_path(job, frame, cache)
    if cache.exists(out):
        return out, True
    with atomic_path(out) as tmp:
        splice(list(job.pieces), tmp, *frame)
    cache.publish(out)
    return out, False
