"""What the stages read: the run's corpus, its query videos, its backbone, and features
computed through the one per-video :mod:`~storyhash_core.pipeline` (cached)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..backbones import BackboneSpec, resolve_auto
from ..corpus import Video, load_manifest, scan_directory
from ..errors import ParamsError, StoryHashError
from ..features import VideoFeatures, load_features
from ..machine import cpu
from ..parallel import Failure, Workers
from ..params import StudyParams, local_backbone, portable, resolve_path
from ..pipeline import Output, process_videos
from ..queries import Query, QueryJob, generate_queries, hard_jobs, query_id, query_path
from ..synthetic import synthetic_corpus
from ..tracking import load_tracks
from ..transforms import resolve, rotation_sweep
from .records import ExtractRecord
from .run import Run

if TYPE_CHECKING:
    from dask.distributed import Client

QUERY_FOLDER_FPS = 24.0  # queries are video files; the rate only applies to frame folders

Items = dict[str, tuple[Path, float]]  # id -> (video file or frame folder, folder fps)


# ---- the corpus and the queries -------------------------------------------------------------


def load_corpus(params: StudyParams, cache) -> list[Video]:
    """The reference videos the params select."""
    corpus = params.corpus
    if corpus.kind == "synthetic":
        videos = load_manifest(synthetic_corpus(corpus.synthetic, cache))
    elif corpus.path is None:
        raise ParamsError(f"corpus.kind {corpus.kind!r} needs corpus.path")
    elif corpus.kind == "manifest":
        videos = load_manifest(resolve_path(corpus.path))
    else:
        layout = "davis" if corpus.kind == "davis" else ""
        videos = scan_directory(resolve_path(corpus.path), corpus.folder_fps, layout)
    return videos[: corpus.limit] if corpus.limit else videos


def corpus_root(params: StudyParams, cache) -> Path:
    """The folder the corpus's videos live under (a manifest's or a scan's root)."""
    corpus = params.corpus
    if corpus.kind == "synthetic":
        return synthetic_corpus(corpus.synthetic, cache).parent
    path = resolve_path(corpus.path or ".")
    return path.parent if corpus.kind == "manifest" else path


def portable_path(path: Path, root: Path) -> str:
    """``path`` as any machine can read it: ``$STORYHASH_SHARED/…`` for the shared data, else
    relative to the corpus ``root`` (never this machine's absolute or cache path)."""
    shown = portable(path)
    if shown.startswith("$STORYHASH_SHARED/"):
        return shown
    path, root = path.resolve(), root.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def query_sources(params: StudyParams, videos: list[Video]) -> list[Video]:
    """The references that are transformed into queries."""
    wanted = params.corpus.query_collections
    return [v for v in videos if wanted is None or v.collection in wanted]


def hard_backgrounds(params: StudyParams, cache) -> list[Video]:
    """The video files the hard suite composes with its sources (drawn by the synthetic
    generator, so in no gallery)."""
    made = load_manifest(synthetic_corpus(params.hard_suite.backgrounds, cache))
    return [v for v in made if v.path.is_file()]


def query_jobs(params: StudyParams, cache, videos: list[Video]) -> list[QueryJob]:
    """Every query the params ask of the corpus ``videos``: the transforms of each query
    source, then the hard suite's edits of each."""
    sources = query_sources(params, videos)
    jobs = [QueryJob(v, t) for v in sources for t in resolve(params.transforms)]
    if params.hard_suite.names:
        backgrounds = hard_backgrounds(params, cache)
        jobs += hard_jobs(sources, params.hard_suite.names, backgrounds)
    return jobs


def reference_items(videos: list[Video]) -> Items:
    return {v.video_id: (v.path, v.fps) for v in videos}


def query_items(queries: list[Query]) -> Items:
    """The queries that were made (a failed transform has no file)."""
    return {q.query_id: (q.path, QUERY_FOLDER_FPS) for q in queries if q.path}


def query_files(
    run: Run, query_ids: list[str], corpus: list[Video] | None = None
) -> dict[str, Path]:
    """The cached video of each query id (``<reference>@<transform>``), found from its content
    key (``corpus``: the run's references, if already loaded)."""
    videos = corpus or load_corpus(run.params, run.cache)
    jobs = {
        query_id(j.video.video_id, j.transform.name): j
        for j in query_jobs(run.params, run.cache, videos)
    }
    missing = sorted(set(query_ids) - set(jobs))
    if missing:
        raise StoryHashError(
            f"query {missing[0]} of {run.path('tables', 'queries.csv')} is not one the"
            " params make of the corpus: rerun notebooks/01_extract"
        )
    return {q: query_path(jobs[q], run.cache) for q in query_ids}


