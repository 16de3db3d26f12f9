"""Progress from a notebook's kernel reaches the terminal of ``storyhash study``, not the page."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

from storyhash_core import progress

BARS = """
from storyhash_core import progress
with progress.bar(3, "reference videos") as bar:
    for _ in range(3):
        bar.update()
progress.note("Dask: dashboard http://127.0.0.1:1/status")
"""


def test_a_kernel_s_bars_and_notes_are_relayed_once_each_with_the_notebook(tmp_path):
    out = io.StringIO()  # not a tty: finished lines only, as a CI log gets them
    with progress.relay(tmp_path / "p.progress", "[storyhash] 01_extract · ", out) as env:
        subprocess.run([sys.executable, "-c", BARS], env=os.environ | env, check=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("[storyhash] 01_extract · ") for line in lines)
    assert "reference videos: 100%" in lines[0] and "3/3" in lines[0]
    assert lines[1].endswith("Dask: dashboard http://127.0.0.1:1/status")


def test_a_log_gets_an_unfinished_bar_s_last_state_when_the_notebook_ends(tmp_path):
    out = io.StringIO()
    path = tmp_path / "p.progress"
    with progress.relay(path, "> ", out):  # ends long before RELAY_EVERY_S
        path.write_text("\rquery videos:  25%|##  | 1/4\rquery videos:  50%|#####  | 2/4")
    assert out.getvalue() == "> query videos:  50%|#####  | 2/4\n"  # e.g. a cell that failed


def test_a_log_gets_a_running_bar_every_relay_interval(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "RELAY_EVERY_S", 0.0)
    out = io.StringIO()
    path = tmp_path / "p.progress"
    with progress.relay(path, "> ", out):
        path.write_text("\rquery videos:  50%|#####     | 1/2")  # no newline: still running
        deadline = progress.time.monotonic() + 30  # the relay looks twice a second
        while not out.getvalue() and progress.time.monotonic() < deadline:
            progress.time.sleep(0.1)
        assert out.getvalue() == "> query videos:  50%|#####     | 1/2\n"  # before the end


def test_without_the_runner_progress_goes_to_the_live_stderr(monkeypatch, capsys):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    with progress.bar(1, "videos") as bar:
        bar.update()
    progress.note("dashboard here")
    err = capsys.readouterr().err
    assert "videos: 100%" in err and err.endswith("dashboard here\n")


def test_under_the_runner_library_logs_go_to_the_kernel_log_not_the_cell(monkeypatch, tmp_path):
    cell = io.StringIO()  # what ipykernel puts in sys.stderr: the page
    logger = logging.getLogger("storyhash-test-logs")
    handler = logging.StreamHandler(cell)
    logger.addHandler(handler)
    try:
        monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
        progress.logs_off_the_page(logger.name)
        assert handler.stream is cell  # a live session: the reader sees them
        monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "p.progress"))
        progress.logs_off_the_page(logger.name)
        assert handler.stream is sys.__stderr__  # under storyhash study: the notebook's log
    finally:
        logger.removeHandler(handler)
