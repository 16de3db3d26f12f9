"""The cache and the outputs at an fsspec URL (``memory://`` here, which the threads of the
in-process test cluster share; ``s3://`` and the rest go through the same calls): entries are
uploaded atomically, another machine (another mirror) finds and reuses them, and a run folder
is uploaded after every notebook, a failing one included."""

from __future__ import annotations

import json
import shutil
import uuid

import fsspec
import nbformat
import numpy as np
import pytest

from storyhash_core.backbones import BackboneSpec
from storyhash_core.cache import ArtifactCache, atomic_path
from storyhash_core.corpus import Video
from storyhash_core.features import load_features
from storyhash_core.params import load_params, resolve_location, run_location
from storyhash_core.pipeline import VideoJob, cached_artifacts, process_video, process_videos
from storyhash_core.queries import generate_queries
from storyhash_core.runner import NotebookError, run_notebooks
from storyhash_core.tracking import TrackerSpec
from storyhash_core.transforms import PAPER_TRANSFORMS

from .conftest import index_frames, write_video

DCT, TRACKER = BackboneSpec(name="dct"), TrackerSpec()


def fresh_url(name: str) -> str:
    return f"memory://{name}-{uuid.uuid4().hex[:8]}"


def remote_files(url: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(url)
    return [p for p in fs.find(path)]


def test_entries_are_uploaded_atomically_and_fetched_by_another_machine(tmp_path):
    url = fresh_url("cache")
    a, b = ArtifactCache(url, mirror=tmp_path / "a"), ArtifactCache(url, mirror=tmp_path / "b")
    entry = a.path("features", "ab" * 32, ".npz")
    with atomic_path(entry) as tmp:
        tmp.write_bytes(b"content")
    assert not a.exists(
        entry
    )  # only in a's mirror (an upload that never finished): not an entry yet
    a.publish(entry)
    assert a.exists(entry)
    there = b.path("features", "ab" * 32, ".npz")
    assert b.exists(there) and not there.is_file()  # at the URL, not yet on machine b
    assert b.fetch(entry) == there and there.read_bytes() == b"content"  # a's path, b's mirror
    assert [p.rsplit("/", 1)[1] for p in remote_files(url)] == [
        f"{'ab' * 32}.npz"
    ]  # no temporary left
    with pytest.raises(FileNotFoundError):
        b.fetch(b.path("features", "cd" * 32, ".npz"))
    assert b.fetch(tmp_path / "video.mp4") == tmp_path / "video.mp4"  # not an entry: as it is


def test_queries_and_features_at_a_url_are_reused_by_other_machines(tmp_path, monkeypatch, client):
    videos = []
    for i in range(2):
        frames = np.roll(index_frames(24, 48, 64), 7 * i, axis=2)
        videos.append(Video(f"v{i}", write_video(tmp_path / f"v{i}.mp4", frames, fps=12)))
    url = fresh_url("cache")
    monkeypatch.setenv("STORYHASH_MIRROR", str(tmp_path / "machine1"))
    queries = generate_queries(client, videos, [PAPER_TRANSFORMS["flip_h"]], ArtifactCache(url))
    assert all(q.path and not q.error for q in queries)
    shutil.rmtree(tmp_path / "machine1")  # machine 1 is gone: only the URL holds its work

    monkeypatch.setenv("STORYHASH_MIRROR", str(tmp_path / "machine2"))  # the workers' machine
    main = ArtifactCache(url, mirror=tmp_path / "main")  # and the client's, another one
    items = {q.query_id: (q.path, 24.0) for q in queries}  # paths in machine 1's mirror
    done, failed = process_videos(client, items, 2.0, [(DCT, "")], TRACKER, main)
    assert not failed and set(done) == set(items)
    for key, artifacts in done.items():  # fetched to the client's machine, equal to a local cache's
        assert (
            artifacts.features[0].is_relative_to(tmp_path / "main")
            and artifacts.features[0].is_file()
        )
        assert artifacts.tracks.is_relative_to(tmp_path / "main") and artifacts.tracks.is_file()
        local = process_video(
            VideoJob(ArtifactCache(url).fetch(items[key][0]), 24.0, 2.0, ((DCT, ""),), TRACKER),
            str(tmp_path / "local"),
        )
        np.testing.assert_array_equal(
            load_features(artifacts.features[0]).frames, load_features(local.features[0]).frames
        )
    kinds = sorted(p.split("/")[2] for p in remote_files(url) if "/digests/" not in p)
    assert kinds == ["features"] * 2 + ["queries"] * 2 + ["tracks"] * 2  # each once, no temporary
    assert not any(
        "digests" in p for p in remote_files(url)
    )  # stat-keyed memos stay on their machine

    monkeypatch.setenv("STORYHASH_MIRROR", str(tmp_path / "machine3"))
    third = ArtifactCache(url)
    for path, fps in items.values():  # everything is found at the URL: no task would run
        assert cached_artifacts(VideoJob(path, fps, 2.0, ((DCT, ""),), TRACKER), third) is not None


def _notebook(path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("params_file = run_dir = ''"),
        nbformat.v4.new_code_cell(code),
    ]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_a_run_at_a_url_is_uploaded_after_every_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYHASH_MIRROR", str(tmp_path / "mirror"))
    url = fresh_url("outputs")
    params = tmp_path / "p.yaml"
    params.write_text(f"run_name: r\noutput_dir: {url}\n")
    folder, run_url = run_location(load_params(params))
    assert folder.is_relative_to(tmp_path / "mirror") and run_url == f"{url}/r"
    _notebook(
        tmp_path / "a.ipynb",
        "from pathlib import Path\n(Path(run_dir) / 'tables').mkdir()\n"
        "(Path(run_dir) / 'tables' / 't.csv').write_text('x')",
    )
    _notebook(tmp_path / "b.ipynb", "raise ValueError('broken')")
    with pytest.raises(NotebookError, match="b.ipynb"):
        run_notebooks(params, ("a", "b"), source=tmp_path)
    names = {p.split("/r/", 1)[1] for p in remote_files(run_url)}
    assert {"tables/t.csv", "notebooks/a.ipynb", "notebooks/a.html", "notebooks/b.ipynb"} <= names

    monkeypatch.setenv("STORYHASH_MIRROR", str(tmp_path / "elsewhere"))  # another machine goes on
    _notebook(
        tmp_path / "c.ipynb",
        "from pathlib import Path\nt = Path(run_dir) / 'tables'\n"
        "(t / 'u.csv').write_text((t / 't.csv').read_text() + 'y')",
    )
    run_notebooks(params, ("c",), source=tmp_path)
    fs, path = fsspec.core.url_to_fs(run_url)
    assert fs.cat(f"{path}/tables/u.csv") == b"xy"  # read what the first machine uploaded
    assert set(json.loads(fs.cat(f"{path}/run.json"))["notebook_timings_s"]) == {"a", "b", "c"}


def test_file_urls_are_local_folders(tmp_path):
    assert resolve_location(f"file://{tmp_path}/cache") == str(tmp_path / "cache")
    cache = ArtifactCache(f"file://{tmp_path}/cache")
    assert (
        cache.fs is None
        and cache.root == tmp_path / "cache"
        and cache.url == str(tmp_path / "cache")
    )
