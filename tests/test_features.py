import numpy as np

from storyhash_core.backbones import BackboneSpec
from storyhash_core.cache import ArtifactCache
from storyhash_core.features import FeatureJob, extract_features, extract_one, load_features

from .conftest import index_frames, write_video

DCT = BackboneSpec(name="dct")


def test_features_are_normalised_frames_at_the_sampling_rate(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(50, 48, 64), fps=10)
    f = load_features(extract_one(FeatureJob(video, 24.0, DCT, 2.0), str(tmp_path / "c")))
    assert f.timestamps.tolist() == [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    assert f.frames.shape == (10, 192)
    np.testing.assert_allclose(np.linalg.norm(f.frames, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(f.pooled("median")), 1.0, rtol=1e-6)


def test_cache_hit_and_invalidation(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(20, 48, 64), fps=10)
    root = str(tmp_path / "c")
    first = extract_one(FeatureJob(video, 24.0, DCT, 2.0), root)
    stamp = first.stat().st_mtime_ns
    assert extract_one(FeatureJob(video, 24.0, DCT, 2.0), root) == first
    assert first.stat().st_mtime_ns == stamp
    assert extract_one(FeatureJob(video, 24.0, DCT, 1.0), root) != first  # sampling changes the key
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(video.read_bytes())
    assert extract_one(FeatureJob(copy, 24.0, DCT, 2.0), root) == first  # content, not path, is the key


def test_batch_extraction_records_failures(tmp_path, client):
    good = write_video(tmp_path / "good.mp4", index_frames(10, 32, 32), fps=10)
    feats, failed = extract_features(client, {"good": (good, 24.0), "bad": (tmp_path / "none.mp4", 24.0)},
                                     DCT, 2.0, ArtifactCache(tmp_path / "c"))
    assert list(feats) == ["good"]
    assert [f.key for f in failed] == ["bad"] and "none.mp4" in failed[0].error
