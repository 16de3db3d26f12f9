"""The study's stages, each reading and writing open files in one run folder.

A :class:`Run` is a params set plus its folder ``<output_dir>/<run_name>/``. The stages
are called in order by the notebooks (``notebooks/01…07``), and each reads only what the
earlier ones wrote, so any notebook reruns on its own from the run folder and the cache:

1. :func:`extract_stage`: corpus, query set, per-video visual features and tracks (cached)
   -> ``tables/references.csv``, ``tables/queries.csv``, ``tables/extraction_cost.csv``,
   ``artifacts/files.csv``, track figures, tracker-vs-truth on the synthetic corpus
2. :func:`fuse_stage`: blocks (visual pooled; action min-max fitted on references; graph)
   -> ``artifacts/blocks.npz``, ``tables/motion_features.csv``
3. :func:`index_stage`: one FAISS index per configuration -> ``indexes/<configuration>/``
4. :func:`robustness_stage`: every query searched -> ``tables/robustness_per_query.csv``,
   ``tables/table1.*``, ``tables/table1_vs_paper.*``
5-7. analysis and figures (:mod:`storyhash_core.analysis`, :mod:`storyhash_core.figures`), and
   :func:`rotation_sweep_stage` for the rotation figure.

Failures are rows with their error, never dropped; ``run.json`` gathers each stage's record.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .backbones import BackboneSpec, resolve_auto
from .cache import ArtifactCache, atomic_path
from .corpus import Video, load_manifest, scan_directory
from .errors import ParamsError, StoryHashError
from .features import load_features
from .fusion import fuse
from .machine import cpu
from .index import build_index, load_index, save_index, search
from .metrics import latency_stats, per_transform_table, query_rows
from .motion import ACTION_NAMES, GRAPH_NAMES, MinMax, motion_blocks
from .params import PROJECT_ROOT, StudyParams, load_params, portable, resolve_location, resolve_path, run_location
from .parallel import Failure, dask_client
from .pipeline import Output, process_videos
from .queries import Query, QueryJob, generate_queries, query_path
from .report import beside_paper, paper_table1, track_strip, write_table
from .synthetic import GROUND_TRUTH, synthetic_corpus
from .tracking import load_tracks
from .tracking.evaluate import score_tracks
from .transforms import resolve, rotation_sweep
from .video import sample_frames


@dataclass
class Run:
    """A params set, its run folder and its cache."""

    params: StudyParams
    dir: Path
    params_file: Path | None = None

    @classmethod
    def open(cls, params_file: str | Path, run_dir: str | Path | None = None) -> Run:
        params = load_params(params_file)
        folder = Path(run_dir) if run_dir else run_location(params)[0]
        return cls(params, folder.resolve(), Path(params_file).resolve())

    @property
    def cache(self) -> ArtifactCache:
        return ArtifactCache(resolve_location(self.params.cache_dir))

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def table(self, name: str, folder: str = "tables") -> pd.DataFrame:
        """A table an earlier stage wrote (empty text cells read as "", empty numbers as NaN)."""
        path = self.path(folder, f"{name}.csv")
        if not path.is_file():
            raise StoryHashError(f"{path} not found: run the earlier notebooks of the sequence first")
        df = pd.read_csv(path)
        text = df.select_dtypes(include=["object", "string"]).columns.union(
            [c for c in ("error", "features", "tracks", "path") if c in df])
        for c in text:
            df[c] = df[c].astype(object).where(df[c].notna(), "")
        return df

    def record(self, stage: str, entry: dict) -> None:
        """Merge ``entry`` under ``stages.<stage>`` in ``run.json`` (atomically)."""
        path = self.path("run.json")
        data = json.loads(path.read_text()) if path.is_file() else {}
        data.setdefault("stages", {})[stage] = entry
        data |= {"params": self.params.model_dump(), "params_file": portable(self.params_file) if self.params_file else "",
                 "versions": versions(), "cpu": cpu()}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str))

    @contextmanager
    def client(self) -> Iterator:
        with dask_client(self.params.cluster) as client:
            yield client


def versions() -> dict[str, str]:
    import av
    import cv2
    import faiss
    import onnxruntime

    return {"storyhash": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "faiss": faiss.__version__, "onnxruntime": onnxruntime.__version__,
            "opencv": cv2.__version__, "av": av.__version__}


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.t0, 3)


# ---- 1. extract --------------------------------------------------------------------------

def load_corpus(params: StudyParams, cache: ArtifactCache) -> list[Video]:
    """The reference videos the params select."""
    c = params.corpus
    if c.kind == "synthetic":
        videos = load_manifest(synthetic_corpus(c.synthetic, cache))
    elif c.path is None:
        raise ParamsError(f"corpus.kind {c.kind!r} needs corpus.path")
    elif c.kind == "manifest":
        videos = load_manifest(resolve_path(c.path))
    else:
        videos = scan_directory(resolve_path(c.path), c.folder_fps, "davis" if c.kind == "davis" else "")
    return videos[: c.limit] if c.limit else videos


def corpus_root(params: StudyParams, cache: ArtifactCache) -> Path:
    """The folder the corpus's videos live under (a manifest's or a scan's root)."""
    c = params.corpus
    if c.kind == "synthetic":
        return synthetic_corpus(c.synthetic, cache).parent
    path = resolve_path(c.path or ".")
    return path.parent if c.kind == "manifest" else path


