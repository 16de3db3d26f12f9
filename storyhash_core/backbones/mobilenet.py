"""MobileNetV2 (ImageNet, int8 ONNX) through onnxruntime: the 1280-D pooled ``embedding`` output.

The int8 graph runs as its exact integer arithmetic (:mod:`.exact_int8`: the convolutions
through onnxruntime's u8×s8 kernels where they give the known answer, i.e. do not saturate
(VNNI, AMX), else its u8×u8 kernels, which no x86 CPU saturates; the rest as float32
operators), not as the model's native graph, whose results depend on the CPU (16-bit
overflow without VNNI, and its own QLinearAdd rounding): the embeddings are the same bytes on
every x86 CPU."""

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


KERNELS = {"u8s8": True, "u8u8": False}  # onnxruntime's int8 convolutions, fastest first:
# name -> signed weights (exact_graph). u8×s8 is exact where it does not saturate (VNNI, AMX).


def exact_session(path: Path, threads: int = 1):
    """An onnxruntime session of the model at ``path`` rewritten to exact integer arithmetic,
    through the fastest of :data:`KERNELS` that gives the known answer on this CPU: on
    :func:`~.int8_reference.saturating_frames` (which overflow 16-bit pair sums in most
    pointwise layers), every convolution's output and the embedding equal the int64
    reference's. Returns the session and the kernels' name; :class:`ExactGraphError` if no
    choice gives the answer."""
    import onnx
    import onnxruntime as ort

    from ..machine import cpu
    from .exact_int8 import ExactGraphError, exact_graph
    from .int8_reference import Int8Reference, saturating_frames

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1

    def session(graph: onnx.ModelProto):
        return ort.InferenceSession(
            graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    model = onnx.load(str(path))
    graphs = {kernels: exact_graph(model, signed=signed) for kernels, signed in KERNELS.items()}
    x = preprocess(saturating_frames())
    reference = Int8Reference(model).run(x)
    for kernels, graph in graphs.items():
        convs = [n.output[0] for n in graph.graph.node if n.op_type == "QLinearConv"]
        checked = onnx.ModelProto()
        checked.CopyFrom(graph)
        checked.graph.output.extend(
            onnx.helper.make_tensor_value_info(c, onnx.TensorProto.UINT8, None) for c in convs
        )
        names = ["embedding", *convs]
        found = session(checked).run(names, {"input": x})
        if all(np.array_equal(f, reference[n]) for f, n in zip(found, names, strict=True)):
            return session(graph), kernels
    raise ExactGraphError(
        f"onnxruntime {ort.__version__}'s int8 convolutions ({', '.join(KERNELS)}) on this CPU"
        f" ({cpu()['model']}) miss the known answer of the integer arithmetic, so features would"
        " depend on the CPU; run on another CPU or onnxruntime version"
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
            self.session, self.kernels = exact_session(path, threads)
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
