"""Notebook 08: baselines and mitigation, scored like the configurations (against the detection
gallery of :mod:`~storyhash_core.stages.scoring`, with distractor queries).

- Baselines: pooling variants, frame-level Chamfer re-ranking of the exact top-k pooled
  visual scores (what the index returns at this scale, where HNSW equals exact search), the
  PDQ hash, and flip test-time augmentation on the query or the reference side ->
  ``tables/baselines*``, ``tables/baselines_recall`` and ``baselines_uap`` (per transform ×
  method), ``tables/flip_mitigation``, ``tables/baselines_costs``.
- Rotation mitigation: the rotation sweep with and without rotated query variants ->
  ``tables/rotation_mitigation``, ``figures/rotation_mitigation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import metrics, prose
from ..comparison import evaluate, summarize
from ..features import VideoFeatures, pool
from ..fusion import fuse
from ..pipeline import Output
from ..plots import rotation_mitigation_figure, save_figure
from ..report import write_table
from ..similarity import chamfer_matrix, inner_products, max_over_variants, rerank
from ..transforms import rotation_sweep
from .figures import angles, sweep_meta
from .fuse import load_blocks
from .inputs import (
    QUERY_FOLDER_FPS,
    extracted_backbone,
    features_of,
    flip_outputs,
    hash_outputs,
    load_cached,
    load_corpus,
    query_files,
    query_items,
    query_meta,
    reference_items,
    rotation_outputs,
    sweep_queries,
)
from .records import BaselinesRecord, RotationMitigationRecord
from .run import Run
from .scoring import configuration_matrices, detection_setup, report_methods

BASELINE = (
    "visual_padded"  # the visual block alone (= the padded ablation: zeros change no inner product)
)
ROTATION_COLUMNS = [
    "method",
    "transform",
    "queries",
    "distractors",
    "recall_at_1",
    "sim_mean",
    "margin_mean",
    "micro_ap",
    "tpr_at_fpr_0.01",
]


@dataclass
class Baselines:
    """What notebook 08 shows."""

    record: BaselinesRecord
    overall: pd.DataFrame
    costs: pd.DataFrame  # median seconds per query, from the record
    detection_discussion: str
    significance: pd.DataFrame
    significance_discussion: str
    recall: pd.DataFrame  # R@1 per transform × method
    uap: pd.DataFrame  # μAP per transform × method
    flips: pd.DataFrame
    flip_discussion: str
    rotation: pd.DataFrame
    rotation_record: RotationMitigationRecord
    rotation_discussion: str


def run(run: Run) -> Baselines:
    """The baselines beside the configurations, flip mitigation and rotation mitigation."""
    with run.client() as client:
        record = baselines(run, client)
        rotation, rotation_record = rotation_mitigation(run, client)
    overall, tests, flips = (
        run.table(n) for n in ("baselines_overall", "baselines_significance", "flip_mitigation")
    )
    costs = pd.Series(record.costs, name="value").to_frame()  # wall-clock: in run.json only
    return Baselines(
        record,
        overall,
        costs,
        prose.detection(overall),
        tests,
        prose.significance(tests),
        run.table("baselines_recall"),
        run.table("baselines_uap"),
        flips,
        prose.flip_mitigation(flips, record.costs),
        rotation[ROTATION_COLUMNS],
        rotation_record,
        prose.rotation_mitigation(rotation),
    )


def pooled(frames: list[np.ndarray], method: str) -> np.ndarray:
    """One pooled, L2-normalised vector per video."""
    return np.stack([pool(f, method) for f in frames])


def frames_of(features: list[VideoFeatures]) -> list[np.ndarray]:
    """The per-frame embeddings of each video."""
    return [f.frames for f in features]


def baselines(run: Run, client) -> BaselinesRecord:
    """Pooling variants, Chamfer re-ranking, PDQ and flip TTA beside the configurations."""
    params = run.params
    blocks = load_blocks(run)
    setup = detection_setup(run, blocks.ref_ids, query_meta(run, blocks.query_ids))
    files = run.table("files", "artifacts").set_index("id")["features"]
    ref_frames = frames_of(load_cached([files[r] for r in setup.gallery], run.cache))
    query_features = load_cached([files[q] for q in blocks.query_ids], run.cache)
    query_frames = frames_of(query_features)
    poolings = {params.pooling, *params.baselines.poolings}
    vectors = {m: (pooled(query_frames, m), pooled(ref_frames, m)) for m in poolings}

    matrices = configuration_matrices(run, blocks, setup.gallery)
    visual = matrices.setdefault(BASELINE, inner_products(*vectors[params.pooling]))
    for method in params.baselines.poolings:
        if method != params.pooling:
            matrices[f"visual_{method}"] = inner_products(*vectors[method])
    chamfer = chamfer_matrix(query_frames, ref_frames)
    matrices[f"visual_chamfer_top{params.baselines.chamfer_k}"] = rerank(
        visual, chamfer, params.baselines.chamfer_k
    )
    backbone = extracted_backbone(run)
    hashed, flips = hash_outputs(params), flip_outputs(params, backbone)  # computed by notebook 01
    corpus = reference_items(load_corpus(params, run.cache))
    query_videos = {
        q: (path, QUERY_FOLDER_FPS) for q, path in query_files(run, blocks.query_ids).items()
    }
    by_query = features_of(run, client, query_videos, hashed + flips, "query")
    by_ref = features_of(
        run, client, {r: corpus[r] for r in setup.gallery}, hashed + flips, "reference"
    )
    for spec, _ in hashed:
        matrices[f"{spec.name}_chamfer"] = chamfer_matrix(
            frames_of(by_query[spec, ""]), frames_of(by_ref[spec, ""])
        )
    if flips:
        query_pooled, ref_pooled = vectors[params.pooling]
        query_variants = [
            inner_products(pooled(frames_of(by_query[f]), params.pooling), ref_pooled)
            for f in flips
        ]
        ref_variants = [
            inner_products(query_pooled, pooled(frames_of(by_ref[f]), params.pooling))
            for f in flips
        ]
        matrices["visual_flip_tta_query"] = max_over_variants([visual, *query_variants])
        matrices["visual_flip_aug_reference"] = max_over_variants([visual, *ref_variants])

    fields, summary = report_methods(
        run, setup, matrices, "baselines", [(m, BASELINE) for m in matrices if m != BASELINE]
    )
    write_table(
        flip_mitigation(summary, BASELINE), run.path("tables", "flip_mitigation"), ("csv", "md")
    )
    order = list(dict.fromkeys(summary["transform"]))
    for value, name in (("recall_at_1", "baselines_recall"), ("micro_ap", "baselines_uap")):
        wide = summary.pivot(index="transform", columns="method", values=value).loc[
            order, list(matrices)
        ]
        write_table(wide.reset_index(), run.path("tables", name), ("csv", "md"))
    costs = stage_costs(query_features, by_query) | {
        "gallery_factor_flip_aug_reference": 1 + len(flips)
    }
    record = BaselinesRecord(**fields, methods=list(matrices), costs=costs)
    run.record(record)
    return record


def stage_costs(
    plain: list[VideoFeatures], extra: dict[Output, list[VideoFeatures]]
) -> dict[str, float]:
    """Median seconds per query, as recorded when its features were computed: decoding and
    the backbone on the frames (``plain``), and each ``extra`` output's embedding (a frame
    hash; the flip variants summed: the extra work of query-side augmentation, which decodes
    once and embeds several times)."""

    def median(features: list[VideoFeatures], step: str) -> float:
        return float(np.median([getattr(f, step) for f in features]))

    costs = {
        "videos": len(plain),
        "decode_s": median(plain, "decode_s"),
        "embed_s": median(plain, "embed_s"),
    }
    variants = [features for (_, variant), features in extra.items() if variant]
    costs |= {
        f"{b.name}_s": median(features, "embed_s")
        for (b, variant), features in extra.items()
        if not variant
    }
    if variants:
        per_query = np.sum([[f.embed_s for f in features] for features in variants], axis=0)
        costs["variants_embed_s"] = float(np.median(per_query))
    return costs


def flip_mitigation(summary: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """flip_h vs flip_v per method, and the share of the baseline's flip_v gap each closes."""
    values = ["recall_at_1", "sim_mean", "micro_ap"]
    wide = metrics.flip_pivot(summary, "method", values, ("flip_h", "flip_v", "overall"))
    wide["sim_gap"] = wide["sim_mean_flip_h"] - wide["sim_mean_flip_v"]
    wide["r1_gap"] = wide["recall_at_1_flip_h"] - wide["recall_at_1_flip_v"]
    for gap in ("sim_gap", "r1_gap"):
        base = wide.loc[baseline, gap]
        has_gap = base == base and base > 0  # no gap: nothing to close
        wide[f"{gap}_closed"] = 1 - wide[gap] / base if has_gap else np.nan
    return wide.reset_index()


