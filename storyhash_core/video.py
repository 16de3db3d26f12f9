"""Reading videos and frame folders, and sampling frames by timestamp.

One entry point, :func:`sample_frames`, reads either a video file (any container PyAV
opens: mp4, mkv, avi, webm, ...) or a folder of JPEG/PNG frames (the DAVIS layout
``JPEGImages/480p/<seq>/00000.jpg``, played at ``folder_fps``).

Sampling rule: target times are ``k / fps`` for ``k = 0, 1, ...`` while inside the
video, and each target takes the frame *on screen* at that time (the last frame whose
presentation time is <= the target), so a 2.08 s DAVIS clip at 2 fps yields 5 frames at
0, 0.5, 1.0, 1.5 and 2.0 s. Only the chosen frames are converted to arrays (frame
folders read only the chosen files), and a file decoder seeks to the keyframe before a
target that lies more than ``seek_gap_s`` ahead instead of decoding the gap.

Because targets at ``fps`` are every ``n``-th target at ``n × fps``, :func:`sample_rates`
serves several rates (visual features at 2 fps, tracking at 6 fps) from one decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .cache import FRAME_SUFFIXES
from .errors import VideoReadError
from .opencv import cv2

_EPS = 1e-6


@dataclass(frozen=True)
class SampledFrames:
    """Frames (N×H×W×3 RGB uint8) with their presentation times in seconds from the start."""

    frames: np.ndarray
    timestamps: np.ndarray
    duration_s: float
    source_fps: float

    def __len__(self) -> int:
        return len(self.timestamps)


def target_times(duration_s: float, fps: float) -> np.ndarray:
    """Sampling instants ``k / fps`` inside ``[0, duration_s)``."""
    n = int(np.floor(duration_s * fps - _EPS)) + 1 if duration_s > 0 else 0
    return np.arange(n, dtype=np.float64) / fps


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder in playback (lexicographic) order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def check_exists(path: Path) -> Path:
    if not path.exists():
        raise VideoReadError(path, "no such file or folder", "check the path or the manifest entry")
    return path


def sample_frames(
    path: str | Path,
    fps: float | None = 2.0,
    folder_fps: float = 24.0,
    seek_gap_s: float = 4.0,
) -> SampledFrames:
    """Frames sampled at ``fps`` (``None``: every frame) from a video file or frame folder."""
    path = check_exists(Path(path))
    if path.is_dir():
        return _sample_folder(path, fps, folder_fps)
    return _sample_file(path, fps, seek_gap_s)


def every_nth(sampled: SampledFrames, n: int) -> SampledFrames:
    """The frames at every ``n``-th target time: what sampling at ``fps / n`` gives."""
    return SampledFrames(
        sampled.frames[::n], sampled.timestamps[::n], sampled.duration_s, sampled.source_fps
    )


def sample_rates(
    path: str | Path, rates: list[float], folder_fps: float = 24.0
) -> dict[float, SampledFrames]:
    """Frames at each of ``rates``, decoding once at the highest rate for every rate that
    divides it (and once more for each rate that does not)."""
    out: dict[float, SampledFrames] = {}
    for fps in sorted(set(rates), reverse=True):
        fine = next((f for f in out if abs(f / fps - round(f / fps)) < 1e-9), None)
        out[fps] = (
            every_nth(out[fine], round(fine / fps))
            if fine
            else sample_frames(path, fps, folder_fps)
        )
    return out


# (last data marker, end marker): a complete JPEG ends its last scan (SOS) with an
# end-of-image marker, a PNG its last IDAT chunk with IEND. Neither can occur inside the
# compressed data of a JPEG (0xFF is byte-stuffed there), so a cut JPEG, which libjpeg decodes
# with a warning and grey rows, has no EOI after its last SOS; an EXIF thumbnail's EOI comes
# before the main scan, and trailing data after the EOI is allowed.
_MARKERS = {
    ".jpg": (b"\xff\xda", b"\xff\xd9"),
    ".jpeg": (b"\xff\xda", b"\xff\xd9"),
    ".png": (b"IDAT", b"IEND"),
}


def is_complete_image(data: bytes, suffix: str) -> bool:
    """Whether the bytes of a JPEG or PNG file end its image data (a cut copy does not)."""
    data_marker, end_marker = _MARKERS.get(suffix.lower(), (b"", b""))
    return not data_marker or data.rfind(end_marker) > data.rfind(data_marker) >= 0


def _read_image(file: Path) -> np.ndarray:
    fix = "replace or remove the frame"
    data = file.read_bytes()
    if not is_complete_image(data, file.suffix):
        raise VideoReadError(file, "truncated image (no end marker after its data)", fix)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoReadError(file, "corrupt or unreadable image", fix)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _sample_folder(folder: Path, fps: float | None, folder_fps: float) -> SampledFrames:
    files = frame_files(folder)
    if not files:
        raise VideoReadError(
            folder, "folder holds no .jpg/.png frames", "point at a sequence folder"
        )
    duration = len(files) / folder_fps
    if fps is None:
        indices = np.arange(len(files))
    else:
        indices = np.floor(target_times(duration, fps) * folder_fps + _EPS).astype(int)
    frames = [_read_image(files[i]) for i in indices]
    if len({f.shape for f in frames}) > 1:
        raise VideoReadError(folder, "frames differ in size", "re-export the sequence at one size")
    return SampledFrames(np.stack(frames), indices / folder_fps, duration, folder_fps)


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoReadError(
            path,
            f"not a readable video ({exc.__class__.__name__})",
            "re-download or re-encode the file",
        ) from exc


def decoded_format(path: Path) -> tuple[str, int, int]:
    """The pixel format, width and height a video file (or a frame folder's first image)
    decodes to."""
    with _open(frame_files(path)[0] if path.is_dir() else path) as container:
        if not container.streams.video:
            raise VideoReadError(path, "no video stream", "is this an audio or data file?")
        codec = container.streams.video[0].codec_context
        return codec.pix_fmt or "", codec.width, codec.height


def _sample_file(path: Path, fps: float | None, seek_gap_s: float) -> SampledFrames:
    with _open(path) as container:
        if not container.streams.video:
            raise VideoReadError(path, "no video stream", "is this an audio or data file?")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = (
            1  # a Dask worker decodes on one core: parallelism is across videos
        )
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        try:
            picked, times, last_t = _decode_sampled(container, stream, fps, seek_gap_s, rate)
        except av.error.FFmpegError as exc:
            raise VideoReadError(
                path,
                f"decoding failed ({exc.__class__.__name__})",
                "the file may be truncated; re-encode it",
            ) from exc
    if not picked:
        raise VideoReadError(path, "zero decodable frames", "the file may be truncated or empty")
    duration = last_t + 1.0 / rate
    return SampledFrames(np.stack(picked), np.asarray(times), duration, rate)


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels as players (and ffmpeg, which makes the queries) show them: a display
    rotation (phone videos) is applied."""
    image = to_rgb(frame)
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


# 8-bit planar YUV: chroma subsampling (rows, columns) per pixel format
_PLANAR_YUV = {
    "yuv420p": (2, 2),
    "yuvj420p": (2, 2),
    "yuv422p": (1, 2),
    "yuvj422p": (1, 2),
    "yuv444p": (1, 1),
    "yuvj444p": (1, 1),
}


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB24 of a decoded frame, by integer arithmetic: the same bytes on every CPU.

    Decoding is bit-exact, but swscale's YUV to RGB conversion takes SIMD paths that round
    differently from its C path (``ffmpeg -cpuflags 0`` changes the bytes), so 8-bit planar
    YUV is converted here, ITU-R BT.601 in fixed point with chroma repeated over its pixels:
    limited-range 4:2:0 (every video of the study's corpora) by OpenCV's integer kernel,
    anything else planar in numpy (full range for ``yuvj*`` or ``color_range`` JPEG). Other
    formats go through swscale.
    """
    name = frame.format.name
    step = _PLANAR_YUV.get(name)
    if step is None:
        return frame.to_ndarray(format="rgb24")
    h, w = frame.height, frame.width
    y, u, v = (
        np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        for p in frame.planes[:3]
    )
    full_range = name.startswith("yuvj") or frame.color_range == 2
    if step == (2, 2) and not full_range:
        even = np.pad(y, ((0, h % 2), (0, w % 2)), mode="edge")  # chroma covers the odd edge
        i420 = np.concatenate([even.ravel(), u.ravel(), v.ravel()])
        rgb = cv2.cvtColor(i420.reshape(-1, even.shape[1]), cv2.COLOR_YUV2RGB_I420)
        return np.ascontiguousarray(rgb[:h, :w])
    y = y.astype(np.int32)
    u, v = (
        c.astype(np.int32).repeat(step[0], axis=0).repeat(step[1], axis=1)[:h, :w] - 128
        for c in (u, v)
    )
    if full_range:
        luma = 256 * y + 128
        rgb = (luma + 359 * v, luma - 88 * u - 183 * v, luma + 454 * u)
    else:
        luma = 298 * (y - 16) + 128
        rgb = (luma + 409 * v, luma - 100 * u - 208 * v, luma + 516 * u)
    return np.clip(np.stack(rgb, axis=-1) >> 8, 0, 255).astype(np.uint8)


def _decode_sampled(container, stream, fps, seek_gap_s, rate):
    """Stream through the decoder, converting only the frames on screen at target times."""
    picked: list[np.ndarray] = []
    times: list[float] = []
    start: float | None = None
    prev = None  # (relative time, frame) of the last decoded frame
    k = 0  # index of the next target time

    def take(t: float, frame: av.VideoFrame) -> None:
        picked.append(_upright(frame))
        times.append(t)

    frames = container.decode(stream)
    while (frame := next(frames, None)) is not None:
        if frame.time is None:
            continue
        if start is None:
            start = frame.time
        t = frame.time - start
        if fps is None:
            take(t, frame)
            prev = (t, frame)
            continue
        if prev is not None and t <= prev[0]:
            continue  # frames re-decoded after a seek
        while prev is not None and k / fps < t - _EPS:
            take(prev[0], prev[1])
            k += 1
        prev = (t, frame)
        if k / fps - t > seek_gap_s:
            container.seek(int((k / fps + start) / stream.time_base), stream=stream, backward=True)
            frames = container.decode(stream)
    if prev is None:
        return picked, times, 0.0
    if fps is not None:
        while k / fps < prev[0] + 1.0 / rate - _EPS:
            take(prev[0], prev[1])
            k += 1
    return picked, times, prev[0]
