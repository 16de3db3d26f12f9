from pathlib import Path

import pytest

from storyhash_core.errors import ParamsError
from storyhash_core.params import load_params, resolve_path

PARAMS = Path(__file__).resolve().parents[1] / "params"


@pytest.mark.parametrize("name", ["default.yaml", "real.yaml", "paper.yaml"])
def test_shipped_params_load(name):
    p = load_params(PARAMS / name)
    assert p.sampling.fps == 2.0 and p.transforms == "paper"


def test_shared_path_defaults_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("STORYHASH_SHARED", raising=False)
    path = resolve_path(load_params(PARAMS / "real.yaml").corpus.path)
    assert path == (PARAMS.parents[1] / "shared" / "data" / "manifest.csv").resolve()
    monkeypatch.setenv("STORYHASH_SHARED", "/elsewhere")
    assert resolve_path("${STORYHASH_SHARED}/data/manifest.csv") == Path(
        "/elsewhere/data/manifest.csv"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("run_name: x\ncorpus: {kind: synthetic, colour: red}\n", "corpus.colour: unknown key"),
        ("sampling: {fps: fast}\n", "sampling.fps: Input should be a valid number"),
        ("corpus: {kind: youtube}\n", "corpus.kind: Input should be"),
        ("transfroms: paper\n", "transfroms: unknown key"),
        ("- a\n- b\n", "must hold a mapping"),
        ("corpus: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_params_are_one_line_errors(tmp_path, text, message):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ParamsError) as info:
        load_params(f)
    assert message in str(info.value) and str(f) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_portable_paths_resolve_back_on_any_machine(tmp_path):
    from storyhash_core.backbones import BackboneSpec
    from storyhash_core.params import (
        PROJECT_ROOT,
        local_backbone,
        portable,
        portable_backbone,
        resolve_path,
    )

    shared = resolve_path("${STORYHASH_SHARED}")
    assert portable(shared / "models" / "m.onnx") == "$STORYHASH_SHARED/models/m.onnx"
    assert portable(PROJECT_ROOT / "params" / "real.yaml") == "params/real.yaml"
    assert portable(tmp_path / "x.yaml") == str(tmp_path / "x.yaml")
    assert (
        resolve_path(portable(PROJECT_ROOT / "params" / "real.yaml"))
        == PROJECT_ROOT / "params" / "real.yaml"
    )
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"")
    for path in (
        weights,
        shared / "models" / "mobilenetv2-imagenet-embed.onnx",
        PROJECT_ROOT / "pyproject.toml",
    ):
        spec = BackboneSpec(name="mobilenetv2-onnx", weights=str(path))
        assert local_backbone(portable_backbone(spec)) == spec
    assert (
        portable_backbone(spec).weights == "pyproject.toml"
    )  # project-relative, found from any folder
    model = shared / "models" / "mobilenetv2-imagenet-embed.onnx"
    if model.is_file():
        spec = BackboneSpec(name="mobilenetv2-onnx", weights=str(model))
        assert (
            portable_backbone(spec).weights
            == "$STORYHASH_SHARED/models/mobilenetv2-imagenet-embed.onnx"
        )