def portable_path(path: Path, root: Path) -> str:
    """``path`` as any machine can read it: ``$STORYHASH_SHARED/…`` for the shared data, else
    relative to the corpus ``root`` (never this machine's absolute or cache path)."""
    shown = portable(path)
    if shown.startswith("$STORYHASH_SHARED/"):
        return shown
    path, root = path.resolve(), root.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def query_files(run: Run, query_ids: list[str], corpus: list[Video] | None = None) -> dict[str, Path]:
    """The cached video of each query id (``<reference>@<transform>``), found from its content key
    (``corpus``: the run's references, if already loaded)."""
    videos = {v.video_id: v for v in corpus or load_corpus(run.params, run.cache)}
    queries = run.table("queries").set_index("query_id")
    missing = sorted(set(query_ids) - set(queries.index)) or sorted(set(queries.loc[query_ids, "reference_id"]) - set(videos))
    if missing:
        raise StoryHashError(f"{run.path('tables', 'queries.csv')} does not match the corpus of the params"
                             f" ({missing[0]} unknown): rerun notebooks/01_extract")
    return {q: query_path(QueryJob(videos[queries.at[q, "reference_id"]], resolve([queries.at[q, "transform"]])[0]),
                          run.cache) for q in query_ids}


def video_files(run: Run) -> dict[str, Path]:
    """The video file or frame folder of every reference and query id of the run."""
    corpus = load_corpus(run.params, run.cache)
    return {v.video_id: v.path for v in corpus} | query_files(run, list(run.table("queries")["query_id"]), corpus)


def query_sources(params: StudyParams, videos: list[Video]) -> list[Video]:
    """The references that are transformed into queries."""
    wanted = params.corpus.query_collections
    return [v for v in videos if wanted is None or v.collection in wanted]


def worker_cpus(client) -> list[dict]:
    """The distinct CPUs (model and ISA flags) of the Dask workers that computed the features."""
    found = client.run(cpu).values()
    return [json.loads(c) for c in sorted({json.dumps(c, sort_keys=True) for c in found})]


def portable_backbone(spec: BackboneSpec) -> dict:
    """``spec`` for run.json and index metadata, its weights path portable (see :func:`local_backbone`)."""
    weights = spec.weights and Path(spec.weights).exists() and portable(spec.weights)
    return spec.model_dump() | ({"weights": weights} if weights else {})


def local_backbone(record: dict) -> BackboneSpec:
    """The backbone a :func:`portable_backbone` record describes, its weights path on this machine."""
    spec = BackboneSpec.model_validate(record)
    if spec.weights and (spec.weights.startswith("$") or (PROJECT_ROOT / spec.weights).exists()):
        spec = spec.model_copy(update={"weights": str(resolve_path(spec.weights))})
    return spec


def concrete_backbone(params: StudyParams) -> tuple[BackboneSpec, str]:
    """Resolve ``auto`` and expand a weights path; return the spec and why it was chosen."""
    spec = params.backbone
    if spec.weights and (spec.name == "mobilenetv2-onnx" or "$" in spec.weights):
        spec = spec.model_copy(update={"weights": str(resolve_path(spec.weights))})
    return resolve_auto(spec, resolve_path(params.models_dir))


