"""Runs the notebook sequence headlessly with papermill and renders each notebook to HTML.

``run_notebooks(params_file)`` executes ``notebooks/01_extract.ipynb`` …
``10_partial_copies.ipynb``
in order into ``<run_dir>/notebooks/``, each with the parameters ``params_file`` and
``run_dir``, renders each to ``.html`` beside it, and records per-notebook wall times in
``run.json`` after each notebook, a failing one included (a partial rerun updates only its
notebooks' times). A failing cell stops the run with the notebook and the cell in the error; the
partly executed notebook is kept for inspection. With ``output_dir`` at an fsspec URL the run
folder is written locally and uploaded after every notebook, the failing one included.

Before the first kernel starts, :func:`~storyhash_core.preflight.preflight` checks the folders
and the corpus. Each kernel's own output (and its Dask workers') goes to
``<run_dir>/logs/<notebook>.log``, not the terminal. Ctrl-C interrupts the running cell, so the
kernel closes its cluster and stops; the run ends with one line saying where.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import pandas as pd
import psutil

from .cache import atomic_path, fetch_tree, publish_tree
from .errors import Interrupted, StoryHashError
from .params import PROJECT_ROOT, load_params, portable, run_location
from .preflight import check_writable, preflight
from .progress import relay

NOTEBOOKS = (
    "01_extract",
    "02_fuse",
    "03_index",
    "04_robustness",
    "05_ablation",
    "06_failure_analysis",
    "07_figures",
    "08_baselines_mitigation",
    "09_hard_suite",
    "10_partial_copies",
)


RESUME = "the cache keeps finished work, so the same command resumes"


class NotebookError(StoryHashError):
    """A cell of a notebook in the sequence failed."""


def portable_metadata(notebook: Path) -> None:
    """Papermill's record of where the notebook was executed from and to, made portable
    (project-relative), so a committed run names no machine's folders."""
    import nbformat

    data = nbformat.read(notebook, as_version=nbformat.NO_CONVERT)
    record = data.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if record.get(key):
            record[key] = portable(record[key])
    with atomic_path(notebook) as tmp:
        nbformat.write(data, tmp)


def render_html(notebook: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def record_timing(record_path: Path, notebook: str, seconds: float) -> None:
    """Set ``notebook``'s wall time in ``run.json`` (atomically), keeping the other notebooks'."""
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    record["notebook_timings_s"] = record.get("notebook_timings_s", {}) | {
        notebook: round(seconds, 2)
    }
    record["wall_time_s"] = round(sum(record["notebook_timings_s"].values()), 2)
    with atomic_path(record_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))


