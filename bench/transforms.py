"""Benchmark: generating the paper's 14 transforms for every video of a collection.

Runs on an empty, temporary cache (so every query is encoded), through the same Dask
path as the study, and reports query videos per second. Writes a JSON record.

    python bench/transforms.py [--manifest M] [--collection davis] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from record import machine, write_record

from storyhash_core.cache import ArtifactCache
from storyhash_core.corpus import load_manifest
from storyhash_core.parallel import ClusterConfig, dask_client
from storyhash_core.params import resolve_path
from storyhash_core.queries import generate_queries
from storyhash_core.transforms import BASE_PRESET, COMPRESS_PRESET, resolve


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--manifest", default="${STORYHASH_SHARED}/data/manifest.csv")
    p.add_argument("--collection", default="davis", help="videos to transform (default: davis)")
    p.add_argument("--workers", type=int, default=None, help="Dask workers (default: one per core)")
    p.add_argument("--out", default="bench/results/transforms.json")
    args = p.parse_args()

    videos = [
        v for v in load_manifest(resolve_path(args.manifest)) if v.collection == args.collection
    ]
    transforms = resolve("paper")
    with (
        tempfile.TemporaryDirectory() as tmp,
        dask_client(ClusterConfig(n_workers=args.workers)) as client,
    ):
        start = time.perf_counter()
        queries = generate_queries(client, videos, transforms, ArtifactCache(tmp))
        elapsed = time.perf_counter() - start
    failed = [q for q in queries if q.error]
    record = {
        "benchmark": "transforms",
        "videos": len(videos),
        "transforms": len(transforms),
        "queries": len(queries),
        "failed": len(failed),
        "seconds": round(elapsed, 2),
        "videos_per_s": round(len(queries) / elapsed, 3),
        "x264_preset": {"near_lossless": BASE_PRESET, "compress": COMPRESS_PRESET},
        "workers": args.workers or os.cpu_count(),
        "machine": machine(),
    }
    write_record(record, args.out)
    for q in failed:
        print(f"FAILED {q.query_id}: {q.error}")


if __name__ == "__main__":
    main()
