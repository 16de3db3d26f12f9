"""Downloading and unpacking datasets: resumable, size- and checksum-checked, with progress.

Used by ``storyhash data davis`` for DAVIS-2017 trainval 480p; any ``http(s)://`` or
``file://`` URL works. A partial download is kept as ``<name>.part`` and resumed with
an HTTP Range request; the final file appears only when complete and verified.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from .cache import file_digest
from .errors import DownloadError

DAVIS_2017_URL = "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip"
_CHUNK = 1 << 16


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``); verify size and optional SHA-256."""
    if dest.is_file():
        _verify(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            os.replace(part, dest)
            _verify(dest, sha256)
            return dest
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"download of {url} failed: {exc} (check the URL and your connection; rerun to resume)"
        ) from exc
    with response:
        resumed = getattr(response, "status", 200) == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        with (
            open(part, "ab" if resumed else "wb") as f,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name) as bar,
        ):
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"download of {url} stopped at {size} of {total} bytes (rerun to resume)"
        )
    _verify(part, sha256)
    os.replace(part, dest)
    return dest


def _verify(path: Path, sha256: str | None) -> None:
    if sha256 and file_digest(path) != sha256.lower():
        path.unlink()
        raise DownloadError(
            f"{path} does not match SHA-256 {sha256} (deleted; rerun to download again)"
        )


def extract_zip(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest`` (refusing paths that escape it); return ``dest``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            root = dest.resolve()
            for name in zf.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise DownloadError(f"{archive} holds an unsafe path {name!r}; not extracted")
            tmp = dest.with_name(dest.name + ".extracting")
            shutil.rmtree(tmp, ignore_errors=True)
            zf.extractall(tmp)
    except zipfile.BadZipFile as exc:
        archive.unlink()
        raise DownloadError(
            f"{archive} is not a valid zip archive (deleted; rerun to download again)"
        ) from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def fetch_davis(root: Path, url: str = DAVIS_2017_URL, sha256: str | None = None) -> Path:
    """Download and unpack DAVIS; return the DAVIS root (the folder holding ``JPEGImages``)."""
    archive = download(url, root / Path(url.split("?")[0]).name, sha256)
    unpacked = extract_zip(archive, root / "unpacked")
    found = sorted(p.parent for p in unpacked.rglob("JPEGImages"))
    if not found:
        raise DownloadError(f"{archive} has no JPEGImages folder; is it a DAVIS archive?")
    return found[0]
