"""The embedded default corpus: deterministic synthetic clips with known object tracks.

Each clip is a camera panning over a textured world while it keeps 2-4 textured objects
in view (as DAVIS footage follows its subjects); the objects move and interact: some
wander, some follow another object with a lag, some head for another object and pass
close by. Objects occlude one another in a fixed depth order. The
ground truth (per frame and object: visible-mask centroid, box and area in image
pixels) is written beside the clips, so trackers and motion features can be checked
against known trajectories. Every third clip is stored as a DAVIS-style JPEG folder
(``JPEGImages/480p/<id>/00000.jpg``) and the rest as H.264 mp4, so both reader paths are
exercised. Same spec, same pixels: everything is drawn from one seeded generator.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .cache import ArtifactCache, atomic_dir, spec_key
from .corpus import Video, write_manifest
from .opencv import cv2

GENERATOR_VERSION = 3
# the objects' colours
PALETTE = (
    (230, 40, 40),
    (40, 200, 60),
    (50, 90, 235),
    (240, 200, 30),
    (200, 50, 220),
    (20, 220, 220),
)
GROUND_TRUTH = "ground_truth.csv"
MANIFEST = "manifest.csv"


class SyntheticSpec(BaseModel):
    """What to generate; every field changes the clips (and so the cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    n_videos: int = Field(12, ge=1)
    width: int = Field(320, ge=32, multiple_of=2)
    height: int = Field(180, ge=32, multiple_of=2)
    fps: float = Field(24.0, gt=0)
    min_duration_s: float = Field(2.0, gt=0)
    max_duration_s: float = Field(4.0, gt=0)
    seed: int = 0


@dataclass(frozen=True)
class _Object:
    shape: str
    radius: float
    color: tuple[int, int, int]
    stripe_period: int
    behaviour: str
    partner: int
    lag_frames: int
    path: np.ndarray  # (T, 2) world-space centres


def _world_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured background: colour gradient, gratings, blurred noise and solid blocks."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    tilt = rng.uniform(-60, 60, size=(2, 3)).astype(np.float32)
    img = base + (xx[..., None] / w) * tilt[0] + (yy[..., None] / h) * tilt[1]
    for _ in range(3):
        theta, period = rng.uniform(0, np.pi), rng.uniform(8, 40)
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period
        img += np.sin(phase)[..., None] * rng.uniform(5, 20, size=3).astype(np.float32)
    noise = cv2.GaussianBlur(rng.normal(0, 25, size=(h, w, 3)).astype(np.float32), (0, 0), 2.0)
    img += noise
    for _ in range(int(rng.integers(8, 16))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 4)), y0 + int(rng.integers(10, h // 4))
        colour = tuple(float(c) for c in rng.uniform(20, 235, size=3))
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, thickness=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _wander(
    rng: np.random.Generator, t: np.ndarray, lo: np.ndarray, hi: np.ndarray, speed: float = 0.25
) -> np.ndarray:
    """A smooth path: drift plus two sinusoids, reflected into the box [lo, hi].

    ``speed`` scales the drift (fraction of the box per second) and the sinusoids.
    """
    span = hi - lo
    p0 = rng.uniform(lo + 0.2 * span, hi - 0.2 * span)
    v = rng.uniform(-speed, speed, size=2) * span
    amp = rng.uniform(0.12, 0.48, size=2) * speed * span
    freq, phase = rng.uniform(0.3, 1.2, size=2), rng.uniform(0, 6, 2)
    p = p0 + v * t[:, None] + amp * np.sin(2 * np.pi * freq * t[:, None] + phase)
    q = np.mod(p - lo, 2 * span)
    return lo + np.where(q > span, 2 * span - q, q)


def _objects(
    rng: np.random.Generator, n_frames: int, fps: float, width: int, height: int
) -> list[_Object]:
    """Objects with paths in image coordinates, kept inside the central 80 % of the frame."""
    t = np.arange(n_frames) / fps
    lo, hi = np.array([0.1 * width, 0.1 * height]), np.array([0.9 * width, 0.9 * height])
    palette = PALETTE
    order = rng.permutation(len(palette))
    objects: list[_Object] = []
    for i in range(int(rng.integers(2, 5))):
        behaviour = "wander" if i == 0 else str(rng.choice(["wander", "follow", "approach"]))
        partner, lag = (int(rng.integers(0, i)) if i else -1), 0
        if behaviour == "follow":
            lag = int(rng.integers(int(0.3 * fps), int(0.8 * fps)))
            lead = objects[partner].path
            offset = rng.choice([-1, 1], size=2) * rng.uniform(0.12, 0.25, size=2) * (hi - lo)
            path = np.clip(
                np.concatenate([np.repeat(lead[:1], lag, 0), lead])[:n_frames] + offset, lo, hi
            )
        elif behaviour == "approach":
            target = objects[partner].path
            start = rng.uniform(lo, hi)
            w = np.clip(t / t[-1] * 1.3, 0, 1)[:, None] if n_frames > 1 else np.ones((1, 1))
            path = (1 - w) * start + w * target
        else:
            path = _wander(rng, t, lo, hi)
        objects.append(
            _Object(
                shape=str(rng.choice(["ellipse", "rectangle", "triangle"])),
                radius=float(rng.uniform(0.07, 0.13) * height),
                color=palette[order[i]],
                stripe_period=int(rng.integers(4, 9)),
                behaviour=behaviour,
                partner=partner,
                lag_frames=lag,
                path=path,
            )
        )
    return objects


def _object_mask(obj: _Object, centre: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cx, cy, r = float(centre[0]), float(centre[1]), obj.radius
    if obj.shape == "ellipse":
        cv2.ellipse(mask, (round(cx), round(cy)), (round(r), round(0.7 * r)), 0, 0, 360, 1, -1)
    elif obj.shape == "rectangle":
        cv2.rectangle(
            mask, (round(cx - r), round(cy - 0.6 * r)), (round(cx + r), round(cy + 0.6 * r)), 1, -1
        )
    else:
        pts = (
            np.array([[cx, cy - r], [cx - r, cy + 0.8 * r], [cx + r, cy + 0.8 * r]])
            .round()
            .astype(np.int32)
        )
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def _render(spec: SyntheticSpec, rng: np.random.Generator, n_frames: int):
    """Yield (frame, [(object id, visible mask), ...]) for each frame of one clip."""
    h, w = spec.height, spec.width
    margin_x, margin_y = w // 2, h // 2
    world = _world_texture(rng, h + 2 * margin_y, w + 2 * margin_x)
    objects = _objects(rng, n_frames, spec.fps, w, h)
    t = np.arange(n_frames) / spec.fps
    pan = _wander(
        rng, t, np.array([0.0, 0.0]), np.array([2.0 * margin_x, 2.0 * margin_y]), speed=0.08
    )
    diagonal = np.add.outer(np.arange(h), np.arange(w))
    for f in range(n_frames):
        ox, oy = int(round(pan[f, 0])), int(round(pan[f, 1]))
        frame = world[oy : oy + h, ox : ox + w].copy()
        visible = []
        for i, obj in enumerate(objects):  # later objects are drawn in front
            mask = _object_mask(obj, obj.path[f], (h, w))
            light = ((diagonal[mask] + f) // obj.stripe_period) % 2 == 0
            colour = np.array(obj.color, np.float32)
            frame[mask] = np.where(light[:, None], colour, 0.6 * colour).astype(np.uint8)
            for _, other in visible:
                other &= ~mask
            visible.append((i, mask))
        yield frame, visible


def write_mp4(frames: list[np.ndarray], fps: float, out: Path) -> None:
    """H.264 (x264 CRF 18, medium) of RGB ``frames``: the same bytes on every run and x86 CPU."""
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        # one thread and no macroblock tree: the same bytes on every run and CPU (tested)
        stream.options = {"crf": "18", "preset": "medium", "x264-params": "mbtree=0"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _write_clip(spec: SyntheticSpec, index: int, root: Path) -> tuple[Video, list[list]]:
    rng = np.random.default_rng([spec.seed, index])
    duration = rng.uniform(spec.min_duration_s, spec.max_duration_s)
    n_frames = max(2, int(round(duration * spec.fps)))
    video_id = f"synth-{index:02d}"
    frames, truth = [], []
    for f, (frame, visible) in enumerate(_render(spec, rng, n_frames)):
        frames.append(frame)
        for obj_id, mask in visible:
            ys, xs = np.nonzero(mask)
            if len(xs):
                truth.append(
                    [
                        video_id,
                        f,
                        round(f / spec.fps, 6),
                        obj_id,
                        round(xs.mean(), 3),
                        round(ys.mean(), 3),
                        xs.min(),
                        ys.min(),
                        xs.max() + 1,
                        ys.max() + 1,
                        len(xs),
                    ]
                )
    if index % 3 == 0:
        path = root / "JPEGImages" / "480p" / video_id
        path.mkdir(parents=True)
        for f, frame in enumerate(frames):
            cv2.imwrite(
                str(path / f"{f:05d}.jpg"),
                cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95],
            )
    else:
        path = root / "clips" / f"{video_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(frames, spec.fps, path)
    meta = {
        "width": str(spec.width),
        "height": str(spec.height),
        "frames": str(n_frames),
        "duration_s": f"{n_frames / spec.fps:.3f}",
        "license": "generated (CC0)",
        "source_repository": "storyhash_core.synthetic",
    }
    return Video(video_id, path, "synthetic", spec.fps, meta), truth


def generate_corpus(spec: SyntheticSpec, root: Path) -> Path:
    """Write the clips, ``manifest.csv`` and ``ground_truth.csv`` into an empty ``root``."""
    videos, truth = [], []
    for i in range(spec.n_videos):
        video, rows = _write_clip(spec, i, root)
        videos.append(video)
        truth += rows
    write_manifest(videos, root / MANIFEST)
    with open(root / GROUND_TRUTH, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["video_id", "frame", "t", "object_id", "cx", "cy", "x0", "y0", "x1", "y1", "area"]
        )
        writer.writerows(truth)
    return root / MANIFEST


def synthetic_corpus(spec: SyntheticSpec, cache: ArtifactCache) -> Path:
    """The manifest of the corpus for ``spec``, generated once into the cache."""
    key = spec_key(spec=spec.model_dump(), version=GENERATOR_VERSION)
    root = cache.root / "corpus" / f"synthetic-{key[:16]}"
    if not (root / MANIFEST).is_file():
        with atomic_dir(root) as tmp:
            generate_corpus(spec, tmp)
    return root / MANIFEST