def _errors(failures: list[Failure]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in failures:
        out[f.key] = "; ".join(filter(None, [out.get(f.key), f.error]))
    return out


def hash_outputs(params: StudyParams) -> list[Output]:
    """The frame hash notebook 08 compares with the backbone (none, or one). Notebook 01
    computes it, and :func:`flip_outputs`, in the same decode as the backbone's features."""
    return [(BackboneSpec(name=params.baselines.frame_hash), "")] if params.baselines.frame_hash else []


def flip_outputs(params: StudyParams, backbone: BackboneSpec) -> list[Output]:
    """The flipped variants notebook 08 tries against the flip bias."""
    return [(backbone, v) for v in params.mitigation.flips]


def rotation_outputs(params: StudyParams, backbone: BackboneSpec) -> list[Output]:
    """The rotated variants notebook 08 tries on the rotation sweep, computed by notebook 07."""
    return [(backbone, v) for v in params.mitigation.rotations]


def extract_items(run: Run, client, backbone: BackboneSpec, items: dict[str, tuple[Path, float]],
                  what: str, extra: list[Output] = ()) -> pd.DataFrame:
    """Features (and tracks) for ``{id: (path, folder_fps)}``, one decode per video, with the
    ``extra`` outputs later stages use: one row per id with the cache files of the backbone's
    features and the tracks, the seconds each step took and the error of those that failed."""
    p = run.params
    tracker = p.motion.tracker if p.motion.enabled else None
    done, failed = process_videos(client, items, p.sampling.fps, [(backbone, ""), *extra], tracker, run.cache,
                                  f"{what} videos")
    errors = _errors(failed)
    rows = []
    for key in items:
        a = done.get(key)
        f = load_features(a.features[0]) if a else None
        t = load_tracks(a.tracks) if a and a.tracks else None
        rows.append({"id": key, "role": what, "features": str(a.features[0]) if a else "",
                     "tracks": str(a.tracks or "") if a else "",
                     "frames_sampled": len(f.timestamps) if f else 0, "duration_s": f.duration_s if f else np.nan,
                     "decode_s": f.decode_s if f else np.nan, "visual_s": f.embed_s if f else np.nan,
                     "tracking_s": t[1] if t else np.nan, "objects": t[0].n_objects if t else 0,
                     "error": errors.get(key, "")})
    return pd.DataFrame(rows)


def tracking_vs_truth(videos: list[Video], files: pd.DataFrame, truth_csv: Path, cache: ArtifactCache) -> pd.DataFrame:
    """Reference tracks scored against the synthetic corpus's known trajectories."""
    truth = pd.read_csv(truth_csv)
    by_id = files.set_index("id")["tracks"]
    rows = []
    for v in videos:
        if by_id.get(v.video_id):
            tracks = load_tracks(cache.fetch(by_id[v.video_id]))[0]
            score = score_tracks(tracks, truth[truth["video_id"] == v.video_id], v.fps)
            rows.append({"video_id": v.video_id, **asdict(score), "recall": score.recall, "precision": score.precision})
    return pd.DataFrame(rows)


def draw_tracks(run: Run, videos: list[Video], files: pd.DataFrame) -> list[Path]:
    """Strips of frames with their tracks drawn, for the first few references."""
    import cv2

    by_id = files.set_index("id")["tracks"]
    written = []
    for v in [v for v in videos if by_id.get(v.video_id)][: run.params.motion.figures]:
        frames = sample_frames(v.path, run.params.motion.tracker.fps, v.fps).frames
        out = run.path("figures", f"tracks_{v.video_id}.png")
        with atomic_path(out) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(track_strip(frames, load_tracks(run.cache.fetch(by_id[v.video_id]))[0]),
                                               cv2.COLOR_RGB2BGR))
        written.append(out)
    return written


