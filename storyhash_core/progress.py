"""Where progress goes: in a live session (JupyterLab, a script) into the cell or terminal; in a
notebook that ``storyhash study`` executes, to the terminal that runs the study, never into the
rendered page (and library log lines to the notebook's log file).

The runner names a file in ``STORYHASH_PROGRESS`` for each kernel; progress bars and live-only
notes (the Dask dashboard's address) are written there, and :func:`relay` copies them to the
terminal while the notebook runs."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tqdm import tqdm

PROGRESS_ENV = "STORYHASH_PROGRESS"
RELAY_EVERY_S = 30.0  # a terminal that is not a tty (a CI log) gets a status line this often


_opened: dict[str, IO] = {}


def _channel() -> tuple[IO, bool]:
    """The stream for progress and whether it is the runner's file (else the live stderr)."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return sys.stderr, False
    if path not in _opened:
        _opened[path] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    return _opened[path], True


def bar(total: int, desc: str, unit: str = "video") -> tqdm:
    """A progress bar for ``total`` items: redrawn often in a terminal, every 10 s into a
    notebook cell, every second into the runner's file."""
    stream, relayed = _channel()
    often = relayed or stream.isatty()
    return tqdm(total=total, desc=desc, unit=unit, file=stream, mininterval=1 if often else 10)


def logs_off_the_page(*names: str) -> None:
    """When ``storyhash study`` executes the notebook, the console handlers of the loggers
    ``names`` write to the kernel's own stderr (``<run>/logs/<notebook>.log``) instead of the
    cell: a worker's heartbeat traceback at shutdown is a log line, not part of the page. In
    a live session they stay where the reader is."""
    if not os.environ.get(PROGRESS_ENV):
        return
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler:
                handler.setStream(sys.__stderr__)


def note(line: str) -> None:
    """A line only a live reader can use (a dashboard address): printed in a live session,
    sent to the runner's terminal when ``storyhash study`` executes the notebook."""
    print(line, file=_channel()[0], flush=True)


@contextmanager
def relay(path: Path, prefix: str, out: IO | None = None) -> Iterator[dict[str, str]]:
    """While the block runs, copy what kernels write to ``path`` to ``out`` (stderr), each line
    after ``prefix``; the block starts its kernels with the environment it is given. A tty
    gets the latest state in place twice a second; other streams get finished lines, the
    latest status every :data:`RELAY_EVERY_S` seconds, and the last state when the block
    ends."""
    out = out or sys.stderr
    path.write_text("")
    env = {PROGRESS_ENV: str(path)}
    stop = threading.Event()
    live = out.isatty()

    def copy() -> None:
        offset, pending, last, shown = 0, "", time.monotonic(), ""
        while True:
            done = stop.wait(0.5)
            with open(path, encoding="utf-8", errors="replace", newline="") as f:
                f.seek(offset)
                text = f.read()
                offset = f.tell()
            pending += text
            *finished, pending = pending.replace("\r\n", "\n").split("\n")
            for line in finished:
                status = line.rsplit("\r", 1)[-1].strip()
                if status:
                    out.write(("\r\x1b[K" if live else "") + f"{prefix}{status}\n")
                    shown = ""
            current = pending.rsplit("\r", 1)[-1].strip()
            due = live or done or time.monotonic() - last >= RELAY_EVERY_S  # done: the last state
            if current and current != shown and due:
                out.write(f"\r\x1b[K{prefix}{current}" if live else f"{prefix}{current}\n")
                last, shown = time.monotonic(), current
            out.flush()
            if done:
                if live and shown:
                    out.write("\n")
                return

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    try:
        yield env
    finally:
        stop.set()
        thread.join()
