"""The MobileNetV2 int8 graph run as exact integer arithmetic: the same bytes on every CPU."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from storyhash_core.backbones import BackboneError, BackboneSpec, load_backbone
from storyhash_core.backbones.exact_int8 import ExactGraphError, conv_bound, exact_graph
from storyhash_core.backbones.int8_reference import Int8Reference, saturating_frames
from storyhash_core.backbones.mobilenet import exact_session, preprocess

SHARED_ONNX = (
    Path(__file__).resolve().parents[2] / "shared" / "models" / "mobilenetv2-imagenet-embed.onnx"
)
needs_model = pytest.mark.skipif(
    not SHARED_ONNX.is_file(), reason="shared/models not beside the checkout"
)


def pair_saturation(x_u8: np.ndarray, w_s8: np.ndarray) -> int:
    """How many 16-bit pair sums ``x[k]·w[k] + x[k+1]·w[k+1]`` (adjacent input channels of a 1×1
    convolution, as ``vpmaddubsw`` forms them from raw uint8 activations and int8 weights) fall
    outside int16 for activations ``x_u8`` (N, C, H, W) and weights ``w_s8`` (M, C, 1, 1)."""
    x = x_u8.astype(np.int64).transpose(0, 2, 3, 1).reshape(-1, x_u8.shape[1])
    w = w_s8.astype(np.int64).reshape(len(w_s8), -1)
    c = x.shape[1] // 2 * 2
    products = x[:, None, :c] * w[None, :, :c]  # (pixels, M, C)
    pairs = products[..., 0::2] + products[..., 1::2]
    return int(((pairs > 32767) | (pairs < -32768)).sum())


@pytest.fixture(scope="module")
def reference():
    ref = Int8Reference(SHARED_ONNX)
    return ref, ref.run(preprocess(saturating_frames()))


@needs_model
def test_embeddings_equal_the_exact_integer_reference_on_saturating_frames(reference):
    """The backbone's embeddings equal an int64 NumPy evaluation of the quantised model, bit for
    bit, on frames that overflow x86's 16-bit u8×s8 pair sums (native onnxruntime int8 kernels
    on an emulated AVX2 CPU without VNNI give cosine 0.51-0.90 here: bench/cpus.py)."""
    ref, env = reference
    net = load_backbone(BackboneSpec(name="mobilenetv2-onnx", weights=str(SHARED_ONNX)))
    np.testing.assert_array_equal(net.embed(saturating_frames()), env["embedding"])


@needs_model
def test_the_saturating_frames_do_overflow_16_bit_pair_sums(reference):
    """The test above has teeth: its inputs push pairs of raw u8×s8 products past int16 in the
    first pointwise convolutions, where ``vpmaddubsw`` saturates."""
    ref, env = reference
    pointwise = [
        n
        for n in ref.model.graph.node[:8]
        if n.op_type == "QLinearConv" and ref.init[n.input[3]].shape[2] == 1
    ]
    overflows = [pair_saturation(env[n.input[0]], ref.init[n.input[3]]) for n in pointwise]
    assert sum(overflows) > 1000, overflows


@needs_model
def test_graph_optimisations_keep_the_arithmetic(reference):
    """onnxruntime's optimised graph (its layouts and fusions) gives the same bytes as the graph
    run without any optimisation."""
    import onnxruntime as ort

    _, env = reference
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(
        exact_graph(onnx.load(str(SHARED_ONNX))).SerializeToString(),
        options,
        providers=["CPUExecutionProvider"],
    )
    x = preprocess(saturating_frames())
    np.testing.assert_array_equal(plain.run(["embedding"], {"input": x})[0], env["embedding"])
    np.testing.assert_array_equal(
        exact_session(SHARED_ONNX)[0].run(["embedding"], {"input": x})[0], env["embedding"]
    )


@needs_model
def test_kernels_that_miss_the_known_answer_are_passed_over(monkeypatch):
    """The session is the first kernel choice whose results equal the int64 reference: with the
    u8×s8 graph's first convolution weights halved (a stand-in for a CPU whose u8×s8 kernels
    saturate), the u8×u8 graph is chosen; when no choice matches, loading fails by name."""
    from storyhash_core.backbones import exact_int8, mobilenet

    def broken_signed(model, output="embedding", signed=False):
        graph = exact_graph(model, output, signed)
        if signed:
            weights = next(t for t in graph.graph.initializer if t.name.endswith("/w"))
            w = numpy_helper.to_array(weights)
            weights.CopyFrom(numpy_helper.from_array(w // 2, weights.name))
        return graph

    monkeypatch.setattr(exact_int8, "exact_graph", broken_signed)
    session, kernels = mobilenet.exact_session(SHARED_ONNX)
    assert kernels == "u8u8"
    monkeypatch.setattr(mobilenet, "KERNELS", {"u8s8": True})
    with pytest.raises(BackboneError, match=r"\(u8s8\) on this CPU .* miss the known answer"):
        mobilenet.MobileNetV2Onnx(SHARED_ONNX)


def test_conv_bound_is_the_largest_partial_sum():
    w = np.array([[[[3]], [[-5]]], [[[7]], [[1]]]], np.int8)  # 2 outputs, 2 inputs, 1×1
    # zero points: x 10 (largest |x - 10| is 245), w per channel (1, -1); bias (100, -3)
    assert conv_bound(w, np.array([1, -1]), 10, np.array([100, -3])) == max(
        (2 + 6) * 245 + 100, (8 + 2) * 245 + 3
    )


def tiny_qconv(channels: int, weight: int, w_zero: int = 0) -> onnx.ModelProto:
    """One 1×1 QLinearConv over ``channels`` inputs, every weight ``weight``, then dequantised."""

    def const(name, value, dtype):
        return numpy_helper.from_array(np.array(value, dtype), name)

    inits = [
        const("s", 0.1, np.float32),
        const("z", 0, np.uint8),
        const("w", np.full((1, channels, 1, 1), weight), np.int8),
        const("ws", [0.01], np.float32),
        const("wz", [w_zero], np.int8),
        const("ys", 0.5, np.float32),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "s", "z", "w", "ws", "wz", "ys", "z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "z"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 2, 2])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def test_the_rewrite_refuses_sums_beyond_int32():
    exact_graph(tiny_qconv(66_000, 127))  # 66 000 · 127 · 255 < 2**31
    with pytest.raises(ExactGraphError, match="2\\*\\*31"):
        exact_graph(tiny_qconv(66_400, 127))  # 66 400 · 127 · 255 > 2**31


def test_the_rewrite_refuses_weights_that_have_no_u8_form():
    exact_graph(tiny_qconv(4, 127))  # 127 - 0 + 128 = 255
    with pytest.raises(ExactGraphError, match=r"span \[128, 128\], beyond int8"):
        exact_graph(tiny_qconv(4, 127, w_zero=-1))


def test_a_tiny_model_computes_its_integer_arithmetic():
    """Four inputs of 25.5 (uint8 255) times weights 3 (scale 0.01): the accumulator 3060 times
    0.1 · 0.01 / 0.5 is 6.12, so the output is round(6.12) = 6 steps of 0.5."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        exact_graph(tiny_qconv(4, 3)).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    out = session.run(["embedding"], {"x": np.full((1, 4, 2, 2), 25.5, np.float32)})[0]
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 3.0, np.float32))


def test_unsupported_operators_and_outputs_are_named(tmp_path):
    model = tiny_qconv(4, 1)
    model.graph.node[1].op_type = "ConvInteger"
    with pytest.raises(ExactGraphError, match="ConvInteger"):
        exact_graph(model)
    with pytest.raises(ExactGraphError, match="no output 'pooled'"):
        exact_graph(tiny_qconv(4, 1), output="pooled")
    other = tiny_qconv(4, 1)
    other.graph.node[2].output[0] = other.graph.output[0].name = "logits"
    onnx.save(other, tmp_path / "other.onnx")
    with pytest.raises(
        BackboneError,
        match="other.onnx cannot run as exact int8: the model has no output 'embedding'",
    ):
        load_backbone(BackboneSpec(name="mobilenetv2-onnx", weights=str(tmp_path / "other.onnx")))
