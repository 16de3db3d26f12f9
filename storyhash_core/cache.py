"""Content-keyed artifact store with atomic writes.

Every artifact lives at ``<root>/<kind>/<key[:2]>/<key><suffix>`` where ``key`` is a
SHA-256 over everything that determines the artifact's content (the source's bytes,
the producing spec, a stage version). An entry exists only once it is complete: writers
produce a temporary file beside the final path and ``os.replace`` it into place, so a
killed run never leaves a partial entry and concurrent writers of the same key are safe.

Hashing a source on every run would cost more than a warm run's other work, so
:meth:`ArtifactCache.digest` remembers each source's digest under ``digests/``, keyed by
the path and the size, modification time and inode of every file it hashed (like git's
index): editing or replacing a file changes its key, and the file is hashed again.

The root is a local folder (a shared filesystem mounted on every node is one too) or an
``fsspec`` URL such as ``s3://bucket/storyhash-cache``. With a URL, each machine works on a
local mirror (``$STORYHASH_MIRROR``, default ``~/.cache/storyhash-mirror``, one folder per
URL): an entry is written locally, then uploaded under a temporary name and renamed into
place (:meth:`ArtifactCache.publish`); :meth:`ArtifactCache.exists` asks the URL, the one
authority (a mirror may hold an entry whose upload never finished: it is made and uploaded
again); :meth:`ArtifactCache.fetch` downloads an entry into the mirror. Entries never change
once written (the key is the recipe of the content), so a mirror never goes stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from zipfile import ZipFile

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from .errors import StoryHashError

_CHUNK = 1 << 20
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
# the names :func:`atomic_path` and :func:`atomic_dir` give their temporary files and folders
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.(tmp|old)(\.\w+)?$")
STALE_S = 86_400  # a temporary entry this old belongs to no live writer


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def content_digest(path: str | Path) -> str:
    """Digest of a video's content: a file's bytes, or a frame folder's names and bytes."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    h = hashlib.sha256()
    for frame in sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES):
        h.update(frame.name.encode())
        h.update(file_digest(frame).encode())
    return h.hexdigest()


def spec_key(**parts: Any) -> str:
    """A stable key for a JSON-serialisable description of an artifact."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it into place only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex}.tmp{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _stat_signature(path: Path) -> list:
    """What changes whenever a file's (or a frame folder's files') content does."""
    files = (
        [path]
        if not path.is_dir()
        else sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    )
    return [str(path.resolve())] + [
        (f.name, s.st_size, s.st_mtime_ns, s.st_ino) for f in files for s in [f.stat()]
    ]


def is_url(location: str | Path) -> bool:
    """Whether ``location`` is an fsspec URL of a non-local filesystem (``file://`` is local)."""
    return "://" in str(location) and not str(location).startswith("file://")


def mirror_root(url: str, base: str | Path | None = None) -> Path:
    """This machine's local folder for the entries at ``url``: a folder named by the URL's
    hash under ``base`` (default ``$STORYHASH_MIRROR``, else ``~/.cache/storyhash-mirror``)."""
    base = base or os.environ.get("STORYHASH_MIRROR") or Path.home() / ".cache" / "storyhash-mirror"
    return Path(base).expanduser() / hashlib.sha256(url.encode()).hexdigest()[:16]


def publish_tree(folder: Path, url: str) -> None:
    """Upload every file under ``folder`` to the same relative paths under ``url``."""
    fs, path = fsspec.core.url_to_fs(url)
    fs.put(f"{folder}/", path, recursive=True)


