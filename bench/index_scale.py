"""Benchmark: FAISS index scaling, HNSW and IVF-PQ against exact search, at 10k–1M vectors.

For each database size and index kind: build time, index size (bytes of the serialised
index), and for each search setting ANN recall@1 (top-1 equal to the exact top-1),
true-match R@1 and single-query latency (median, P99; queries searched one at a time, as
a service would). Writes a JSON record.

    python bench/index_scale.py [--sizes 10000 100000 1000000] [--run outputs/real]
        [--kinds flat hnsw ivfpq] [--threads 1] [--sigma 0.5] [--out bench/results/index_scale.json]

``ivfpq`` is the study's ``index.kind: ivfpq`` with its defaults (1024 lists, 32-byte codes),
trained on the training sample below; ``ivfpq_rerank`` is the same with ``rerank: 100``: its
top 100 candidates re-scored exactly against the float32 vectors, memory-mapped from a file
written while the database is added (``bytes`` counts the index in memory, ``disk_bytes``
the vectors file).

Data, derived from a real run (``make study PARAMS=params/real.yaml``) at the paper's fused
width 535 = 512 visual + 15 action + 8 graph:

1. A PCA (centred, by SVD) to 512 dimensions is fitted to the references' per-frame
   embeddings; pooled visual blocks and frames are projected and L2-normalised, then fused
   with the study's ``fuse(blocks, "fusion")``.
2. A database of N vectors holds the real references plus N - refs synthetic distractors,
   each L2(seed + sigma * g): seed = a random reference *frame* (projected) fused with a
   random reference's action and graph blocks; g Gaussian with the per-dimension std of the
   real reference vectors. sigma (default 0.5) is set so that the mean nearest-neighbour
   cosine among as many distractors as references matches the references' own; both are
   recorded under ``data.realism``. Distractor chunk k draws from ``default_rng([0, k])``.
3. Queries are the run's real query vectors, projected the same way. ``true_match_r1`` is
   the share whose top-1 is their reference; ``true_video_r1`` also counts a distractor
   seeded from a frame of that reference (a near-copy of it) as a hit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from record import machine, write_record

from storyhash_core.features import l2_normalize
from storyhash_core.fusion import fuse
from storyhash_core.index import IndexSpec, Reranked, faiss_index, train_ivfpq
from storyhash_core.params import resolve_path

SEED = 0
VISUAL_DIM = 512
CHUNK = 50_000  # vectors generated and added at a time


@dataclass(frozen=True)
class IndexKind:
    """An empty index of width d (trained on ``sample``, database-like vectors, if the kind
    needs training) and the search parameters (``faiss.ParameterSpace`` names) to measure."""

    make: Callable[[int, np.ndarray], faiss.Index]
    settings: tuple[dict[str, int], ...] = field(default=({},))
    rerank: int = 0  # candidates re-scored exactly from the vectors on disk (Reranked)


def _hnsw(d: int, sample: np.ndarray) -> faiss.Index:
    spec = IndexSpec(kind="hnsw")  # the study's M and efConstruction
    index = faiss.IndexHNSWFlat(d, spec.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = spec.ef_construction
    return index


EXACT = "flat"
INDEXES: dict[str, IndexKind] = {
    EXACT: IndexKind(lambda d, sample: faiss.IndexFlatIP(d)),
    "hnsw": IndexKind(_hnsw, ({"efSearch": IndexSpec().ef_search}, {"efSearch": 64})),
    "ivfpq": IndexKind(
        lambda d, sample: train_ivfpq(sample, IndexSpec(kind="ivfpq")),
        ({"nprobe": IndexSpec().nprobe}, {"nprobe": 64}),
    ),
    "ivfpq_rerank": IndexKind(
        lambda d, sample: train_ivfpq(sample, IndexSpec(kind="ivfpq")),
        ({"nprobe": IndexSpec().nprobe}, {"nprobe": 64}),
        rerank=100,
    ),
}


@dataclass(frozen=True)
class RealData:
    """Fused real vectors, and what distractors are made from."""

    references: np.ndarray  # refs x 535
    queries: np.ndarray  # queries x 535
    truth: np.ndarray  # per query, the row of its reference
    frames: np.ndarray  # reference frames, projected to VISUAL_DIM
    frame_owner: np.ndarray  # per frame, the row of its reference
    action: np.ndarray
    graph: np.ndarray
    noise_std: np.ndarray  # per-dimension std of the references
    explained_variance: float


def fit_pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, top ``dim`` principal axes (dim x d) and the variance share they explain."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, vt[:dim], float((s[:dim] ** 2).sum() / (s**2).sum())


def fused(visual: np.ndarray, action: np.ndarray, graph: np.ndarray) -> np.ndarray:
    return fuse({"visual": visual, "action": action, "graph": graph}, "fusion")


def load_real(run: Path) -> RealData:
    """Project and fuse the run's blocks; exit with a hint if the run has not been made."""
    blocks_path = run / "artifacts" / "blocks.npz"
    if not blocks_path.is_file():
        raise SystemExit(f"no {blocks_path}: run `make study PARAMS=params/real.yaml` first")
    blocks = np.load(blocks_path)
    ref_ids = list(blocks["ref_ids"])
    files = pd.read_csv(run / "artifacts" / "files.csv").set_index("id")
    per_ref = [np.load(files.loc[r, "features"])["frames"] for r in ref_ids]
    frames = np.concatenate(per_ref).astype(np.float32)
    mean, axes, explained = fit_pca(frames, VISUAL_DIM)

    def project(x: np.ndarray) -> np.ndarray:
        return l2_normalize((x - mean) @ axes.T)

    references = fused(project(blocks["ref_visual"]), blocks["ref_action"], blocks["ref_graph"])
    reference_of = pd.read_csv(run / "tables" / "queries.csv").set_index("query_id")["reference_id"]
    return RealData(
        references=references,
        queries=fused(
            project(blocks["query_visual"]), blocks["query_action"], blocks["query_graph"]
        ),
        truth=np.array([ref_ids.index(reference_of[q]) for q in blocks["query_ids"]]),
        frames=project(frames),
        frame_owner=np.repeat(np.arange(len(ref_ids)), [len(f) for f in per_ref]),
        action=blocks["ref_action"],
        graph=blocks["ref_graph"],
        noise_std=references.std(axis=0),
        explained_variance=explained,
    )


