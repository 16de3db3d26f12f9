import pytest

from storyhash_core.corpus import Video, load_manifest, scan_directory, write_manifest
from storyhash_core.errors import ManifestError

from .conftest import index_frames, write_folder, write_video

HEADER = "video_id,path,collection,source_repository,license,width,height,fps,frames,duration_s\n"


def test_manifest_in_the_shared_format(tmp_path):
    write_folder(
        tmp_path / "davis2016-val" / "JPEGImages" / "480p" / "seq", index_frames(3, 16, 16)
    )
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "a.mp4", index_frames(5, 16, 16), 10)
    (tmp_path / "manifest.csv").write_text(
        HEADER
        + "davis__seq,davis2016-val/JPEGImages/480p/seq,davis,repo,CC,16,16,24,3,0.125\n"
        + "clip__a,clips/a.mp4,videvo,repo,CC,16,16,10.000,5,0.5\n"
    )
    videos = load_manifest(tmp_path / "manifest.csv")
    assert [v.video_id for v in videos] == ["davis__seq", "clip__a"]
    assert videos[0].is_frame_folder and videos[0].fps == 24.0
    assert (
        videos[1].path == (tmp_path / "clips" / "a.mp4").resolve()
        and videos[1].collection == "videvo"
    )
    assert videos[1].meta["license"] == "CC"


def test_manifest_duplicate_ids(tmp_path):
    (tmp_path / "m.csv").write_text(HEADER + "a,x.mp4,c,r,l,1,1,1,1,1\na,y.mp4,c,r,l,1,1,1,1,1\n")
    with pytest.raises(ManifestError, match="repeats video_id.*a"):
        load_manifest(tmp_path / "m.csv")


def test_manifest_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("id,file\na,x.mp4\n")
    with pytest.raises(ManifestError, match="lacks column.*video_id, path"):
        load_manifest(tmp_path / "m.csv")


def test_manifest_not_found(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "none.csv")


def test_scan_davis_root(tmp_path):
    for seq in ("bear", "camel"):
        write_folder(tmp_path / "DAVIS" / "JPEGImages" / "480p" / seq, index_frames(2, 16, 16))
    (tmp_path / "DAVIS" / "Annotations").mkdir()
    videos = scan_directory(tmp_path / "DAVIS", fps=30)
    assert [(v.video_id, v.collection, v.fps) for v in videos] == [
        ("bear", "davis", 30),
        ("camel", "davis", 30),
    ]


def test_scan_folder_of_clips_and_sequences(tmp_path):
    (tmp_path / "sub").mkdir()
    write_video(tmp_path / "sub" / "b.mp4", index_frames(3, 16, 16), 10)
    write_folder(tmp_path / "a", index_frames(2, 16, 16))
    (tmp_path / "readme.txt").write_text("not a video")
    assert [v.video_id for v in scan_directory(tmp_path)] == ["a", "b"]


def test_scan_rejects_empty_and_duplicate(tmp_path):
    with pytest.raises(ManifestError, match="no videos"):
        scan_directory(tmp_path)
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        write_video(tmp_path / sub / "same.mp4", index_frames(3, 16, 16), 10)
    with pytest.raises(ManifestError, match="repeated video id.*same"):
        scan_directory(tmp_path)


def test_manifest_round_trip(tmp_path):
    write_video(tmp_path / "a.mp4", index_frames(3, 16, 16), 10)
    videos = [Video("a", tmp_path / "a.mp4", "mine", 10.0, {"note": "x"})]
    write_manifest(videos, tmp_path / "m.csv")
    back = load_manifest(tmp_path / "m.csv")
    assert back == [Video("a", (tmp_path / "a.mp4").resolve(), "mine", 10.0)]
    assert back[0].meta == {"note": "x"}
