"""Notebook 04: the paper's Table 1 and, beyond it, detection with distractor queries.

- Table 1: every query against every configuration's gallery, R@1/R@3 by exact search and,
  beside it, from the saved index's ranking -> ``tables/robustness_per_query``, ``table1``
  (R@1/R@3 and similarity per transform), ``table1_vs_paper`` (beside the paper's numbers),
  ``table1_tests`` (fusion vs visual per transform, one family), ``figures/table1_recall``.
- Detection: the configurations scored against the detection gallery
  (:mod:`~storyhash_core.stages.scoring`) -> ``tables/detection*`` (μAP, ROC AUC, TPR@FPR per
  transform, source-bootstrap intervals, paired tests between configurations, the μAP pivot,
  the similarity matrices, the spread over distractor splits),
  ``figures/score_distributions`` and, with each configuration's index, its operating
  thresholds (``indexes/<configuration>/operating_points.json``, read by ``storyhash query``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from .. import metrics, pages, prose
from ..detection import top_hits
from ..paper import beside_paper
from ..plots import per_transform_heatmap, score_distributions
from ..query import save_operating_points
from ..report import write_table
from .fuse import load_blocks
from .inputs import query_meta, transform_order
from .memo import memoised
from .records import DetectionRecord, ExtractRecord, RobustnessRecord
from .run import Run
from .scoring import (
    configuration_matrices,
    detection_setup,
    paired_tests,
    report_methods,
    search_configurations,
    split_spread,
)


@dataclass
class Robustness:
    """What notebook 04 shows."""

    record: RobustnessRecord
    detection: DetectionRecord
    table1: pd.DataFrame
    versus_paper: pd.DataFrame | None  # None without paper_results.json
    latency: pd.DataFrame
    table1_tests: pd.DataFrame  # fusion vs visual per transform
    detection_overall: pd.DataFrame
    detection_uap: pd.DataFrame  # μAP per transform × configuration
    detection_splits: pd.DataFrame  # spread over distractor splits, per configuration
    discussion: str
    detection_discussion: str
    recall: pd.DataFrame  # R@1: transforms × configurations, the paper's beside
    similarity: pd.DataFrame  # similarity to the true reference, laid out as ``recall``
    queries_note: str  # which queries Table 1 counts
    detection_queries_note: str  # which queries the detection tables count


@memoised("04_robustness")
def run(run: Run) -> Robustness:
    """Table 1 and the detection tables of every configuration; writes the files listed above."""
    table1, record = table1_stage(run)
    detection = detection_stage(run)
    paper = run.paper()
    versus = run.table("table1_vs_paper") if paper else None
    latency = pd.DataFrame(
        {c: v.model_dump() for c, v in record.search_latency.items()}
    ).T  # wall-clock
    overall = run.table("detection_overall")
    uap = run.table("detection_uap")
    spread = run.table("detection_splits_spread")
    per_transform = int(table1.loc[table1["transform"] != "overall", "queries"].max())
    discussion = prose.overall(table1, paper) + "\n\n" + prose.resolution_note(per_transform)
    return Robustness(
        record,
        detection,
        table1,
        versus,
        latency,
        run.table("table1_tests"),
        overall,
        uap,
        spread,
        discussion,
        prose.detection(overall, detection) + "\n\n" + prose.splits(spread, detection),
        pages.table1(table1, "recall_at_1", versus),
        pages.table1(table1, "sim_mean", versus),
        prose.all_queries(int(record.overall[0]["queries"])),
        prose.distractor_queries(overall),
    )


def table1_stage(run: Run) -> tuple[pd.DataFrame, RobustnessRecord]:
    """Every query in every configuration's index -> Table 1 and its companions."""
    blocks = load_blocks(run)
    meta = query_meta(run, blocks.query_ids)
    rows, latency = search_configurations(run, meta, blocks.queries, blocks.ref_ids, blocks.refs)
    table = metrics.summarize(rows, "configuration", transform_order(run), metrics.TABLE1_COLUMNS)
    hard = hard_table1(run)
    if hard is not None:
        rows = pd.concat([rows.assign(suite="paper"), hard[0]], ignore_index=True)
        write_table(hard[1], run.path("tables", "table1_hard"), ("csv", "md"))
    write_table(rows, run.path("tables", "robustness_per_query"))
    write_table(table, run.path("tables", "table1"), ("csv", "md", "tex"))
    paper = run.paper()
    if paper:
        write_table(
            beside_paper(table, paper), run.path("tables", "table1_vs_paper"), ("csv", "md", "tex")
        )
    tests = paired_tests(rows, [("fusion", "visual_padded")], "transform", transform_order(run))
    write_table(tests, run.path("tables", "table1_tests"), ("csv", "md"))
    run.save_figure(per_transform_heatmap(table), "table1_recall")
    overall = table[table["transform"] == "overall"].drop(columns="transform")
    record = RobustnessRecord(overall=overall.to_dict("records"), search_latency=latency)
    run.record(record)
    return table, record


def hard_table1(run: Run) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Table 1's protocol (the whole gallery, every configuration's index) on the hard suite:
    its per-query rows (``suite`` hard) and the table per edit; None without a hard suite."""
    blocks = load_blocks(run, "hard")
    if not blocks.query_ids:
        return None
    meta = query_meta(run, blocks.query_ids)
    rows, _ = search_configurations(run, meta, blocks.queries, blocks.ref_ids, blocks.refs)
    edits = run.load(ExtractRecord).hard_edits
    return rows.assign(suite="hard"), metrics.summarize(
        rows, "configuration", edits, metrics.TABLE1_COLUMNS
    )


def detection_stage(run: Run) -> DetectionRecord:
    """The configurations' detection measures with distractor queries."""
    blocks = load_blocks(run)
    setup = detection_setup(run, blocks.ref_ids, query_meta(run, blocks.query_ids))
    matrices = configuration_matrices(run, blocks, setup.gallery)
    fields, summary = report_methods(
        run, setup, matrices, "detection", list(combinations(matrices, 2))
    )
    split_spread(
        run,
        blocks.ref_ids,
        setup.meta,
        lambda gallery: configuration_matrices(run, blocks, gallery),
        "detection",
    )
    order = list(dict.fromkeys(summary["transform"]))
    uap = summary.pivot(index="transform", columns="method", values="micro_ap").loc[
        order, list(matrices)
    ]
    write_table(uap.reset_index(), run.path("tables", "detection_uap"), ("csv", "md"))
    run.save_figure(score_distributions(matrices, setup.truth), "score_distributions")
    store_thresholds(run, setup, matrices)
    record = DetectionRecord(**fields)
    run.record(record)
    return record


def store_thresholds(run: Run, setup, matrices: dict[str, np.ndarray]) -> None:
    """Each configuration's operating thresholds for ``storyhash query``'s decision about a
    video, stored with its index: over the queries' best hits (:func:`top_hits`), FPR is the
    share of queries without a match, or whose best hit is wrong, called a copy."""
    held = (~setup.truth.any(axis=1)).sum()
    where = (
        f"the best hit of each of the {len(setup.truth)} queries of this run's detection"
        f" gallery ({held} without a match) among {len(setup.gallery)} references"
    )
    for configuration, sims in matrices.items():
        folder = run.path("indexes", configuration)
        if folder.is_dir():
            save_operating_points(folder, top_hits(sims, setup.truth), where)
