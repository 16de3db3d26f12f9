"""Notebook 09: the hard edit suite, every method on it, and region descriptors against it.

The hard edits (:data:`~storyhash_core.transforms.HARD_EDITS`, selected by
``hard_suite.edits``) of every query source are scored like notebook 08's baselines, against
the same detection gallery (the same held-out sources, whose edits are the distractor
queries):

- ``figures/hard_suite_contact.jpg``: one source's middle frame through every edit;
- every method of notebooks 04 and 08 (the configurations, pooling variants, Chamfer and its
  top-k re-ranking, PDQ, flip TTA and flip-augmented references), rotation TTA, and the
  region descriptors (``mitigation.regions``: each query scored by its best crop against
  the reference's full frame) -> ``tables/hard_suite_per_query``, ``hard_suite`` (per method
  and edit: R@1/R@3, the similarity to the true and the best wrong reference, μAP, TPR at
  FPR 1 %, and R@1's source-bootstrap interval), ``hard_suite_overall`` (with intervals),
  ``hard_suite_significance`` (each method against the visual baseline over the suite, one
  family), ``hard_suite_tests`` (the same per edit, one family over every edit),
  ``hard_suite_recall`` (edit × method), ``figures/hard_suite_recall``;
- the variants' price -> ``tables/hard_suite_price``: images embedded per frame, and what
  they do to the queries without a match (their seconds per query, wall-clock, are in the
  stage's record).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import prose
from ..detection import Pairs, rates_at, threshold_at_fpr, top_hits
from ..fusion import fuse
from ..plots import contact_sheet, per_transform_heatmap, thumbnail
from ..report import write_table
from ..significance import (
    Clusters,
    bootstrap,
    percentile_ci,
    resampled_mean,
)
from ..similarity import inner_products, max_over_variants
from .baselines import BASELINE, Methods, frames_of, pooled
from .fuse import load_blocks
from .inputs import (
    QUERY_FOLDER_FPS,
    extracted_backbone,
    features_of,
    load_corpus,
    query_files,
    query_meta,
    region_outputs,
    rotation_outputs,
)
from .memo import memoised
from .records import ExtractRecord, HardSuiteRecord
from .run import Run
from .scoring import detection_setup, paired_tests, report_methods

REGIONS = "visual_regions"  # the region-descriptor method
ROTATIONS = "visual_rotation_tta"
PRICE_FPR = 0.01  # the visual baseline's query-level operating point the price is read at


@dataclass
class HardSuite:
    """What notebook 09 shows (``record`` is None when the params select no hard suite)."""

    record: HardSuiteRecord | None
    contact: Path | None  # the contact sheet
    figure: Path | None  # R@1 per edit and method
    overall: pd.DataFrame
    per_edit: pd.DataFrame  # the visual baseline, fusion and the regions per edit
    significance: pd.DataFrame
    tests: pd.DataFrame  # per edit, significant ones
    price: pd.DataFrame
    costs: pd.DataFrame  # median seconds per query, from the record (wall-clock)
    discussion: str
    queries_note: str


@memoised("09_hard_suite")
def run(run: Run) -> HardSuite:
    """Every method on the hard suite; writes the files listed above."""
    if not run.load(ExtractRecord).hard_edits:
        empty = pd.DataFrame()
        return HardSuite(None, None, None, *[empty] * 6, "", "")
    with run.client() as client:
        record = hard_suite(run, client)
    overall, summary, tests, significance, price = (
        run.table(n)
        for n in (
            "hard_suite_overall",
            "hard_suite",
            "hard_suite_tests",
            "hard_suite_significance",
            "hard_suite_price",
        )
    )
    shown = [m for m in (BASELINE, "fusion", REGIONS) if m in set(summary["method"])]
    edits = [*record.edits, "overall"]
    significant = tests[tests["r1_significant"]].reset_index(drop=True)
    return HardSuite(
        record,
        run.path("figures", "hard_suite_contact.jpg"),
        run.path("figures", "hard_suite_recall.png"),
        overall,
        per_edit(summary, shown, edits),
        significance,
        significant,
        price,
        pd.DataFrame(
            {"step": k.removesuffix("_s"), "median seconds per query": v}
            for k, v in record.costs.items()
            if k.endswith("_s")
        ),
        prose.hard_suite(overall, significance, significant, price, record),
        prose.distractor_queries(overall),
    )


def hard_suite(run: Run, client) -> HardSuiteRecord:
    """The tables and figures of the hard suite (see the module)."""
    params = run.params
    blocks = load_blocks(run, "hard")
    meta = query_meta(run, blocks.query_ids)
    setup = detection_setup(run, blocks.ref_ids, meta)
    edits = run.load(ExtractRecord).hard_edits
    contact = draw_contact_sheet(run, meta, edits)
    methods = Methods.of(run, client, blocks)
    variants, costs = variant_matrices(run, client, blocks)
    columns = [blocks.ref_ids.index(r) for r in setup.gallery]
    matrices = methods.against(setup.gallery) | {m: v[:, columns] for m, v in variants.items()}
    pairs = [(c, BASELINE) for c in params.evaluation.configurations if c != BASELINE]
    pairs += methods.pairs(matrices)
    fields, summary = report_methods(run, setup, matrices, "hard_suite", pairs)
    rows = run.table("hard_suite_per_query")
    overall = run.table("hard_suite_overall")
    summary = with_recall_intervals(summary, rows, overall, params.detection)
    write_table(summary, run.path("tables", "hard_suite"), ("csv", "md"))
    matched = rows[~rows["distractor"]]  # one family over every (pair, edit)
    tests = paired_tests(matched, pairs, "transform", edits, key="method")
    write_table(tests.rename(columns={"transform": "edit"}), run.path("tables", "hard_suite_tests"))
    wide = summary.pivot(index="transform", columns="method", values="recall_at_1")
    wide = wide.loc[[*edits, "overall"], list(matrices)]
    write_table(wide.reset_index(), run.path("tables", "hard_suite_recall"), ("csv", "md"))
    heat = summary[summary["method"].isin(figure_methods(matrices, params))]
    run.save_figure(per_transform_heatmap(heat, key="method"), "hard_suite_recall")
    price = regions_price(matrices, setup, costs)
    write_table(price, run.path("tables", "hard_suite_price"), ("csv", "md"))
    record = HardSuiteRecord(
        **fields,
        edits=edits,
        methods=list(matrices),
        regions=params.mitigation.regions,
        costs=costs,
        contact_source=contact,
    )
    run.record(record)
    return record


def per_edit(summary: pd.DataFrame, methods: list[str], edits: list[str]) -> pd.DataFrame:
    """The rows of ``methods`` in ``summary``, edit by edit (in ``edits``), side by side."""
    rows = summary[summary["method"].isin(methods)]
    key = {"transform": edits.index, "method": methods.index}
    return rows.sort_values(["transform", "method"], key=lambda c: c.map(key[c.name])).reset_index(
        drop=True
    )


def figure_methods(matrices: dict, params) -> list[str]:
    """The methods of the R@1 figure: all but the truncated visual list (a control)."""
    return [m for m in matrices if m != f"visual_top{params.baselines.chamfer_k}"]


def variant_matrices(run: Run, client, blocks) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Rotation TTA and the region descriptors (each the best of the query's variants and its
    full frame against each reference's full frame), and the median seconds per query of
    the full frame's embedding and of each method's extra embeddings (notebook 01 computed
    them)."""
    params = run.params
    backbone = extracted_backbone(run)
    videos = {
        q: (path, QUERY_FOLDER_FPS)
        for q, path in query_files(run, blocks.query_ids, load_corpus(params, run.cache)).items()
    }
    outputs = [
        (backbone, ""),
        *rotation_outputs(params, backbone),
        *region_outputs(params, backbone),
    ]
    found = features_of(run, client, videos, outputs, "hard query")
    refs = fuse(blocks.refs, "visual")  # the references' pooled full frames

    def scores(variant: str) -> np.ndarray:
        return inner_products(pooled(frames_of(found[backbone, variant]), params.pooling), refs)

    full = scores("")
    out, costs = {}, {"embed_s": float(np.median([f.embed_s for f in found[backbone, ""]]))}
    for name, variants in (
        (ROTATIONS, params.mitigation.rotations),
        (REGIONS, params.mitigation.regions),
    ):
        if variants:
            out[name] = max_over_variants([full, *(scores(v) for v in variants)])
            seconds = np.sum([[f.embed_s for f in found[backbone, v]] for v in variants], axis=0)
            costs[f"{name}_extra_embed_s"] = float(np.median(seconds))
            costs[f"{name}_embeddings"] = 1 + len(variants)
    return out, costs


