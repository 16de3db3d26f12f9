"""Shared fixtures: tiny synthetic corpora and hand-made videos with known content."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from storyhash_core.parallel import ClusterConfig, dask_client

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network (read when transformers loads)
from storyhash_core.synthetic import SyntheticSpec, generate_corpus

TINY = SyntheticSpec(
    n_videos=3, width=96, height=64, fps=12.0, min_duration_s=1.0, max_duration_s=1.5
)


def index_frames(n: int, height: int, width: int) -> np.ndarray:
    """Frames whose right half's grey level encodes their index (3 levels apart).

    A bright left band and a bright block at the top of the second quarter make flips visible.
    """
    frames = np.repeat((np.arange(n, dtype=np.uint8) * 3)[:, None, None, None], 3, axis=3)
    frames = np.broadcast_to(frames, (n, height, width, 3)).copy()
    frames[:, :, : width // 4] = 255
    frames[:, : height // 4, width // 4 : width // 2] = 255
    return frames


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if codec == "libx264":
            stream.options = {
                "crf": "10",
                **({"g": str(gop), "keyint_min": str(gop)} if gop else {}),
            }
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_folder(path: Path, frames: np.ndarray) -> Path:
    path.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(
            str(path / f"{i:05d}.jpg"),
            cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 98],
        )
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Manifest of a 3-clip synthetic corpus (one JPEG folder, two mp4)."""
    return generate_corpus(TINY, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def odd_clips(tmp_path_factory) -> dict[str, Path]:
    """A 161x91 lossless mkv (12 fps, 1.5 s) and a 161x91 JPEG folder (24 fps, 1 s)."""
    root = tmp_path_factory.mktemp("odd")
    return {
        "mkv": write_video(root / "odd.mkv", index_frames(18, 91, 161), 12, "ffv1", "bgr0"),
        "folder": write_folder(root / "odd_seq", index_frames(24, 91, 161)),
    }


@pytest.fixture(scope="session")
def client():
    with dask_client(ClusterConfig(n_workers=2, processes=False)) as c:
        yield c
