import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from storyhash_core.download import download, extract_zip, fetch_davis
from storyhash_core.errors import DownloadError


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from the handler's directory with single-range support."""

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture()
def served(tmp_path):
    """A tiny DAVIS-like archive served on a loopback port."""
    root = tmp_path / "served"
    root.mkdir()
    archive = root / "DAVIS-mini.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            zf.writestr(f"DAVIS/JPEGImages/480p/seq/{i:05d}.jpg", bytes(range(256)) * 40)
        zf.writestr("DAVIS/ImageSets/2017/val.txt", "seq\n")
    handler = lambda *a, **kw: RangeHandler(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/DAVIS-mini.zip", archive
    server.shutdown()


def test_download_resumes_a_partial_file(served, tmp_path):
    url, archive = served
    data = archive.read_bytes()
    dest = tmp_path / "dl" / "DAVIS-mini.zip"
    dest.parent.mkdir()
    (dest.parent / "DAVIS-mini.zip.part").write_bytes(data[:1000])
    sha = hashlib.sha256(data).hexdigest()
    assert download(url, dest, sha256=sha).read_bytes() == data
    assert not (dest.parent / "DAVIS-mini.zip.part").exists()


def test_checksum_mismatch_deletes_and_says_so(served, tmp_path):
    url, _ = served
    with pytest.raises(DownloadError, match="does not match SHA-256"):
        download(url, tmp_path / "x.zip", sha256="0" * 64)
    assert not (tmp_path / "x.zip").exists()


def test_missing_url_is_a_clear_error(served, tmp_path):
    url, _ = served
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(url.replace("mini", "none"), tmp_path / "y.zip")


def test_fetch_davis_from_loopback_and_file_url(served, tmp_path):
    url, archive = served
    root = fetch_davis(tmp_path / "a", url)
    assert (root / "JPEGImages" / "480p" / "seq" / "00002.jpg").is_file()
    root = fetch_davis(tmp_path / "b", archive.as_uri())
    assert root.name == "DAVIS"


def test_unsafe_archive_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(DownloadError, match="unsafe path"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
