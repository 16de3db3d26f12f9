"""Every CPU-dependent step of the pipeline, run on other x86 CPUs emulated by qemu-user.

For each CPU model (the host, Haswell: AVX2 without VNNI or AVX-512, Nehalem: SSE4.2 only) a
child process runs under ``qemu-x86_64 -cpu <model>`` and computes, on fixed inputs: the
MobileNetV2 embeddings through onnxruntime's native int8 kernels and through the exact rewrite
(against the int64 NumPy reference of ``storyhash_core/backbones/int8_reference.py``,
computed on the host; the exact path as the study chooses it by its known-answer check, and
each of its kernel choices, u8×s8 and u8×u8, forced); the
decoded RGB frames of an H.264 clip and of a JPEG frame folder; the preprocessed model input;
the flow tracker's tracks; query-by-reference similarities (float32 BLAS, and float64 rounded
to float32) and an HNSW index's rankings and scores on fixed unit vectors; and the bytes of
three ffmpeg transforms (and of ``compress_25`` with x264's macroblock tree, as before it was
turned off), of every hard edit (backgrounds: three other DAVIS clips) and of an x264 encode
by PyAV. It reports which outputs equal the host's bit for bit.

    python bench/cpus.py [--cpus Haswell-v4 Nehalem] [--out bench/results/cpus.json]

Needs ``qemu-user`` (``apt-get install qemu-user``) and ``../shared``. Emulation is slow:
about 5 minutes per CPU model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

SHARED = ROOT.parent / "shared"
ONNX = SHARED / "models" / "mobilenetv2-imagenet-embed.onnx"
CLIP = SHARED / "data" / "clips" / "davis__bear.mp4"
FOLDER = SHARED / "data" / "davis2016-val" / "JPEGImages" / "480p" / "blackswan"
TRANSFORMS = ["compress_25", "rotate_10", "brightness_40"]
BACKGROUNDS = tuple(
    SHARED / "data" / "clips" / f"{n}.mp4"
    for n in ("davis__bear", "davis__bmx-bumps", "davis__dance-jump")
)


def digest(a) -> str:
    data = a if isinstance(a, bytes) else np.ascontiguousarray(a).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def child(work: Path) -> None:
    """Compute every output on this (possibly emulated) CPU into ``work/<cpu>.json``."""
    import onnx
    import onnxruntime as ort

    from storyhash_core.backbones.exact_int8 import exact_graph
    from storyhash_core.backbones.mobilenet import KERNELS, exact_session, preprocess
    from storyhash_core.synthetic import write_mp4
    from storyhash_core.tracking import TrackerSpec, load_tracker
    from storyhash_core.video import sample_frames

    x = np.load(work / "input.npy")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    native = ort.InferenceSession(str(ONNX), options, providers=["CPUExecutionProvider"])
    exact, kernels = exact_session(ONNX)
    out = {
        "native": native.run(["embedding"], {"input": x})[0],
        "exact": exact.run(["embedding"], {"input": x})[0],
    }
    model = onnx.load(str(ONNX))
    for name, signed in KERNELS.items():  # each kernel choice, whether the check takes it or not
        graph = exact_graph(model, signed=signed).SerializeToString()
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        out[f"exact_{name}"] = session.run(["embedding"], {"input": x})[0]
    clip, folder = sample_frames(CLIP, 2.0), sample_frames(FOLDER, 2.0, 24.0)
    record = {
        "exact_kernels": kernels,
        "decode_h264": digest(clip.frames),
        "decode_jpeg": digest(folder.frames),
        "preprocess": digest(np.concatenate([preprocess(clip.frames), preprocess(folder.frames)])),
    }
    s = sample_frames(FOLDER, 6.0, 24.0)
    t = load_tracker(TrackerSpec()).track(s.frames, s.timestamps)
    record["tracks"] = digest(
        np.concatenate([t.centroid.ravel(), t.box.ravel(), t.area, t.object_id])
    )
    from storyhash_core.features import l2_normalize, pool
    from storyhash_core.motion import motion_blocks

    frames = l2_normalize(out["exact"])
    record["l2_and_pooling"] = digest(
        np.concatenate([frames.ravel(), *(pool(frames, m) for m in ("median", "mean", "max"))])
    )
    record["motion_features"] = digest(np.concatenate([b.ravel() for b in motion_blocks([t])]))
    write_mp4(list(clip.frames), 10.0, work / "pyav.mp4")
    record["encode_pyav_x264"] = digest((work / "pyav.mp4").read_bytes())
    vectors = np.load(work / "vectors.npz")
    refs, queries = vectors["refs"], vectors["queries"]
    from storyhash_core.similarity import inner_products

    out["sims_float32"] = queries @ refs.T  # float32 BLAS: kernels chosen per CPU
    out["sims_float64"] = inner_products(queries, refs)  # the study's: float64, rounded to float32
    from storyhash_core.index import IndexSpec, build_index, search

    found = search(build_index(refs, IndexSpec(kind="hnsw")), queries, 10)
    out["hnsw_rows"], out["hnsw_scores"] = found.rows, found.scores
    np.savez(work / "embeddings.npz", **out)
    (work / "record.json").write_text(json.dumps(record))


def run_on(cpu: str, work: Path) -> dict:
    """Run :func:`child` (and ffmpeg) on ``cpu`` ("host": natively); return its outputs."""
    from storyhash_core.transforms import (
        HARD_EDITS,
        PAPER_TRANSFORMS,
        ffmpeg_command,
        hard_transform,
    )

    qemu = [] if cpu == "host" else ["qemu-x86_64", "-cpu", cpu]
    t0 = time.perf_counter()
    subprocess.run(
        [*qemu, sys.executable, __file__, "--child", str(work)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    record = json.loads((work / "record.json").read_text())
    for name in [*TRANSFORMS, "compress_25_with_mbtree"]:
        out = work / f"{name}.mp4"
        command = ffmpeg_command(FOLDER, PAPER_TRANSFORMS[name.removesuffix("_with_mbtree")], out)
        if name.endswith("_with_mbtree"):  # the setting before: x264's macroblock tree on
            command[command.index("-x264-params") + 1] = "threads=1"
        subprocess.run([*qemu, *command], check=True, stderr=subprocess.DEVNULL)
        record[f"ffmpeg_{name}"] = digest(out.read_bytes())
    for name in HARD_EDITS:  # the hard suite, its backgrounds three other clips
        out = work / f"hard_{name}.mp4"
        edit = hard_transform(name, "davis__blackswan")
        command = ffmpeg_command(FOLDER, edit, out, 24.0, BACKGROUNDS[: edit.backgrounds])
        subprocess.run([*qemu, *command], check=True, stderr=subprocess.DEVNULL)
        record[f"ffmpeg_hard_{name}"] = digest(out.read_bytes())
    emb = dict(np.load(work / "embeddings.npz"))
    return {"record": record, "embeddings": emb, "seconds": round(time.perf_counter() - t0, 1)}


def cosine(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [
        round(float(v), 4)
        for v in (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    ]


def speed(frames: int = 64, rounds: int = 5) -> dict:
    """Frames per second of the native and exact sessions on the host, 1 thread, batch 32."""
    import onnxruntime as ort

    from storyhash_core.backbones.mobilenet import exact_session

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    sessions = {
        "native": ort.InferenceSession(str(ONNX), options, providers=["CPUExecutionProvider"]),
        "exact": exact_session(ONNX)[0],
    }
    x = np.random.default_rng(0).normal(size=(32, 3, 224, 224)).astype(np.float32)
    out = {}
    for name, s in sessions.items():
        s.run(["embedding"], {"input": x})
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(frames // 32):
                s.run(["embedding"], {"input": x})
            times.append(time.perf_counter() - t0)
        out[f"{name}_frames_per_s"] = round(frames / float(np.median(times)), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cpus", nargs="+", default=["Haswell-v4", "Nehalem"], help="qemu CPU models"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpus.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child))
    if not shutil.which("qemu-x86_64"):
        sys.exit("bench/cpus.py: qemu-x86_64 not found (apt-get install qemu-user)")
    from record import machine, write_record

    from storyhash_core.backbones.int8_reference import Int8Reference, saturating_frames
    from storyhash_core.backbones.mobilenet import preprocess
    from storyhash_core.video import sample_frames

    bright = np.clip(
        sample_frames(FOLDER, 2.0, 24.0).frames[:2].astype(np.int16) + 102, 0, 255
    ).astype(np.uint8)
    x = np.concatenate([preprocess(saturating_frames()), preprocess(bright)])
    reference = Int8Reference(ONNX).run(x)["embedding"]
    rng = np.random.default_rng(
        0
    )  # 121 references and 798 noisy copies, unit vectors of the fused width
    refs = rng.normal(size=(121, 535)).astype(np.float32)
    queries = refs[rng.integers(0, 121, 798)] + rng.normal(scale=0.5, size=(798, 535)).astype(
        np.float32
    )
    refs, queries = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (refs, queries))
    results = {}
    for cpu in ["host", *args.cpus]:
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "input.npy", x)
            np.savez(Path(tmp) / "vectors.npz", refs=refs, queries=queries)
            print(f"{cpu}: running ...", flush=True)
            results[cpu] = run_on(cpu, Path(tmp))
    host = results["host"]["record"]
    table = {}
    for cpu, r in results.items():
        row = {k: v == host[k] for k, v in r["record"].items()}
        row["exact_kernels"] = r["record"]["exact_kernels"]  # the known-answer check's choice
        for path in ("native", "exact", "exact_u8s8", "exact_u8u8"):
            row[f"{path}_int8_equals_reference"] = bool(
                np.array_equal(r["embeddings"][path], reference)
            )
            row[f"{path}_int8_cosine_to_reference"] = cosine(r["embeddings"][path], reference)
        base = results["host"]["embeddings"]
        for name in ("sims_float32", "sims_float64", "hnsw_scores"):
            row[f"{name}_max_abs_diff_to_host"] = float(
                np.abs(r["embeddings"][name] - base[name]).max()
            )
        row["hnsw_rankings_equal_host"] = bool(
            np.array_equal(r["embeddings"]["hnsw_rows"], base["hnsw_rows"])
        )
        row["seconds"] = r["seconds"]
        table[cpu] = row
    write_record(
        {
            "inputs": "3 saturating test frames + 2 DAVIS blackswan frames brightened by +102"
            " (ffmpeg eq=brightness=0.4); outputs compared with the host's bit for bit",
            "cpus": table,
            "host_speed_1_thread_batch_32": speed(),
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
