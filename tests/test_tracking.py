import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from storyhash_core.cache import ArtifactCache
from storyhash_core.corpus import load_manifest
from storyhash_core.pipeline import process_videos
from storyhash_core.synthetic import GROUND_TRUTH, SyntheticSpec, generate_corpus
from storyhash_core.tracking import TrackerError, TrackerSpec, load_tracker, load_tracks
from storyhash_core.tracking.evaluate import score_tracks
from storyhash_core.tracking.flow import camera_motion, link
from storyhash_core.tracking.sam2 import Sam2Tracker, grid_points
from storyhash_core.video import sample_frames


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_corpus(
        SyntheticSpec(n_videos=4, min_duration_s=2.0, max_duration_s=2.5),
        tmp_path_factory.mktemp("synthetic"),
    )


def test_camera_motion_recovers_a_pan():
    flow = np.zeros((90, 160, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0
    flow[30:50, 60:90] = (10.0, 10.0)  # a moving object is an outlier
    np.testing.assert_allclose(camera_motion(flow), [[1, 0, 3], [0, 1, -2]], atol=1e-3)


def test_link_keeps_identities_through_a_gap():
    det = lambda x: np.array([[x, 50.0, x - 5, 45, x + 5, 55, 100]])  # noqa: E731
    frames = [det(10), det(20), np.zeros((0, 7)), det(40), det(50)]
    rows = link(frames, diag=500.0)
    assert [r[1] for r in rows] == [0, 0, 0, 0] and [r[0] for r in rows] == [0, 1, 3, 4]
    far = [
        det(10),
        det(400),
    ]  # a jump beyond the gate starts a new track, and single-frame tracks go
    assert link(far, diag=500.0) == []


def test_flow_tracker_follows_the_synthetic_objects(corpus):
    """Tracks against the generator's ground truth: the scores are printed and bounded."""
    truth = pd.read_csv(corpus.parent / GROUND_TRUTH)
    tracker = load_tracker(TrackerSpec())
    matched = points = tracked = 0
    errors = []
    for video in load_manifest(corpus):
        s = sample_frames(video.path, 6.0, video.fps)
        score = score_tracks(
            tracker.track(s.frames, s.timestamps),
            truth[truth.video_id == video.video_id],
            video.fps,
        )
        matched, points, tracked = (
            matched + score.matched,
            points + score.truth_points,
            tracked + score.tracked_points,
        )
        errors.append(score.centroid_error_px)
    recall, precision, error = matched / points, matched / tracked, float(np.mean(errors))
    print(
        f"flow tracker on 4 synthetic clips: recall {recall:.2f}, precision {precision:.2f},"
        f" centroid error {error:.1f} px (320x180)"
    )
    assert recall > 0.4 and precision > 0.6 and error < 15


def test_tracking_does_not_depend_on_the_process(corpus):
    """The same tracks whatever ran before in the worker: other seeds of OpenCV's and NumPy's
    global generators (RANSAC seeds itself per call) and other OpenCV thread counts."""
    import cv2

    video = load_manifest(corpus)[1]
    s = sample_frames(video.path, 6.0, video.fps)
    runs, threads = [], cv2.getNumThreads()
    try:
        for seed, n_threads in ((0, 1), (12345, 2), (7, 4)):
            cv2.setRNGSeed(seed)
            np.random.seed(seed)
            cv2.setNumThreads(n_threads)
            runs.append(load_tracker(TrackerSpec()).track(s.frames, s.timestamps))
    finally:
        cv2.setNumThreads(threads)
    assert runs[0].n_objects > 0
    fields = ("times", "frame", "object_id", "centroid", "box", "area")
    for other in runs[1:]:
        for field in fields:
            np.testing.assert_array_equal(
                getattr(other, field), getattr(runs[0], field), err_msg=field
            )


def test_tracks_are_cached_with_their_cost(corpus, tmp_path, client):
    videos = load_manifest(corpus)[:2]
    items = {v.video_id: (v.path, v.fps) for v in videos}
    first, failed = process_videos(client, items, 2.0, [], TrackerSpec(), ArtifactCache(tmp_path))
    assert not failed and set(first) == set(items)
    tracks, seconds = load_tracks(first[videos[0].video_id].tracks)
    assert seconds > 0 and tracks.n_objects >= 1 and tracks.width == 320
    files = sorted((tmp_path / "tracks").rglob("*.npz"))
    stamps = [f.stat().st_mtime_ns for f in files]
    process_videos(client, items, 2.0, [], TrackerSpec(), ArtifactCache(tmp_path))
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_sam2_needs_a_checkpoint(tmp_path):
    with pytest.raises(TrackerError, match="needs tracker.sam2_checkpoint"):
        load_tracker(TrackerSpec(name="sam2"))
    with pytest.raises(TrackerError, match="not found"):
        load_tracker(TrackerSpec(name="sam2", sam2_checkpoint=str(tmp_path / "none.pt")))


def test_sam2_propagates_point_prompts_with_random_weights(corpus):
    """The real SAM 2 code path end to end, randomly initialised (no checkpoint here)."""
    spec = TrackerSpec(name="sam2", sam2_image_size=256, sam2_grid=2)
    tracker = Sam2Tracker(spec, allow_random_weights=True)
    video = load_manifest(corpus)[1]
    s = sample_frames(video.path, 3.0)
    frames, times = s.frames[:6], s.timestamps[:6]
    tracks = tracker.track(frames, times)
    assert tracks.width == 320 and tracks.height == 180 and len(tracks.times) == 6
    assert set(tracks.object_id) <= {0, 1, 2, 3}
    assert set(tracks.frame) <= set(range(6))
    assert ((tracks.box[:, 2] > tracks.box[:, 0]) & (tracks.area > 0)).all()
    np.testing.assert_allclose(
        grid_points(320, 180, 2), [[80, 45], [240, 45], [80, 135], [240, 135]]
    )


DIGEST = """
import hashlib, sys
from storyhash_core.backbones import resize_center_crop
from storyhash_core.opencv import cv2
from storyhash_core.tracking import TrackerSpec, track_frames
from storyhash_core.video import sample_frames
s = sample_frames(sys.argv[1], 6.0)
tracks, _ = track_frames(s, TrackerSpec(name="flow", fps=6.0))
grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in s.frames[:2]]
flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(*grey, None)
parts = [s.frames, tracks.centroid, tracks.box, flow, resize_center_crop(s.frames[0], 64)]
print(hashlib.sha256(b"".join(p.tobytes() for p in parts)).hexdigest())
"""


@pytest.mark.parametrize(
    "env",
    [
        {"OPENCV_IPP": "disabled"},
        {"OPENCV_IPP": "sse42"},
        {"OPENCV_CPU_DISABLE": "AVX512_SKX,AVX2,FMA3,AVX,POPCNT,SSE4_2,SSE4_1,SSSE3"},
    ],
)
def test_frames_and_tracks_do_not_depend_on_the_cpu_kernels(corpus, env):
    """OpenCV picks SIMD kernels and IPP code paths for the CPU; forcing other ones (as another
    CPU would get) must not change a decoded frame, the optical flow, a track or a resized
    frame (DIS flow did change, before ``storyhash_core.opencv``)."""
    video = load_manifest(corpus)[1]
    run = lambda extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", DIGEST, str(video.path)],
        env=os.environ | extra,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    assert run(env) == run({})
