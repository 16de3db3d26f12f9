"""The artifact cache: remembered source digests follow every change to the source's files."""

import os

import pytest

from storyhash_core import cache as cache_module
from storyhash_core.cache import ArtifactCache, content_digest
from storyhash_core.errors import StoryHashError


def test_digest_is_remembered_until_a_file_changes(tmp_path, monkeypatch):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"first")
    cache = ArtifactCache(tmp_path / "c")
    assert cache.digest(video) == content_digest(video)

    def no_hashing(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(cache_module, "content_digest", no_hashing)
    assert cache.digest(video) == cache.digest(str(video))  # remembered
    monkeypatch.undo()
    video.write_bytes(b"other")  # new content: a new size here ...
    assert cache.digest(video) == content_digest(video)
    video.write_bytes(b"third")  # ... and the same size, told apart by the modification time
    os.utime(video, ns=(1, 1))
    assert cache.digest(video) == content_digest(video)


def test_folder_digest_follows_its_frames(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:05d}.jpg").write_bytes(bytes([i]) * 10)
    cache = ArtifactCache(tmp_path / "c")
    first = cache.digest(folder)
    assert first == content_digest(folder)
    (folder / "00003.jpg").write_bytes(b"new frame")
    second = cache.digest(folder)
    assert second != first and second == content_digest(folder)
    (folder / "notes.txt").write_text("not a frame")  # ignored, as by content_digest
    assert cache.digest(folder) == second


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        ArtifactCache(tmp_path).digest(tmp_path / "none.mp4")


def test_run_records_name_cache_entries_relative_to_the_cache(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    entry = cache.path("features", "ab" * 32, ".npz")
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"x")
    named = cache.entry(entry)
    assert named == f"features/ab/{'ab' * 32}.npz" and cache.fetch(named) == entry
    assert cache.entry(tmp_path / "elsewhere.mp4") == str(tmp_path / "elsewhere.mp4")
    moved = ArtifactCache(tmp_path / "empty")  # the same records read with another cache
    with pytest.raises(StoryHashError, match=r"cache entry .* not found: .* rerun its notebook 01"):
        moved.fetch(named)
