"""Benchmark: per-video throughput of the study's stages on real videos, with peak memory.

Each stage runs on the same sample of corpus videos (default: 20 DAVIS videos of
``shared/data/manifest.csv``) in a fresh child process, one after another, so its peak
resident memory (``ru_maxrss`` of that process) is its own:

- ``decode``: frames/s of sampling at 2 fps (seeking past gaps, converting only the chosen
  frames) against decoding and converting every frame; and the study's shared decode (2 fps
  for the visual features and 6 fps for tracking from one pass) against two passes;
- ``embed_<backbone>``: frames/s of the embedding pipeline (``features.embed_frames``:
  preprocess + model + L2, from decoded frames) against the bare model's forward pass on
  already preprocessed batches of the same size (``ratio`` = pipeline / bare: the pipeline's
  overhead; the two are timed alternately and the medians over rounds compared), and of
  decode + pipeline (``with_decode``), for MobileNetV2 (ONNX, the real weights) and CLIP
  ViT-B/32 (randomly initialised: the same compute as the real model);
- ``tracking``: seconds per video of the flow tracker (decode excluded) and the motion features.

Threads: one per process (``backbone.threads`` default, one decoder thread), as each Dask
worker runs; the study runs one such worker per core.

    python bench/throughput.py [--manifest M] [--collection davis] [--videos 20] [--out F]
                               [--rounds 10] [--stages decode,embed_mobilenet,embed_clip,tracking]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from record import machine, write_record

from storyhash_core.backbones import BackboneSpec, load_backbone
from storyhash_core.corpus import Video, load_manifest
from storyhash_core.features import embed_frames
from storyhash_core.params import resolve_path
from storyhash_core.video import sample_frames, sample_rates

MOBILENET = "${STORYHASH_SHARED}/models/mobilenetv2-imagenet-embed.onnx"


def decode(videos: list[Video]) -> dict:
    """Frames/s sampling at 2 fps vs decoding every frame."""
    out = {}
    for name, fps in (("sampled_2fps", 2.0), ("every_frame", None)):
        t0, frames = time.perf_counter(), 0
        for v in videos:
            frames += len(sample_frames(v.path, fps, v.fps))
        seconds = time.perf_counter() - t0
        out[name] = {
            "frames": frames,
            "seconds": round(seconds, 3),
            "frames_per_s": round(frames / seconds, 2),
            "videos_per_s": round(len(videos) / seconds, 3),
        }
    out["speedup_videos_per_s"] = round(
        out["sampled_2fps"]["videos_per_s"] / out["every_frame"]["videos_per_s"], 2
    )
    t0 = time.perf_counter()
    for v in videos:
        sample_frames(v.path, 2.0, v.fps), sample_frames(v.path, 6.0, v.fps)
    two = time.perf_counter() - t0
    t0 = time.perf_counter()
    for v in videos:
        sample_rates(v.path, [2.0, 6.0], v.fps)
    one = time.perf_counter() - t0
    out["visual_and_tracking_frames"] = {
        "two_decodes_s_per_video": round(two / len(videos), 4),
        "one_decode_s_per_video": round(one / len(videos), 4),
        "speedup": round(two / one, 2),
    }
    return out


def clip_random_weights(folder: Path) -> str:
    """A randomly initialised CLIP ViT-B/32 image tower (the real shapes) saved to ``folder``."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        projection_dim=512,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ).save_pretrained(folder)
    return str(folder)


def embed(videos: list[Video], spec: BackboneSpec, rounds: int = 10) -> dict:
    """Frames/s of the embedding pipeline (from decoded frames, and with the decode) vs the
    bare model's forward pass on the same batches, each preprocessed just before its (timed)
    forward pass so that both sides read their input from a warm cache. The two are timed
    alternately, ``rounds`` times, and each figure is the median over rounds: the speed of a
    shared VM drifts, and alternating makes the drift hit both sides of the ratio alike."""
    model = load_backbone(spec)
    embed_frames(sample_frames(videos[0].path, 2.0, videos[0].fps), spec)  # warm-up, not timed
    decoded, decode_s = [], 0.0
    for v in videos:
        t0 = time.perf_counter()
        decoded.append(sample_frames(v.path, 2.0, v.fps))
        decode_s += time.perf_counter() - t0
    chunks = _chunks([s.frames for s in decoded], spec.batch_size)
    pipeline_s, bare_s = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for sampled in decoded:
            embed_frames(sampled, spec)
        pipeline_s.append(time.perf_counter() - t0)
        bare_s.append(0.0)
        for chunk in chunks:
            batch = model.preprocess(chunk)
            t0 = time.perf_counter()
            model.forward(batch)
            bare_s[-1] += time.perf_counter() - t0
    frames = sum(len(s) for s in decoded)
    pipeline_t, bare_t = float(np.median(pipeline_s)), float(np.median(bare_s))
    with_decode = frames / (pipeline_t + decode_s)
    return {
        "frames": frames,
        "batch_size": spec.batch_size,
        "rounds": rounds,
        "pipeline_frames_per_s": round(frames / pipeline_t, 2),
        "bare_model_frames_per_s": round(frames / bare_t, 2),
        "ratio": round(bare_t / pipeline_t, 3),
        "ratio_per_round": [round(b / p, 3) for b, p in zip(bare_s, pipeline_s, strict=True)],
        "with_decode_frames_per_s": round(with_decode, 2),
        "with_decode_ratio": round(with_decode * bare_t / frames, 3),
    }