def video_files(run: Run) -> dict[str, Path]:
    """The video file or frame folder of every reference and query id of the run."""
    corpus = load_corpus(run.params, run.cache)
    queries = query_files(run, list(run.table("queries")["query_id"]), corpus)
    return {v.video_id: v.path for v in corpus} | queries


def sweep_queries(run: Run, client, ref_ids: list[str]) -> list[Query]:
    """Every rotation-sweep angle of every query source among ``ref_ids`` (cached)."""
    params = run.params
    sources = query_sources(params, load_corpus(params, run.cache))
    videos = [v for v in sources if v.video_id in set(ref_ids)]
    return generate_queries(
        client, videos, rotation_sweep(params.figures.rotation_angles), run.cache
    )


def query_meta(run: Run, query_ids: list[str]) -> pd.DataFrame:
    """query_id, reference_id, transform and family of each query, in ``query_ids`` order."""
    queries = run.table("queries").set_index("query_id")
    return queries.loc[query_ids, ["reference_id", "transform", "family"]].reset_index()


def transform_order(run: Run) -> list[str]:
    """The transforms of the run, in the order of every per-transform table."""
    return run.load(ExtractRecord).transforms


# ---- the backbone ---------------------------------------------------------------------------


def concrete_backbone(params: StudyParams) -> tuple[BackboneSpec, str]:
    """Resolve ``auto`` and expand a weights path; return the spec and why it was chosen."""
    spec = params.backbone
    if spec.weights and (spec.name == "mobilenetv2-onnx" or "$" in spec.weights):
        spec = spec.model_copy(update={"weights": str(resolve_path(spec.weights))})
    return resolve_auto(spec, resolve_path(params.models_dir))


def extracted_backbone(run: Run) -> BackboneSpec:
    """The concrete backbone notebook 01 extracted with (``auto`` resolved)."""
    return local_backbone(run.load(ExtractRecord).backbone)


def hash_outputs(params: StudyParams) -> list[Output]:
    """The frame hash notebook 08 compares with the backbone (none, or one). Notebook 01
    computes it, and :func:`flip_outputs`, in the same decode as the backbone's features."""
    frame_hash = params.baselines.frame_hash
    return [(BackboneSpec(name=frame_hash), "")] if frame_hash else []


def flip_outputs(params: StudyParams, backbone: BackboneSpec) -> list[Output]:
    """The flipped variants notebook 08 tries against the flip bias."""
    return [(backbone, variant) for variant in params.mitigation.flips]


def rotation_outputs(params: StudyParams, backbone: BackboneSpec) -> list[Output]:
    """The rotated variants notebook 08 tries on the rotation sweep, computed by notebook 07,
    and notebook 09 on the hard suite, computed by notebook 01."""
    return [(backbone, variant) for variant in params.mitigation.rotations]


def region_outputs(params: StudyParams, backbone: BackboneSpec) -> list[Output]:
    """The crops notebook 09 tries on the hard suite (computed by notebook 01)."""
    return [(backbone, variant) for variant in params.mitigation.regions]


def hard_outputs(params: StudyParams, backbone: BackboneSpec) -> list[Output]:
    """What notebook 01 computes for a hard-suite query besides its features: every extra
    output of a paper query, the rotated variants and the regions."""
    return [
        *hash_outputs(params),
        *flip_outputs(params, backbone),
        *rotation_outputs(params, backbone),
        *region_outputs(params, backbone),
    ]


def worker_cpus(client: Workers | Client) -> list[dict]:
    """The distinct CPUs (model and ISA flags) of the Dask workers that computed the features:
    this machine's when no cluster was started and it would have been a local one."""
    if isinstance(client, Workers) and not client.started and client.config.local:
        return [cpu()]
    found = client.run(cpu).values()
    return [json.loads(c) for c in sorted({json.dumps(c, sort_keys=True) for c in found})]


# ---- features through the pipeline -----------------------------------------------------------


def _errors(failures: list[Failure]) -> dict[str, str]:
    out: dict[str, str] = {}
    for failure in failures:
        out[failure.key] = "; ".join(filter(None, [out.get(failure.key), failure.error]))
    return out


