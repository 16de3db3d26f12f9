"""Notebook 05: the 3-way ablation (fusion vs visual vs action), ours beside the paper's, the
paper's "action features raise confidence" claim read through the margins, and whether any
weighting of the motion blocks helps (:mod:`~storyhash_core.weighting`).

- ``tables/ablation``, ``figures/ablation``: Table 1's overall rows per configuration (the
  detection view of the same configurations comes from notebook 04, ``detection_overall``);
- the fusion-weight study, on notebook 04's detection gallery (the same held-out sources):
  every weighting of ``fusion_weights`` (kind × action scaling × w_a × w_g) scored on all
  queries and per source fold -> ``tables/fusion_weights``; the weights chosen per fold by
  cross-validation over query sources (per kind, and over every kind: ``cv_best``) and their
  held-out results against visual alone -> ``tables/fusion_heldout`` (the fold of every
  source: ``fusion_source_folds``), with the standard method
  tables ``fusion_cv`` (per transform), ``fusion_cv_overall`` (intervals),
  ``fusion_cv_significance`` (each selection against visual alone on the same
  scored pairs, one family), ``figures/fusion_weights``;
- the held-out choices on the rotation sweep and the hard suite, with the paper's transforms
  -> ``tables/fusion_cv_transforms`` and paired tests per transform,
  ``fusion_cv_transform_tests`` (one family);
- confidence, measured: separation (ROC AUC, d′) and top-hit calibration (Platt, isotonic,
  cross-fitted on the folds) -> ``tables/fusion_calibration``, ``fusion_reliability``,
  ``figures/fusion_reliability``;
- on the synthetic corpus, the same study with oracle tracks (:mod:`~storyhash_core.oracle`)
  -> rows ``tracks = oracle`` of ``fusion_weights`` and ``fusion_heldout``, and
  ``fusion_cv_oracle*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import metrics, prose
from ..calibration import (
    CALIBRATORS,
    calibration_scores,
    cross_fitted,
    reliability,
    separation,
)
from ..comparison import evaluate, summarize
from ..detection import truth_matrix
from ..motion import motion_blocks
from ..oracle import has_oracle, oracle_tracks
from ..paper import Paper
from ..plots import ablation_figure, fusion_weights_figure, reliability_figure
from ..report import write_table
from ..synthetic import GROUND_TRUTH, synthetic_corpus
from ..tracking import load_tracks
from ..transforms import resolve
from ..weighting import (
    MEASURES,
    CrossValidation,
    Similarities,
    SortedPairs,
    Weighting,
    cross_validate,
    grid,
    held_out,
    of_kinds,
    source_folds,
)
from .baselines import BASELINE
from .figures import sweep_blocks
from .fuse import Blocks, load_blocks
from .inputs import load_corpus, query_meta, transform_order
from .memo import memoised
from .records import AblationRecord, ExtractRecord
from .run import Run
from .scoring import DetectionSetup, detection_setup, paired_tests, report_methods

PAPER_WEIGHTING = Weighting("early", "minmax", 1.0, 1.0)  # the paper's fused vector
BLOCK_NAMES = ("visual", "action_raw", "graph")
BEST = prose.BEST_SELECTION  # the choice over every kind
SHOWN = (BASELINE, "fusion", BEST)  # the methods of the reliability figure


@dataclass
class Ablation:
    """What notebook 05 shows."""

    record: AblationRecord
    table: pd.DataFrame
    confidence: str
    detection: pd.DataFrame  # notebook 04's detection_overall
    significance: pd.DataFrame
    significance_discussion: str
    queries_note: str  # which queries the ablation table counts
    detection_queries_note: str  # which queries the detection table counts
    weights: FusionWeights | None  # None: a run without motion features


@dataclass
class FusionWeights:
    """What notebook 05 shows of the fusion-weight study."""

    best_fixed: (
        pd.DataFrame
    )  # per tracks and kind, the best weighting on all queries (in hindsight)
    heldout: pd.DataFrame  # the held-out rows (fold "all") of fusion_heldout
    folds: pd.DataFrame  # the per-fold choices
    significance: pd.DataFrame
    transforms: pd.DataFrame  # R@1 per transform: visual, the paper's fusion, cv_best
    transform_tests: pd.DataFrame  # the significant ones
    transform_tests_note: str  # how many of how many
    calibration: pd.DataFrame
    discussion: str


class Study(NamedTuple):
    """One weight study: the candidates, their similarity matrices, the cross-validation, the
    per-query folds, the fold of every source and the held-out curves."""

    candidates: list[Weighting]
    similarities: Similarities
    cv: CrossValidation
    fold: np.ndarray
    folds: dict[str, int]
    curve: pd.DataFrame  # held-out measures per kind and action weight


@memoised("05_ablation")
def run(run: Run) -> Ablation:
    """The ablation table and figure, the confidence discussion and the fusion-weight study."""
    table1 = run.table("table1")
    paper = run.paper()
    table = ablation_table(table1, paper)
    write_table(table, run.path("tables", "ablation"), ("csv", "md", "tex"))
    run.save_figure(ablation_figure(table), "ablation")
    record = AblationRecord(
        configurations=list(table["configuration"]), paper_compared=paper is not None
    )
    weights = None
    if run.params.motion.enabled:
        with run.client() as client:
            weights = fusion_weights(run, client, record)
    run.record(record)
    tests = run.table("detection_significance")
    detection = run.table("detection_overall")
    return Ablation(
        record,
        table,
        prose.confidence(table1, paper),
        detection,
        tests,
        prose.significance(tests),
        prose.all_queries(int(table["queries"].iloc[0])),
        prose.distractor_queries(detection),
        weights,
    )


def ablation_table(table1: pd.DataFrame, paper: Paper | None) -> pd.DataFrame:
    """Overall row per configuration, with the paper's overall numbers beside ours when given."""
    overall = table1[table1["transform"] == "overall"][["configuration", *metrics.TABLE1_COLUMNS]]
    overall = overall.reset_index(drop=True)
    return overall.merge(paper.overall, on="configuration", how="left") if paper else overall


