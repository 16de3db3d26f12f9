"""The per-video pipeline on a 2-worker Dask LocalCluster of processes: the same artifacts as one
process, and a worker killed mid-run costs nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from storyhash_core.backbones import BackboneSpec
from storyhash_core.cache import ArtifactCache
from storyhash_core.features import load_features
from storyhash_core.parallel import ClusterConfig, Workers, dask_client
from storyhash_core.pipeline import VideoJob, process_video, process_videos
from storyhash_core.tracking import TrackerSpec, load_tracks

from .conftest import index_frames, write_video

DCT, TRACKER = BackboneSpec(name="dct"), TrackerSpec()


def items(tmp_path, n: int) -> dict:
    out = {}
    for i in range(n):  # distinct content, so distinct cache entries
        frames = np.roll(index_frames(48, 72, 96), 5 * i, axis=2)
        out[f"v{i}"] = (write_video(tmp_path / f"v{i}.mp4", frames, fps=12), 24.0)
    return out


def test_a_cluster_starts_only_for_work_and_closes_with_its_block(tmp_path):
    """A rerun whose artifacts are all cached starts no cluster; the first task starts it
    and the block closes it."""
    videos, cache = items(tmp_path, 1), ArtifactCache(tmp_path / "cache")
    config = ClusterConfig(n_workers=1, processes=False)
    with Workers(config) as workers:
        process_videos(workers, videos, 2.0, [(DCT, "")], None, cache)
        assert workers.started
    assert not workers.started
    with Workers(config) as workers:
        done, failed = process_videos(workers, videos, 2.0, [(DCT, "")], None, cache)
        assert list(done) == ["v0"] and not failed and not workers.started


def malloc_settings() -> dict:
    return {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}


def test_two_workers_give_the_artifacts_of_one_process(tmp_path):
    """Also under the workers' malloc settings (parallel.WORKER_MALLOC), which glibc reads when
    a process starts: this test's process started without them (Dask sets them in its
    environment only for the workers it spawns)."""
    videos = items(tmp_path, 4)
    with dask_client(ClusterConfig(n_workers=2, processes=True)) as client:
        done, failed = process_videos(
            client, videos, 2.0, [(DCT, "")], TRACKER, ArtifactCache(tmp_path / "dask")
        )
        settings = list(client.run(malloc_settings).values())
    assert (
        settings
        == [{"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "134217728"}] * 2
    )
    assert not failed and set(done) == set(videos)
    for key, (path, folder_fps) in videos.items():
        alone = process_video(
            VideoJob(path, folder_fps, 2.0, ((DCT, ""),), TRACKER), str(tmp_path / "alone")
        )
        np.testing.assert_array_equal(
            load_features(done[key].features[0]).frames, load_features(alone.features[0]).frames
        )
        np.testing.assert_array_equal(
            load_tracks(done[key].tracks)[0].centroid, load_tracks(alone.tracks)[0].centroid
        )


def test_a_worker_killed_mid_run_loses_nothing(tmp_path):
    videos = items(tmp_path, 16)
    cache = ArtifactCache(tmp_path / "cache")
    killed = []

    def kill_one_worker_after_the_first_result(client) -> None:
        deadline = time.monotonic() + 60
        while (
            not list((tmp_path / "cache" / "tracks").rglob("*.npz")) and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        pid = next(iter(client.run(os.getpid).values()))
        os.kill(pid, signal.SIGKILL)
        killed.append(
            len(list((tmp_path / "cache" / "tracks").rglob("*.npz")))
        )  # videos done by then

    with dask_client(ClusterConfig(n_workers=2, processes=True)) as client:
        killer = threading.Thread(target=kill_one_worker_after_the_first_result, args=(client,))
        killer.start()
        done, failed = process_videos(client, videos, 2.0, [(DCT, "")], TRACKER, cache)
        killer.join()
    assert killed and killed[0] < len(videos)  # killed mid-run
    assert not failed and set(done) == set(videos)  # the lost tasks ran again elsewhere
    features = [done[k].features[0] for k in videos]
    assert (
        len(set(features))
        == len(videos)
        == len(list((tmp_path / "cache" / "features").rglob("*.npz")))
    )
    for key in videos:  # every entry complete
        assert len(load_features(done[key].features[0]).frames) == 8  # 4 s at 2 fps
        load_tracks(done[key].tracks)


THREADED = """
import threading
import cv2
import numpy as np
cv2.dct(np.zeros((8, 8), np.float32))  # IPP starts before storyhash_core's OPENCV_IPP
from storyhash_core.backbones.dct import DctDescriptor
from storyhash_core.opencv import baseline_kernels
frames = np.random.default_rng(0).integers(0, 256, (4, 72, 96, 3), np.uint8)
out = {}
def embed(name, first=None):
    if first:
        first()
    out[name] = DctDescriptor().embed(frames)
for name, first in (("bare", None), ("baseline", baseline_kernels)):
    worker = threading.Thread(target=embed, args=(name, first))
    worker.start()
    worker.join()
embed("main")
print(bool((out["bare"] == out["main"]).all()), bool((out["baseline"] == out["main"]).all()))
"""


def test_a_thread_computes_like_the_main_thread_after_baseline_kernels():
    """OpenCV's IPP switch is per thread; in a process that used cv2 before importing
    storyhash_core, a new thread differs until it calls ``baseline_kernels`` (as
    ``process_video`` does first)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IPP"}  # as a fresh shell has
    out = subprocess.run(
        [sys.executable, "-c", THREADED], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-2:] == ["False", "True"]
