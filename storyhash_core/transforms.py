"""The registry of named ffmpeg transforms and their application to one video.

A :class:`Transform` is data: an ffmpeg filter chain, an optional time-scale and the
encoder's CRF. A transform that is not a compression is re-encoded near-losslessly (CRF 18)
with x264's ``ultrafast`` preset: on DAVIS clips it encodes 2-3× faster than ``veryfast``,
decodes about 2× faster (no CABAC, deblocking or B-frames) and lands closer to a lossless
encode of the same transform (PSNR +0.5 to +2 dB), for files about twice as large. The
compressions keep ``veryfast``, whose artefacts at CRF 28/35 are what they test. The paper's 14 transforms are entries of :data:`PAPER_TRANSFORMS`; a
new transform is one more entry, and sweeps (e.g. rotation 0-90 degrees) are generated
by :func:`rotation_sweep`. Every output is H.264/yuv420p with even dimensions, so odd
frame sizes (which cost the paper two rotation tests) never make ffmpeg fail.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import imageio_ffmpeg

from .errors import TransformError
from .video import frame_files

BASE_CRF = 18  # quality of every output whose transform is not a compression
BASE_PRESET = "ultrafast"  # x264 speed of those near-lossless re-encodes
COMPRESS_PRESET = "veryfast"  # x264 speed of a compression (a CRF other than BASE_CRF)
EVEN = "scale=trunc(iw/2)*2:trunc(ih/2)*2"
# Same bytes on every x86 CPU: one x264 thread, no macroblock tree (its float SIMD kernels
# differ between instruction sets), swscale's exact C paths, no version strings in the file.
X264_PARAMS = "threads=1:mbtree=0"
BITEXACT = ["-sws_flags", "accurate_rnd+bitexact", "-fflags", "+bitexact", "-flags:v", "+bitexact"]


@dataclass(frozen=True)
class Transform:
    """A named ffmpeg edit: ``vf`` filters (may be empty), a speed factor and the CRF."""

    name: str
    family: str
    vf: str = ""
    speed: float = 1.0
    crf: int = BASE_CRF
    overlay_text: str = ""

    @property
    def preset(self) -> str:
        return BASE_PRESET if self.crf == BASE_CRF else COMPRESS_PRESET

    def spec(self) -> dict:
        """Everything that determines the output, for cache keys."""
        return asdict(self) | {"preset": self.preset, "x264": X264_PARAMS, "bitexact": BITEXACT}


def crop(fraction: float) -> str:
    """Centred crop removing ``fraction`` of width and height."""
    keep = 1.0 - fraction
    return f"crop=trunc(iw*{keep:g}/2)*2:trunc(ih*{keep:g}/2)*2"


def rotate(degrees: float) -> str:
    """The paper's ``rotate=<deg>*PI/180``: same frame size, black corners.

    ffmpeg turns positive angles clockwise (the paper's text says counter-clockwise, its
    command is this one).
    """
    return f"rotate={degrees:g}*PI/180:fillcolor=black"


def chain(*filters: str) -> str:
    return ",".join(f for f in filters if f)


def combine(name: str, family: str, *parts: Transform) -> Transform:
    """A transform that applies ``parts`` in order (filters chained, speeds multiplied)."""
    speed = 1.0
    for p in parts:
        speed *= p.speed
    return Transform(name, family, chain(*(p.vf for p in parts)), speed,
                     max(p.crf for p in parts), "".join(p.overlay_text for p in parts))


def _paper_transforms() -> dict[str, Transform]:
    t = [
        Transform("crop_10", "crop", crop(0.10)),
        Transform("crop_20", "crop", crop(0.20)),
        Transform("rotate_5", "rotate", rotate(5)),
        Transform("rotate_10", "rotate", rotate(10)),
        Transform("brightness_20", "brightness", "eq=brightness=0.2"),
        Transform("brightness_40", "brightness", "eq=brightness=0.4"),
        Transform("compress_50", "compress", crf=28),
        Transform("compress_25", "compress", crf=35),
        Transform("speed_0.9", "speed", speed=0.9),
        Transform("speed_1.1", "speed", speed=1.1),
        Transform("flip_h", "flip", "hflip"),
        Transform("flip_v", "flip", "vflip"),
        Transform("watermark", "overlay", overlay_text="SAMPLE"),
    ]
    by_name = {x.name: x for x in t}
    by_name["combined"] = combine("combined", "combined",
                                  by_name["crop_10"], by_name["flip_h"], by_name["speed_0.9"])
    return by_name


PAPER_TRANSFORMS: dict[str, Transform] = _paper_transforms()


def rotation_sweep(angles: list[float]) -> list[Transform]:
    """``rotate_<angle>`` transforms for a sweep, e.g. ``[0, 15, 30, 45, 60, 75, 90]``."""
    return [Transform(f"rotate_{a:g}", "rotate", rotate(a)) for a in angles]


def resolve(names: list[str] | str) -> list[Transform]:
    """Transforms by name; ``"paper"`` means all 14, ``rotate_<deg>`` any angle."""
    if names == "paper":
        return list(PAPER_TRANSFORMS.values())
    out = []
    for name in names:
        if name in PAPER_TRANSFORMS:
            out.append(PAPER_TRANSFORMS[name])
        elif name.startswith("rotate_") and _is_number(name[7:]):
            out += rotation_sweep([float(name[7:])])
        else:
            raise TransformError(f"unknown transform {name!r} (known: {', '.join(PAPER_TRANSFORMS)},"
                                 " or rotate_<degrees>)")
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg binary bundled with imageio-ffmpeg (no system ffmpeg needed)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def _font() -> str:
    import matplotlib  # ships DejaVuSans, so drawtext needs no system fonts

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def filters(t: Transform) -> str:
    parts = [t.vf]
    if t.speed != 1.0:
        parts.append(f"setpts=PTS/{t.speed:g},fps=source_fps")
    if t.overlay_text:
        parts.append(
            f"drawtext=fontfile='{_font()}':text='{t.overlay_text}':fontcolor=white@0.85"
            ":fontsize=h/12:borderw=2:bordercolor=black@0.6:x=w-tw-w/40:y=h-th-h/40"
        )
    parts.append(EVEN)
    return chain(*parts)


def ffmpeg_command(src: Path, t: Transform, out: Path, folder_fps: float = 24.0) -> list[str]:
    """The ffmpeg invocation that writes ``t`` of ``src`` (file or frame folder) to ``out``."""
    if src.is_dir():
        pattern = str(src / f"*{frame_files(src)[0].suffix}")
        source = ["-framerate", f"{folder_fps:g}", "-pattern_type", "glob", "-i", pattern]
    else:
        source = ["-i", str(src)]
    return [
        ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-threads", "1", *source,
        "-map", "0:v:0", "-vf", filters(t), "-filter_threads", "1",
        "-fps_mode", "cfr", "-c:v", "libx264", "-preset", t.preset, "-crf", str(t.crf), "-pix_fmt", "yuv420p",
        "-x264-params", X264_PARAMS, *BITEXACT, "-an", "-movflags", "+faststart", str(out),
    ]


def apply_transform(src: Path, t: Transform, out: Path, folder_fps: float = 24.0) -> None:
    """Write ``t`` of ``src`` to ``out`` with ffmpeg; raise :class:`TransformError` on failure."""
    proc = subprocess.run(ffmpeg_command(src, t, out, folder_fps), capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[:2]) or "no output"
        raise TransformError(f"ffmpeg failed on {src} for {t.name}: {tail}")