# ---- the fusion-weight study -----------------------------------------------------------------


def selections(candidates: list[Weighting]) -> dict[str, list[int]]:
    """Each kind chosen on its own (``cv_<kind>``), and over every kind (``cv_best``)."""
    kinds = list(dict.fromkeys(w.kind for w in candidates))
    out = {f"cv_{k}": of_kinds(candidates, [k]) for k in kinds}
    return out | ({BEST: list(range(len(candidates)))} if len(kinds) > 1 else {})


def curve_selections(candidates: list[Weighting]) -> dict[str, list[int]]:
    """Per kind and action weight, the candidates that differ only in scaling and graph
    weight: the points of the held-out curves (``<kind> w_a=<w>``)."""
    out: dict[str, list[int]] = {}
    for i, w in enumerate(candidates):
        out.setdefault(f"{w.kind} w_a={w.action:g}", []).append(i)
    return out


def heldout_curve(
    cv: CrossValidation,
    candidates: list[Weighting],
    sims: Similarities,
    truth: np.ndarray,
    fold: np.ndarray,
) -> pd.DataFrame:
    """Per kind and action weight, the held-out measures with scaling and graph weight chosen
    on the training folds (the figure's curves)."""
    rows = []
    for name, allowed in curve_selections(candidates).items():
        kind, action = candidates[allowed[0]].kind, candidates[allowed[0]].action
        matrix = held_out(cv.chosen, name, candidates, sims, fold)
        rows.append(
            {"kind": kind, "w_a": action}
            | SortedPairs(matrix, truth).measures(np.ones(len(fold), bool))
        )
    return pd.DataFrame(rows)


def gallery_blocks(blocks: Blocks, gallery: list[str]) -> dict[str, np.ndarray]:
    columns = [blocks.ref_ids.index(r) for r in gallery]
    return {b: blocks.refs[b][columns] for b in BLOCK_NAMES}


def weight_study(run: Run, setup: DetectionSetup, blocks: Blocks) -> Study:
    """Every candidate of ``fusion_weights`` on ``blocks``' queries against the gallery, and
    the choice per source fold."""
    settings = run.params.fusion_weights
    candidates = grid(
        settings.kinds, settings.scalings, settings.action_weights, settings.graph_weights
    )
    scalings = list(dict.fromkeys([*settings.scalings, PAPER_WEIGHTING.scaling]))
    queries = {b: blocks.queries[b] for b in BLOCK_NAMES}
    sims = Similarities(queries, gallery_blocks(blocks, setup.gallery), scalings, settings.rerank_k)
    sources = setup.meta["reference_id"]
    folds = source_folds(sorted(set(sources)), setup.held_out, settings.folds, settings.seed)
    fold = sources.map(folds).to_numpy()
    named = selections(candidates)
    every = cross_validate(
        candidates,
        sims,
        setup.truth,
        fold,
        settings.criterion,
        named | curve_selections(candidates),
    )
    curve = heldout_curve(every, candidates, sims, setup.truth, fold)
    cv = every._replace(chosen=every.chosen[every.chosen["selection"].isin(named)])
    return Study(candidates, sims, cv, fold, folds, curve.reset_index(drop=True))


