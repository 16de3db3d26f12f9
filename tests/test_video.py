import shutil

import av
import numpy as np
import pytest

from storyhash_core import video as video_module
from storyhash_core.errors import VideoReadError
from storyhash_core.video import sample_frames, sample_rates, target_times, to_rgb

from .conftest import index_frames, write_folder, write_video


def grey_index(frames: np.ndarray) -> list[int]:
    """Recover the encoded frame index from the right half of each frame."""
    return [int(round(f[:, f.shape[1] // 2 :].mean() / 3)) for f in frames]


@pytest.mark.parametrize(
    "duration, fps, expected",
    [
        (50 / 24, 2.0, [0, 0.5, 1.0, 1.5, 2.0]),
        (2.0, 2.0, [0, 0.5, 1.0, 1.5]),
        (0.3, 2.0, [0.0]),
        (0.0, 2.0, []),
    ],
)
def test_target_times(duration, fps, expected):
    assert target_times(duration, fps).tolist() == pytest.approx(expected)


def test_folder_sampling_reads_frames_on_screen(tmp_path):
    folder = write_folder(tmp_path / "seq", index_frames(50, 32, 48))
    s = sample_frames(folder, fps=2.0, folder_fps=24.0)
    assert s.timestamps.tolist() == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])
    assert grey_index(s.frames) == [0, 12, 24, 36, 48]
    assert s.frames.shape == (5, 32, 48, 3) and s.frames.dtype == np.uint8
    assert s.duration_s == pytest.approx(50 / 24)


def test_file_sampling_picks_last_frame_at_or_before_each_target(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(75, 32, 48), fps=25)
    s = sample_frames(video, fps=2.0)
    assert s.timestamps.tolist() == pytest.approx([0, 0.48, 1.0, 1.48, 2.0, 2.48])
    assert grey_index(s.frames) == [0, 12, 25, 37, 50, 62]
    assert s.duration_s == pytest.approx(3.0)
    assert s.source_fps == pytest.approx(25)


def test_every_frame_when_fps_is_none(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(20, 32, 48), fps=10)
    s = sample_frames(video, fps=None)
    assert len(s) == 20
    assert grey_index(s.frames) == list(range(20))


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_one_decode_serves_every_rate_that_divides_the_highest(tmp_path, monkeypatch, kind):
    frames = index_frames(77, 32, 48)  # 3.2 s at 24 fps
    source = (
        write_video(tmp_path / "v.mp4", frames, fps=24)
        if kind == "file"
        else write_folder(tmp_path / "seq", frames)
    )
    expected = {fps: sample_frames(source, fps, 24.0) for fps in (6.0, 3.0, 2.0, 5.0)}
    decodes = []
    monkeypatch.setattr(
        video_module, "sample_frames", lambda p, fps, ff: decodes.append(fps) or expected[fps]
    )
    got = sample_rates(source, [2.0, 6.0, 3.0, 5.0], 24.0)
    assert sorted(decodes) == [5.0, 6.0]  # 2 and 3 fps are every 3rd and 2nd frame at 6 fps
    monkeypatch.undo()
    for fps, s in got.items():
        np.testing.assert_array_equal(s.frames, sample_frames(source, fps, 24.0).frames)
        np.testing.assert_array_equal(s.timestamps, sample_frames(source, fps, 24.0).timestamps)


def test_seeking_gives_the_same_frames_as_decoding_through(tmp_path):
    video = write_video(tmp_path / "long.mp4", index_frames(80, 32, 48), fps=4, gop=8)
    through = sample_frames(video, fps=0.25, seek_gap_s=1e9)
    seeking = sample_frames(video, fps=0.25, seek_gap_s=1.0)
    assert (
        seeking.timestamps.tolist()
        == through.timestamps.tolist()
        == pytest.approx([0, 4, 8, 12, 16])
    )
    np.testing.assert_array_equal(seeking.frames, through.frames)
    assert grey_index(seeking.frames) == [0, 16, 32, 48, 64]


def test_odd_sized_inputs_read(odd_clips):
    assert sample_frames(odd_clips["mkv"]).frames.shape[1:] == (91, 161, 3)
    assert sample_frames(odd_clips["folder"]).frames.shape[1:] == (91, 161, 3)


def _one_line_error(path, **kw) -> str:
    with pytest.raises(VideoReadError) as info:
        sample_frames(path, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path):
    assert str(tmp_path / "nope.mp4") in _one_line_error(tmp_path / "nope.mp4")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no .jpg/.png frames" in _one_line_error(tmp_path / "empty")


def test_corrupt_jpeg_is_named(tmp_path):
    folder = write_folder(tmp_path / "seq", index_frames(30, 16, 16))
    (folder / "00012.jpg").write_bytes(b"not a jpeg")
    assert "00012.jpg" in _one_line_error(folder)


def test_truncated_mp4(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(50, 32, 48), fps=25)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    assert "cut.mp4" in _one_line_error(cut)


def test_not_a_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("hello, I am not a video\n" * 100)
    assert "notes.mp4" in _one_line_error(text)


def test_folder_with_mixed_frame_sizes(tmp_path):
    folder = write_folder(tmp_path / "seq", index_frames(30, 16, 16))
    shutil.copy(
        write_folder(tmp_path / "big", index_frames(1, 32, 32)) / "00000.jpg", folder / "00012.jpg"
    )
    assert "differ in size" in _one_line_error(folder)


def _ffmpeg_frames(path, width, height) -> np.ndarray:
    """Every frame as the bundled ffmpeg CLI shows it (display rotation applied)."""
    import subprocess

    from storyhash_core.transforms import ffmpeg_exe

    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_tag_is_applied_like_ffmpeg(tmp_path, degrees):
    """Phone videos carry a display rotation; frames come out as players (and ffmpeg, which
    makes the queries) show them."""
    import subprocess

    from storyhash_core.transforms import ffmpeg_exe

    plain = write_video(tmp_path / "plain.mp4", index_frames(12, 32, 48), fps=12)
    tagged = tmp_path / "tagged.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-display_rotation",
            str(degrees),
            "-i",
            str(plain),
            "-c",
            "copy",
            str(tagged),
        ],
        check=True,
    )
    s = sample_frames(tagged, fps=None)
    h, w = (48, 32) if degrees % 180 else (32, 48)
    assert s.frames.shape == (12, h, w, 3)
    # ffmpeg's own RGB conversion rounds a little differently (``video.to_rgb``); a wrong
    # rotation would be off by far more
    ffmpeg = _ffmpeg_frames(tagged, w, h).astype(int)
    assert np.abs(s.frames.astype(int) - ffmpeg).max() <= 3


