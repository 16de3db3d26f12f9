import numpy as np

from storyhash_core.backbones import BackboneSpec
from storyhash_core.cache import ArtifactCache
from storyhash_core.features import load_features
from storyhash_core.pipeline import VideoJob, process_video, process_videos
from storyhash_core.tracking import TrackerSpec, load_tracks

from .conftest import index_frames, write_video

DCT = BackboneSpec(name="dct")


def features_of(video, root, fps=2.0, variant="") -> str:
    return process_video(VideoJob(video, 24.0, fps, ((DCT, variant),)), root).features[0]


def test_features_are_normalised_frames_at_the_sampling_rate(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(50, 48, 64), fps=10)
    f = load_features(features_of(video, str(tmp_path / "c")))
    assert f.timestamps.tolist() == [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    assert f.frames.shape == (10, 192)
    assert f.decode_s > 0 and f.embed_s > 0
    np.testing.assert_allclose(np.linalg.norm(f.frames, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(f.pooled("median")), 1.0, rtol=1e-6)


def test_cache_hit_and_invalidation(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(20, 48, 64), fps=10)
    root = str(tmp_path / "c")
    first = features_of(video, root)
    stamp = first.stat().st_mtime_ns
    assert features_of(video, root) == first
    assert first.stat().st_mtime_ns == stamp
    assert features_of(video, root, fps=1.0) != first  # sampling changes the key
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(video.read_bytes())
    assert features_of(copy, root) == first  # content, not path, is the key
    video.write_bytes(
        write_video(tmp_path / "w.mp4", index_frames(20, 48, 64)[::-1], fps=10).read_bytes()
    )
    assert features_of(video, root) != first  # new content in the same file: a new key


def test_one_decode_gives_features_and_tracks_equal_to_separate_runs(tmp_path, monkeypatch):
    from storyhash_core import pipeline

    video = write_video(tmp_path / "v.mp4", index_frames(36, 64, 96), fps=12)
    tracker = TrackerSpec(fps=6.0)
    rates = []
    real = pipeline.sample_rates
    monkeypatch.setattr(
        pipeline, "sample_rates", lambda path, r, ff: rates.append(sorted(r)) or real(path, r, ff)
    )
    both = process_video(VideoJob(video, 24.0, 2.0, ((DCT, ""),), tracker), str(tmp_path / "both"))
    alone = process_video(VideoJob(video, 24.0, 2.0, ((DCT, ""),)), str(tmp_path / "features"))
    tracks_alone = process_video(VideoJob(video, 24.0, 2.0, (), tracker), str(tmp_path / "tracks"))
    assert rates == [[2.0, 6.0], [2.0], [6.0]]
    np.testing.assert_array_equal(
        load_features(both.features[0]).frames, load_features(alone.features[0]).frames
    )
    t_both, t_alone = load_tracks(both.tracks)[0], load_tracks(tracks_alone.tracks)[0]
    np.testing.assert_array_equal(t_both.centroid, t_alone.centroid)
    assert (
        process_video(VideoJob(video, 24.0, 2.0, ((DCT, ""),), tracker), str(tmp_path / "both"))
        == both
    )
    assert len(rates) == 3  # everything cached: nothing decoded


def test_batch_extraction_records_failures(tmp_path, client):
    good = write_video(tmp_path / "good.mp4", index_frames(10, 32, 32), fps=10)
    done, failed = process_videos(
        client,
        {"good": (good, 24.0), "bad": (tmp_path / "none.mp4", 24.0)},
        2.0,
        [(DCT, "")],
        None,
        ArtifactCache(tmp_path / "c"),
    )
    assert list(done) == ["good"] and done["good"].tracks is None
    assert [f.key for f in failed] == ["bad"] and "none.mp4" in failed[0].error