def distractors(real: RealData, chunk: int, n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distractors of chunk ``chunk`` and, per distractor, the reference its frame is from."""
    rng = np.random.default_rng([SEED, chunk])
    frame = rng.integers(len(real.frames), size=n)
    ref = rng.integers(len(real.references), size=n)
    seeds = fused(real.frames[frame], real.action[ref], real.graph[ref])
    noise = rng.standard_normal(seeds.shape, dtype=np.float32) * real.noise_std
    return l2_normalize(seeds + sigma * noise), real.frame_owner[frame]


def database(real: RealData, n: int, sigma: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The ``n`` database vectors in chunks, with each row's reference (its own, or its seed's)."""
    yield real.references, np.arange(len(real.references))
    remaining = n - len(real.references)
    for chunk, start in enumerate(range(0, remaining, CHUNK)):
        yield distractors(real, chunk, min(CHUNK, remaining - start), sigma)


def training_sample(real: RealData, n: int, sigma: float) -> np.ndarray:
    """The references and up to one chunk of distractors, for kinds that need training."""
    extra = min(CHUNK, n - len(real.references))
    return np.concatenate([real.references, distractors(real, 0, extra, sigma)[0]])


def mean_nn_cosine(x: np.ndarray) -> float:
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return float(sim.max(axis=1).mean())


def build(
    kind: IndexKind, real: RealData, n: int, sigma: float, label: str, scratch: Path
) -> tuple[faiss.Index | Reranked, np.ndarray, float]:
    """Index the ``n``-vector database chunk by chunk; return it, row owners and add seconds.
    A re-ranked kind also writes the vectors to ``scratch``/vectors.npy and reads them back
    memory-mapped."""
    d = real.references.shape[1]
    index = kind.make(d, training_sample(real, n, sigma))
    store = (
        np.lib.format.open_memmap(scratch / "vectors.npy", "w+", np.float32, (n, d))
        if kind.rerank
        else None
    )
    owners, seconds = [], 0.0
    for vectors, owner in database(real, n, sigma):
        start = time.perf_counter()
        index.add(vectors)
        if store is not None:
            store[index.ntotal - len(vectors) : index.ntotal] = vectors
        seconds += time.perf_counter() - start
        owners.append(owner)
        print(f"  {label}: {index.ntotal}/{n} added, {seconds:.1f} s", flush=True)
    if store is not None:
        store.flush()
        del store
        index = Reranked(index, np.load(scratch / "vectors.npy", mmap_mode="r"), kind.rerank)
    return index, np.concatenate(owners), seconds


def index_bytes(index: faiss.Index | Reranked) -> int:
    """Bytes of the serialised index (for a re-ranked one, of its in-memory part)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.faiss")
        faiss.write_index(faiss_index(index), path)
        return os.path.getsize(path)


def timed_search(
    index: faiss.Index | Reranked, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 row and latency (ms) per query, searching one query at a time."""
    index.search(queries[:1], 1)  # warm-up
    top1, latency = np.empty(len(queries), np.int64), np.empty(len(queries))
    for i in range(len(queries)):
        start = time.perf_counter()
        _, rows = index.search(queries[i : i + 1], 1)
        latency[i] = (time.perf_counter() - start) * 1e3
        top1[i] = rows[0, 0]
    return top1, latency


def measure(real: RealData, n: int, sigma: float, kinds: list[str]) -> list[dict]:
    """One record per index kind and search setting at database size ``n`` (exact search first)."""
    records, exact = [], None
    for name in [EXACT, *(k for k in kinds if k != EXACT)]:
        with tempfile.TemporaryDirectory() as scratch:
            kind_records, top1 = measure_kind(real, n, sigma, name, Path(scratch), exact)
        records += kind_records
        exact = top1 if name == EXACT else exact
    return records


def measure_kind(
    real: RealData, n: int, sigma: float, name: str, scratch: Path, exact: np.ndarray | None
) -> tuple[list[dict], np.ndarray]:
    """The records of one index kind, one per search setting, and the top-1 rows of the last
    (for exact search: the reference the others are compared with)."""
    kind = INDEXES[name]
    index, owners, build_s = build(kind, real, n, sigma, f"{name} @ {n}", scratch)
    size = index_bytes(index)
    disk = {"disk_bytes": (scratch / "vectors.npy").stat().st_size} if kind.rerank else {}
    records = []
    for setting in kind.settings:
        for key, value in setting.items():
            faiss.ParameterSpace().set_index_parameter(faiss_index(index), key, value)
        top1, latency = timed_search(index, real.queries)
        exact = top1 if exact is None else exact
        records.append(
            {
                "vectors": n,
                "index": name,
                "params": setting | ({"rerank": kind.rerank} if kind.rerank else {}),
                "build_s": round(build_s, 2),
                "bytes": size,
                **disk,
                "ann_recall_at_1": round(float((top1 == exact).mean()), 4),
                "true_match_r1": round(float((top1 == real.truth).mean()), 4),
                "true_video_r1": round(float((owners[top1] == real.truth).mean()), 4),
                "latency_ms": {
                    "median": round(float(np.median(latency)), 4),
                    "p99": round(float(np.percentile(latency, 99)), 4),
                },
                "timed_queries": len(latency),
            }
        )
        print(json.dumps(records[-1]), flush=True)
    del index
    return records, top1


def describe(real: RealData, sigma: float) -> dict:
    """The data's make-up, realism (nearest-neighbour cosines) and R@1 against references alone."""
    sample, _ = distractors(real, 0, len(real.references), sigma)
    references_only = (real.queries @ real.references.T).argmax(axis=1)
    return {
        "references": len(real.references),
        "queries": len(real.queries),
        "reference_frames": len(real.frames),
        "pca_dims": VISUAL_DIM,
        "pca_explained_variance": round(real.explained_variance, 4),
        "sigma": sigma,
        "seed": SEED,
        "realism": {
            "reference_nn_cosine_mean": round(mean_nn_cosine(real.references), 4),
            "distractor_nn_cosine_mean": round(mean_nn_cosine(sample), 4),
            "distractors_sampled": len(sample),
        },
        "true_match_r1_references_only": round(float((references_only == real.truth).mean()), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000],
        help="database sizes, each at least the number of references",
    )
    p.add_argument(
        "--run", default="outputs/real", help="study run folder (relative to the project root)"
    )
    p.add_argument("--out", default="bench/results/index_scale.json", help="JSON record to write")
    p.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads (default: 1)")
    p.add_argument(
        "--sigma", type=float, default=0.5, help="distractor noise, in per-dimension stds"
    )
    p.add_argument(
        "--kinds",
        nargs="+",
        choices=list(INDEXES),
        default=list(INDEXES),
        help="index kinds (exact search always runs: it is the reference)",
    )
    args = p.parse_args()

    faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    real = load_real(resolve_path(args.run))
    if min(args.sizes) < len(real.references):
        p.error(f"every size must be at least {len(real.references)} (the references)")
    data = describe(real, args.sigma)
    print(json.dumps(data), flush=True)
    records = [r for n in args.sizes for r in measure(real, n, args.sigma, args.kinds)]
    record = {
        "benchmark": "index_scale",
        "run": args.run,
        "width": real.references.shape[1],
        "data": data,
        "results": records,
        "threads": args.threads,
        "seconds": round(time.perf_counter() - start, 1),
        "versions": {"faiss": faiss.__version__, "numpy": np.__version__},
        "machine": machine(),
    }
    write_record(record, resolve_path(args.out))


if __name__ == "__main__":
    main()
