"""Runs killed mid-way resume without partial cache entries, and processes sharing one cache
directory do not corrupt it (issue: reliability)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from storyhash_core.cache import ArtifactCache
from storyhash_core.features import load_features
from storyhash_core.tracking import load_tracks
from storyhash_core.video import sample_frames

from .conftest import index_frames, write_video

# One process working through videos one at a time, printing a line after each, as a Dask
# worker would: ``features`` runs the per-video pipeline (DCT features and flow tracks),
# ``queries`` generates transformed copies.
WORKER = """
import json, sys
from pathlib import Path
from storyhash_core.backbones import BackboneSpec
from storyhash_core.corpus import Video
from storyhash_core.pipeline import VideoJob, process_video
from storyhash_core.queries import QueryJob, make_query
from storyhash_core.tracking import TrackerSpec
from storyhash_core.transforms import PAPER_TRANSFORMS
kind, cache, videos = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for v in videos:
    if kind == "features":
        job = VideoJob(Path(v), 24.0, 2.0, ((BackboneSpec(name="dct"), ""),), TrackerSpec())
        process_video(job, cache)
    else:
        for t in ("rotate_10", "flip_v"):
            make_query(QueryJob(Video(Path(v).stem, Path(v)), PAPER_TRANSFORMS[t]), cache)
    print("done", v, flush=True)
"""


def videos(tmp_path: Path, n: int = 6) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        frames = np.roll(index_frames(36, 72, 96), int(rng.integers(0, 96)), axis=2)
        out.append(str(write_video(tmp_path / f"v{i}.mp4", frames, fps=12)))
    return out


def start(kind: str, cache: Path, items: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, kind, str(cache), json.dumps(items)],
        stdout=subprocess.PIPE,
        text=True,
    )


def entries(cache: Path) -> dict[Path, int]:
    """Every finished artifact (not digests, not temporary files) and its modification time."""
    return {
        p: p.stat().st_mtime_ns
        for kind in ("features", "tracks", "queries")
        for p in (cache / kind).rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def check_readable(files) -> None:
    for p in files:
        if "features" in p.parts:
            assert len(load_features(p).frames) > 0
        elif "tracks" in p.parts:
            load_tracks(p)
        else:
            assert len(sample_frames(p, 2.0)) > 0


def kill_after(kind: str, cache: Path, items: list[str], finished: int) -> None:
    proc = start(kind, cache, items)
    for _ in range(finished):
        assert proc.stdout.readline().startswith("done")
    proc.send_signal(signal.SIGKILL)  # no cleanup runs: the worst case
    proc.wait()


def test_killed_extraction_resumes_with_only_the_missing_videos(tmp_path):
    cache, items = tmp_path / "cache", videos(tmp_path)
    kill_after("features", cache, items, 2)
    before = entries(cache)
    assert (
        4 <= len(before) < 2 * len(items)
    )  # 2 videos done, each with features and tracks; not all
    check_readable(before)
    proc = start("features", cache, items)
    assert proc.communicate()[0].count("done") == len(items) and proc.returncode == 0
    after = entries(cache)
    assert len(after) == 2 * len(items)
    assert {p: after[p] for p in before} == before  # finished entries were reused, not recomputed
    check_readable(after)


def test_killed_transform_generation_resumes(tmp_path):
    cache, items = tmp_path / "cache", videos(tmp_path, 4)
    kill_after("queries", cache, items, 1)
    before = entries(cache)
    assert 2 <= len(before) < 2 * len(items)
    check_readable(before)
    proc = start("queries", cache, items)
    proc.communicate()
    after = entries(cache)
    assert proc.returncode == 0 and len(after) == 2 * len(items)
    assert {p: after[p] for p in before} == before
    check_readable(after)


def test_two_processes_sharing_a_cache_do_not_corrupt_it(tmp_path):
    cache, items = tmp_path / "cache", videos(tmp_path)
    procs = [start("features", cache, items), start("features", cache, items[::-1])]
    assert all(p.communicate()[0].count("done") == len(items) and p.returncode == 0 for p in procs)
    shared = entries(cache)
    assert len(shared) == 2 * len(items)
    assert not [
        p for p in cache.rglob("*") if ".tmp" in p.name
    ]  # every temporary file renamed or removed
    alone = tmp_path / "alone"
    proc = start("features", alone, items)
    proc.communicate()
    for p in shared:  # the same content as one process alone writes
        twin = alone / p.relative_to(cache)
        if "features" in p.parts:
            np.testing.assert_array_equal(load_features(p).frames, load_features(twin).frames)
        else:
            np.testing.assert_array_equal(load_tracks(p)[0].centroid, load_tracks(twin)[0].centroid)
    assert ArtifactCache(cache).digest(items[0]) == ArtifactCache(alone).digest(items[0])
