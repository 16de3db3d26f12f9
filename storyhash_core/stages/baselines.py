"""Notebook 08: baselines and mitigation, scored like the configurations (against the detection
gallery of :mod:`~storyhash_core.stages.scoring`, with distractor queries).

- Baselines: pooling variants, frame-level Chamfer similarity (on every pair, and re-ranking
  the exact top-k pooled visual scores), the PDQ hash, and flip test-time augmentation on the
  query or the reference side -> ``tables/baselines*``, ``tables/baselines_recall`` and
  ``baselines_uap`` (per transform × method), ``tables/flip_mitigation``; each method against
  the visual baseline in one family, on the same scored pairs: the re-ranker against the
  visual scores truncated to the same top-k (``visual_top<k>``).
- Rotation mitigation: the rotation sweep with and without rotated query variants ->
  ``tables/rotation_mitigation``, ``figures/rotation_mitigation``; at the variants' own
  angles and between them, with intervals and paired tests -> ``tables/rotation_mitigation_groups``,
  ``rotation_mitigation_significance``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import metrics, prose
from ..comparison import (
    bootstrap_methods,
    compare,
    evaluate,
    overall_with_ci,
    source_clusters,
    summarize,
)
from ..features import VideoFeatures, pool
from ..fusion import fuse
from ..pipeline import Output
from ..plots import rotation_mitigation_figure
from ..report import write_table
from ..significance import corrected
from ..similarity import chamfer_matrix, inner_products, max_over_variants, rerank
from ..transforms import rotation_sweep
from .figures import angles, sweep_meta
from .fuse import Blocks, load_blocks
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
from .memo import memoised
from .records import BaselinesRecord, RotationMitigationRecord
from .run import Run
from .scoring import (
    DetectionSetup,
    configuration_matrices,
    detection_setup,
    report_methods,
    save_scores,
    split_spread,
)

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
    costs: pd.DataFrame  # median seconds per query and step, from the record
    detection_discussion: str
    significance: pd.DataFrame
    significance_discussion: str
    recall: pd.DataFrame  # R@1 per transform × method
    uap: pd.DataFrame  # μAP per transform × method
    splits: pd.DataFrame  # spread over distractor splits, per method
    splits_discussion: str
    flips: pd.DataFrame
    flip_discussion: str
    rotation: pd.DataFrame
    rotation_groups: pd.DataFrame  # at the variants' own angles and between them
    rotation_tests: pd.DataFrame
    rotation_record: RotationMitigationRecord
    rotation_discussion: str
    queries_note: str  # which queries the detection tables count


@memoised("08_baselines_mitigation")
def run(run: Run) -> Baselines:
    """The baselines beside the configurations, flip mitigation and rotation mitigation."""
    with run.client() as client:
        record = baselines(run, client)
        rotation, rotation_record = rotation_mitigation(run, client)
    overall, tests, flips = (
        run.table(n) for n in ("baselines_overall", "baselines_significance", "flip_mitigation")
    )
    seconds = {k.removesuffix("_s"): v for k, v in record.costs.items() if k.endswith("_s")}
    costs = (  # wall-clock: in run.json only
        pd.Series(seconds, name="median seconds per query").rename_axis("step").reset_index()
    )
    spread = run.table("baselines_splits_spread")
    groups, rotation_tests = (
        run.table(n) for n in ("rotation_mitigation_groups", "rotation_mitigation_significance")
    )
    return Baselines(
        record,
        overall,
        costs,
        prose.detection(overall, record),
        tests,
        prose.significance(tests),
        run.table("baselines_recall"),
        run.table("baselines_uap"),
        spread,
        prose.splits(spread, record),
        flips,
        prose.flip_mitigation(flips, record.costs),
        rotation[ROTATION_COLUMNS],
        groups,
        rotation_tests,
        rotation_record,
        prose.rotation_mitigation(rotation, groups, rotation_tests),
        prose.distractor_queries(overall),
    )


def pooled(frames: list[np.ndarray], method: str) -> np.ndarray:
    """One pooled, L2-normalised vector per video."""
    return np.stack([pool(f, method) for f in frames])


def frames_of(features: list[VideoFeatures]) -> list[np.ndarray]:
    """The per-frame embeddings of each video."""
    return [f.frames for f in features]


def baselines(run: Run, client) -> BaselinesRecord:
    """Pooling variants, Chamfer, PDQ and flip TTA beside the configurations."""
    params = run.params
    blocks = load_blocks(run)
    meta = query_meta(run, blocks.query_ids)
    setup = detection_setup(run, blocks.ref_ids, meta)
    methods = Methods.of(run, client, blocks)
    matrices = methods.against(setup.gallery)
    fields, summary = report_methods(run, setup, matrices, "baselines", methods.pairs(matrices))
    split_spread(run, blocks.ref_ids, meta, methods.against, "baselines")
    write_table(
        flip_mitigation(summary, BASELINE), run.path("tables", "flip_mitigation"), ("csv", "md")
    )
    order = list(dict.fromkeys(summary["transform"]))
    for value, name in (("recall_at_1", "baselines_recall"), ("micro_ap", "baselines_uap")):
        wide = summary.pivot(index="transform", columns="method", values=value).loc[
            order, list(matrices)
        ]
        write_table(wide.reset_index(), run.path("tables", name), ("csv", "md"))
    flips = flip_outputs(params, extracted_backbone(run))
    costs = stage_costs(methods.features, methods.by_query) | {
        "gallery_factor_flip_aug_reference": 1 + len(flips)
    }
    record = BaselinesRecord(**fields, methods=list(matrices), costs=costs)
    run.record(record)
    return record


@dataclass
class Methods:
    """The configurations and every baseline for the queries of some blocks: similarities to
    every reference, cut to a gallery by :meth:`against`."""

    run: Run
    blocks: Blocks
    full: dict[str, np.ndarray]  # the baselines' queries × references (not the configurations)
    features: list[VideoFeatures]  # the queries' backbone features
    by_query: dict[Output, list[VideoFeatures]]  # their frame hash and flip variants

    @classmethod
    def of(cls, run: Run, client, blocks: Blocks) -> Methods:
        files = run.table("files", "artifacts").set_index("id")["features"]
        features = load_cached([files[q] for q in blocks.query_ids], run.cache)
        by_query, by_ref = _extra_features(run, client, blocks)
        full = reference_matrices(run, blocks, features, by_query, by_ref)
        return cls(run, blocks, full, features, by_query)

    def against(self, gallery: list[str]) -> dict[str, np.ndarray]:
        """Every method's queries × ``gallery`` similarities (the configurations' action
        scaler fitted on the gallery), Chamfer also re-ranking the visual top-k."""
        columns = [self.blocks.ref_ids.index(r) for r in gallery]
        out = configuration_matrices(self.run, self.blocks, gallery)  # its visual_padded stays
        out |= {name: m[:, columns] for name, m in self.full.items() if name not in out}
        k = self.run.params.baselines.chamfer_k
        visual = out[BASELINE]
        out[f"visual_top{k}"] = rerank(visual, visual, k)
        out[f"visual_chamfer_top{k}"] = rerank(visual, out["visual_chamfer"], k)
        return out

    def pairs(self, matrices: dict[str, np.ndarray]) -> list[tuple[str, str]]:
        """Each method against the visual baseline (the re-ranker against the visual scores
        truncated to the same top-k), the configurations left to notebook 04."""
        k = self.run.params.baselines.chamfer_k
        skip = set(self.run.params.evaluation.configurations) | {BASELINE, f"visual_top{k}"}
        return [
            (m, f"visual_top{k}" if m == f"visual_chamfer_top{k}" else BASELINE)
            for m in matrices
            if m not in skip
        ]


def reference_matrices(
    run: Run, blocks: Blocks, queries: list[VideoFeatures], by_query: dict, by_ref: dict
) -> dict[str, np.ndarray]:
    """The baselines' similarities of every query to every reference (the configurations,
    which fit the action scaler on a gallery, come per gallery): ``queries`` are the queries'
    backbone features, ``by_query`` / ``by_ref`` the frame hash and flip variants."""
    params = run.params
    files = run.table("files", "artifacts").set_index("id")["features"]
    ref_frames = frames_of(load_cached([files[r] for r in blocks.ref_ids], run.cache))
    query_frames = frames_of(queries)
    vectors = {
        m: (pooled(query_frames, m), pooled(ref_frames, m))
        for m in {params.pooling, *params.baselines.poolings}
    }
    out = {BASELINE: inner_products(*vectors[params.pooling])}
    for method in params.baselines.poolings:
        if method != params.pooling:
            out[f"visual_{method}"] = inner_products(*vectors[method])
    out["visual_chamfer"] = chamfer_matrix(query_frames, ref_frames)
    for spec, _ in hash_outputs(params):
        out[f"{spec.name}_chamfer"] = chamfer_matrix(
            frames_of(by_query[spec, ""]), frames_of(by_ref[spec, ""])
        )
    flips = flip_outputs(params, extracted_backbone(run))
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
        out["visual_flip_tta_query"] = max_over_variants([out[BASELINE], *query_variants])
        out["visual_flip_aug_reference"] = max_over_variants([out[BASELINE], *ref_variants])
    return out


def _extra_features(run: Run, client, blocks: Blocks) -> tuple[dict, dict]:
    """The frame hash and flipped variants of every query and reference (computed by notebook
    01, read from the cache)."""
    params = run.params
    outputs = hash_outputs(params) + flip_outputs(params, extracted_backbone(run))
    corpus = reference_items(load_corpus(params, run.cache))
    query_videos = {
        q: (path, QUERY_FOLDER_FPS) for q, path in query_files(run, blocks.query_ids).items()
    }
    by_query = features_of(run, client, query_videos, outputs, "query")
    by_ref = features_of(run, client, {r: corpus[r] for r in blocks.ref_ids}, outputs, "reference")
    return by_query, by_ref


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
    run.save_figure(rotation_mitigation_figure(table), "rotation_mitigation")
    groups, tests = rotation_groups(run, setup, matrices)
    write_table(groups, run.path("tables", "rotation_mitigation_groups"), ("csv", "md"))
    write_table(tests, run.path("tables", "rotation_mitigation_significance"), ("csv", "md"))
    save_scores(run, "rotation_mitigation", setup, matrices)
    record = RotationMitigationRecord(variants=params.mitigation.rotations, queries=len(queries))
    run.record(record)
    return table, record


AT_VARIANTS, BETWEEN_VARIANTS = "at a variant's angle", "between variants"


def angle_groups(transforms: pd.Series, variants: list[str]) -> np.ndarray:
    """Per ``rotate_<a>`` query: ``unrotated`` (0°), :data:`AT_VARIANTS` (a variant rotating by
    ``a`` in either direction undoes it, up to interpolation and the cut corners: the
    mitigation is tested on its own grid) or :data:`BETWEEN_VARIANTS`."""
    own = {abs(float(v.removeprefix("rot"))) for v in variants if v.startswith("rot")}
    angle = np.abs(angles(transforms))
    return np.where(
        angle == 0, "unrotated", np.where(np.isin(angle, list(own)), AT_VARIANTS, BETWEEN_VARIANTS)
    )


def rotation_groups(
    run: Run, setup: DetectionSetup, matrices: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """R@1 and μAP with source-bootstrap intervals, and the rotated variants against none
    (one family of the two rotated groups), at the variants' own angles and between them."""
    settings = run.params.detection
    group = angle_groups(setup.meta["transform"], run.params.mitigation.rotations)
    present = [g for g in (AT_VARIANTS, BETWEEN_VARIANTS) if (group == g).any()]
    overall, tests = [], []
    for name in present:
        keep = group == name
        meta, truth = setup.meta[keep].reset_index(drop=True), setup.truth[keep]
        mine = {m: sims[keep] for m, sims in matrices.items()}
        rows = evaluate(mine, truth, setup.gallery, meta)
        clusters = source_clusters(meta, truth)
        samples = bootstrap_methods(rows, mine, truth, clusters, settings.bootstrap, settings.seed)
        label = {"angles": name, "transforms": " ".join(dict.fromkeys(meta["transform"]))}
        summary = overall_with_ci(summarize(rows, mine, truth, []), samples)
        overall.append(summary.assign(**label))
        pair = [("visual_rotation_tta", BASELINE)]
        tests.append(compare(rows, samples, pair, clusters, len(present)).assign(**label))
    if not overall:
        empty = ["a", "b", "angles", "transforms", "r1_p"]
        return pd.DataFrame(columns=["method", "angles", "transforms"]), corrected(
            pd.DataFrame(columns=empty)
        )
    # each group's row is already corrected for the whole family (compare's ``family``)
    return pd.concat(overall, ignore_index=True), pd.concat(tests, ignore_index=True)