def extract_items(
    run: Run, client, backbone: BackboneSpec, items: Items, what: str, extra: list[Output] = ()
) -> pd.DataFrame:
    """Features (and tracks) of ``items``, one decode per video, with the ``extra`` outputs
    later stages use: one row per id with the cache files of the backbone's features and the
    tracks, the seconds each step took and the error of those that failed."""
    params = run.params
    tracker = params.motion.tracker if params.motion.enabled else None
    outputs = [(backbone, ""), *extra]
    done, failed = process_videos(
        client, items, params.sampling.fps, outputs, tracker, run.cache, f"{what} videos"
    )
    errors = _errors(failed)
    rows = []
    for key in items:
        artifact = done.get(key)
        features = load_features(artifact.features[0]) if artifact else None
        tracks = load_tracks(artifact.tracks) if artifact and artifact.tracks else None
        rows.append(
            {
                "id": key,
                "role": what,
                "features": run.cache.entry(artifact.features[0]) if artifact else "",
                "tracks": run.cache.entry(artifact.tracks) if artifact and artifact.tracks else "",
                "frames_sampled": len(features.timestamps) if features else 0,
                "duration_s": features.duration_s if features else np.nan,
                "decode_s": features.decode_s if features else np.nan,
                "visual_s": features.embed_s if features else np.nan,
                "tracking_s": tracks[1] if tracks else np.nan,
                "objects": tracks[0].n_objects if tracks else 0,
                "error": errors.get(key, ""),
            }
        )
    return pd.DataFrame(rows)


def load_cached(paths: list, cache) -> list[VideoFeatures]:
    """Features of cache entries (fetched if the cache is at a URL)."""
    return [load_features(cache.fetch(path)) for path in paths]


def features_of(
    run: Run, client, items: Items, outputs: list[Output], what: str
) -> dict[Output, list[VideoFeatures]]:
    """Features of every item for each output (one decode per video, unless cached); raises
    if any failed (the cache keeps what succeeded)."""
    names = ", ".join(variant or backbone.name for backbone, variant in outputs)
    done, failed = process_videos(
        client,
        items,
        run.params.sampling.fps,
        outputs,
        None,
        run.cache,
        f"{what} features: {names}",
    )
    if failed:
        raise StoryHashError(
            f"{len(failed)} {what} feature extraction(s) failed, first"
            f" {failed[0].key}: {failed[0].error} (the cache keeps the rest;"
            " fix the input and rerun)"
        )
    return {
        output: load_cached([done[key].features[i] for key in items], run.cache)
        for i, output in enumerate(outputs)
    }


# ---- what a page says about the run --------------------------------------------------------

STANDS_IN = {  # backbone -> (what it is, what it stands in for)
    "mobilenetv2-onnx": (
        "MobileNetV2 (ImageNet, int8 ONNX, 1280-D)",
        "the paper's CLIP ViT-B/32, which has no weights here",
    ),
    "clip": ("CLIP (the paper's model)", ""),
    "dct": ("a weight-free DCT descriptor", "the paper's CLIP ViT-B/32, which has no weights here"),
    "pdq": ("the PDQ perceptual hash", "the paper's CLIP ViT-B/32"),
}
TRACKERS = {
    "flow": ("the optical-flow tracker", "the paper's SAM 2, which has no weights here"),
    "sam2": ("SAM 2 (the paper's tracker)", ""),
}


def about(run: Run) -> str:
    """Markdown for the top of a result page: the run folder, the corpus, and which visual
    backbone and tracker made this run's features, with what each stands in for."""
    record = run.load(ExtractRecord)
    what, instead = STANDS_IN.get(record.backbone.name, (record.backbone.name, ""))
    lines = [
        f"**Run** `{run.where}`: {run.params.corpus.kind} corpus, {record.references} "
        f"references, {record.queries - record.hard_queries} queries of the paper's transforms"
        + (f" and {record.hard_queries} of the hard suite." if record.hard_queries else "."),
        f"**Visual block:** `{record.backbone.name}` ({record.backbone_reason}), {what}"
        + (f", in place of {instead}" if instead else "")
        + ". Where the paper says *CLIP-only* this run's column is `visual_padded`.",
    ]
    if record.tracker is None:
        lines.append("**Tracker:** none (motion is off in this run's params).")
    else:
        what, instead = TRACKERS.get(record.tracker.name, (record.tracker.name, ""))
        lines.append(
            f"**Tracker:** `{record.tracker.name}` at {record.tracker.fps:g} fps, {what}"
            + (f", in place of {instead}" if instead else "")
            + "."
        )
    return "  \n".join(lines)
