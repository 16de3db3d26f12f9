"""Benchmark: videos/s of the per-video pipeline on the real corpus with 1 and 2 Dask workers.

Each run extracts, from an empty temporary cache, what notebook 01 computes for every
reference of ``shared/data/manifest.csv`` (121 videos): MobileNetV2 features at 2 fps, the
PDQ hash and the flip variants notebook 08 compares, and flow tracks at 6 fps, one decode per
video (``pipeline.process_videos``). Workers are single-threaded processes on one machine,
as the study runs them. Writes a JSON record.

    python bench/scale.py [--workers 1 2] [--collection COL] [--out bench/results/scale.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from record import machine, write_record

from storyhash_core.backbones import BackboneSpec
from storyhash_core.cache import ArtifactCache
from storyhash_core.corpus import load_manifest
from storyhash_core.parallel import ClusterConfig, dask_client
from storyhash_core.params import StudyParams, resolve_path
from storyhash_core.pipeline import process_videos
from storyhash_core.stages.inputs import flip_outputs, hash_outputs

MOBILENET = "${STORYHASH_SHARED}/models/mobilenetv2-imagenet-embed.onnx"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--manifest", default="${STORYHASH_SHARED}/data/manifest.csv")
    p.add_argument("--collection", default=None, help="only this collection (default: every video)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", default="bench/results/scale.json")
    args = p.parse_args()

    videos = [
        v
        for v in load_manifest(resolve_path(args.manifest))
        if args.collection in (None, v.collection)
    ]
    items = {v.video_id: (v.path, v.fps) for v in videos}
    params = StudyParams()
    backbone = BackboneSpec(name="mobilenetv2-onnx", weights=str(resolve_path(MOBILENET)))
    outputs = [(backbone, ""), *hash_outputs(params), *flip_outputs(params, backbone)]
    record: dict = {
        "benchmark": "scale",
        "videos": len(videos),
        "outputs": [f"{b.name}{':' + v if v else ''}" for b, v in outputs],
        "tracker": params.motion.tracker.model_dump(),
        "runs": [],
    }
    for workers in args.workers:
        with (
            tempfile.TemporaryDirectory() as tmp,
            dask_client(ClusterConfig(n_workers=workers)) as client,
        ):
            start = time.perf_counter()
            done, failed = process_videos(
                client,
                items,
                params.sampling.fps,
                outputs,
                params.motion.tracker,
                ArtifactCache(tmp),
                f"{workers} worker(s)",
            )
            seconds = time.perf_counter() - start
        record["runs"].append(
            {
                "workers": workers,
                "seconds": round(seconds, 1),
                "failed": len(failed),
                "videos_per_s": round(len(done) / seconds, 3),
            }
        )
        print(record["runs"][-1], flush=True)
    base = record["runs"][0]
    for run in record["runs"]:
        run["speedup"] = round(run["videos_per_s"] / base["videos_per_s"], 2)
    record["machine"] = machine()
    write_record(record, args.out)


if __name__ == "__main__":
    main()