@contextmanager
def interrupts_to_kernel() -> Iterator[threading.Event]:
    """While the block runs, Ctrl-C interrupts the kernel's cell (which then closes its Dask
    cluster and fails as a cell does) instead of tearing papermill down mid-message, and sets
    the event it yields: a kernel starting up or between cells ignores the signal, so the run
    stops after its notebook. A second Ctrl-C interrupts this process at once."""
    pressed = threading.Event()

    def forward(signum, frame) -> None:
        signal.signal(signal.SIGINT, previous)
        pressed.set()
        for kernel in psutil.Process().children():
            with suppress(psutil.Error):
                kernel.send_signal(signal.SIGINT)
        os.write(2, b"\n[storyhash] stopping (Ctrl-C again: at once)\n")  # safe mid-print

    previous = signal.signal(signal.SIGINT, forward)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def logged_kernel(log: IO, env: dict[str, str]) -> type:
    """A kernel manager whose kernel runs with ``env`` added to this process's environment and
    writes its own stdout and stderr (and its Dask workers') to ``log``, not to the terminal:
    asyncio's notes on a kernel shut down mid-task, worker messages."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw):
            env_ = os.environ | (kw.get("env") or {}) | env
            return await super()._async_pre_start_kernel(
                **kw | {"stdout": log, "stderr": log, "env": env_}
            )

    return LoggedKernelManager


def report_failures(table: Path, since: float) -> None:
    """One line for the videos a notebook recorded as failed (``table`` written after ``since``)."""
    if table.is_file() and table.stat().st_mtime > since:
        failed = len(pd.read_csv(table))
        if failed:
            print(f"[storyhash] {failed} video(s) failed; their errors are in {table}", flush=True)


def scratch_copy(run_dir: Path, into: Path) -> None:
    """Start ``into`` as a copy of the run at ``run_dir`` (its tables, artifacts, indexes,
    figures and record; not its pages or logs), unless ``into`` already holds a run. ``into``
    may not be the run, lie inside it, or hold it."""
    if into == run_dir or into.is_relative_to(run_dir) or run_dir.is_relative_to(into):
        raise StoryHashError(
            f"--into {portable(into)} overlaps the run {portable(run_dir)} it would copy:"
            " choose a folder beside it, e.g. outputs/scratch"
        )
    check_writable(into, "scratch folder", "--into")
    if (into / "run.json").is_file():
        print(f"[storyhash] continuing the scratch run in {portable(into)}", flush=True)
        return
    if into.exists() and any(into.iterdir()):
        raise StoryHashError(f"{into} is not empty and holds no run: choose a new --into folder")
    if (run_dir / "run.json").is_file():
        shutil.copytree(
            run_dir, into, ignore=shutil.ignore_patterns("notebooks", "logs"), dirs_exist_ok=True
        )
        print(
            f"[storyhash] copied {portable(run_dir)} to {portable(into)}; the run there stays"
            " as it is",
            flush=True,
        )


def run_notebooks(
    params_file: str | Path,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    source: Path = PROJECT_ROOT / "notebooks",
    into: Path | None = None,
) -> Path:
    """Execute the sequence for ``params_file``; return the run folder. With ``into``, the
    notebooks run in that folder, started as a copy of the params' run (which is left
    untouched), with the params' cache."""
    params_file = Path(params_file).resolve()
    params = load_params(params_file)
    swept = preflight(params)
    if swept:
        print(f"[storyhash] removed {swept} temporary file(s) of runs killed a day or more ago")
    run_dir, url = run_location(params)
    if into is not None:
        into = into.resolve()
        scratch_copy(run_dir, into)
        run_dir, url = into, None
    if url and not (run_dir / "run.json").is_file() and fetch_tree(url, run_dir):
        print(f"[storyhash] continuing the run at {url} (downloaded to {run_dir})", flush=True)
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    with interrupts_to_kernel() as pressed:
        for name in notebooks:
            try:
                _run_one(name, source, params_file, run_dir, url)
            except Exception as exc:  # e.g. a kernel Ctrl-C killed as it started, a cancelled task
                if pressed.is_set() and not isinstance(exc, Interrupted):
                    raise Interrupted(f"stopped in {name}; {RESUME}") from None
                raise
            if pressed.is_set() and name != notebooks[-1]:
                raise Interrupted(f"stopped after {name}; {RESUME}")
    if url:
        print(f"[storyhash] uploaded {run_dir} to {url}", flush=True)
    return run_dir


def _from_notebooks(path: Path, source: Path) -> str:
    """``path`` as the injected parameters cell shows it: relative to the notebooks' folder
    (their working directory) inside the project, so a rendered page names no machine's
    folders; absolute elsewhere."""
    inside = path.resolve().is_relative_to(PROJECT_ROOT)
    return os.path.relpath(path, source) if inside else str(path)


def _run_one(name: str, source: Path, params_file: Path, run_dir: Path, url: str | None):
    """Execute one notebook of the sequence into ``run_dir``, render it, record its time."""
    import papermill as pm

    target = run_dir / "notebooks" / f"{name}.ipynb"
    log = run_dir / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    print(f"[storyhash] {name} -> {portable(target)}", flush=True)
    t0, started = time.perf_counter(), time.time()
    try:
        with (
            open(log, "w") as kernel_log,
            relay(log.with_suffix(".progress"), f"[storyhash] {name} · ") as env,
        ):
            pm.execute_notebook(
                str(source / f"{name}.ipynb"),
                str(target),
                cwd=str(source),
                parameters={
                    "params_file": _from_notebooks(params_file, source),
                    "run_dir": _from_notebooks(run_dir, source),
                },
                progress_bar=False,  # the stages' own progress is relayed instead
                log_output=False,
                kernel_name="python3",
                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no TCP warning
                kernel_manager_class=logged_kernel(kernel_log, env),
            )
        report_failures(run_dir / "tables" / "failed_videos.csv", started)
    except pm.PapermillExecutionError as exc:
        if exc.ename == "KeyboardInterrupt":
            raise Interrupted(f"stopped in {name}, cell {exc.exec_count}; {RESUME}") from None
        raise NotebookError(
            f"notebook {target} failed in cell {exc.exec_count}: {exc.ename}: "
            f"{exc.evalue.splitlines()[0] if exc.evalue else ''} (kernel log: {log})"
        ) from None
    except KeyboardInterrupt:
        raise Interrupted(f"stopped in {name}; {RESUME}") from None
    finally:
        seconds = time.perf_counter() - t0
        record_timing(run_dir / "run.json", name, seconds)
        print(f"[storyhash] {name} took {seconds:.0f} s", flush=True)
        if target.is_file():
            portable_metadata(target)
            render_html(target)
        if url:
            publish_tree(run_dir, url)