def fetch_tree(url: str, folder: Path) -> bool:
    """Download everything under ``url`` into ``folder``; False if there is nothing there."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    fs.get(f"{path}/", str(folder), recursive=True)
    return True


def read_npz(path: str | Path) -> dict[str, Any]:
    """Every array of an ``.npz`` file, the same as ``np.load`` gives, read member by member
    without its lazy wrapper (a fifth less time for the cache's small files)."""
    with ZipFile(path) as archive:
        out = {}
        for name in archive.namelist():
            with archive.open(name) as member:
                out[name.removesuffix(".npy")] = np.lib.format.read_array(member)
        return out


class ArtifactCache:
    """Maps (kind, key, suffix) to a local path under ``root``: the folder itself, or, for a
    URL, this machine's mirror of it (:func:`mirror_root`; ``mirror`` is its base folder)."""

    def __init__(self, root: str | Path, mirror: str | Path | None = None) -> None:
        fs, path = fsspec.core.url_to_fs(str(root))
        self.fs = None if isinstance(fs, LocalFileSystem) else fs
        self.url = str(root) if self.fs is not None else path  # what workers are given: absolute
        self.remote = path.rstrip("/")
        self.root = Path(path) if self.fs is None else mirror_root(self.url, mirror)

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def _remote(self, path: Path) -> str:
        return f"{self.remote}/{path.relative_to(self.root).as_posix()}"

    def exists(self, path: Path) -> bool:
        """Whether the entry at ``path`` is complete: in the folder, or, for a URL, at the URL."""
        return path.is_file() if self.fs is None else self.fs.exists(self._remote(path))

    def entry(self, path: str | Path) -> str:
        """An entry of this cache as run records keep it: relative to the root (so they name
        no machine's folders); :meth:`fetch` reads it back."""
        path = Path(path)
        return (
            path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
        )

    def fetch(self, path: str | Path) -> Path:
        """``path`` readable on this machine: an entry named relative to the root (as
        :meth:`entry` gives it) or absolute. An entry of a URL cache, named by any machine's
        mirror (they all end in the same URL-hash folder), is downloaded into this machine's
        mirror (atomically) if it is not there yet; any other path is returned as it is. A
        relative entry missing from a local cache is an error naming the cache."""
        path = Path(path)
        if not path.is_absolute():
            path = self.root / path
            if self.fs is None and not path.is_file():
                raise StoryHashError(
                    f"cache entry {path} not found: this run was made with another cache; rerun"
                    " its notebook 01 with this one (storyhash study --params <its params>)"
                )
        if self.fs is None or self.root.name not in path.parts:
            return path
        local = self.root.joinpath(
            *path.parts[len(path.parts) - path.parts[::-1].index(self.root.name) :]
        )
        if not local.is_file():
            with atomic_path(local) as tmp:
                self.fs.get_file(self._remote(local), str(tmp))
        return local

    def publish(self, path: Path) -> None:
        """Upload the finished local entry ``path`` to the URL (a local root: nothing to do),
        under a temporary name first, so that readers never see a partial entry (on an object
        store, where one upload is already all or nothing, this costs a server-side copy)."""
        if self.fs is None:
            return
        final = self._remote(path)
        tmp = f"{final}.{uuid.uuid4().hex}.tmp"
        try:
            self.fs.put_file(str(path), tmp)
            self.fs.mv(tmp, final)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def digest(self, source: str | Path) -> str:
        """:func:`content_digest` of ``source``, hashed once while its files are unchanged (the
        memo stays on this machine: its key holds this machine's file stats)."""
        memo = self.path("digests", spec_key(stat=_stat_signature(Path(source))), ".txt")
        if memo.is_file():
            return memo.read_text()
        digest = content_digest(source)
        with atomic_path(memo) as tmp:
            tmp.write_text(digest)
        return digest


@contextmanager
def atomic_dir(final: Path, replace: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_path` for a directory.

    If ``final`` already exists: with ``replace`` the new one takes its place (the old one is
    moved aside first, so readers see the old or the new, never a mix); without, another
    writer finished first and its result is kept.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    old = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
    tmp.mkdir()
    try:
        yield tmp
        if replace and final.exists():
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True)


def sweep_temporary(root: Path, older_than_s: float = STALE_S, depth: int = 3) -> int:
    """Delete the temporary files and folders of writers that died (killed before their
    ``finally`` ran) up to ``depth`` levels under ``root`` (where the cache and a run folder
    keep their entries), if older than ``older_than_s``; return how many. Safe beside live
    writers: theirs are younger, and one renamed away meanwhile is skipped."""
    cutoff, swept = time.time() - older_than_s, 0
    for folder, dirs, files in os.walk(root):
        level = len(Path(folder).relative_to(root).parts)
        for name in [*dirs, *files]:
            path = Path(folder, name)
            with suppress(OSError):  # gone meanwhile, or another user's
                if TEMPORARY.match(name) and path.lstat().st_mtime < cutoff:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    swept += 1
        dirs[:] = [d for d in dirs if not TEMPORARY.match(d) and level + 1 < depth]
    return swept
