"""Runs the notebook sequence headlessly with papermill and renders each notebook to HTML.

``run_notebooks(params_file)`` executes ``notebooks/01_extract.ipynb`` …
``08_baselines_mitigation.ipynb``
in order into ``<run_dir>/notebooks/``, each with the parameters ``params_file`` and
``run_dir``, renders each to ``.html`` beside it, and records per-notebook wall times in
``run.json`` after each notebook, a failing one included (a partial rerun updates only its
notebooks' times). A failing cell stops the run with the notebook and the cell in the error; the
partly executed notebook is kept for inspection. With ``output_dir`` at an fsspec URL the run
folder is written locally and uploaded after every notebook, the failing one included.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .cache import atomic_path, fetch_tree, publish_tree
from .errors import StoryHashError
from .params import PROJECT_ROOT, load_params, run_location

NOTEBOOKS = (
    "01_extract",
    "02_fuse",
    "03_index",
    "04_robustness",
    "05_ablation",
    "06_failure_analysis",
    "07_figures",
    "08_baselines_mitigation",
)


class NotebookError(StoryHashError):
    """A cell of a notebook in the sequence failed."""


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


def run_notebooks(
    params_file: str | Path,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    source: Path = PROJECT_ROOT / "notebooks",
) -> Path:
    """Execute the sequence for ``params_file``; return the run folder."""
    import papermill as pm

    params_file = Path(params_file).resolve()
    params = load_params(params_file)
    run_dir, url = run_location(params)
    if url and not (run_dir / "run.json").is_file() and fetch_tree(url, run_dir):
        print(f"[storyhash] continuing the run at {url} (downloaded to {run_dir})", flush=True)
    rendered = run_dir / "notebooks"
    rendered.mkdir(parents=True, exist_ok=True)
    for name in notebooks:
        target = rendered / f"{name}.ipynb"
        print(f"[storyhash] {name} -> {target}", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(source / f"{name}.ipynb"),
                str(target),
                cwd=str(source),
                parameters={"params_file": str(params_file), "run_dir": str(run_dir)},
                progress_bar=True,
                log_output=False,
                kernel_name="python3",
            )
        except pm.PapermillExecutionError as exc:
            raise NotebookError(
                f"notebook {target} failed in cell {exc.exec_count}: {exc.ename}: "
                f"{exc.evalue.splitlines()[0] if exc.evalue else ''}"
            ) from None
        finally:
            record_timing(run_dir / "run.json", name, time.perf_counter() - t0)
            if target.is_file():
                render_html(target)
            if url:
                publish_tree(run_dir, url)
    if url:
        print(f"[storyhash] uploaded {run_dir} to {url}", flush=True)
    return run_dir