def with_recall_intervals(
    summary: pd.DataFrame, rows: pd.DataFrame, overall: pd.DataFrame, settings
) -> pd.DataFrame:
    """``summary`` with a 95 % source-bootstrap interval of every R@1: per method and edit
    over the edit's queries with a match, and ``overall``'s for the whole suite."""
    texts = {
        (m, "overall"): ci
        for m, ci in zip(overall["method"], overall["recall_at_1_ci"], strict=True)
    }
    matched = rows[~rows["distractor"]]
    for (method, edit), part in matched.groupby(["method", "transform"], sort=False):
        if not settings.bootstrap:
            break
        clusters = Clusters.of(list(part["reference_id"]))
        hits = (part["rank"] <= 1).to_numpy()
        samples = bootstrap(
            {"r1": lambda c, h=hits, k=clusters: 100 * resampled_mean(h, c, k)},
            clusters,
            settings.bootstrap,
            settings.seed,
        )
        low, high = percentile_ci(samples["r1"])
        texts[method, edit] = f"[{low:.3g}, {high:.3g}]"
    keys = zip(summary["method"], summary["transform"], strict=True)
    column = summary.columns.get_loc("recall_at_1") + 1
    return summary.assign(**{"recall_at_1_ci": [texts.get(k, "") for k in keys]}).reindex(
        columns=[*summary.columns[:column], "recall_at_1_ci", *summary.columns[column:]]
    )


