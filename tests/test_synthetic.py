import filecmp
import hashlib

import numpy as np
import pandas as pd

from storyhash_core.cache import ArtifactCache
from storyhash_core.corpus import load_manifest
from storyhash_core.synthetic import (
    GROUND_TRUTH,
    PALETTE,
    generate_corpus,
    synthetic_corpus,
    write_mp4,
)
from storyhash_core.video import sample_frames

from .conftest import TINY


def test_corpus_layout_and_ground_truth(tiny_corpus):
    videos = load_manifest(tiny_corpus)
    assert [v.video_id for v in videos] == ["synth-00", "synth-01", "synth-02"]
    assert videos[0].is_frame_folder and videos[0].path.parts[-3:-1] == ("JPEGImages", "480p")
    assert videos[1].path.suffix == ".mp4"
    truth = pd.read_csv(tiny_corpus.parent / GROUND_TRUTH)
    for v in videos:
        s = sample_frames(v.path, fps=None, folder_fps=v.fps)
        assert s.frames.shape[1:] == (TINY.height, TINY.width, 3)
        rows = truth[truth.video_id == v.video_id]
        assert rows.frame.max() == len(s) - 1
        assert 2 <= rows.object_id.nunique() <= 4
        assert rows.cx.between(0, TINY.width).all() and rows.cy.between(0, TINY.height).all()
        assert (rows.area > 0).all()


def test_objects_are_where_the_ground_truth_says(tiny_corpus):
    """Pixels inside an object's box differ from the same place in the object-free background."""
    truth = pd.read_csv(tiny_corpus.parent / GROUND_TRUTH)
    video = load_manifest(tiny_corpus)[1]
    frames = sample_frames(video.path, fps=None).frames.astype(float)
    row = truth[(truth.video_id == video.video_id) & (truth.area > 100)].iloc[0]
    frame = frames[int(row.frame)]
    cx, cy = int(row.cx), int(row.cy)
    inside = frame[cy - 2 : cy + 3, cx - 2 : cx + 3].reshape(-1, 3)
    colours = np.array(PALETTE)
    best = min(np.abs(inside.mean(0)[None] - np.concatenate([colours, 0.6 * colours])).sum(1))
    assert best < 60


def test_camera_moves(tiny_corpus):
    frames = sample_frames(load_manifest(tiny_corpus)[2].path, fps=None).frames.astype(float)
    assert np.abs(frames[-1] - frames[0]).mean() > 10


def test_generation_is_deterministic(tmp_path, tiny_corpus):
    again = generate_corpus(TINY, tmp_path)
    for name in (
        "manifest.csv",
        GROUND_TRUTH,
        "clips/synth-01.mp4",
        "JPEGImages/480p/synth-00/00005.jpg",
    ):
        assert filecmp.cmp(tiny_corpus.parent / name, again.parent / name, shallow=False), name


def test_cached_by_spec(tmp_path):
    cache = ArtifactCache(tmp_path)
    first = synthetic_corpus(TINY, cache)
    stamp = first.stat().st_mtime_ns
    assert synthetic_corpus(TINY, cache) == first and first.stat().st_mtime_ns == stamp
    other = synthetic_corpus(TINY.model_copy(update={"seed": 1}), cache)
    assert other != first


def test_the_encoder_writes_the_same_bytes_every_time(tmp_path, tiny_corpus):
    """x264 without its macroblock tree, on one thread: repeated encodes are byte-identical
    (PyAV's libx264 with mbtree gave 4 distinct files in 40 encodes on an AMD EPYC)."""
    frames = list(sample_frames(tiny_corpus.parent / "clips" / "synth-01.mp4", fps=None).frames)
    digests = set()
    for i in range(6):
        write_mp4(frames, TINY.fps, tmp_path / f"{i}.mp4")
        digests.add(hashlib.sha256((tmp_path / f"{i}.mp4").read_bytes()).hexdigest())
    assert len(digests) == 1
