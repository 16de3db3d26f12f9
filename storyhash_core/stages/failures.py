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
from .records import FailuresRecord
from .run import Run

COLUMNS = ["transform", "query_id", "reference_id", *(c for c in ROW_COLUMNS if c != "distractor")]


@dataclass
class Failures:
    """What notebook 06 shows."""

    record: FailuresRecord
    misses: pd.DataFrame
    per_transform: pd.DataFrame
    sheets: dict[str, Path]  # transform -> failure sheet
    discussion: str


def run(run: Run) -> Failures:
    """The failures table, one sheet per transform, and where the misses fall."""
    rows = run.table("robustness_per_query")
    configuration = run.params.evaluation.configurations[0]
    misses = failures(rows, configuration, transform_order(run))
    per_transform = misses.groupby("transform", sort=False).size().rename("failures").reset_index()
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
        sheet = failure_sheet(group, paths, run.params.evaluation.k, run.cache)
        sheets[transform] = run.save_image(sheet, f"failures_{transform}.jpg")
    record = FailuresRecord(
        configuration=configuration,
        queries=int((rows["configuration"] == configuration).sum()),
        failures=len(misses),
        per_transform={row.transform: int(row.failures) for row in per_transform.itertuples()},
    )
    run.record(record)
    return Failures(record, misses, per_transform, sheets, prose.failures(misses))


def failures(rows: pd.DataFrame, configuration: str, transform_order: list[str]) -> pd.DataFrame:
    """Every query of ``configuration`` whose true reference is not ranked first."""
    miss = rows[(rows["configuration"] == configuration) & ~(rows["rank"] == 1)].copy()
    position = {t: i for i, t in enumerate(transform_order)}
    miss = miss.sort_values(
        ["transform", "margin"], key=lambda c: c.map(position) if c.name == "transform" else c
    )
    return miss[COLUMNS].reset_index(drop=True)
