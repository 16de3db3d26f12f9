from pathlib import Path

import numpy as np
import pytest

from storyhash_core.cache import ArtifactCache
from storyhash_core.corpus import Video
from storyhash_core.errors import TransformError
from storyhash_core.queries import SHARED_DECODE, QueryJob, batches, generate_queries
from storyhash_core.transforms import (
    HARD_EDITS,
    PAPER_TRANSFORMS,
    SHARED_FORMATS,
    Transform,
    apply_transform,
    apply_transforms,
    ffmpeg_command,
    hard_transform,
    resolve,
    rotation_sweep,
    shares_decode,
)
from storyhash_core.video import decoded_format, sample_frames

from .conftest import index_frames, write_folder, write_video

PAPER_NAMES = [
    "crop_10",
    "crop_20",
    "rotate_5",
    "rotate_10",
    "brightness_20",
    "brightness_40",
    "compress_50",
    "compress_25",
    "speed_0.9",
    "speed_1.1",
    "flip_h",
    "flip_v",
    "watermark",
    "combined",
]


def test_registry_holds_the_papers_14_transforms():
    assert list(PAPER_TRANSFORMS) == PAPER_NAMES
    assert PAPER_TRANSFORMS["compress_50"].crf == 28 and PAPER_TRANSFORMS["compress_25"].crf == 35
    combined = PAPER_TRANSFORMS["combined"]
    assert combined.speed == pytest.approx(0.9)
    assert "hflip" in combined.vf and "crop=" in combined.vf


def test_sweeps_and_names_resolve():
    assert [t.name for t in rotation_sweep([0, 15, 30, 45, 60, 75, 90])] == [
        "rotate_0",
        "rotate_15",
        "rotate_30",
        "rotate_45",
        "rotate_60",
        "rotate_75",
        "rotate_90",
    ]
    assert [t.name for t in resolve(["flip_v", "rotate_37.5"])] == ["flip_v", "rotate_37.5"]
    assert len(resolve("paper")) == 14
    with pytest.raises(TransformError, match="unknown transform 'blur'"):
        resolve(["blur"])


@pytest.mark.parametrize("name", ["compress_25", "rotate_10", "brightness_40"])
def test_a_transform_writes_the_same_bytes_every_time(odd_clips, tmp_path, name):
    """One x264 thread, no macroblock tree, swscale's exact paths: repeated runs are identical."""
    command = ffmpeg_command(odd_clips["mkv"], PAPER_TRANSFORMS[name], tmp_path / "x.mp4")
    assert (
        "threads=1:mbtree=0" in command and "accurate_rnd+bitexact" in command
    )  # the CPU-independent settings
    outs = [tmp_path / f"{i}.mp4" for i in range(4)]
    for out in outs:
        apply_transform(odd_clips["mkv"], PAPER_TRANSFORMS[name], out)
    assert len({out.read_bytes() for out in outs}) == 1


@pytest.fixture(scope="module")
def even_clips(tmp_path_factory) -> dict[str, Path]:
    """A 160x90 yuv420p H.264 clip (12 fps, 1.5 s) and a 160x90 JPEG folder, as the corpus's."""
    root = tmp_path_factory.mktemp("even")
    return {
        "h264": write_video(root / "c.mp4", index_frames(18, 90, 160), 12),
        "jpeg": write_folder(root / "seq", index_frames(24, 90, 160)),
    }


@pytest.mark.parametrize(
    ("kind", "shared"), [("h264", True), ("jpeg", True), ("folder", False), ("mkv", False)]
)
def test_one_decode_writes_the_same_bytes_as_one_call_each(
    odd_clips, even_clips, tmp_path, kind, shared
):
    """Every transform that shares a decode (the paper's 14, the sweep's rotations and the
    hard edits without backgrounds or a graph of their own) comes out of
    :func:`apply_transforms` byte for byte as from its own call: one decode for even-sized
    4:2:0 sources (H.264, JPEG), one call each for the odd-sized JPEG folder and the RGB mkv."""
    src = (even_clips | odd_clips)[kind]
    fmt, width, height = decoded_format(src)
    assert (fmt in SHARED_FORMATS and width % 2 == height % 2 == 0) == shared
    edits = [hard_transform(name, "odd") for name in HARD_EDITS]
    ts = [*PAPER_TRANSFORMS.values(), *rotation_sweep([0, 45]), *filter(shares_decode, edits)]
    assert len(ts) == 14 + 2 + 10 and not any(map(shares_decode, set(edits) - set(ts)))
    shared = [tmp_path / f"shared_{t.name}.mp4" for t in ts]
    apply_transforms(src, ts, shared, folder_fps=24.0)
    for t, out in zip(ts, shared, strict=True):
        alone = tmp_path / f"alone_{t.name}.mp4"
        apply_transform(src, t, alone, folder_fps=24.0)
        assert out.read_bytes() == alone.read_bytes(), t.name


