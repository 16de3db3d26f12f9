"""Notebook 07: the flip and rotation figures of the paper, with paired tests.

- Flips: R@1 and similarity under flip_h vs flip_v per configuration -> ``tables/flips``,
  ``figures/flips``; paired by source (McNemar on R@1, Wilcoxon on the similarity) ->
  ``tables/flip_tests``.
- Rotation: every query source rotated by each angle of ``figures.rotation_angles``, searched
  against every configuration's gallery (exact rank, and the index's beside it) ->
  ``tables/rotation_sweep`` (and ``_per_query``), ``figures/rotation_sweep``; fusion vs visual
  per angle (paired test, one family) -> ``tables/rotation_significance``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import metrics, prose
from ..plots import flip_figure, rotation_figure
from ..queries import Query
from ..report import write_table
from ..significance import Clusters, PairedHits, bonferroni, paired_table
from .fuse import Blocks, blocks_for, load_blocks
from .inputs import extract_items, extracted_backbone, query_items, rotation_outputs, sweep_queries
from .memo import memoised
from .records import RotationSweepRecord
from .run import Run
from .scoring import paired_tests, search_configurations

FLIP_VALUES = ["recall_at_1", "sim_mean", "margin_mean"]
WILCOXON_COLUMNS = ["sim_diff_median", "wilcoxon_p"]


@dataclass
class Figures:
    """What notebook 07 shows."""

    flips: pd.DataFrame
    flip_discussion: str
    flip_tests: pd.DataFrame
    flip_tests_discussion: str
    sweep: pd.DataFrame
    sweep_record: RotationSweepRecord
    rotation_discussion: str
    rotation_tests: pd.DataFrame


@memoised("07_figures")
def run(run: Run) -> Figures:
    """The flip table, figure and tests, and the rotation sweep with its figure and tests."""
    table1 = run.table("table1")
    paper = run.paper()
    flips = flip_table(table1)
    write_table(flips, run.path("tables", "flips"), ("csv", "md"))
    run.save_figure(flip_figure(flips), "flips")
    tests = flip_tests(run.table("robustness_per_query"))
    write_table(tests, run.path("tables", "flip_tests"), ("csv", "md"))
    with run.client() as client:
        sweep, record = rotation_sweep(run, client)
    rotation_tests = paired_tests(
        run.table("rotation_sweep_per_query"), [("fusion", "visual_padded")], "angle"
    )
    write_table(rotation_tests, run.path("tables", "rotation_significance"), ("csv", "md"))
    return Figures(
        flips,
        prose.flips(flips, paper),
        tests,
        prose.flip_tests(tests),
        sweep,
        record,
        prose.rotation(table1, sweep, paper),
        rotation_tests,
    )


def flip_table(table1: pd.DataFrame) -> pd.DataFrame:
    """R@1, mean similarity and margin under flip_h and flip_v, per configuration."""
    wide = metrics.flip_pivot(table1, "configuration", FLIP_VALUES)
    wide["recall_gap"] = wide["recall_at_1_flip_h"] - wide["recall_at_1_flip_v"]
    return wide.reset_index()


def flip_tests(rows: pd.DataFrame) -> pd.DataFrame:
    """flip_h (A) vs flip_v (B) of the same source videos, per configuration (one family):
    the paired test on R@1 (exact McNemar: one query of each per source) and the exact
    Wilcoxon signed-rank test on the similarity to the true reference (zero differences
    dropped), one family: Bonferroni over both tests of every configuration."""
    from scipy.stats import wilcoxon

    comparisons, wilcoxons = [], []
    flips = rows[rows["transform"].isin(["flip_h", "flip_v"])]
    for configuration, part in flips.groupby("configuration", sort=False):
        wide = part.pivot(index="reference_id", columns="transform", values=["rank", "sim_true"])
        if not {"flip_h", "flip_v"} <= set(wide["rank"].columns):
            continue
        wide = wide[wide["sim_true"].notna().all(axis=1)]  # both copies queried; rank NaN is a miss
        hits = wide["rank"] <= 1
        labels = {
            "configuration": configuration,
            "a": "flip_h",
            "b": "flip_v",
            "sources": len(wide),
        }
        sources = Clusters.singletons(len(wide))  # one flip_h and one flip_v query per source
        comparisons.append(
            PairedHits(labels, hits["flip_h"].to_numpy(), hits["flip_v"].to_numpy(), sources)
        )
        diff = wide["sim_true"]["flip_h"] - wide["sim_true"]["flip_v"]
        exact = wilcoxon(diff, method="exact").pvalue if (diff != 0).any() else 1.0
        wilcoxons.append({"sim_diff_median": float(diff.median()), "wilcoxon_p": float(exact)})
    n_tests = 2 * len(comparisons)  # R@1 and the similarity, per configuration
    table = paired_table(comparisons, ["configuration", "a", "b", "sources"], n_tests)
    table = pd.concat([table, pd.DataFrame(wilcoxons, columns=WILCOXON_COLUMNS)], axis=1)
    table["wilcoxon_p_bonferroni"] = bonferroni(table["wilcoxon_p"], n_tests)
    return table


def rotation_sweep(run: Run, client) -> tuple[pd.DataFrame, RotationSweepRecord]:
    """R@1 and similarity against rotation angle, per configuration -> ``tables/rotation_sweep``,
    the per-query rows and ``figures/rotation_sweep``."""
    params = run.params
    blocks = load_blocks(run)
    meta, probe_blocks, failed = sweep_blocks(run, client, blocks)
    rows, _ = search_configurations(run, meta, probe_blocks, blocks.ref_ids, blocks.refs)
    rows["angle"] = angles(rows["transform"])
    order = list(dict.fromkeys(meta["transform"]))
    table = metrics.summarize(
        rows,
        "configuration",
        order,
        ["queries", "recall_at_1", "recall_at_1_index", "sim_mean", "margin_mean"],
    )
    table = table[table["transform"] != "overall"]
    table.insert(1, "angle", angles(table.pop("transform")))
    table = table.reset_index(drop=True)
    write_table(table, run.path("tables", "rotation_sweep"), ("csv", "md"))
    write_table(rows, run.path("tables", "rotation_sweep_per_query"))
    run.save_figure(rotation_figure(table), "rotation_sweep")
    record = RotationSweepRecord(
        angles=params.figures.rotation_angles, queries=len(meta), failed=failed
    )
    run.record(record)
    return table, record


def sweep_blocks(run: Run, client, blocks: Blocks) -> tuple[pd.DataFrame, dict, int]:
    """The rotation sweep's queries (made and extracted once, with the rotated variants
    notebook 08 tries, whichever notebook asks first): the meta and blocks of those that
    succeeded, and how many failed."""
    queries = sweep_queries(run, client, blocks.ref_ids)
    backbone = extracted_backbone(run)
    outputs = rotation_outputs(run.params, backbone)
    files = extract_items(run, client, backbone, query_items(queries), "sweep", outputs)
    files = files[files["error"] == ""]
    probe_blocks, _ = blocks_for(files, run.params, blocks.scaler, run.cache)
    meta = sweep_meta(queries).set_index("query_id").loc[list(files["id"])].reset_index()
    return meta, probe_blocks, len(queries) - len(files)


def sweep_meta(queries: list[Query]) -> pd.DataFrame:
    """query_id, reference_id, transform and family of each sweep query."""
    return pd.DataFrame(
        [
            {
                "query_id": q.query_id,
                "reference_id": q.reference_id,
                "transform": q.transform,
                "family": q.family,
            }
            for q in queries
        ],
        columns=["query_id", "reference_id", "transform", "family"],
    )


def angles(transforms: pd.Series) -> np.ndarray:
    """The angle of each ``rotate_<degrees>`` transform (NaN for ``overall``)."""
    return transforms.str.removeprefix("rotate_").replace("overall", "nan").astype(float).to_numpy()
