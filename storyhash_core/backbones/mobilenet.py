"""MobileNetV2 (ImageNet, int8 ONNX) through onnxruntime: the 1280-D pooled ``embedding`` output.

The int8 graph runs as its exact integer arithmetic (:mod:`.exact_int8`: convolutions through
onnxruntime's u8×u8 kernels, which no x86 CPU saturates, the rest as float32 operators), not
through the model's native u8×s8 kernels, whose results depend on the CPU (16-bit overflow
without VNNI): the embeddings are the same bytes on every x86 CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cache import file_digest
from . import BackboneError, batched, resize_center_crop

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
SIZE = 224


def preprocess(frames: np.ndarray) -> np.ndarray:
    """RGB uint8 frames -> N×3×224×224 float32: centre square at 224, ImageNet norm."""
    x = np.stack([resize_center_crop(f, SIZE) for f in frames])
    x = np.ascontiguousarray(
        x.transpose(0, 3, 1, 2), dtype=np.float32
    )  # channels first, as the model takes
    x *= (1 / (255 * STD))[
        :, None, None
    ]  # (x / 255 - MEAN) / STD as one multiply and one subtraction
    x -= (MEAN / STD)[:, None, None]
    return x


# in the weights id, so cache keys follow the rewrite: change it when its arithmetic changes
ARITHMETIC = "exact-int8"


def onnx_weights_id(path: Path) -> str:
    return f"mobilenetv2-onnx:{file_digest(path)}:{ARITHMETIC}"


def exact_session(path: Path, threads: int = 1):
    """An onnxruntime session of the model at ``path`` rewritten to exact integer arithmetic."""
    import onnx
    import onnxruntime as ort

    from .exact_int8 import exact_graph

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = exact_graph(onnx.load(str(path)))
    return ort.InferenceSession(
        model.SerializeToString(),
        options,
        providers=["CPUExecutionProvider"],
    )


class MobileNetV2Onnx:
    name = "mobilenetv2-onnx"
    dim = 1280

    def __init__(self, path: Path, batch_size: int = 32, threads: int = 1) -> None:
        from .exact_int8 import ExactGraphError

        if not path.is_file():
            raise BackboneError(
                f"MobileNetV2 ONNX file {path} not found (set backbone.weights to the"
                " .onnx path, e.g. shared/models/mobilenetv2-imagenet-embed.onnx)"
            )
        try:
            self.session = exact_session(path, threads)
        except ExactGraphError as exc:
            raise BackboneError(f"ONNX model {path} cannot run as exact int8: {exc}") from exc
        except Exception as exc:  # onnx and onnxruntime raise their own untyped errors
            raise BackboneError(
                f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}"
            ) from exc
        self.weights_id = onnx_weights_id(path)
        self.batch_size = batch_size

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """The bare model on a preprocessed batch."""
        return self.session.run(["embedding"], {"input": batch})[0]

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        return preprocess(frames)

    def embed(self, frames: np.ndarray) -> np.ndarray:
        return batched(lambda f: self.forward(self.preprocess(f)), frames, self.batch_size)
