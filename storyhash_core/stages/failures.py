"""Notebook 06: every query of the first configuration whose true reference is not ranked
first -> ``tables/failures`` (and ``failures_per_transform``), with a sheet of middle frames
per transform (query, what came first, the true reference): ``figures/failures_<transform>.jpg``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import prose
from ..errors import StoryHashError
from ..metrics import ROW_COLUMNS
from ..plots import failure_sheet
from ..report import write_table
from .inputs import transform_order, video_files
from .memo import memoised
from .records import ExtractRecord, FailuresRecord
from .run import Run

COLUMNS = [
    "suite",
    "transform",
    "query_id",
    "reference_id",
    *(c for c in ROW_COLUMNS if c != "distractor"),
]
SHEET_ROWS = 16  # failures drawn per sheet (every one is in tables/failures.csv)


@dataclass
class Failures:
    """What notebook 06 shows."""

    record: FailuresRecord
    misses: pd.DataFrame  # of the paper's transforms
    per_transform: pd.DataFrame  # the paper's transforms
    hard_per_edit: pd.DataFrame  # the hard suite's edits (empty without one)
    sheets: dict[str, Path]  # transform or edit -> failure sheet
    discussion: str
    hard_discussion: str


@memoised("06_failure_analysis")
def run(run: Run) -> Failures:
    """The failures table, one sheet per transform, and where the misses fall."""
    rows = with_suite(run.table("robustness_per_query"))
    configuration = run.params.evaluation.configurations[0]
    order = transform_order(run) + run.load(ExtractRecord).hard_edits
    misses = failures(rows, configuration, order)
    mine = rows[rows["configuration"] == configuration]
    per_transform = (
        mine.assign(failures=mine["rank"] != 1)
        .groupby(["suite", "transform"], sort=False)
        .agg(queries=("query_id", "size"), failures=("failures", "sum"))
        .reset_index()
    )
    per_transform = per_transform[per_transform["failures"] > 0].reset_index(drop=True)
    write_table(misses, run.path("tables", "failures"), ("csv", "md"))
    write_table(per_transform, run.path("tables", "failures_per_transform"))
    paths = video_files(run) if len(misses) else {}
    absent = [q for q in misses["query_id"] if not run.cache.exists(Path(paths[q]))]
    if absent:
        raise StoryHashError(
            f"{len(absent)} query video(s) of the failures, e.g. {absent[0]}, are not in the"
            f" cache {run.cache.root}: rerun notebook 01 with this cache first"
        )
    sheets = {}
    for stale in run.path("figures").glob("failures_*.jpg"):  # a transform that now has none
        stale.unlink()
    for transform, group in misses.groupby("transform", sort=False):
        sheet = failure_sheet(group.head(SHEET_ROWS), paths, run.params.evaluation.k, run.cache)
        sheets[transform] = run.save_image(sheet, f"failures_{transform}.jpg")
    paper, hard = (mine["suite"] == "paper"), (mine["suite"] == "hard")
    record = FailuresRecord(
        configuration=configuration,
        queries=int(paper.sum()),
        failures=int((misses["suite"] == "paper").sum()),
        per_transform={row.transform: int(row.failures) for row in per_transform.itertuples()},
        hard_queries=int(hard.sum()),
        hard_failures=int((misses["suite"] == "hard").sum()),
        sheet_rows=SHEET_ROWS,
    )
    run.record(record)
    split = {
        s: part.drop(columns="suite").reset_index(drop=True)
        for s, part in per_transform.groupby("suite")
    }
    empty = per_transform.drop(columns="suite").iloc[:0]
    in_suite = {s: misses[misses["suite"] == s] for s in ("paper", "hard")}
    return Failures(
        record,
        in_suite["paper"].drop(columns="suite").reset_index(drop=True),
        split.get("paper", empty),
        split.get("hard", empty),
        sheets,
        prose.failures(in_suite["paper"]),
        prose.failures(in_suite["hard"]) if record.hard_queries else "",
    )


def failures(rows: pd.DataFrame, configuration: str, transform_order: list[str]) -> pd.DataFrame:
    """Every query of ``configuration`` whose true reference is not ranked first, by
    transform (in ``transform_order``) and the most confident failure (lowest margin) first."""
    rows = with_suite(rows)
    miss = rows[(rows["configuration"] == configuration) & ~(rows["rank"] == 1)].copy()
    position = {t: i for i, t in enumerate(transform_order)}
    miss = miss.sort_values(
        ["transform", "margin"], key=lambda c: c.map(position) if c.name == "transform" else c
    )
    return miss[COLUMNS].reset_index(drop=True)


def with_suite(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with their ``suite`` (a run without a hard suite has only the paper's)."""
    return rows if "suite" in rows else rows.assign(suite="paper")
