"""Run an int8 (QOperator) ONNX model as integer arithmetic that gives the same bytes on every CPU.

onnxruntime's native u8×s8 kernels are CPU-dependent: without VNNI, x86 adds pairs of products
in a saturating 16-bit register (``vpmaddubsw``), so bright, high-contrast frames overflow; with
VNNI they do not. :func:`exact_graph` rewrites the model so that every result is fixed by
integer sums and single IEEE 754 float32 operations (the quantised model as specified, what a
VNNI CPU computes for the convolutions):

- activations are uint8 tensors, as in the model;
- ``QLinearConv`` stays onnxruntime's ``QLinearConv``, with its weights moved to uint8
  (``w - w_zero + 128``, zero point 128): its u8×u8 kernels widen both operands to 16 bits
  and add the 32-bit products (``vpmaddwd`` on SSE, AVX2 and AVX-512; 32-bit dot products
  with VNNI), so no x86 instruction set saturates them; or, ``signed``, to int8
  (``w - w_zero``, zero point 0) for the u8×s8 kernels, which add 32-bit products with VNNI or
  AMX (1.5× faster here) but saturate 16-bit pair sums without them (``vpmaddubsw``), so a
  caller checks them against a known answer first (``mobilenet.exact_session``); either
  way the int32 sum plus the bias, times ``x_scale * w_scale / y_scale`` in float32, rounded
  half to even, plus ``y_zero``, clipped;
- ``QLinearAdd``, ``QLinearGlobalAveragePool``, ``QuantizeLinear``, ``DequantizeLinear``: float
  operators on the uint8 values, each a sum of integers or one rounding of one product.
  onnxruntime's own ``QLinearAdd`` rounds otherwise (it changed one of 22 994 real frames:
  ``bench/native_kernels.py``), so it is rewritten.

:func:`exact_graph` proves from the weights that no convolution's sum leaves int32 (the sum of
``|w - w_zero|`` times the largest ``|x - x_zero|``, plus ``|bias|``) and refuses a model that
breaks it, or whose centred weights do not fit in int8. Only the path to ``output`` (by
default the pooled ``embedding``) is kept. A test checks the result against an int64 NumPy
evaluation of the model, and ``bench/cpus.py`` on emulated CPUs without VNNI or AVX2.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

FLOAT, UINT8 = onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8

ACCUMULATOR_LIMIT = 2**31  # onnxruntime's convolutions sum in int32
SUPPORTED = {
    "QuantizeLinear",
    "QLinearConv",
    "QLinearAdd",
    "QLinearGlobalAveragePool",
    "DequantizeLinear",
    "Flatten",
}
ACTIVATION_ZEROS = {
    "QuantizeLinear": (2,),
    "QLinearConv": (2, 7),
    "QLinearAdd": (2, 5, 7),
    "QLinearGlobalAveragePool": (2, 4),
    "DequantizeLinear": (2,),
}  # input positions
DOMAINS = {
    "",
    "ai.onnx",
    "com.microsoft",
}  # QLinearAdd and the pool are onnxruntime's contrib operators


class ExactGraphError(ValueError):
    """The model has an operator or a weight range that the exact rewrite cannot honour."""


def conv_bound(w: np.ndarray, w_zero: np.ndarray, x_zero: int, bias: np.ndarray | None) -> int:
    """The largest |partial sum| one output of a QLinearConv can reach, over all uint8 inputs."""
    centred = np.abs(w.astype(np.int64) - w_zero.astype(np.int64).reshape(-1, *[1] * (w.ndim - 1)))
    per_channel = centred.reshape(len(w), -1).sum(1) * max(x_zero, 255 - x_zero)
    if bias is not None:
        per_channel = per_channel + np.abs(bias.astype(np.int64))
    return int(per_channel.max())


def exact_graph(
    model: onnx.ModelProto, output: str = "embedding", signed: bool = False
) -> onnx.ModelProto:
    """The exact rewrite of ``model`` (see the module docstring), with one output ``output``:
    convolution weights as uint8 (zero point 128) or, ``signed``, as int8 (zero point 0), for
    the u8×s8 kernels, which are exact only where they do not saturate (VNNI, AMX)."""
    graph = model.graph
    if output not in {o.name for o in graph.output}:
        raise ExactGraphError(f"the model has no output {output!r} (is it the storyhash embedder?)")
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    needed, stack = [], [output]
    while stack:  # the nodes ``output`` depends on, in graph order below
        name = stack.pop()
        node = producer.get(name)
        if node is not None and node not in needed:
            needed.append(node)
            stack.extend(node.input)
    nodes, consts = [], {}

    def const(name: str, value, dtype=np.float32) -> str:
        """A new initializer ``name`` holding ``value`` as ``dtype``."""
        consts[name] = numpy_helper.from_array(np.asarray(value, dtype), name)
        return name

    def keep(name: str) -> str:
        """The model's initializer ``name``, as it is (its dtype included)."""
        return const(name, init[name], init[name].dtype)

    def scalar(name: str) -> float:
        return init[name].reshape(()).item() if init[name].size == 1 else init[name]

    def requantize(prefix: str, acc: str, scale, zero: int, out: str) -> None:
        """``out = clip(round_half_even(acc * scale) + zero, 0, 255)`` in float32, as uint8."""
        if not (np.ndim(scale) == 0 and scale == 1):
            nodes.append(
                helper.make_node(
                    "Mul", [acc, const(f"{prefix}/scale", scale)], [f"{prefix}/scaled"]
                )
            )
            acc = f"{prefix}/scaled"
        nodes.append(helper.make_node("Round", [acc], [f"{prefix}/rounded"]))
        clip_in = f"{prefix}/rounded"
        if zero:
            nodes.append(
                helper.make_node(
                    "Add", [clip_in, const(f"{prefix}/zero", float(zero))], [f"{prefix}/shifted"]
                )
            )
            clip_in = f"{prefix}/shifted"
        nodes.append(
            helper.make_node(
                "Clip",
                [clip_in, const("u8/min", 0.0), const("u8/max", 255.0)],
                [f"{prefix}/clipped"],
            )
        )
        nodes.append(helper.make_node("Cast", [f"{prefix}/clipped"], [out], to=UINT8))

    def centred(prefix: str, x: str, zero: int) -> str:
        """The uint8 tensor ``x`` minus ``zero``, in float32."""
        nodes.append(helper.make_node("Cast", [x], [f"{prefix}/float"], to=FLOAT))
        if not zero:
            return f"{prefix}/float"
        nodes.append(
            helper.make_node(
                "Sub",
                [f"{prefix}/float", const(f"{prefix}/x_zero", float(zero))],
                [f"{prefix}/centred"],
            )
        )
        return f"{prefix}/centred"

    for i, node in enumerate(n for n in graph.node if n in needed):
        p = f"exact{i}"
        op, ins, out = node.op_type, list(node.input), node.output[0]
        if op not in SUPPORTED or node.domain not in DOMAINS:
            raise ExactGraphError(
                f"operator {node.domain or 'ai.onnx'}.{op} ({node.name or out}) has no exact"
                " rewrite (the rewrite covers a QOperator model with uint8 activations)"
            )
        if any(init[ins[k]].dtype != np.uint8 for k in ACTIVATION_ZEROS.get(op, ())):
            raise ExactGraphError(
                f"{op} {node.name or out} has int8 activations; the rewrite assumes uint8"
            )
        f32 = np.float32
        if op == "QuantizeLinear":
            nodes.append(
                helper.make_node(
                    "Div", [ins[0], const(f"{p}/in_scale", f32(scalar(ins[1])))], [f"{p}/div"]
                )
            )
            requantize(
                p, f"{p}/div", f32(1.0), int(scalar(ins[2])), out
            )  # onnxruntime divides by the scale
        elif op == "QLinearConv":
            if any(a.name == "channels_last" and a.i for a in node.attribute):
                raise ExactGraphError(
                    f"QLinearConv {node.name or out}: channels_last is not handled"
                )
            x, x_scale, x_zero, w, w_scale, w_zero = ins[:6]
            bias = init[ins[8]] if len(ins) > 8 else None
            bound = conv_bound(init[w], init[w_zero].reshape(-1), int(scalar(x_zero)), bias)
            if bound >= ACCUMULATOR_LIMIT:
                raise ExactGraphError(
                    f"QLinearConv {node.name or out}: partial sums reach {bound} >= 2**31,"
                    " beyond onnxruntime's int32 accumulators"
                )
            wz = init[w_zero].astype(np.int64).reshape(-1)
            weights = init[w].astype(np.int64) - wz.reshape(-1, *[1] * (init[w].ndim - 1))
            if weights.min() < -128 or weights.max() > 127:
                raise ExactGraphError(
                    f"QLinearConv {node.name or out}: weights minus their zero point span"
                    f" [{weights.min()}, {weights.max()}], beyond int8 (no integer-kernel form)"
                )
            dtype, zero = (np.int8, 0) if signed else (np.uint8, 128)
            moved = [const(f"{p}/w", weights + zero, dtype), keep(w_scale)]
            moved.append(const(f"{p}/w_zero", np.full(len(wz), zero), dtype))
            conv = helper.make_node(
                "QLinearConv",
                [x, keep(x_scale), keep(x_zero), *moved, *map(keep, ins[6:])],
                [out],
                name=f"{p}/conv",
                domain=node.domain,
            )
            conv.attribute.extend(node.attribute)
            nodes.append(conv)
        elif op == "QLinearAdd":
            a, a_scale, a_zero, b, b_scale, b_zero, c_scale, c_zero = ins
            ratio_a = f32(scalar(a_scale)) / f32(scalar(c_scale))
            ratio_b = f32(scalar(b_scale)) / f32(scalar(c_scale))
            nodes.append(
                helper.make_node(
                    "Mul",
                    [centred(f"{p}a", a, int(scalar(a_zero))), const(f"{p}/ratio_a", ratio_a)],
                    [f"{p}/a"],
                )
            )
            nodes.append(
                helper.make_node(
                    "Mul",
                    [centred(f"{p}b", b, int(scalar(b_zero))), const(f"{p}/ratio_b", ratio_b)],
                    [f"{p}/b"],
                )
            )
            nodes.append(helper.make_node("Add", [f"{p}/a", f"{p}/b"], [f"{p}/sum"]))
            requantize(p, f"{p}/sum", f32(1.0), int(scalar(c_zero)), out)
        elif op == "QLinearGlobalAveragePool":
            x, x_scale, x_zero, y_scale, y_zero = ins
            if any(a.name == "channels_last" and a.i for a in node.attribute):
                raise ExactGraphError(
                    "QLinearGlobalAveragePool with channels_last has no exact rewrite here"
                )
            nodes.append(
                helper.make_node(
                    "ReduceSum",
                    [centred(p, x, int(scalar(x_zero)))],
                    [f"{p}/sum"],
                    keepdims=1,
                    axes=[2, 3],
                )
            )
            nodes.append(helper.make_node("Shape", [x], [f"{p}/shape"]))
            nodes.append(helper.make_node("Gather", [f"{p}/shape", f"{p}/hw_axes"], [f"{p}/hw"]))
            const(f"{p}/hw_axes", [2, 3], np.int64)
            nodes.append(helper.make_node("ReduceProd", [f"{p}/hw"], [f"{p}/n_int"], keepdims=1))
            nodes.append(
                helper.make_node("Cast", [f"{p}/n_int"], [f"{p}/n"], to=onnx.TensorProto.FLOAT)
            )
            # onnxruntime: scale = x_scale / (y_scale * pixels), in float32
            nodes.append(
                helper.make_node(
                    "Mul", [const(f"{p}/y_scale", f32(scalar(y_scale))), f"{p}/n"], [f"{p}/yn"]
                )
            )
            nodes.append(
                helper.make_node(
                    "Div", [const(f"{p}/x_scale", f32(scalar(x_scale))), f"{p}/yn"], [f"{p}/scale"]
                )
            )
            nodes.append(helper.make_node("Mul", [f"{p}/sum", f"{p}/scale"], [f"{p}/scaled"]))
            requantize(p, f"{p}/scaled", f32(1.0), int(scalar(y_zero)), out)
        elif op == "DequantizeLinear":
            x, scale, zero = ins
            nodes.append(
                helper.make_node(
                    "Mul",
                    [centred(p, x, int(scalar(zero))), const(f"{p}/scale", f32(scalar(scale)))],
                    [out],
                )
            )
        else:  # Flatten: shape only
            nodes.append(node)
    out_info = next(o for o in graph.output if o.name == output)
    new = helper.make_graph(
        nodes, f"{graph.name}-exact", list(graph.input), [out_info], list(consts.values())
    )
    return helper.make_model(
        new, opset_imports=[helper.make_opsetid("", 12)], ir_version=model.ir_version
    )
