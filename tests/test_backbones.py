from pathlib import Path

import numpy as np
import pytest

from storyhash_core import backbones
from storyhash_core.backbones import (
    BackboneError,
    BackboneSpec,
    load_backbone,
    resize_center_crop,
    resolve_auto,
    weights_id,
)
from storyhash_core.backbones.mobilenet import preprocess
from storyhash_core.features import l2_normalize

from .conftest import index_frames

SHARED_ONNX = (
    Path(__file__).resolve().parents[2] / "shared" / "models" / "mobilenetv2-imagenet-embed.onnx"
)


def test_resize_center_crop_geometry():
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, 70:90] = 255  # a centred bright column survives the crop
    out = resize_center_crop(frame, 32)
    assert out.shape == (32, 32, 3)
    assert out[:, 16].mean() > 200 and out[:, 0].mean() < 10


@pytest.mark.parametrize(
    "shape", [(480, 854), (432, 768), (384, 683), (300, 400), (600, 800), (1080, 1920)]
)
def test_resize_center_crop_is_antialiased_and_close_to_area_resampling(shape):
    import cv2

    h, w = shape
    stripes = np.zeros((h, w, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: a plain bilinear shrink would alias them into bands
    area_stripes = cv2.resize(
        stripes[:, (w - h) // 2 : (w - h) // 2 + h], (224, 224), interpolation=cv2.INTER_AREA
    )
    deviation = np.abs(resize_center_crop(stripes, 224).astype(int) - 127.5).max()
    assert deviation <= max(4, np.abs(area_stripes.astype(int) - 127.5).max())  # no worse than area
    smooth = cv2.GaussianBlur(
        np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8), (0, 0), 3
    )
    area = cv2.resize(
        smooth[:, (w - h) // 2 : (w - h) // 2 + h], (224, 224), interpolation=cv2.INTER_AREA
    )
    assert np.abs(resize_center_crop(smooth, 224).astype(int) - area).mean() < 1.5


def test_resize_center_crop_sizes():
    for shape in (
        (481, 641, 3),
        (225, 300, 3),
        (100, 120, 3),
        (224, 224, 3),
    ):  # trimmed; upscaled; as is
        out = resize_center_crop(np.zeros(shape, np.uint8), 224)
        assert out.shape == (224, 224, 3) and out.flags.c_contiguous


def test_mobilenet_preprocessing_normalises_like_imagenet():
    x = preprocess(np.full((2, 50, 70, 3), 255, np.uint8))
    assert x.shape == (2, 3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(
        x[0, :, 0, 0],
        (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
        rtol=1e-5,
    )


def test_dct_descriptor_is_deterministic_and_discriminative():
    dct = load_backbone(BackboneSpec(name="dct"))
    frames = index_frames(4, 48, 64)
    a, b = dct.embed(frames), dct.embed(frames)
    assert a.shape == (4, 192) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], dct.embed(frames[:, :, ::-1])[0])


@pytest.mark.skipif(not SHARED_ONNX.is_file(), reason="shared/models not beside the checkout")
def test_mobilenet_onnx_embeds_real_frames():
    net = load_backbone(BackboneSpec(name="mobilenetv2-onnx", weights=str(SHARED_ONNX)))
    frames = index_frames(3, 120, 160)
    e = l2_normalize(net.embed(frames))
    assert e.shape == (3, 1280) and net.weights_id.startswith("mobilenetv2-onnx:")
    flipped = l2_normalize(net.embed(frames[:, ::-1]))
    assert 0.3 < float(e[0] @ flipped[0]) < 0.9999


def test_missing_onnx_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="backbone.weights"):
        load_backbone(BackboneSpec(name="mobilenetv2-onnx", weights=str(tmp_path / "none.onnx")))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A randomly initialised CLIP vision tower saved as a local model folder (no download)."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clip")
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    CLIPVisionModelWithProjection(config).eval().save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


def test_clip_path_with_a_tiny_config(tiny_clip):
    clip = load_backbone(BackboneSpec(name="clip", weights=str(tiny_clip), batch_size=2))
    frames = index_frames(5, 40, 60)
    e = clip.embed(frames)
    assert e.shape == (5, 16) and clip.dim == 16 and np.isfinite(e).all()
    np.testing.assert_allclose(
        e, clip.embed(frames), rtol=1e-5
    )  # batching and eval mode are deterministic
    np.testing.assert_allclose(e[2:3], clip.embed(frames[2:3]), rtol=1e-4, atol=1e-6)
    assert clip.weights_id.startswith("clip:") and "model.safetensors=" in clip.weights_id


def test_cache_keys_name_the_weights_without_loading_a_model(tiny_clip, monkeypatch):
    specs = [BackboneSpec(name="clip", weights=str(tiny_clip), batch_size=3)]
    if SHARED_ONNX.is_file():
        specs.append(BackboneSpec(name="mobilenetv2-onnx", weights=str(SHARED_ONNX), batch_size=3))
    loaded = [load_backbone(spec).weights_id for spec in specs]
    weights_id.cache_clear()
    load_backbone.cache_clear()
    monkeypatch.setattr(
        backbones, "load_backbone", lambda spec: pytest.fail(f"{spec.name} loaded for a key")
    )
    assert [weights_id(spec) for spec in specs] == loaded  # the same ids the loaded models give


def test_clip_offline_error_says_how_to_provide_weights():
    with pytest.raises(BackboneError, match="set backbone.weights to a local folder"):
        load_backbone(BackboneSpec(name="clip", weights="nobody/no-such-clip-model"))


def test_auto_prefers_onnx_then_clip_then_dct(tmp_path, tiny_clip):
    (tmp_path / "mobilenetv2-imagenet-embed.onnx").write_bytes(b"x")
    spec, why = resolve_auto(BackboneSpec(), tmp_path)
    assert spec.name == "mobilenetv2-onnx" and "found" in why
    spec, why = resolve_auto(BackboneSpec(weights=str(tiny_clip)), tmp_path / "empty")
    assert spec.name == "clip"
    spec, why = resolve_auto(BackboneSpec(weights=str(tmp_path / "no-clip")), tmp_path / "empty")
    assert spec.name == "dct" and "weight-free" in why


def test_the_auto_choice_s_reason_names_no_folder_of_this_machine(tmp_path, monkeypatch):
    from storyhash_core.backbones import BackboneSpec, resolve_auto

    (tmp_path / "mobilenetv2-imagenet-embed.onnx").write_bytes(b"onnx")
    spec, reason = resolve_auto(BackboneSpec(), tmp_path)
    assert spec.weights == str(tmp_path / "mobilenetv2-imagenet-embed.onnx")  # the spec has it
    assert (
        reason
        == "auto: found the MobileNetV2 ONNX embedder mobilenetv2-imagenet-embed.onnx in models_dir"
    )
    import storyhash_core.backbones.clip as clip

    monkeypatch.setattr(clip, "clip_weights_available", lambda name: False)
    monkeypatch.setattr(clip, "hub_reachable", lambda: False)
    spec, reason = resolve_auto(BackboneSpec(), tmp_path / "empty")
    assert spec.name == "dct" and str(tmp_path) not in reason
