"""Visual backbones behind one small interface: frames in, one embedding per frame out.

- ``clip``: CLIP ViT-B/32 image tower (Hugging Face ``transformers``), 512-D; weights: a hub
  name or a local folder
- ``mobilenetv2-onnx``: ImageNet MobileNetV2, int8 ONNX (onnxruntime), 1280-D; an ``.onnx`` file
- ``dct``: weight-free colour-layout descriptor (low DCT coefficients), 192-D
- ``pdq``: PDQ perceptual hash per frame as ±1 bits (``pdqhash``), the classical baseline, 256-D

``auto`` picks the first that can run here: the MobileNetV2 file if it exists, else CLIP if
its weights are on disk or downloadable, else ``dct`` (see :func:`resolve_auto`). A backbone
loads once per process (:func:`load_backbone` is cached), so Dask workers reuse it across tasks.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import StoryHashError

CLIP_DEFAULT = "openai/clip-vit-base-patch32"


class BackboneError(StoryHashError):
    """A backbone cannot be loaded (missing weights, no network, bad file)."""


class BackboneSpec(BaseModel):
    """Which backbone, which weights, how it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["auto", "clip", "mobilenetv2-onnx", "dct", "pdq"] = "auto"
    weights: str | None = None  # .onnx file, CLIP hub name or folder; None: the default
    batch_size: int = Field(32, ge=1)
    threads: int = Field(1, ge=1)  # per worker; parallelism is across Dask workers


class Backbone(Protocol):
    name: str
    dim: int
    weights_id: str  # identifies the exact weights, for cache keys

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB frames -> (N, dim) float32 embeddings (not normalised)."""


BILINEAR_MAX = 1.25  # largest shrink factor left to bilinear interpolation in resize_center_crop


def resize_center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """The central square (side: the shorter side) resized to ``size``×``size``: what resizing
    the shorter side to ``size`` and cutting the centre keeps, cropped first so that only the
    kept pixels are resampled.

    Shrinking is anti-aliased in two steps: an exact k×k box average for the whole part k of
    the factor (the square is trimmed to a multiple of k, under one output pixel), then the
    rest of the factor (below 2) bilinear where it is at most 1.25, too small to alias (480p
    frames: 1.07), else by area. OpenCV's area resize is fast only for whole factors, so this
    matches a one-step area resize to within a grey level or so at a third of the cost."""
    from ..opencv import cv2

    h, w = frame.shape[:2]
    k = max(1, min(h, w) // size)
    side = min(h, w) // k * k
    top, left = (h - side) // 2, (w - side) // 2
    square = frame[top : top + side, left : left + side]
    if k > 1:
        square = cv2.resize(square, (side // k, side // k), interpolation=cv2.INTER_AREA)
    rest = square.shape[0] / size
    if rest == 1:
        return np.ascontiguousarray(square)
    method = (
        cv2.INTER_CUBIC
        if rest < 1
        else cv2.INTER_LINEAR
        if rest <= BILINEAR_MAX
        else cv2.INTER_AREA
    )
    return cv2.resize(square, (size, size), interpolation=method)


def batched(backbone_embed, frames: np.ndarray, batch_size: int) -> np.ndarray:
    """Apply ``backbone_embed`` to ``frames`` in batches and stack the results."""
    out = [backbone_embed(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)]
    return np.concatenate(out).astype(np.float32)


def resolve_auto(spec: BackboneSpec, models_dir: Path) -> tuple[BackboneSpec, str]:
    """The concrete backbone for ``auto``, and why it was chosen (naming files, not this
    machine's folders: the reason is shown on rendered pages; the spec holds the path)."""
    if spec.name != "auto":
        return spec, f"backbone {spec.name!r} requested"
    onnx = models_dir / "mobilenetv2-imagenet-embed.onnx"
    if onnx.is_file():
        return spec.model_copy(
            update={"name": "mobilenetv2-onnx", "weights": str(onnx)}
        ), f"auto: found the MobileNetV2 ONNX embedder {onnx.name} in models_dir"
    from .clip import clip_weights_available, hub_reachable

    name = spec.weights or CLIP_DEFAULT
    if clip_weights_available(name):
        return spec.model_copy(
            update={"name": "clip"}
        ), f"auto: CLIP weights {name} are on this machine"
    if not Path(name).is_dir() and hub_reachable():
        return spec.model_copy(
            update={"name": "clip"}
        ), f"auto: CLIP weights {name} can be downloaded"
    return (
        spec.model_copy(update={"name": "dct", "weights": None}),
        f"auto: no {onnx.name} in models_dir, and CLIP weights {name} are neither on this"
        " machine nor downloadable, so the weight-free DCT descriptor",
    )


@functools.lru_cache(maxsize=8)
def weights_id(spec: BackboneSpec) -> str:
    """What identifies a concrete backbone's weights in cache keys (``Backbone.weights_id``),
    read from the files where they tell, so that looking up a cache entry loads no model; a
    CLIP hub name needs the loaded model's resolved revision, and dct and pdq load instantly."""
    path = Path(spec.weights) if spec.weights else None
    if spec.name == "mobilenetv2-onnx" and path and path.is_file():
        from .mobilenet import onnx_weights_id

        return onnx_weights_id(path)
    if spec.name == "clip" and path and path.is_dir():
        from .clip import folder_weights_id

        return folder_weights_id(path)
    return load_backbone(spec).weights_id  # also the one place a missing weights file is reported


@functools.lru_cache(maxsize=4)
def load_backbone(spec: BackboneSpec) -> Backbone:
    """Load a concrete backbone (once per process)."""
    if spec.name == "mobilenetv2-onnx":
        from .mobilenet import MobileNetV2Onnx

        if not spec.weights:
            raise BackboneError(
                "backbone mobilenetv2-onnx needs backbone.weights: the path of the .onnx file"
            )
        return MobileNetV2Onnx(Path(spec.weights), spec.batch_size, spec.threads)
    if spec.name == "clip":
        from .clip import ClipBackbone

        return ClipBackbone(spec.weights or CLIP_DEFAULT, spec.batch_size, spec.threads)
    if spec.name == "dct":
        from .dct import DctDescriptor

        return DctDescriptor()
    if spec.name == "pdq":
        from .pdq import PdqHash

        return PdqHash()
    raise BackboneError(f"backbone {spec.name!r} must be resolved first (resolve_auto)")
