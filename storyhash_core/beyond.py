"""Stages beyond the paper: detection with distractors, baselines and flip/rotation mitigation.

All of them score queries against a *detection gallery*: the references minus a seeded
share of the query sources (``detection.distractor_fraction``), whose transformed copies
then become queries without a match — real negatives. Scores are exact (every query ×
every gallery item), so the measures do not depend on the approximate index.

- :func:`detection_stage` (notebooks 04 and 05): the configurations' μAP, ROC AUC,
  TPR@FPR per transform, bootstrap intervals, McNemar between configurations, and the
  positive vs negative score distributions -> ``tables/detection*``, ``tables/significance*``,
  ``figures/score_distributions.*``.
- :func:`baselines_stage` (notebook 08): the same measures for pooling variants, frame-level
  Chamfer re-ranking of the exact top-k pooled visual scores (what the index returns at this
  scale, where HNSW equals exact search), the PDQ hash, and flip test-time augmentation on the query or the
  reference side -> ``tables/baselines*``, ``tables/flip_mitigation.*``.
- :func:`rotation_mitigation_stage` (notebook 08): the rotation sweep with and without
  rotated query variants -> ``tables/rotation_mitigation.*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import ArtifactCache
from .comparison import bootstrap_methods, compare, evaluate, overall_with_ci, summarize
from .detection import split_distractors, truth_matrix
from .errors import StoryHashError
from .features import VideoFeatures, load_features, pool
from .figures import rotation_mitigation_figure, save_figure, score_distributions
from .fusion import fuse
from .pipeline import Output, process_videos
from .report import write_table
from .similarity import chamfer_matrix, inner_products, max_over_variants, rerank
from .study import (Blocks, Run, extracted_backbone, flip_outputs, hash_outputs, load_blocks, load_corpus, query_files,
                    query_meta_table, rotation_outputs, run_record, sweep_queries)
from .transforms import rotation_sweep


@dataclass
class DetectionSetup:
    """Which references form the gallery, and every query's row and truth against it."""

    gallery: list[str]  # reference ids kept in the gallery
    held_out: list[str]  # query sources held out: their copies are distractor queries
    meta: pd.DataFrame  # query_id, reference_id, transform, family (one row per query)
    truth: np.ndarray  # queries × gallery, True at the true match


def detection_setup(run: Run, ref_ids: list[str], meta: pd.DataFrame) -> DetectionSetup:
    """Hold out a seeded share of the query sources; the rest of the references is the gallery."""
    d = run.params.detection
    sources = sorted(set(meta["reference_id"]) & set(ref_ids))
    held = split_distractors(sources, d.distractor_fraction, d.seed)
    gallery = [r for r in ref_ids if r not in held]
    return DetectionSetup(gallery, held, meta.reset_index(drop=True), truth_matrix(list(meta["reference_id"]), gallery))


def query_meta(run: Run, query_ids: list[str]) -> pd.DataFrame:
    """reference_id, transform and family of each query, in ``query_ids`` order."""
    queries = run.table("queries").set_index("query_id")
    return queries.loc[query_ids, ["reference_id", "transform", "family"]].reset_index()


def configuration_matrices(run: Run, blocks: Blocks, gallery: list[str]) -> dict[str, np.ndarray]:
    """Exact similarities of every query to the gallery, per configuration."""
    p = run.params
    cols = [blocks.ref_ids.index(r) for r in gallery]
    out = {}
    for c in p.evaluation.configurations:
        g = fuse(blocks.refs, c, p.evaluation.weights)[cols]
        out[c] = inner_products(fuse(blocks.queries, c, p.evaluation.weights), g)
    return out


def report_methods(run: Run, setup: DetectionSetup, matrices: dict[str, np.ndarray], name: str,
                   pairs: list[tuple[str, str]]) -> tuple[dict, pd.DataFrame]:
    """Evaluate ``matrices`` and write ``tables/<name>_per_query``, ``<name>`` (per transform),
    ``<name>_overall`` (with intervals) and ``<name>_significance``; return the record and the
    per-transform summary."""
    d = run.params.detection
    order = run_record(run)["stages"]["extract"]["transforms"]
    order = [t for t in order if t in set(setup.meta["transform"])] or list(dict.fromkeys(setup.meta["transform"]))
    rows = evaluate(matrices, setup.truth, setup.meta)
    summary = summarize(rows, matrices, setup.truth, order)
    samples = bootstrap_methods(rows, matrices, setup.truth, d.bootstrap, d.seed)
    overall = overall_with_ci(summary, samples)
    tests = compare(rows, samples, pairs)
    write_table(rows, run.path("tables", f"{name}_per_query"))
    write_table(summary, run.path("tables", name), ("csv", "md", "tex"))
    write_table(overall, run.path("tables", f"{name}_overall"), ("csv", "md", "tex"))
    write_table(tests, run.path("tables", f"{name}_significance"), ("csv", "md"))
    record = {"gallery": len(setup.gallery), "held_out": setup.held_out, "queries": len(setup.meta),
              "distractor_queries": int((~setup.truth.any(axis=1)).sum()), "bootstrap": d.bootstrap,
              "overall": overall.to_dict("records"), "significance": tests.to_dict("records")}
    return record, summary