def extract_stage(run: Run, client) -> dict:
    """Corpus, queries, features and tracks of every video; writes the tables listed above."""
    p, clock = run.params, Stopwatch()
    backbone, why = concrete_backbone(p)
    videos = load_corpus(p, run.cache)
    transforms = resolve(p.transforms)
    queries = generate_queries(client, query_sources(p, videos), transforms, run.cache)
    t_transforms = clock()
    extra = hash_outputs(p) + flip_outputs(p, backbone)
    refs = extract_items(run, client, backbone, {v.video_id: (v.path, v.fps) for v in videos}, "reference", extra)
    probes = extract_items(run, client, backbone, {q.query_id: (q.path, 24.0) for q in queries if q.path}, "query",
                           extra)
    files = pd.concat([refs, probes], ignore_index=True)

    timing = ["decode_s", "visual_s", "tracking_s"]  # wall-clock: only in extraction_cost, so other tables are reproducible
    root = corpus_root(p, run.cache)
    references = pd.DataFrame([{"video_id": v.video_id, "collection": v.collection, "path": portable_path(v.path, root)}
                               for v in videos]).merge(refs.drop(columns=["role", "features", "tracks", *timing])
                                                       .rename(columns={"id": "video_id"}), on="video_id")
    query_df = pd.DataFrame([{"query_id": q.query_id, "reference_id": q.reference_id, "transform": q.transform,
                              "family": q.family, "transform_error": q.error} for q in queries])
    query_df = query_df.merge(probes.drop(columns=["role", "features", "tracks", *timing])
                              .rename(columns={"id": "query_id"}), on="query_id", how="left")
    query_df["error"] = query_df["transform_error"].where(query_df["transform_error"] != "", query_df["error"])
    query_df = query_df.drop(columns="transform_error").fillna({"error": "", "frames_sampled": 0, "objects": 0})
    ok_refs = set(references.loc[references["error"] == "", "video_id"])
    orphan = (query_df["error"] == "") & ~query_df["reference_id"].isin(ok_refs)
    query_df.loc[orphan, "error"] = "reference has no features (see references.csv)"

    write_table(references, run.path("tables", "references"))
    write_table(query_df, run.path("tables", "queries"))
    write_table(files, run.path("artifacts", "files"))
    costs = files.loc[files["error"] == "", ["id", "role", *timing]]
    costs = costs.assign(tracking_share=costs["tracking_s"] / costs[timing].sum(axis=1))
    write_table(costs, run.path("tables", "extraction_cost"))
    entry = {
        "backbone": portable_backbone(backbone), "backbone_reason": why, "worker_cpus": worker_cpus(client),
        "tracker": p.motion.tracker.model_dump() if p.motion.enabled else None,
        "references": len(videos), "references_failed": int((references["error"] != "").sum()),
        "queries": len(query_df), "queries_failed": int((query_df["error"] != "").sum()),
        "queries_cached": sum(q.cached for q in queries),
        "transforms": [t.name for t in transforms],
        "seconds": {"transforms": t_transforms, "total": clock()},
        "seconds_per_video_median": {step.removesuffix("_s"): float(costs[step].median()) for step in timing},
    }
    if p.motion.enabled:
        entry["tracking_share_of_extraction"] = float(costs["tracking_s"].sum() / costs[timing].sum().sum())
        draw_tracks(run, videos, refs)
        if p.corpus.kind == "synthetic":
            truth = tracking_vs_truth(videos, refs, synthetic_corpus(p.corpus.synthetic, run.cache).parent / GROUND_TRUTH,
                                      run.cache)
            write_table(truth, run.path("tables", "tracking_vs_truth"), ("csv", "md"))
            entry["tracking_vs_truth"] = {
                "recall": float(truth["matched"].sum() / truth["truth_points"].sum()),
                "precision": float(truth["matched"].sum() / truth["tracked_points"].sum()),
                "centroid_error_px": float(truth["centroid_error_px"].mean())}
    run.record("extract", entry)
    return entry


# ---- 2. fuse -------------------------------------------------------------------------------

@dataclass
class Blocks:
    """Per-video blocks of the gallery (references) and the probes (queries)."""

    ref_ids: list[str]
    refs: dict[str, np.ndarray]
    query_ids: list[str]
    queries: dict[str, np.ndarray]
    scaler: MinMax | None


def blocks_for(files: pd.DataFrame, params: StudyParams, scaler: MinMax | None,
               cache: ArtifactCache) -> tuple[dict, MinMax | None]:
    """Blocks for the rows of ``files`` (cache entries, fetched if the cache is at a URL); the
    action scaler is fitted here when none is given."""
    blocks = {"visual": np.stack([load_features(cache.fetch(f)).pooled(params.pooling) for f in files["features"]])}
    if params.motion.enabled:
        action, graph = motion_blocks([load_tracks(cache.fetch(t))[0] for t in files["tracks"]])
        scaler = scaler or MinMax.fit(action)
        blocks |= {"action": scaler.apply(action), "graph": graph, "action_raw": action}
    return blocks, scaler


