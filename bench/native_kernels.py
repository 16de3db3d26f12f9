"""Benchmark: onnxruntime's native int8 kernels against the exact rewrite on real frames.

Could the study run the native kernels (several times faster) on CPUs with VNNI, where they
do not saturate, and the exact rewrite elsewhere, for the same bytes? This checks it on the
corpus itself: every 2 fps frame of the reference videos (and of cached query videos,
``--queries``), through every frame variant the study embeds (flips, rotations, regions),
embedded by both sessions and compared byte for byte, each differing frame listed with its
cosine to the exact embedding; and each session's speed (1 thread).

    python bench/native_kernels.py [--queries 300] [--out bench/results/native_kernels.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from record import machine, write_record

from storyhash_core.augment import apply_variant
from storyhash_core.backbones.mobilenet import exact_session, preprocess
from storyhash_core.corpus import load_manifest
from storyhash_core.params import load_params, resolve_path
from storyhash_core.video import sample_frames

PROJECT = Path(__file__).resolve().parents[1]


def native_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def embedding(session, batch: np.ndarray) -> np.ndarray:
    return session.run(["embedding"], {"input": batch})[0]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--params", default=PROJECT / "params/real.yaml")
    p.add_argument("--queries", type=int, default=300, help="cached query videos, evenly drawn")
    p.add_argument("--out", default="bench/results/native_kernels.json")
    args = p.parse_args()
    params = load_params(args.params)
    model = resolve_path(params.backbone.weights)
    m = params.mitigation
    variants = ["", *m.flips, *m.rotations, *m.regions]
    refs = [(v.path, v.fps, variants) for v in load_manifest(resolve_path(params.corpus.path))]
    queries = sorted((resolve_path(params.cache_dir) / "queries").rglob("*.mp4"))
    step = max(1, len(queries) // max(1, args.queries))
    videos = refs + [(q, 24.0, [""]) for q in queries[::step][: args.queries]]
    sessions = {"native": native_session(model), "exact": exact_session(model)[0]}
    seconds = dict.fromkeys(sessions, 0.0)
    frames, differing = 0, []
    for i, (path, fps, asked) in enumerate(videos):
        decoded = sample_frames(path, params.sampling.fps, fps).frames
        for variant in asked:
            x = preprocess(apply_variant(decoded, variant) if variant else decoded)
            out = {}
            for name, session in sessions.items():
                t0 = time.perf_counter()
                out[name] = np.concatenate(
                    [embedding(session, x[j : j + 32]) for j in range(0, len(x), 32)]
                )
                seconds[name] += time.perf_counter() - t0
            frames += len(x)
            a, b = out["native"], out["exact"]
            for j in np.flatnonzero((a != b).any(axis=1)):
                cosine = a[j] @ b[j] / np.linalg.norm(a[j]) / np.linalg.norm(b[j])
                differing.append(
                    {
                        "video": path.name,
                        "variant": variant,
                        "frame": int(j),
                        "elements": int((a[j] != b[j]).sum()),
                        "cosine": round(float(cosine), 4),
                    }
                )
        print(
            f"[bench] {i + 1}/{len(videos)} videos, {frames} frames, {len(differing)} differ",
            end="\r",
        )
    print()
    write_record(
        {
            "benchmark": "native_kernels",
            "videos": len(videos),
            "references_with_every_variant": len(refs),
            "variants": variants,
            "frames_compared": frames,
            "frames_differing": len(differing),
            "differing": differing,
            "frames_per_s": {k: round(frames / s, 1) for k, s in seconds.items()},
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