# ---- notebooks 04/05: the configurations ---------------------------------------------------

def detection_stage(run: Run) -> dict:
    """Detection measures of the configurations with distractor queries (see module doc)."""
    blocks = load_blocks(run)
    setup = detection_setup(run, blocks.ref_ids, query_meta(run, blocks.query_ids))
    matrices = configuration_matrices(run, blocks, setup.gallery)
    entry, _ = report_methods(run, setup, matrices, "detection", list(combinations(matrices, 2)))
    save_figure(score_distributions(matrices, setup.truth), run.path("figures", "score_distributions"))
    run.record("detection", entry)
    return entry


# ---- notebook 08: baselines and mitigation -------------------------------------------------

def _load(paths: list, cache: ArtifactCache) -> list[VideoFeatures]:
    """Features of cache entries (fetched if the cache is at a URL)."""
    return [load_features(cache.fetch(f)) for f in paths]


def _frames(features: list[VideoFeatures]) -> list[np.ndarray]:
    """The per-frame embeddings of each video."""
    return [f.frames for f in features]


def _extract(run: Run, client, items: dict[str, tuple[Path, float]], outputs: list[Output],
             what: str) -> dict[Output, list[VideoFeatures]]:
    """Features of every item for each output (one decode per video, unless cached); raises
    if any failed (the cache keeps what succeeded)."""
    done, failed = process_videos(client, items, run.params.sampling.fps, outputs, None, run.cache,
                                  f"{what} features: " + ", ".join(v or b.name for b, v in outputs))
    if failed:
        raise StoryHashError(f"{len(failed)} {what} feature extraction(s) failed, first {failed[0].key}: "
                             f"{failed[0].error} (the cache keeps the rest; fix the input and rerun)")
    return {output: _load([done[k].features[i] for k in items], run.cache) for i, output in enumerate(outputs)}


def _items(run: Run, blocks: Blocks) -> tuple[dict, dict]:
    """(path, folder fps) of every reference and query in the blocks."""
    videos = {v.video_id: (v.path, v.fps) for v in load_corpus(run.params, run.cache)}
    return ({r: videos[r] for r in blocks.ref_ids}, {q: (f, 24.0) for q, f in query_files(run, blocks.query_ids).items()})


def _pooled(frames: list[np.ndarray], method: str) -> np.ndarray:
    """One pooled, L2-normalised vector per video."""
    return np.stack([pool(f, method) for f in frames])


def baselines_stage(run: Run, client) -> dict:
    """Pooling variants, Chamfer re-ranking, PDQ and flip TTA beside the configurations."""
    p = run.params
    blocks = load_blocks(run)
    setup = detection_setup(run, blocks.ref_ids, query_meta(run, blocks.query_ids))
    files = run.table("files", "artifacts").set_index("id")["features"]
    ref_items, query_items = _items(run, blocks)
    ref_frames = _frames(_load([files[r] for r in setup.gallery], run.cache))
    query_features = _load([files[q] for q in blocks.query_ids], run.cache)
    query_frames = _frames(query_features)
    pooled = {m: (_pooled(query_frames, m), _pooled(ref_frames, m)) for m in {p.pooling, *p.baselines.poolings}}

    matrices = configuration_matrices(run, blocks, setup.gallery)
    # the visual block alone (= the padded ablation, whose zeros change no inner product)
    visual = matrices.setdefault("visual_padded", inner_products(*pooled[p.pooling]))
    for method in p.baselines.poolings:
        if method != p.pooling:
            matrices[f"visual_{method}"] = inner_products(*pooled[method])
    chamfer = chamfer_matrix(query_frames, ref_frames)
    matrices[f"visual_chamfer_top{p.baselines.chamfer_k}"] = rerank(visual, chamfer, p.baselines.chamfer_k)
    backbone = extracted_backbone(run)
    hashed, flips = hash_outputs(p), flip_outputs(p, backbone)  # computed by notebook 01
    extra = hashed + flips
    by_query = _extract(run, client, query_items, extra, "query")
    by_ref = _extract(run, client, {r: ref_items[r] for r in setup.gallery}, extra, "reference")
    for spec, _ in hashed:
        matrices[f"{spec.name}_chamfer"] = chamfer_matrix(_frames(by_query[spec, ""]), _frames(by_ref[spec, ""]))
    if flips:
        q_pooled, r_pooled = pooled[p.pooling]
        matrices["visual_flip_tta_query"] = max_over_variants(
            [visual, *(inner_products(_pooled(_frames(by_query[f]), p.pooling), r_pooled) for f in flips)])
        matrices["visual_flip_aug_reference"] = max_over_variants(
            [visual, *(inner_products(q_pooled, _pooled(_frames(by_ref[f]), p.pooling)) for f in flips)])

    baseline = "visual_padded"
    entry, summary = report_methods(run, setup, matrices, "baselines",
                                    [(m, baseline) for m in matrices if m != baseline])
    flip_table = flip_mitigation(summary, baseline)
    write_table(flip_table, run.path("tables", "flip_mitigation"), ("csv", "md"))
    costs = stage_costs(query_features, by_query)
    entry |= {"methods": list(matrices), "costs": costs | {"gallery_factor_flip_aug_reference": 1 + len(flips)}}
    run.record("baselines", entry)
    return entry