def fuse_stage(run: Run) -> Blocks:
    """Blocks of every usable reference and query -> ``artifacts/blocks.npz``."""
    files = run.table("files", "artifacts")
    queries = run.table("queries")
    ok = files[files["error"] == ""]
    refs = ok[ok["role"] == "reference"]
    usable = set(queries.loc[queries["error"] == "", "query_id"])
    probes = ok[(ok["role"] == "query") & ok["id"].isin(usable)]
    ref_blocks, scaler = blocks_for(refs, run.params, None, run.cache)
    probe_blocks, _ = blocks_for(probes, run.params, scaler, run.cache)
    blocks = Blocks(list(refs["id"]), ref_blocks, list(probes["id"]), probe_blocks, scaler)
    save_blocks(blocks, run.path("artifacts", "blocks.npz"))
    if scaler is not None:
        table = pd.concat([motion_table(blocks.ref_ids, ref_blocks, "reference"),
                           motion_table(blocks.query_ids, probe_blocks, "query")])
        write_table(table, run.path("tables", "motion_features"))
    run.record("fuse", {"references": len(blocks.ref_ids), "queries": len(blocks.query_ids),
                        "widths": {k: int(v.shape[1]) for k, v in ref_blocks.items()}})
    return blocks


def motion_table(ids: list[str], blocks: dict, role: str) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"id": ids, "role": role}),
                      pd.DataFrame(blocks["action_raw"], columns=list(ACTION_NAMES)),
                      pd.DataFrame(blocks["graph"], columns=[f"graph_{n}" for n in GRAPH_NAMES])], axis=1)


def save_blocks(blocks: Blocks, path: Path) -> None:
    arrays = {f"ref_{k}": v for k, v in blocks.refs.items()} | {f"query_{k}": v for k, v in blocks.queries.items()}
    if blocks.scaler is not None:
        arrays |= {"scaler_low": blocks.scaler.low, "scaler_high": blocks.scaler.high}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, ref_ids=np.array(blocks.ref_ids), query_ids=np.array(blocks.query_ids), **arrays)


def load_blocks(run: Run) -> Blocks:
    path = run.path("artifacts", "blocks.npz")
    if not path.is_file():
        raise StoryHashError(f"{path} not found: run notebooks/02_fuse first")
    with np.load(path) as z:
        refs = {k[4:]: z[k] for k in z.files if k.startswith("ref_") and k != "ref_ids"}
        queries = {k[6:]: z[k] for k in z.files if k.startswith("query_") and k != "query_ids"}
        scaler = MinMax(z["scaler_low"], z["scaler_high"]) if "scaler_low" in z.files else None
        return Blocks(z["ref_ids"].tolist(), refs, z["query_ids"].tolist(), queries, scaler)


# ---- 3. index ------------------------------------------------------------------------------

def index_stage(run: Run) -> pd.DataFrame:
    """One index per configuration -> ``indexes/<configuration>/`` (with what ``storyhash query`` needs)."""
    p = run.params
    blocks = load_blocks(run)
    backbone = run_record(run)["stages"]["extract"]["backbone"]
    rows = []
    for configuration in p.evaluation.configurations:
        vectors = fuse(blocks.refs, configuration, p.evaluation.weights)
        clock = Stopwatch()
        index = build_index(vectors, p.index)
        build_s = clock()
        meta = {"configuration": configuration, "backbone": backbone, "pooling": p.pooling,
                "sampling_fps": p.sampling.fps, "index": p.index.model_dump(), "weights": p.evaluation.weights}
        if blocks.scaler is not None:
            meta["motion"] = {"tracker": p.motion.tracker.model_dump(), "action_low": blocks.scaler.low.tolist(),
                              "action_high": blocks.scaler.high.tolist()}
        save_index(index, blocks.ref_ids, meta, run.path("indexes", configuration))
        size = run.path("indexes", configuration, "index.faiss").stat().st_size
        rows.append({"configuration": configuration, "kind": p.index.kind, "vectors": index.ntotal,
                     "dim": vectors.shape[1], "build_s": build_s, "bytes": size})
    table = pd.DataFrame(rows).drop(columns="build_s")  # wall-clock seconds: run.json only, so tables reproduce
    write_table(table, run.path("tables", "indexes"), ("csv", "md"))
    run.record("index", {"indexes": rows})
    return table


def run_record(run: Run) -> dict:
    path = run.path("run.json")
    if not path.is_file():
        raise StoryHashError(f"{path} not found: run notebooks/01_extract first")
    return json.loads(path.read_text())


# ---- 4. robustness -------------------------------------------------------------------------