def test_single_frame_video(tmp_path):
    video = write_video(tmp_path / "one.mp4", index_frames(1, 32, 48), fps=10)
    s = sample_frames(video, fps=2.0)
    assert len(s) == 1 and s.timestamps.tolist() == [0.0]


def test_zero_length_video(tmp_path):
    import av

    video = tmp_path / "empty.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = 32, 48, "yuv420p"
    assert "empty.mp4" in _one_line_error(video)


def _yuv_frame(fmt: str, y: int, u: int, v: int, w: int = 5, h: int = 3):
    frame = av.VideoFrame(w, h, fmt)
    for plane, value in zip(frame.planes, (y, u, v), strict=True):
        plane.update(np.full(plane.buffer_size, value, np.uint8).tobytes())
    return frame


@pytest.mark.parametrize(
    ("fmt", "yuv", "rgb"),
    [
        ("yuv420p", (16, 128, 128), (0, 0, 0)),  # limited range: 16..235
        ("yuv420p", (235, 128, 128), (255, 255, 255)),
        ("yuv420p", (81, 90, 240), (255, 0, 0)),  # BT.601 red
        ("yuv420p", (145, 54, 34), (0, 255, 0)),
        ("yuvj420p", (100, 128, 128), (100, 100, 100)),  # full range: grey is Y
        ("yuvj420p", (76, 85, 255), (254, 0, 0)),
        ("yuv444p", (81, 90, 240), (255, 0, 0)),
    ],
)
def test_yuv_frames_become_rgb_by_the_bt601_formula(fmt, yuv, rgb):
    out = to_rgb(_yuv_frame(fmt, *yuv))
    assert out.shape == (3, 5, 3) and out.dtype == np.uint8  # odd sizes keep their pixels
    assert np.abs(out.astype(int) - rgb).max() <= 1
