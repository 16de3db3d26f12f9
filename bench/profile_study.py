"""Profile of the whole study: where a cold run and a warm run spend their time, per notebook
and per stage. It is what chose the work of the performance issue (``bench/results/``).

``cold`` reads a finished run that started from an empty cache: each notebook's seconds
(``run.json``), each batch of tasks it ran (the last line of every progress bar in
``logs/<notebook>.progress``: what, how many, wall seconds), the per-video steps of notebook
01 by role (``tables/extraction_cost.csv``: decode, the backbone's features, tracking), and
every visual output's embedding and every tracking summed over the run's cache (seconds of
one worker each, from the feature and track files).

``warm`` executes each notebook's code cells in this process under cProfile, on a copy of the
run folder with the warm cache (nothing to extract): seconds per notebook, the import time of
its first cell, and the functions of this package that took the most time.

    python bench/profile_study.py --cold-run DIR --cold-cache DIR [--warm-params F] [--out F]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from record import machine, write_record

from storyhash_core.params import load_params, run_location
from storyhash_core.runner import NOTEBOOKS

PROJECT = Path(__file__).resolve().parents[1]
BAR = re.compile(r"^(?P<desc>.+?): +100%\|.*\| (?P<n>\d+)/\d+ \[(?P<elapsed>[\d:]+)<")


def seconds(clock: str) -> int:
    """tqdm's ``[h:]mm:ss`` as seconds."""
    parts = [int(p) for p in clock.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def batches(progress: Path) -> list[dict]:
    """The finished progress bars of a notebook's log: what, how many tasks, wall seconds."""
    text = progress.read_text(errors="replace").replace("\r", "\n") if progress.is_file() else ""
    found: dict[str, dict] = {}
    for line in text.splitlines():
        if m := BAR.match(line.strip()):
            found[m["desc"]] = {
                "what": m["desc"],
                "tasks": int(m["n"]),
                "seconds": seconds(m["elapsed"]),
            }
    return list(found.values())


def cache_steps(cache: Path) -> dict:
    """Seconds of one worker summed over every feature and track file of ``cache``."""
    visual: dict[int, list[float]] = {}
    for path in (cache / "features").rglob("*.npz"):
        with np.load(path) as z:
            width = z["frames"].shape[1] if z["frames"].ndim == 2 else 0
            visual.setdefault(width, []).extend([float(z["embed_s"]), z["frames"].shape[0]])
    tracking, tracked = 0.0, 0
    for path in (cache / "tracks").rglob("*.npz"):
        with np.load(path) as z:
            if "seconds" in z.files:
                tracking += float(z["seconds"])
                tracked += 1
    return {
        "visual_outputs": {
            f"{width}-D": {
                "files": len(v) // 2,
                "frames": int(sum(v[1::2])),
                "seconds": round(sum(v[0::2]), 1),
            }
            for width, v in sorted(visual.items())
        },
        "tracking": {"videos": tracked, "seconds": round(tracking, 1)},
    }


def cold_profile(run_dir: Path, cache: Path) -> dict:
    record = json.loads((run_dir / "run.json").read_text())
    cost = pd.read_csv(run_dir / "tables" / "extraction_cost.csv")
    steps = cost.groupby("role")[["decode_s", "visual_s", "tracking_s"]].sum().round(1)
    return {
        "notebook_seconds": record["notebook_timings_s"],
        "batches": {nb: batches(run_dir / "logs" / f"{nb}.progress") for nb in NOTEBOOKS},
        "extract_steps_by_role": steps.to_dict("index"),
        "cache_totals": cache_steps(cache),
    }


def code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def warm_profile(params_file: Path, top: int) -> dict:
    """Each notebook's cells in this process under cProfile, on a copy of the params' run."""
    run_dir = run_location(load_params(params_file))[0]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "run"
        shutil.copytree(run_dir, scratch, ignore=shutil.ignore_patterns("notebooks", "logs"))
        for nb in NOTEBOOKS:
            cells = code_cells(PROJECT / "notebooks" / f"{nb}.ipynb")
            env = {"__name__": "__main__"}
            exec(cells[0], env)  # the parameters cell, then the values papermill would inject
            env |= {"params_file": str(params_file), "run_dir": str(scratch)}
            profile, timings = cProfile.Profile(), []
            with contextlib.redirect_stdout(io.StringIO()):
                for cell in cells[1:]:
                    t0 = time.perf_counter()
                    profile.runcall(exec, cell, env)
                    timings.append(round(time.perf_counter() - t0, 2))
            stats = pstats.Stats(profile)
            ours = [
                (f"{Path(f).name}:{name}", round(s[3], 2))
                for (f, _, name), s in stats.stats.items()
                if "storyhash_core" in f
            ]
            out[nb] = {
                "seconds": round(sum(timings), 2),
                "cells": timings,
                "top_cumulative": sorted(ours, key=lambda x: -x[1])[:top],
            }
            print(f"[profile] {nb}: {out[nb]['seconds']} s", file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cold-run", type=Path, help="a run folder rendered from an empty cache")
    p.add_argument("--cold-cache", type=Path, help="the cache that run filled")
    p.add_argument("--warm-params", type=Path, default=PROJECT / "params/real.yaml")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out", default="bench/results/profile_study.json")
    args = p.parse_args()
    record: dict = {"benchmark": "profile_study"}
    if args.cold_run:
        record["cold"] = cold_profile(args.cold_run, args.cold_cache)
    record["warm"] = warm_profile(args.warm_params.resolve(), args.top)
    record["machine"] = machine()
    write_record(record, args.out)


if __name__ == "__main__":
    main()