def search_configurations(run: Run, query_ids: list[str], probe_blocks: dict, queries: pd.DataFrame,
                          gallery_ids: list[str], gallery_blocks: dict) -> tuple[pd.DataFrame, dict]:
    """Every query searched in every configuration's saved index; per-query rows and latencies."""
    p = run.params
    meta = queries.set_index("query_id").loc[query_ids, ["reference_id", "transform", "family"]].reset_index()
    rows, latency = [], {}
    for configuration in p.evaluation.configurations:
        index, ids, _ = load_index(run.path("indexes", configuration))
        if ids != gallery_ids:
            raise StoryHashError(f"index {run.path('indexes', configuration)} is stale: rerun notebooks/03_index")
        g = fuse(gallery_blocks, configuration, p.evaluation.weights)
        q = fuse(probe_blocks, configuration, p.evaluation.weights)
        result = search(index, q, p.evaluation.k)
        found = query_rows(q, g, ids, list(meta["reference_id"]), result.rows)
        rows.append(pd.concat([meta.assign(configuration=configuration), found], axis=1))
        latency[configuration] = latency_stats(result.latency_ms)
    return pd.concat(rows, ignore_index=True), latency


def robustness_stage(run: Run) -> pd.DataFrame:
    """Table 1: every query in every configuration -> the tables listed above."""
    blocks = load_blocks(run)
    queries = run.table("queries")
    rows, latency = search_configurations(run, blocks.query_ids, blocks.queries, queries, blocks.ref_ids, blocks.refs)
    order = run_record(run)["stages"]["extract"]["transforms"]
    table = per_transform_table(rows, order)
    write_table(rows, run.path("tables", "robustness_per_query"))
    write_table(table, run.path("tables", "table1"), ("csv", "md", "tex"))
    paper_json = resolve_path(run.params.paper_results)
    if paper_json.is_file():
        write_table(beside_paper(table, paper_table1(paper_json)), run.path("tables", "table1_vs_paper"),
                    ("csv", "md", "tex"))
    overall = table[table["transform"] == "overall"].drop(columns="transform")
    run.record("robustness", {"overall": overall.to_dict("records"), "search_latency": latency})
    return table


# ---- 7. rotation sweep ---------------------------------------------------------------------

def extracted_backbone(run: Run) -> BackboneSpec:
    """The concrete backbone notebook 01 extracted with (``auto`` resolved)."""
    return local_backbone(run_record(run)["stages"]["extract"]["backbone"])


def sweep_queries(run: Run, client, ref_ids: list[str]) -> list[Query]:
    """Every rotation-sweep angle of every query source among ``ref_ids`` (cached)."""
    p = run.params
    videos = [v for v in query_sources(p, load_corpus(p, run.cache)) if v.video_id in set(ref_ids)]
    return generate_queries(client, videos, rotation_sweep(p.figures.rotation_angles), run.cache)


def query_meta_table(queries: list[Query]) -> pd.DataFrame:
    """query_id, reference_id, transform, family and error of each query."""
    return pd.DataFrame([asdict(q) for q in queries],
                        columns=["query_id", "reference_id", "transform", "family", "error"])


def rotation_sweep_stage(run: Run, client) -> pd.DataFrame:
    """R@1 and similarity against rotation angle, per configuration -> ``tables/rotation_sweep.csv``
    (and the per-query rows, ``tables/rotation_sweep_per_query.csv``)."""
    p = run.params
    blocks = load_blocks(run)
    queries = sweep_queries(run, client, blocks.ref_ids)
    meta = query_meta_table(queries)
    backbone = extracted_backbone(run)
    files = extract_items(run, client, backbone, {q.query_id: (q.path, 24.0) for q in queries if q.path}, "sweep",
                          rotation_outputs(p, backbone))
    files = files[files["error"] == ""]
    probe_blocks, _ = blocks_for(files, p, blocks.scaler, run.cache)
    rows, _ = search_configurations(run, list(files["id"]), probe_blocks, meta, blocks.ref_ids, blocks.refs)
    rows["angle"] = rows["transform"].str.removeprefix("rotate_").astype(float)
    table = (rows.groupby(["configuration", "angle"], sort=False)
             .agg(queries=("rank", "size"), recall_at_1=("rank", lambda r: 100.0 * (r <= 1).mean()),
                  sim_mean=("sim_true", "mean"), margin_mean=("margin", "mean")).reset_index())
    write_table(table, run.path("tables", "rotation_sweep"), ("csv", "md"))
    write_table(rows, run.path("tables", "rotation_sweep_per_query"))
    failed = int((meta["error"] != "").sum()) + len(queries) - len(meta)
    run.record("rotation_sweep", {"angles": p.figures.rotation_angles, "queries": len(rows), "failed": failed})
    return table