def study_matrices(study: Study, sims: Similarities, fold: np.ndarray) -> dict[str, np.ndarray]:
    """Visual alone, the paper's fusion and every selection's held-out matrix, for the queries
    of ``sims`` (whose folds are ``fold``); for a selection that leaves pairs unscored (a
    re-ranking scores the visual top k only), also visual alone on its pairs,
    ``visual_as_<selection>``, its like-for-like baseline."""
    out = {BASELINE: sims.visual, "fusion": sims(PAPER_WEIGHTING)}
    for selection in dict.fromkeys(study.cv.chosen["selection"]):
        out[selection] = held_out(study.cv.chosen, selection, study.candidates, sims, fold)
    for selection, matrix in list(out.items()):
        if np.isnan(matrix).any():
            out[f"visual_as_{selection}"] = np.where(np.isnan(matrix), np.nan, sims.visual)
    return out


def baseline_of(selection: str, matrices: dict[str, np.ndarray]) -> str:
    """What ``selection`` is tested against: visual alone on the same scored pairs."""
    return f"visual_as_{selection}" if f"visual_as_{selection}" in matrices else BASELINE


def tested_pairs(matrices: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """Each cross-validated selection against its baseline: one family. The paper's fusion
    is shown beside them; its test against visual is notebook 04's."""
    return [(m, baseline_of(m, matrices)) for m in matrices if m.startswith("cv_")]


def fusion_weights(run: Run, client, record: AblationRecord) -> FusionWeights:
    """The fusion-weight study (see the module); fills ``record``'s fields of it."""
    settings = run.params.fusion_weights
    blocks = load_blocks(run)
    setup = detection_setup(run, blocks.ref_ids, query_meta(run, blocks.query_ids))
    studies = {"flow": (blocks, setup)}
    if run.params.corpus.kind == "synthetic":
        studies["oracle"] = oracle_study_inputs(run, blocks, setup)
    grids, chosen, curves, heldout_rows = [], [], [], []
    for tracks, (these, this_setup) in studies.items():
        study = weight_study(run, this_setup, these)
        matrices = study_matrices(study, study.similarities, study.fold)
        pairs = tested_pairs(matrices)
        name = "fusion_cv" if tracks == "flow" else "fusion_cv_oracle"
        report_methods(run, this_setup, matrices, name, pairs)
        grids.append(study.cv.grid.assign(tracks=tracks))
        chosen.append(study.cv.chosen.assign(tracks=tracks))
        curves.append(study.curve.assign(tracks=tracks))
        heldout_rows.append(
            heldout_summary(
                run.table(f"{name}_overall"),
                run.table(f"{name}_significance"),
                [("fusion", BASELINE), *pairs],
                tracks,
            )
        )
        if tracks == "flow":
            flow, flow_matrices = study, matrices
            source_table = pd.DataFrame(
                {
                    "source": list(study.folds),
                    "fold": list(study.folds.values()),
                    "held_out": [f in this_setup.held_out for f in study.folds],
                }
            )
            write_table(source_table, run.path("tables", "fusion_source_folds"))
    table = pd.concat(grids, ignore_index=True)
    table = table[["tracks", *table.columns.drop("tracks")]]
    write_table(table, run.path("tables", "fusion_weights"))
    folds = pd.concat(chosen, ignore_index=True)
    folds = folds[["tracks", *folds.columns.drop("tracks")]]
    heldout = pd.concat(heldout_rows, ignore_index=True)
    write_table(
        pd.concat([folds.assign(fold=folds["fold"].astype(str)), heldout], ignore_index=True),
        run.path("tables", "fusion_heldout"),
        ("csv", "md"),
    )
    curve = pd.concat(curves, ignore_index=True)
    curve = curve[["tracks", *curve.columns.drop("tracks")]]
    write_table(curve, run.path("tables", "fusion_weight_curve"))
    run.save_figure(fusion_weights_figure(curve, table, heldout), "fusion_weights")
    transforms, tests = per_transform(run, client, flow, blocks, setup, flow_matrices)
    calibration, bins = confidence(flow_matrices, setup.truth, flow.fold)
    write_table(calibration, run.path("tables", "fusion_calibration"), ("csv", "md"))
    write_table(bins, run.path("tables", "fusion_reliability"))
    run.save_figure(
        reliability_figure(bins, [m for m in SHOWN if m in flow_matrices]), "fusion_reliability"
    )
    significance = run.table("fusion_cv_significance")
    record.fusion_candidates = len(flow.candidates)
    record.fusion_folds = len(set(flow.folds.values()))
    record.fusion_criterion = settings.criterion
    record.fusion_oracle = "oracle" in studies
    record.fusion_heldout = heldout.to_dict("records")
    shown = transforms[transforms["method"].isin(SHOWN)]
    wide = shown.pivot_table(
        index=["suite", "transform"], columns="method", values="recall_at_1", sort=False
    ).reset_index()
    best_fixed = best_in_hindsight(table)
    return FusionWeights(
        best_fixed,
        heldout,
        folds,
        significance,
        wide,
        tests[tests["r1_significant"]].reset_index(drop=True),
        prose.significant_tests(tests),
        calibration,
        prose.fusion_weights(heldout, folds, transforms, tests, calibration, settings.criterion),
    )


def heldout_summary(
    overall: pd.DataFrame, tests: pd.DataFrame, pairs: list[tuple[str, str]], tracks: str
) -> pd.DataFrame:
    """Per (method, baseline) pair, fold ``all``: the method's held-out overall measures with
    their intervals, its baseline's beside them, and their paired test where it was run."""
    overall = overall.set_index("method")
    keep = ["queries", "recall_at_1", "recall_at_1_ci", "micro_ap", "micro_ap_ci"]
    keep += ["tpr_at_fpr_0.01", "roc_auc"]
    tested = tests.set_index(["a", "b"])
    test_columns = ["r1_p_bonferroni", "r1_significant", "r1_diff_ci", "uap_diff_ci"]
    test_columns.append("uap_significant")
    rows = []
    for method, baseline in pairs:
        row = {"tracks": tracks, "selection": method, "fold": "all", "baseline": baseline}
        row |= overall.loc[method, keep].to_dict()
        row |= {f"visual_{m}": overall.loc[baseline, m] for m in MEASURES}
        if (method, baseline) in tested.index:
            row |= tested.loc[(method, baseline), test_columns].to_dict()
        rows.append(row)
    return pd.DataFrame(rows)


def best_in_hindsight(table: pd.DataFrame) -> pd.DataFrame:
    """Per tracks and kind, the weighting with the best μAP on all queries: what choosing on
    the test queries would report (an optimistic bound, not a result)."""
    best = table.loc[table.groupby(["tracks", "kind"], sort=False)["micro_ap"].idxmax()]
    columns = ["tracks", "kind", "scaling", "w_a", "w_g", "recall_at_1", "micro_ap"]
    return best[[*columns, "tpr_at_fpr_0.01"]].reset_index(drop=True)


def oracle_study_inputs(run: Run, blocks: Blocks, setup: DetectionSetup) -> tuple:
    """The blocks of the synthetic corpus with the motion blocks of oracle tracks, for the
    queries whose transform has an oracle geometry, and their detection setup."""
    corpus = {v.video_id: v for v in load_corpus(run.params, run.cache)}
    truth = pd.read_csv(
        synthetic_corpus(run.params.corpus.synthetic, run.cache).parent / GROUND_TRUTH
    )
    by_video = dict(list(truth.groupby("video_id")))
    files = run.table("files", "artifacts").set_index("id")
    transforms = {t.name: t for t in resolve(transform_order(run))}
    meta = setup.meta
    keep = meta["transform"].map(lambda t: t in transforms and has_oracle(transforms[t]))
    meta = meta[keep.to_numpy(bool)].reset_index(drop=True)

    def tracks_of(video_id: str, transform) -> object:
        video = corpus[video_id]
        times = load_tracks(run.cache.fetch(files.loc[transform[0], "tracks"]))[0].times
        return oracle_tracks(
            by_video.get(video_id, truth.iloc[:0]),
            video.fps,
            int(video.meta["width"]),
            int(video.meta["height"]),
            times,
            transform[1],
        )

    refs = [tracks_of(r, (r, None)) for r in blocks.ref_ids]
    queries = [
        tracks_of(r, (q, transforms[t]))
        for q, r, t in zip(meta["query_id"], meta["reference_id"], meta["transform"], strict=True)
    ]
    ref_action, ref_graph = motion_blocks(refs)
    query_action, query_graph = motion_blocks(queries)
    rows = [blocks.query_ids.index(q) for q in meta["query_id"]]
    oracle = Blocks(
        blocks.ref_ids,
        {"visual": blocks.refs["visual"], "action_raw": ref_action, "graph": ref_graph},
        list(meta["query_id"]),
        {
            "visual": blocks.queries["visual"][rows],
            "action_raw": query_action,
            "graph": query_graph,
        },
        None,
    )
    truth_m = truth_matrix(list(meta["reference_id"]), setup.gallery)
    return oracle, DetectionSetup(setup.gallery, setup.held_out, meta, truth_m)


def per_transform(
    run: Run,
    client,
    study: Study,
    blocks: Blocks,
    setup: DetectionSetup,
    matrices: dict[str, np.ndarray],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The held-out choices per transform of the paper's suite, the rotation sweep and the hard
    suite (each query's weights chosen without its source's fold) ->
    ``tables/fusion_cv_transforms``, and the paired R@1 tests of ``cv_best`` against visual
    per transform, one family -> ``fusion_cv_transform_tests`` (the paper's fusion is tested
    per transform in ``table1_tests`` and ``rotation_significance``)."""
    settings = run.params.fusion_weights
    gallery = gallery_blocks(blocks, setup.gallery)
    parts = [("paper", setup.meta, matrices, setup.truth, transform_order(run))]
    sweep_meta, sweep, _ = sweep_blocks(run, client, blocks)
    others = [("rotation", sweep_meta, sweep)]
    if run.load(ExtractRecord).hard_edits:
        hard = load_blocks(run, "hard")
        others.append(("hard", query_meta(run, hard.query_ids), hard.queries))
    seen = set(setup.meta["query_id"])
    for suite, meta, queries in others:
        keep = ~meta["query_id"].isin(seen).to_numpy()  # a sweep angle the paper's suite has
        meta = meta[keep].reset_index(drop=True)
        if not len(meta):
            continue
        queries = {b: queries[b][keep] for b in BLOCK_NAMES}
        sims = Similarities(queries, gallery, list(study.similarities.products), settings.rerank_k)
        fold = meta["reference_id"].map(study.folds).to_numpy()
        truth = truth_matrix(list(meta["reference_id"]), setup.gallery)
        parts.append(
            (
                suite,
                meta,
                study_matrices(study, sims, fold),
                truth,
                list(dict.fromkeys(meta["transform"])),
            )
        )
        seen |= set(meta["query_id"])
    tables, rows_all, order = [], [], []
    for suite, meta, these, truth, transforms in parts:
        rows = evaluate(these, truth, setup.gallery, meta)
        summary = summarize(rows, these, truth, transforms)
        tables.append(summary.assign(suite=suite))
        rows_all.append(rows)
        order += transforms
    table = pd.concat(tables, ignore_index=True)
    table = table[["suite", *table.columns.drop("suite")]]
    write_table(table, run.path("tables", "fusion_cv_transforms"), ("csv", "md"))
    rows = pd.concat(rows_all, ignore_index=True)
    pairs = [(m, BASELINE) for m in (BEST,) if m in matrices]
    tests = paired_tests(rows[~rows["distractor"]], pairs, "transform", order, key="method")
    write_table(tests, run.path("tables", "fusion_cv_transform_tests"), ("csv", "md"))
    return table[table["transform"] != "overall"], tests


def confidence(
    matrices: dict[str, np.ndarray], truth: np.ndarray, fold: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per method: separation (pairs), and per calibrator the held-out Brier score and ECE of
    the top hits; the reliability bins behind the figure."""
    rows, bins = [], []
    for method, sims in matrices.items():
        separated = separation(sims, truth)
        for calibrator in CALIBRATORS:
            probability, outcome = cross_fitted(sims, truth, fold, calibrator)
            rows.append(
                {"method": method, "calibrator": calibrator}
                | separated
                | calibration_scores(probability, outcome)
            )
            bins.append(
                reliability(probability, outcome).assign(method=method, calibrator=calibrator)
            )
    return pd.DataFrame(rows), pd.concat(bins, ignore_index=True)
