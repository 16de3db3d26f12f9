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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


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
    files = [path] if not path.is_dir() else sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    return [str(path.resolve())] + [(f.name, s.st_size, s.st_mtime_ns, s.st_ino) for f in files for s in [f.stat()]]


class ArtifactCache:
    """Maps (kind, key, suffix) to a path under one root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def digest(self, source: str | Path) -> str:
        """:func:`content_digest` of ``source``, hashed once while its files are unchanged."""
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
            if leftover.exists():
                shutil.rmtree(leftover)
