"""Partial-copy queries: pieces spliced with ffmpeg land where their ground truth says."""

from dataclasses import replace

import av
import numpy as np
import pytest

from storyhash_core.errors import TransformError
from storyhash_core.matching import Match
from storyhash_core.partial import Piece, copied_segments, plan_queries, splice
from storyhash_core.transforms import resolve

from .conftest import write_folder, write_video

FPS = 25


def levels(path):
    """Each decoded frame's mean grey level."""
    with av.open(str(path)) as container:
        return np.array([f.to_ndarray(format="gray").mean() for f in container.decode(video=0)])


@pytest.fixture
def videos(tmp_path):
    ramp = np.stack([np.full((48, 64, 3), 20 + 2 * k, np.uint8) for k in range(100)])  # 4 s
    flat = np.full((75, 36, 48, 3), 245, np.uint8)  # 3 s of other footage, another size
    return write_video(tmp_path / "ref.mp4", ramp, FPS), write_video(tmp_path / "f.mp4", flat, FPS)


def test_a_spliced_copy_sits_where_its_ground_truth_says(tmp_path, videos):
    ref, filler = videos
    (faster,) = resolve(["speed_1.1"])
    pieces = [
        Piece(filler, 0.0, 2.0),
        Piece(ref, 1.0, 2.0, "ref", faster),
        Piece(filler, 2.0, 1.0),
    ]
    (truth,) = copied_segments("q", pieces)
    assert truth == Match("q", "ref", 2.0, round(2.0 + 2.0 / 1.1, 6), 1.0, 3.0)
    splice(pieces, tmp_path / "q.mp4", 64, 48, FPS)
    found = levels(tmp_path / "q.mp4")
    assert abs(len(found) - FPS * truth.query_end - FPS * 1.0) <= 2  # 2 + 1.82 + 1 s
    assert (np.abs(found[: 2 * FPS - 1] - 245) < 3).all()  # the other footage first
    for t in (2.2, 3.0, 3.6):  # inside the copy: the reference's frame at its own time
        ref_time = truth.ref_start + (t - truth.query_start) * 1.1
        assert found[round(t * FPS)] == pytest.approx(20 + 2 * ref_time * FPS, abs=4)
    assert (np.abs(found[-FPS + 1 :] - 245) < 3).all()


def test_an_edit_with_backgrounds_is_refused(tmp_path, videos):
    ref, _ = videos
    composed = replace(resolve(["flip_h"])[0], backgrounds=1)
    with pytest.raises(TransformError, match="cannot take an edit that composes backgrounds"):
        splice([Piece(ref, 0, 1, "ref", composed)], tmp_path / "x.mp4", 64, 48, FPS)


def test_a_frame_folder_is_a_piece_too(tmp_path, videos):
    _, filler = videos
    frames = np.stack([np.full((48, 64, 3), 20 + 4 * k, np.uint8) for k in range(40)])
    folder = write_folder(tmp_path / "JPEGImages" / "clip", frames)  # 40 frames at 20 fps
    pieces = [Piece(folder, 0.5, 1.0, "clip", folder_fps=20.0), Piece(filler, 0.0, 1.0)]
    splice(pieces, tmp_path / "q.mp4", 64, 48, FPS)
    found = levels(tmp_path / "q.mp4")
    assert abs(len(found) - 2 * FPS) <= 1
    assert found[FPS // 2] == pytest.approx(20 + 4 * 20 * (0.5 + 0.5), abs=5)  # its second 1.0


def test_the_plan_is_seeded_and_keeps_its_promises(tmp_path):
    from storyhash_core.corpus import Video

    def clip(name, seconds):
        return Video(name, tmp_path / f"{name}.mp4", meta={"duration_s": str(seconds)})

    refs = [clip("short", 3.0), clip("long", 9.2), clip("mid", 4.3)]
    fillers = [clip("held", 2.1), clip("synth", 8.0)]
    edits = [None, *resolve(["flip_h", "speed_1.1"])]
    counts = {"single": 200, "double": 40, "negative": 50}
    jobs = plan_queries(refs, fillers, edits, counts, (8.0, 20.0), seed=0)
    assert jobs == plan_queries(refs, fillers, edits, counts, (8.0, 20.0), seed=0)
    assert [j.kind for j in jobs] == ["single"] * 200 + ["double"] * 40 + ["negative"] * 50
    shares = []
    for job in jobs:
        copies = [p for p in job.pieces if p.reference_id]
        length = sum(p.length_in_query for p in job.pieces)
        assert len(copies) == {"single": 1, "double": 2, "negative": 0}[job.kind]
        assert len({c.reference_id for c in copies}) == len(copies)
        for c in copies:
            ref = next(r for r in refs if r.video_id == c.reference_id)
            assert (
                1.0 - 1e-9 <= c.duration
                and c.start + c.duration <= float(ref.meta["duration_s"]) + 1e-6
            )
        if job.kind == "single":
            shares.append(copies[0].length_in_query / length)
        if not (job.kind == "single" and shares[-1] == pytest.approx(1.0)):
            assert 8.0 - 0.05 <= length <= 20.0 + 0.05
        truth = copied_segments(job.query_id, list(job.pieces))
        assert [(m.ref_id, m.ref_end - m.ref_start) for m in truth] == [
            (c.reference_id, pytest.approx(c.duration)) for c in copies
        ]
    assert min(shares) < 0.08 and max(shares) == pytest.approx(1.0)
    assert 0.1 < np.median(shares) < 0.4  # log-uniform, cut by the references' lengths


def test_a_partial_query_is_made_once_and_cached(tmp_path, videos):
    from storyhash_core.cache import ArtifactCache
    from storyhash_core.partial import Frame, PartialJob, make_partial

    ref, filler = videos
    job = PartialJob("q", "single", (Piece(filler, 0.0, 1.0), Piece(ref, 0.5, 1.0, "ref")))
    frame = Frame(64, 48, FPS)
    path, cached = make_partial(job, str(tmp_path / "cache"), frame)
    assert not cached and abs(len(levels(path)) - 2 * FPS) <= 1
    again, cached = make_partial(job, str(tmp_path / "cache"), frame)
    assert cached and again == path
    moved = job._replace(pieces=(job.pieces[0], job.pieces[1]._replace(start=0.6)))
    assert make_partial(moved, str(tmp_path / "cache"), frame)[0] != path  # another stretch
    assert ArtifactCache(str(tmp_path / "cache")).exists(path)