def test_queries_share_a_decode_per_source_in_batches():
    videos = [Video("a", Path("a.mp4")), Video("b", Path("b.mp4"))]
    pip = hard_transform("pip", "a")
    jobs = [QueryJob(v, t) for v in videos for t in resolve("paper")] + [QueryJob(videos[0], pip)]
    calls = batches(jobs)
    assert sorted(map(len, calls)) == [1, 14 - SHARED_DECODE, 14 - SHARED_DECODE, 12, 12]
    assert all(len({j.video.video_id for j in call}) == 1 for call in calls)
    assert [j for call in calls for j in call if j.transform is pip] == [jobs[-1]]


def expected_geometry(name: str, w: int, h: int) -> tuple[int, int]:
    keep = {"crop_10": 0.9, "crop_20": 0.8, "combined": 0.9}.get(name)
    if keep:
        return int(w * keep / 2) * 2, int(h * keep / 2) * 2
    return w // 2 * 2, h // 2 * 2


@pytest.mark.parametrize("kind", ["mkv", "folder"])
@pytest.mark.parametrize("name", PAPER_NAMES)
def test_every_transform_on_odd_sized_input(odd_clips, tmp_path, kind, name):
    src = odd_clips[kind]
    out = tmp_path / f"{name}.mp4"
    apply_transform(src, PAPER_TRANSFORMS[name], out, folder_fps=24.0)
    before = sample_frames(src, fps=None, folder_fps=24.0)
    after = sample_frames(out, fps=None)
    w, h = expected_geometry(name, 161, 91)
    assert after.frames.shape[1:] == (h, w, 3)
    speed = PAPER_TRANSFORMS[name].speed
    assert after.duration_s == pytest.approx(before.duration_s / speed, abs=1.5 / before.source_fps)
    first_in, first_out = before.frames[0].astype(float), after.frames[0].astype(float)
    middle = slice(h // 3, 2 * h // 3)
    left_in, left_out = first_in[middle, 5:20].mean(), first_out[middle, 5:20].mean()
    right_out = first_out[middle, -20:-5].mean()
    if name in ("flip_h", "combined"):
        assert right_out > 200 > left_out  # the bright left edge moved right
    elif name == "flip_v":
        block = slice(w // 4 + 5, w // 2 - 5)
        assert first_out[-15:, block].mean() > 200 > first_out[:15, block].mean()
    elif name.startswith("brightness"):
        assert first_out[:, 60:].mean() > first_in[:, 60:].mean() + 30
    else:
        assert left_out == pytest.approx(left_in, abs=25)


def test_watermark_changes_the_bottom_right_only(odd_clips, tmp_path):
    out = tmp_path / "wm.mp4"
    apply_transform(odd_clips["mkv"], PAPER_TRANSFORMS["watermark"], out)
    before = sample_frames(odd_clips["mkv"], fps=None).frames[0, :90, :160].astype(float)
    after = sample_frames(out, fps=None).frames[0].astype(float)
    diff = np.abs(after - before).mean(axis=2)
    assert diff[60:, 80:].max() > 100  # text pixels
    assert diff[:45].mean() < 3


def test_bad_filter_fails_cleanly(odd_clips, tmp_path):
    out = tmp_path / "bad.mp4"
    with pytest.raises(TransformError, match="bad_filter"):
        apply_transform(odd_clips["mkv"], Transform("bad_filter", "test", "nosuchfilter=1"), out)


def test_generation_is_cached_and_failures_recorded(odd_clips, tmp_path, client):
    cache = ArtifactCache(tmp_path / "cache")
    videos = [Video("odd", odd_clips["mkv"]), Video("seq", odd_clips["folder"], fps=24.0)]
    transforms = [PAPER_TRANSFORMS["flip_h"], Transform("broken", "test", "nosuchfilter")]
    first = generate_queries(client, videos, transforms, cache)
    ok = [q for q in first if q.transform == "flip_h"]
    bad = [q for q in first if q.transform == "broken"]
    assert all(q.path and q.path.is_file() and not q.cached for q in ok)
    assert all(q.path is None and "nosuchfilter" in q.error for q in bad)
    mtimes = {q.query_id: q.path.stat().st_mtime_ns for q in ok}
    second = generate_queries(client, videos, transforms[:1], cache)
    assert all(q.cached for q in second)
    assert {q.query_id: q.path.stat().st_mtime_ns for q in second} == mtimes
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []
