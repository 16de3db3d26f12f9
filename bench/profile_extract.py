"""Profile of visual feature extraction: where a video's seconds go (decode, hash, preprocess,
model).

Two steps, the workload under py-spy, then a summary of the folded stacks:

    py-spy record --format raw -r 200 -o /tmp/extract.folded -- \\
        .venv/bin/python bench/profile_extract.py run [--videos 20] [--repeat 3]
    .venv/bin/python bench/profile_extract.py summarize /tmp/extract.folded

``run`` extracts MobileNetV2 features of the first DAVIS videos of the manifest into a fresh
temporary cache, ``repeat`` times, in this one process (no Dask), so the profile is of the
per-video code alone. ``summarize`` prints the share of samples spent inside the named
functions (inclusive) and in the hottest leaf frames, and writes them as JSON
(``--out``, default ``bench/results/profile_extract.json``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

STAGES = {  # function name in the stacks -> what it is
    "process_video": "extraction of one video (everything below)",
    "content_digest": "hashing the source for the cache key (once per file: ArtifactCache.digest)",
    "sample_frames": "decoding the frames at 2 fps",
    "preprocess": "resize, centre crop, normalise",
    "forward": "the ONNX model",
    "save_features": "writing the cache entry",
}


def run(videos: int, repeat: int) -> None:
    from storyhash_core.backbones import BackboneSpec
    from storyhash_core.corpus import load_manifest
    from storyhash_core.params import resolve_path
    from storyhash_core.pipeline import VideoJob, process_video

    chosen = [
        v
        for v in load_manifest(resolve_path("${STORYHASH_SHARED}/data/manifest.csv"))
        if v.collection == "davis"
    ][:videos]
    spec = BackboneSpec(
        name="mobilenetv2-onnx",
        weights=str(resolve_path("${STORYHASH_SHARED}/models/mobilenetv2-imagenet-embed.onnx")),
    )
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            for v in chosen:
                process_video(VideoJob(v.path, v.fps, 2.0, ((spec, ""),)), cache)


def summarize(folded: Path) -> dict:
    """Inclusive share of samples per stage function and the top leaf frames."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        names = [
            frame.split(" (")[0].rsplit(".", 1)[-1] for frame in stack.split(";")
        ]  # bare function names
        for name in set(names):
            inclusive[name] += n
        leaves[names[-1]] += n
    extraction = inclusive["process_video"] or 1
    return {
        "samples": total,
        "share_of_extraction": {name: round(inclusive[name] / extraction, 3) for name in STAGES},
        "top_leaves_share_of_all": {k: round(n / total, 3) for k, n in leaves.most_common(8)},
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="the workload to profile")
    r.add_argument("--videos", type=int, default=20)
    r.add_argument("--repeat", type=int, default=3)
    s = sub.add_parser("summarize", help="summarise a py-spy raw (folded) profile")
    s.add_argument("folded", type=Path)
    s.add_argument("--out", type=Path, default=Path("bench/results/profile_extract.json"))
    args = p.parse_args()
    if args.command == "run":
        run(args.videos, args.repeat)
        return
    summary = summarize(args.folded)
    print(json.dumps(summary, indent=2))
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