def rotation_mitigation(run: Run, client) -> tuple[pd.DataFrame, RotationMitigationRecord]:
    """The rotation sweep for the visual block with and without rotated query variants."""
    params = run.params
    blocks = load_blocks(run)
    backbone = extracted_backbone(run)
    queries = [q for q in sweep_queries(run, client, blocks.ref_ids) if q.path]
    setup = detection_setup(run, blocks.ref_ids, sweep_meta(queries))
    refs = fuse(blocks.refs, "visual")[[blocks.ref_ids.index(r) for r in setup.gallery]]
    outputs = [(backbone, ""), *rotation_outputs(params, backbone)]  # computed by notebook 07
    found = features_of(run, client, query_items(queries), outputs, "sweep")
    variants = {
        v: inner_products(pooled(frames_of(found[backbone, v]), params.pooling), refs)
        for _, v in outputs
    }
    matrices = {
        BASELINE: variants[""],
        "visual_rotation_tta": max_over_variants(list(variants.values())),
    }
    rows = evaluate(matrices, setup.truth, setup.gallery, setup.meta)
    order = [t.name for t in rotation_sweep(params.figures.rotation_angles)]
    table = summarize(rows, matrices, setup.truth, order)
    table["angle"] = angles(table["transform"])
    write_table(table, run.path("tables", "rotation_mitigation"), ("csv", "md"))
    save_figure(rotation_mitigation_figure(table), run.path("figures", "rotation_mitigation"))
    record = RotationMitigationRecord(variants=params.mitigation.rotations, queries=len(queries))
    run.record(record)
    return table, record
