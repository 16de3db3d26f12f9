"""An exact integer-arithmetic NumPy reference of a QOperator int8 ONNX model: the known
answer the exact onnxruntime session must give on :func:`saturating_frames` before it computes
any feature (:func:`storyhash_core.backbones.mobilenet.exact_session`), and the tests' truth.

Independent of onnxruntime and of the rewrite in :mod:`storyhash_core.backbones.exact_int8`
(it shares only its error type): convolutions are
int64 sums (no float, no summation-order question), and each layer is requantised by
onnxruntime's rule (the accumulator times a float32 scale, rounded half to even, plus the zero
point, clipped to uint8). Element-wise float32 operations are IEEE 754 on every CPU, so the
answer is the same everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .exact_int8 import ExactGraphError

F32 = np.float32


def _requantize(acc: np.ndarray, scale, zero: int) -> np.ndarray:
    return np.clip(
        np.rint(acc.astype(F32) * F32(scale) if np.ndim(scale) == 0 else acc.astype(F32) * scale)
        + zero,
        0,
        255,
    ).astype(np.uint8)


def _patches(x: np.ndarray, kernel: tuple[int, int], stride: int, pad: int) -> np.ndarray:
    """(N, C, H, W) int64 -> (N, C, kh, kw, Ho, Wo) windows, zero-padded (x is already centred)."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = kernel
    ho, wo = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    out = np.empty((*x.shape[:2], kh, kw, ho, wo), np.int64)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j] = x[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
    return out


def int_conv(x: np.ndarray, w: np.ndarray, group: int, stride: int, pad: int) -> np.ndarray:
    """Exact integer convolution of centred int64 ``x`` (N, C, H, W) with int64 ``w``
    (M, C/g, kh, kw)."""
    p = _patches(x, w.shape[2:], stride, pad)
    if group == 1:
        return np.einsum("nckluv,mckl->nmuv", p, w, optimize=True)
    if not (group == x.shape[1] == w.shape[0] and w.shape[1] == 1):
        raise ExactGraphError(f"no reference for a convolution of {group} groups")
    return np.einsum("nckluv,ckl->ncuv", p, w[:, 0], optimize=True)


class Int8Reference:
    """Evaluate a QOperator model's ``embedding`` path with exact integer arithmetic."""

    def __init__(self, model: onnx.ModelProto | str | Path) -> None:
        self.model = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        self.init = {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}

    def value(self, name: str):
        v = self.init[name]
        return v.reshape(()).item() if v.size == 1 else v

    def run(self, x: np.ndarray, output: str = "embedding") -> dict:
        """Every tensor computed (uint8 activations, float outputs) by name."""
        env: dict[str, np.ndarray] = {"input": x}
        producer = {o: n for n in self.model.graph.node for o in n.output}
        needed, stack = set(), [output]
        while stack:  # the nodes ``output`` depends on
            node = producer.get(stack.pop())
            if node is not None and node.output[0] not in needed:
                needed.add(node.output[0])
                stack.extend(node.input)
        for node in (n for n in self.model.graph.node if n.output[0] in needed):
            op, ins, out = node.op_type, list(node.input), node.output[0]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if op == "QuantizeLinear":
                env[out] = np.clip(
                    np.rint(env[ins[0]] / F32(self.value(ins[1]))) + self.value(ins[2]), 0, 255
                ).astype(np.uint8)
            elif op == "QLinearConv":
                if (
                    attrs.get("dilations", [1, 1]) != [1, 1]
                    or len(set(attrs.get("pads", [0]))) != 1
                ):
                    raise ExactGraphError(
                        f"no reference for {node.name or out}'s dilations or pads"
                    )
                xq = env[ins[0]].astype(np.int64) - int(self.value(ins[2]))
                w = self.init[ins[3]].astype(np.int64) - self.init[ins[5]].astype(np.int64).reshape(
                    -1, 1, 1, 1
                )
                acc = int_conv(
                    xq,
                    w,
                    attrs.get("group", 1),
                    attrs.get("strides", [1])[0],
                    attrs.get("pads", [0])[0],
                )
                if len(ins) > 8:
                    acc += self.init[ins[8]].astype(np.int64).reshape(1, -1, 1, 1)
                scale = (F32(self.value(ins[1])) * self.init[ins[4]].astype(F32)) / F32(
                    self.value(ins[6])
                )
                env[out] = _requantize(acc, scale.reshape(1, -1, 1, 1), int(self.value(ins[7])))
            elif op == "QLinearAdd":
                a = (env[ins[0]].astype(np.int64) - int(self.value(ins[2]))).astype(F32)
                b = (env[ins[3]].astype(np.int64) - int(self.value(ins[5]))).astype(F32)
                ra = F32(self.value(ins[1])) / F32(self.value(ins[6]))
                rb = F32(self.value(ins[4])) / F32(self.value(ins[6]))
                env[out] = _requantize(a * ra + b * rb, F32(1), int(self.value(ins[7])))
            elif op == "QLinearGlobalAveragePool":
                xq = env[ins[0]].astype(np.int64) - int(self.value(ins[2]))
                n = xq.shape[2] * xq.shape[3]
                scale = F32(self.value(ins[1])) / (F32(self.value(ins[3])) * F32(n))
                env[out] = _requantize(
                    xq.sum((2, 3), keepdims=True), scale, int(self.value(ins[4]))
                )
            elif op == "DequantizeLinear":
                env[out] = (env[ins[0]].astype(np.int64) - int(self.value(ins[2]))).astype(
                    F32
                ) * F32(self.value(ins[1]))
            elif op == "Flatten":
                env[out] = env[ins[0]].reshape(len(env[ins[0]]), -1)
            else:
                raise ExactGraphError(f"no reference for {op}")
            if output in env:
                return env
        raise KeyError(output)


def saturating_frames() -> np.ndarray:
    """Bright, high-contrast 224×224 RGB frames (fixed, no randomness): full-range stripes and
    a checkerboard, and a bright smooth ramp, the inputs that overflow 16-bit pair sums."""
    y, x = np.mgrid[0:224, 0:224]
    stripes = np.where((x // 3) % 2, 255, 0)
    checker = np.where(((x // 7) + (y // 7)) % 2, 255, 10)
    ramp = 180 + (x + y) * 75 // 446
    rgb = [
        np.stack([stripes, checker, 255 - stripes], -1),
        np.stack([ramp, ramp, 255 - ramp // 2], -1),
        np.stack([checker, ramp, stripes], -1),
    ]
    return np.stack(rgb).astype(np.uint8)
