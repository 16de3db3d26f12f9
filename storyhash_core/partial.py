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

import subprocess
from pathlib import Path
from typing import NamedTuple

from .errors import TransformError
from .matching import Match
from .transforms import (
    BASE_CRF,
    BASE_PRESET,
    BITEXACT,
    COMPRESS_PRESET,
    X264_PARAMS,
    Transform,
    ffmpeg_exe,
    filters,
    input_args,
)


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
    preset = BASE_PRESET if crf == BASE_CRF else COMPRESS_PRESET
    return [
        ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-threads",
        "1",
        *inputs,
        "-filter_complex",
        graph,
        "-filter_complex_threads",
        "1",
        "-map",
        "[out]",
        "-fps_mode",
        "cfr",
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-x264-params",
        X264_PARAMS,
        *BITEXACT,
        "-an",
        str(out),
    ]


def splice(pieces: list[Piece], out: Path, width: int, height: int, fps: float) -> None:
    """Write the spliced query; raise :class:`TransformError` naming the pieces on failure."""
    proc = subprocess.run(splice_command(pieces, out, width, height, fps), capture_output=True)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        tail = " | ".join(proc.stderr.decode(errors="replace").strip().splitlines()[:2])
        names = ", ".join(p.path.name for p in pieces)
        raise TransformError(f"ffmpeg failed to splice {names}: {tail or 'no output'}")
