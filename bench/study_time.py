"""Benchmark: wall time and peak memory of the whole study (every notebook), cold and warm.

Runs ``storyhash study`` three times for a params file (default ``params/real.yaml``): first
from an empty cache (``cold``), then on the cache the first run filled (``warm``: each stage's
results restored, :mod:`storyhash_core.stages.memo`), then on that cache with ``memo: false``
(``warm_recomputed``: every stage recomputed from the cached features and tracks). Each run
writes to a fresh temporary output folder; ``--cache`` (default: a temporary folder, deleted
afterwards) must be empty or absent, so the first run is truly cold. Per notebook it records the
seconds (``run.json``) and the peak of the summed resident memory of the study's process tree
(the papermill kernel and its Dask workers, sampled every 0.5 s; shared pages count once per
process, so this is an upper bound). Beside them it records the commit measured and, so a slower
day shows as the machine's and not the code's, the bare model's and the decoder's speed on 8
DAVIS videos (``bench/throughput.py``'s measurements). Writes a JSON record.

    python bench/study_time.py [--params params/real.yaml] [--cache DIR] [--keep DIR] [--out F]

``--keep DIR`` keeps the runs' folders (``DIR/cold``, ``DIR/warm``, ``DIR/warm_recomputed``)
instead of deleting them, e.g. to publish a run's pages as ``outputs/real``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml
from record import machine, write_record
from throughput import run_isolated, stage_args

from storyhash_core.corpus import load_manifest
from storyhash_core.params import load_params, resolve_path


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass  # ended between listing and reading
    return total


def run_study(params_file: Path) -> dict:
    """One ``storyhash study`` run: wall time, and seconds and peak memory per notebook."""
    current, peaks = ["setup"], {}
    proc = subprocess.Popen(
        [sys.executable, "-m", "storyhash_core.cli", "study", "--params", str(params_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def follow() -> None:  # the runner prints "[storyhash] <notebook> -> <path>" as each starts
        for line in proc.stdout:
            if line.startswith("[storyhash] "):
                current[0] = line.split()[1]
            sys.stdout.write(line)

    reader = threading.Thread(target=follow, daemon=True)
    t0 = time.perf_counter()
    reader.start()
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peaks[current[0]] = max(peaks.get(current[0], 0), tree_rss(watched))
        except psutil.Error:
            pass
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"storyhash study failed (exit {proc.returncode}); see the output above")
    params = load_params(params_file)
    record = json.loads(
        (resolve_path(params.output_dir) / params.run_name / "run.json").read_text()
    )
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(max(peaks.values(), default=0) / 2**20),
        "notebooks": {
            name: {"seconds": s, "peak_rss_mb": round(peaks.get(name, 0) / 2**20)}
            for name, s in record["notebook_timings_s"].items()
        },
    }


def commit() -> str:
    """The commit measured, ``+dirty`` if the working tree differs from it."""
    git = ["git", "-C", str(Path(__file__).resolve().parents[1])]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


ROUNDS = 20


def machine_speed(params_file: Path) -> dict:
    """The bare model's frames/s and 2 fps sampling's videos/s on 8 DAVIS videos. The ratio
    is that of the two medians over ``ROUNDS`` alternated rounds: one round's ratio, 53
    frames, moves by ±0.2 on this VM."""
    params = load_params(params_file)
    videos = [v for v in load_manifest(resolve_path(params.corpus.path)) if v.collection == "davis"]
    embed = run_isolated("embed", videos[:8], **stage_args("embed_mobilenet", Path(), ROUNDS))
    decode = run_isolated("decode", videos[:8])
    return {
        "bare_model_frames_per_s": embed["bare_model_frames_per_s"],
        "pipeline_frames_per_s": embed["pipeline_frames_per_s"],
        "pipeline_to_bare_ratio": embed["ratio"],
        "rounds": ROUNDS,
        "ratio_per_round_range": [min(embed["ratio_per_round"]), max(embed["ratio_per_round"])],
        "sampled_2fps_videos_per_s": decode["sampled_2fps"]["videos_per_s"],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--params", default="params/real.yaml")
    p.add_argument(
        "--cache", default=None, help="cache folder, empty or absent (default: a temporary one)"
    )
    p.add_argument("--keep", default=None, help="keep the runs' folders here (DIR/<run>)")
    p.add_argument("--out", default="bench/results/study_time.json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache).resolve() if args.cache else Path(tmp) / "cache"
        if cache.exists() and any(cache.iterdir()):
            raise SystemExit(f"--cache {cache} is not empty: a cold run needs an empty cache")
        runs = Path(args.keep).resolve() if args.keep else Path(tmp)
        record: dict = {"benchmark": "study_time", "params": args.params, "commit": commit()}
        for run, memo in (("cold", True), ("warm", True), ("warm_recomputed", False)):
            params = yaml.safe_load(Path(args.params).read_text())
            params |= {"cache_dir": str(cache), "output_dir": str(runs / run), "memo": memo}
            params_file = Path(tmp) / f"{run}.yaml"
            params_file.write_text(yaml.safe_dump(params))
            print(f"[bench] {run} run", flush=True)
            record[run] = run_study(params_file)
            print(f"[bench] {run}: {record[run]['wall_s']} s", flush=True)
    record["machine_speed"] = machine_speed(Path(args.params))
    record["machine"] = machine()
    write_record(record, args.out)


if __name__ == "__main__":
    main()