def stage_costs(plain: list[VideoFeatures], extra: dict[Output, list[VideoFeatures]]) -> dict[str, float]:
    """Median seconds per query, as recorded when its features were computed: decoding and
    the backbone on the frames (``plain``), and each ``extra`` output's embedding (a frame
    hash; the flip variants summed: the extra work of query-side augmentation, which decodes
    once and embeds several times)."""
    def median(features: list[VideoFeatures], step: str) -> float:
        return float(np.median([getattr(f, step) for f in features]))

    costs = {"videos": len(plain), "decode_s": median(plain, "decode_s"), "embed_s": median(plain, "embed_s")}
    variants = [features for (_, v), features in extra.items() if v]
    costs |= {f"{b.name}_s": median(features, "embed_s") for (b, v), features in extra.items() if not v}
    if variants:
        per_query = np.sum([[f.embed_s for f in features] for features in variants], axis=0)
        costs["variants_embed_s"] = float(np.median(per_query))
    return costs


def flip_mitigation(summary: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """flip_h vs flip_v per method, and the share of the baseline's flip_v gap each closes."""
    keep = summary[summary["transform"].isin(["flip_h", "flip_v", "overall"])]
    wide = keep.pivot(index="method", columns="transform", values=["recall_at_1", "sim_mean", "micro_ap"])
    wide.columns = [f"{m}_{t}" for m, t in wide.columns]
    wide = wide.reindex(columns=[f"{m}_{t}" for m in ("recall_at_1", "sim_mean", "micro_ap")
                                 for t in ("flip_h", "flip_v", "overall")])  # a run without a flip shows NaN
    wide["sim_gap"] = wide["sim_mean_flip_h"] - wide["sim_mean_flip_v"]
    wide["r1_gap"] = wide["recall_at_1_flip_h"] - wide["recall_at_1_flip_v"]
    for gap in ("sim_gap", "r1_gap"):
        base = wide.loc[baseline, gap]
        wide[f"{gap}_closed"] = 1 - wide[gap] / base if base == base and base > 0 else np.nan  # no gap: nothing to close
    order = list(dict.fromkeys(summary["method"]))
    return wide.loc[[m for m in order if m in wide.index]].reset_index()


def rotation_mitigation_stage(run: Run, client) -> pd.DataFrame:
    """The rotation sweep for the visual block with and without rotated query variants."""
    p = run.params
    blocks = load_blocks(run)
    backbone = extracted_backbone(run)
    queries = [q for q in sweep_queries(run, client, blocks.ref_ids) if q.path]
    items = {q.query_id: (q.path, 24.0) for q in queries}
    setup = detection_setup(run, blocks.ref_ids, query_meta_table(queries).drop(columns="error"))
    refs = fuse(blocks.refs, "visual")[[blocks.ref_ids.index(r) for r in setup.gallery]]
    outputs = [(backbone, ""), *rotation_outputs(p, backbone)]  # computed by notebook 07
    found = _extract(run, client, items, outputs, "sweep")
    variants = {v: inner_products(_pooled(_frames(found[backbone, v]), p.pooling), refs) for _, v in outputs}
    matrices = {"visual_padded": variants[""], "visual_rotation_tta": max_over_variants(list(variants.values()))}
    rows = evaluate(matrices, setup.truth, setup.meta)
    order = [t.name for t in rotation_sweep(p.figures.rotation_angles)]
    table = summarize(rows, matrices, setup.truth, order)
    table["angle"] = table["transform"].str.removeprefix("rotate_").replace("overall", np.nan).astype(float)
    write_table(table, run.path("tables", "rotation_mitigation"), ("csv", "md"))
    save_figure(rotation_mitigation_figure(table), run.path("figures", "rotation_mitigation"))
    run.record("rotation_mitigation", {"variants": p.mitigation.rotations, "queries": len(queries)})
    return table