def regions_price(matrices: dict[str, np.ndarray], setup, costs: dict[str, float]) -> pd.DataFrame:
    """What the variant methods cost against the visual baseline: images embedded per frame
    (their seconds are wall-clock, in the record only), the mean best score of the queries
    without a match, and the share of them called a copy at the visual baseline's
    query-level threshold for FPR 1 % (what a deployment that kept the visual operating
    point would see), beside their own TPR there."""
    held = ~setup.truth.any(axis=1)
    base = top_hits(matrices[BASELINE], setup.truth)
    threshold = threshold_at_fpr(base, PRICE_FPR)
    rows = []
    for method in [BASELINE, ROTATIONS, REGIONS]:
        if method not in matrices:
            continue
        hits = top_hits(matrices[method], setup.truth)
        tpr, fpr = rates_at(hits, threshold)
        no_match = Pairs(hits.scores[held], hits.positive[held], 0, int(held.sum()))
        rows.append(
            {
                "method": method,
                "embeddings_per_frame": costs.get(f"{method}_embeddings", 1),
                "no_match_best_mean": float(np.mean(no_match.scores)),
                "threshold": threshold,
                "tpr_at_visual_threshold": tpr,
                "fpr_at_visual_threshold": fpr,
                "no_match_called_copies": rates_at(no_match, threshold)[1],
            }
        )
    return pd.DataFrame(rows)


def draw_contact_sheet(run: Run, meta: pd.DataFrame, edits: list[str]) -> str:
    """One source's middle frame and its every hard edit -> ``figures/hard_suite_contact.jpg``;
    the source is the first with every edit made. Returns its id."""
    made = meta.groupby("reference_id")["transform"].agg(set)
    complete = [r for r, found in made.items() if set(edits) <= found]
    source = sorted(complete or made.index)[0]
    mine = meta[meta["reference_id"] == source]
    paths = query_files(run, list(mine["query_id"]))
    corpus = {v.video_id: v.path for v in load_corpus(run.params, run.cache)}
    tiles = {f"source {source}": thumbnail(corpus[source], 120, run.cache)}
    by_edit = dict(zip(mine["transform"], mine["query_id"], strict=True))
    for edit in edits:
        if edit in by_edit:
            tiles[edit] = thumbnail(paths[by_edit[edit]], 120, run.cache)
    run.save_image(contact_sheet(tiles), "hard_suite_contact.jpg")
    return source
