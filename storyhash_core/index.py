"""FAISS indexes over L2-normalised vectors (inner product = cosine): build, save, load, search.

``hnsw`` is the paper's ``IndexHNSWFlat`` (M=16, efConstruction=200, inner product);
``flat`` is exact ``IndexFlatIP``; ``ivfpq`` is for galleries whose float32 vectors do not fit
in memory: an inverted file of ``nlist`` k-means lists holding ``pq_m``-byte product-quantised
codes (FAISS ``IndexIVFPQ``), trained on a seeded sample and filled shard by shard
(:func:`train_ivfpq`, :func:`add_shards`). The vectors are zero-padded to a multiple of
``pq_m`` first, which changes no inner product. With ``rerank`` > 0 the IVF-PQ's top
``rerank`` candidates are re-scored exactly against the float32 vectors (:class:`Reranked`),
which a loaded index memory-maps from disk: memory holds the codes, disk the vectors.
A saved index is a folder: ``index.faiss``, ``vectors.npy`` (re-ranked indexes only),
``ids.json`` (row -> video id) and ``meta.json`` (how the vectors were made, for the query
command: configuration, backbone, pooling, sampling rate, dimension, feature version).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .cache import atomic_dir
from .errors import IndexFileError, problems


class IndexSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["hnsw", "flat", "ivfpq"] = "hnsw"
    m: int = Field(16, ge=2)  # hnsw
    ef_construction: int = Field(200, ge=1)  # hnsw
    ef_search: int = Field(16, ge=1)  # hnsw; FAISS's default; the paper does not set it
    nlist: int = Field(1024, ge=1)  # ivfpq: lists; capped at one per 39 training vectors
    pq_m: int = Field(
        32, ge=1
    )  # ivfpq: bytes per vector (an 8-bit code per sub-vector; fewer bits under 256 vectors)
    nprobe: int = Field(16, ge=1)  # ivfpq: lists visited per query
    train_size: int = Field(100_000, ge=1)  # ivfpq: vectors sampled (seeded) to train on
    rerank: int = Field(
        0, ge=0
    )  # ivfpq: candidates re-scored exactly from the float32 vectors on disk (0: none)

    @model_validator(mode="after")
    def _rerank_for_ivfpq(self) -> IndexSpec:
        if self.rerank and self.kind != "ivfpq":
            raise ValueError(
                f"index.rerank applies to kind ivfpq only"
                f" (kind {self.kind!r} scores exactly already)"
            )
        return self


@dataclass
class SearchResult:
    """Top-k scores and gallery row indices (-1 where fewer than k), with per-query latency."""

    scores: np.ndarray
    rows: np.ndarray
    latency_ms: np.ndarray


@dataclass
class Reranked:
    """An approximate ``index`` whose top ``candidates`` are re-scored exactly by inner product
    with ``vectors`` (a memory-mapped ``.npy`` once loaded: a search reads only the candidates'
    rows). Searches like a FAISS index."""

    index: faiss.Index
    vectors: np.ndarray
    candidates: int

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, rows = self.index.search(queries, max(k, self.candidates))
        scores = np.full(rows.shape, -np.inf, np.float32)
        for i, (query, found) in enumerate(zip(queries, rows, strict=True)):
            valid = found >= 0
            scores[i, valid] = self.vectors[found[valid]] @ query
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


def faiss_index(index: faiss.Index | Reranked) -> faiss.Index:
    """The FAISS index itself (under a :class:`Reranked`, its approximate one)."""
    return index.index if isinstance(index, Reranked) else index


def train_ivfpq(sample: np.ndarray, spec: IndexSpec) -> faiss.Index:
    """An empty IVF-PQ index trained on ``sample`` (database-like vectors)."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    n, d = sample.shape
    padded = -(-d // spec.pq_m) * spec.pq_m
    nlist = max(1, min(spec.nlist, n // 39))  # k-means wants >= 39 points per centroid
    ivf = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(padded),
        padded,
        nlist,
        spec.pq_m,
        min(8, max(1, int(np.log2(n)))),
        faiss.METRIC_INNER_PRODUCT,
    )
    ivf.nprobe = spec.nprobe
    index = (
        faiss.IndexPreTransform(faiss.RemapDimensionsTransform(d, padded, False), ivf)
        if padded > d
        else ivf
    )
    index.train(sample)
    return index


def add_shards(trained: faiss.Index, shards) -> faiss.Index:
    """Fill a copy of a trained IVF index shard by shard: each shard is encoded into its own
    copy (as a worker would, possibly elsewhere) and merged in; ids follow the shards' order."""
    merged = faiss.clone_index(trained)
    for shard in shards:
        part = faiss.clone_index(trained)
        part.add(np.ascontiguousarray(shard, dtype=np.float32))
        faiss.extract_index_ivf(merged).merge_from(faiss.extract_index_ivf(part), merged.ntotal)
        merged.ntotal = faiss.extract_index_ivf(merged).ntotal
    return merged


def build_index(vectors: np.ndarray, spec: IndexSpec = IndexSpec()) -> faiss.Index | Reranked:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    d = vectors.shape[1]
    if spec.kind == "ivfpq":
        rng = np.random.default_rng(0)
        sample = vectors[
            rng.choice(len(vectors), min(spec.train_size, len(vectors)), replace=False)
        ]
        ivf = add_shards(train_ivfpq(sample, spec), [vectors])
        return Reranked(ivf, vectors, spec.rerank) if spec.rerank else ivf
    if spec.kind == "flat":
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, spec.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(
        1
    )  # parallel HNSW insertion links by thread timing: one thread, one graph
    try:
        index.add(vectors)
    finally:
        faiss.omp_set_num_threads(threads)
    return index


def search(index: faiss.Index | Reranked, queries: np.ndarray, k: int) -> SearchResult:
    """Search queries one at a time (as a service would), timing each."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, index.ntotal)
    scores = np.empty((len(queries), k), np.float32)
    rows = np.empty((len(queries), k), np.int64)
    latency = np.empty(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter()
        s, r = index.search(queries[i : i + 1], k)
        latency[i] = (time.perf_counter() - t0) * 1e3
        scores[i], rows[i] = s[0], r[0]
    return SearchResult(scores, rows, latency)


def save_index(
    index: faiss.Index | Reranked, ids: list[str], meta: dict[str, Any], folder: Path
) -> None:
    """Write the index folder atomically (a reader never sees a half-written one)."""
    with atomic_dir(folder, replace=True) as tmp:
        if isinstance(index, Reranked):
            np.save(tmp / "vectors.npy", np.asarray(index.vectors, dtype=np.float32))
        faiss.write_index(faiss_index(index), str(tmp / "index.faiss"))
        (tmp / "ids.json").write_text(json.dumps(ids))
        meta = meta | {"dimension": faiss_index(index).d}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))


REBUILD = "rebuild it: storyhash study --params <its params> --only 03_index"


def damaged(folder: Path, what: str) -> IndexFileError:
    """The error for an index folder whose ``what`` is wrong."""
    return IndexFileError(f"index {folder} is damaged: {what}; {REBUILD}")


def _read_json(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.is_file():
        raise damaged(folder, f"{name} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise damaged(folder, f"{name} is not valid JSON ({reason})") from None


def load_index(folder: Path) -> tuple[faiss.Index | Reranked, list[str], dict[str, Any]]:
    """The index of a folder :func:`save_index` wrote, its ids and its metadata; a missing,
    cut or inconsistent file is an :class:`IndexFileError` naming it."""
    if not (folder / "index.faiss").is_file():
        raise IndexFileError(f"no index in {folder} (run the study first; it saves <run>/indexes)")
    ids, meta = _read_json(folder, "ids.json"), _read_json(folder, "meta.json")
    try:
        index = faiss.read_index(str(folder / "index.faiss"))
    except RuntimeError:
        raise damaged(
            folder, "index.faiss cannot be read (cut short, or not a FAISS file)"
        ) from None
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
        raise damaged(folder, "ids.json is not a non-empty list of video ids")
    if len(ids) != index.ntotal:
        raise damaged(folder, f"ids.json lists {len(ids)} videos, index.faiss holds {index.ntotal}")
    if not isinstance(meta, dict):
        raise damaged(folder, "meta.json does not hold a mapping of keys to values")
    if "dimension" not in meta:
        raise damaged(folder, "meta.json records no dimension (saved by an older storyhash)")
    if meta["dimension"] != index.d or not isinstance(meta["dimension"], int):
        raise damaged(
            folder, f"meta.json says {meta['dimension']!r} dimensions, index.faiss has {index.d}"
        )
    try:
        spec = IndexSpec.model_validate(meta.get("index") or {})
    except ValidationError as exc:
        where, message = problems(exc)[0]
        where = ".".join(filter(None, ["index", where]))
        raise damaged(folder, f"meta.json: {where}: {message}") from None
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = spec.ef_search
    if spec.kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = spec.nprobe
        if spec.rerank:
            if not (folder / "vectors.npy").is_file():
                raise damaged(folder, "vectors.npy of a re-ranked index is missing")
            index = Reranked(index, np.load(folder / "vectors.npy", mmap_mode="r"), spec.rerank)
    return index, ids, meta