def _chunks(batches: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Each video's frames in batches of ``size``, as the pipeline sees them."""
    return [b[i : i + size] for b in batches for i in range(0, len(b), size)]


def tracking(videos: list[Video]) -> dict:
    """Seconds per video of the flow tracker on frames decoded at 6 fps, and of motion features."""
    from storyhash_core.motion import motion_blocks
    from storyhash_core.tracking import TrackerSpec, track_frames

    spec = TrackerSpec()
    track_s, feature_s = [], []
    for v in videos:
        tracks, seconds = track_frames(sample_frames(v.path, spec.fps, v.fps), spec)
        track_s.append(seconds)
        t0 = time.perf_counter()
        motion_blocks([tracks])
        feature_s.append(time.perf_counter() - t0)
    return {
        "videos": len(videos),
        "tracking_s_per_video_median": round(float(np.median(track_s)), 3),
        "features_s_per_video_median": round(float(np.median(feature_s)), 4),
    }


def _child(stage: str, videos: list[Video], args: dict, queue: mp.Queue) -> None:
    result = STAGES[stage](videos, **args)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    queue.put(result)


def run_isolated(stage: str, videos: list[Video], **args) -> dict:
    """Run one stage in a fresh process and return its figures with its peak memory."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(stage, videos, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


STAGES = {"decode": decode, "embed": embed, "tracking": tracking}
RUNS = {  # --stages name: (function in STAGES, key in the JSON record)
    "decode": ("decode", "decode"),
    "embed_mobilenet": ("embed", "embed_mobilenetv2_onnx"),
    "embed_clip": ("embed", "embed_clip_vit_b32_random"),
    "tracking": ("tracking", "tracking"),
}


def stage_args(stage: str, tmp: Path, rounds: int) -> dict:
    """The arguments of a stage: the backbone and the rounds for the two embedding stages."""
    if stage == "embed_mobilenet":
        return {
            "spec": BackboneSpec(name="mobilenetv2-onnx", weights=str(resolve_path(MOBILENET))),
            "rounds": rounds,
        }
    if stage == "embed_clip":
        return {
            "spec": BackboneSpec(name="clip", weights=clip_random_weights(tmp)),
            "rounds": rounds,
        }
    return {}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--manifest", default="${STORYHASH_SHARED}/data/manifest.csv")
    p.add_argument("--collection", default="davis")
    p.add_argument(
        "--videos", type=int, default=20, help="videos sampled from the collection (default 20)"
    )
    p.add_argument("--out", default="bench/results/throughput.json")
    p.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="alternating timing rounds of the embed stages (default 10)",
    )
    p.add_argument(
        "--stages", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}"
    )
    args = p.parse_args()
    stages = args.stages.split(",")
    if unknown := set(stages) - set(RUNS):
        p.error(f"unknown stage(s) {','.join(sorted(unknown))}; choose from {','.join(RUNS)}")

    videos = [
        v for v in load_manifest(resolve_path(args.manifest)) if v.collection == args.collection
    ]
    videos = videos[:: max(1, len(videos) // args.videos)][: args.videos]
    record: dict = {"benchmark": "throughput", "videos": len(videos), "collection": args.collection}
    print(f"{len(videos)} videos; stages run one at a time, each in a fresh process", flush=True)
    for stage in stages:
        function, key = RUNS[stage]
        with tempfile.TemporaryDirectory() as tmp:
            record[key] = run_isolated(
                function, videos, **stage_args(stage, Path(tmp), args.rounds)
            )
        print(stage, record[key], flush=True)
    record["machine"] = machine()
    write_record(record, args.out)


if __name__ == "__main__":
    main()
