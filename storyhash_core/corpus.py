"""A corpus is a list of videos with ids: read from a manifest CSV or found by scanning a folder.

The manifest format is the one of ``shared/data/manifest.csv``: the columns ``video_id``
and ``path`` are required (``path`` relative to the manifest's folder), ``collection``
and ``fps`` (the playback rate of frame folders) are used when present, and any other
column is kept as metadata.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .cache import FRAME_SUFFIXES
from .errors import ManifestError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v")
REQUIRED_COLUMNS = ("video_id", "path")


@dataclass(frozen=True)
class Video:
    """One video of a corpus: a file, or a folder of frames played at ``fps``."""

    video_id: str
    path: Path
    collection: str = ""
    fps: float = 24.0
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_frame_folder(self) -> bool:
        return self.path.is_dir()


def load_manifest(manifest: str | Path) -> list[Video]:
    """Videos listed by a manifest CSV; ids must be unique and the required columns present."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"manifest {manifest} not found (give the path to a manifest.csv)")
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    columns = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ManifestError(
            f"manifest {manifest} lacks column(s) {', '.join(missing)}"
            f" (required: {', '.join(REQUIRED_COLUMNS)})"
        )
    dupes = sorted(i for i, n in Counter(r["video_id"] for r in rows).items() if n > 1)
    if dupes:
        raise ManifestError(
            f"manifest {manifest} repeats video_id(s) {', '.join(dupes[:5])} (ids must be unique)"
        )
    videos = []
    for row in rows:
        meta = {k: v for k, v in row.items() if k not in ("video_id", "path", "collection", "fps")}
        videos.append(
            Video(
                video_id=row["video_id"],
                path=(manifest.parent / row["path"]).resolve(),
                collection=row.get("collection") or "",
                fps=float(row["fps"]) if row.get("fps") else 24.0,
                meta=meta,
            )
        )
    return videos


def scan_directory(root: str | Path, fps: float = 24.0, collection: str = "") -> list[Video]:
    """Videos found under ``root``: a DAVIS root, a folder of frame folders, or of video files.

    A DAVIS root (``JPEGImages/480p`` inside) yields one video per sequence; otherwise each
    sub-folder holding frames is a video played at ``fps``, and each video file found
    (recursively) is a video. Ids are sequence names or file stems and must be unique.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(
            f"corpus folder {root} not found (give a DAVIS root or a folder of clips)"
        )
    davis = root / "JPEGImages" / "480p"
    base = davis if davis.is_dir() else root
    videos = [
        Video(d.name, d.resolve(), collection or ("davis" if base is davis else ""), fps)
        for d in sorted(base.iterdir())
        if d.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in d.iterdir())
    ]
    if base is not davis:
        videos += [
            Video(p.stem, p.resolve(), collection, fps)
            for p in sorted(root.rglob("*"))
            if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
        ]
    if not videos:
        raise ManifestError(f"no videos or frame folders found under {root}")
    dupes = sorted(i for i, n in Counter(v.video_id for v in videos).items() if n > 1)
    if dupes:
        raise ManifestError(
            f"folder {root} yields repeated video id(s) {', '.join(dupes[:5])}"
            " (rename the files or write a manifest)"
        )
    return videos


def write_manifest(videos: list[Video], manifest: Path) -> None:
    """Write videos as a manifest CSV with paths relative to its folder."""
    extra = sorted({k for v in videos for k in v.meta})
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_id", "path", "collection", "fps", *extra])
        for v in videos:
            rel = Path(v.path).resolve().relative_to(manifest.parent.resolve())
            writer.writerow(
                [
                    v.video_id,
                    rel.as_posix(),
                    v.collection,
                    v.fps,
                    *(v.meta.get(k, "") for k in extra),
                ]
            )
