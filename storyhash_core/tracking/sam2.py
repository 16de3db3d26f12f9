"""SAM 2 video tracking: a lattice of point prompts on the first frame, propagated through the
video.

Needs the ``sam2`` package (``SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2``,
which ``make setup`` does) and a checkpoint the user provides (``tracker.sam2_checkpoint``,
e.g. ``sam2.1_hiera_tiny.pt``); weights cannot be downloaded here. Each lattice point is
one object prompt; the masks SAM 2 propagates give centroids, boxes and areas. Frames are
handed to SAM 2 as a JPEG folder, the input its video predictor reads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..opencv import cv2
from . import TrackerError, TrackerSpec, Tracks


def build_predictor(spec: TrackerSpec, checkpoint: str | None, device: str = "cpu"):
    """The SAM 2 video predictor; ``checkpoint=None`` builds random weights (tests only)."""
    try:
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as exc:
        raise TrackerError(
            "the sam2 package is not installed (run `make setup`, or"
            " SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2)"
        ) from exc
    overrides = [f"++model.image_size={spec.sam2_image_size}"] if spec.sam2_image_size else []
    return build_sam2_video_predictor(
        spec.sam2_config, ckpt_path=checkpoint, device=device, hydra_overrides_extra=overrides
    )


def grid_points(width: int, height: int, n: int) -> np.ndarray:
    """An n×n lattice of points at the centres of an n×n partition of the frame."""
    xs = (np.arange(n) + 0.5) * width / n
    ys = (np.arange(n) + 0.5) * height / n
    return np.array([(x, y) for y in ys for x in xs], np.float32)


def masks_to_rows(frame: int, obj_ids, masks: np.ndarray) -> list[tuple]:
    rows = []
    for obj_id, mask in zip(obj_ids, masks, strict=True):
        ys, xs = np.nonzero(mask)
        if len(xs):
            rows.append(
                (
                    frame,
                    int(obj_id),
                    xs.mean(),
                    ys.mean(),
                    xs.min(),
                    ys.min(),
                    xs.max() + 1,
                    ys.max() + 1,
                    len(xs),
                )
            )
    return rows


class Sam2Tracker:
    def __init__(self, spec: TrackerSpec, allow_random_weights: bool = False) -> None:
        checkpoint = spec.sam2_checkpoint
        if checkpoint is None and not allow_random_weights:
            raise TrackerError(
                "tracker sam2 needs tracker.sam2_checkpoint: the path of a SAM 2 checkpoint"
                " (e.g. sam2.1_hiera_tiny.pt from the SAM 2 release); or use tracker.name: flow"
            )
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise TrackerError(
                f"SAM 2 checkpoint {checkpoint} not found (set tracker.sam2_checkpoint)"
            )
        self.spec = spec
        self.predictor = build_predictor(spec, checkpoint)

    def track(self, frames: np.ndarray, times: np.ndarray) -> Tracks:
        import torch

        h, w = frames.shape[1:3]
        rows: list[tuple] = []
        with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
            for i, frame in enumerate(frames):
                cv2.imwrite(
                    str(Path(folder) / f"{i:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                )
            state = self.predictor.init_state(video_path=folder)
            for obj_id, point in enumerate(grid_points(w, h, self.spec.sam2_grid)):
                self.predictor.add_new_points_or_box(
                    state,
                    frame_idx=0,
                    obj_id=obj_id,
                    points=point[None],
                    labels=np.array([1], np.int32),
                )
            for f, obj_ids, logits in self.predictor.propagate_in_video(state):
                rows += masks_to_rows(f, obj_ids, (logits[:, 0] > 0).cpu().numpy())
        return Tracks.from_rows(times, w, h, rows)
