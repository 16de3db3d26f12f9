"""Notebook 05: the 3-way ablation (fusion vs visual vs action), ours beside the paper's, and
the paper's "action features raise confidence" claim read through the margins ->
``tables/ablation``, ``figures/ablation``; the detection view of the same configurations
comes from notebook 04 (``tables/detection_overall``, ``detection_significance``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import metrics, prose
from ..paper import Paper
from ..plots import ablation_figure
from ..report import write_table
from .records import AblationRecord
from .run import Run


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


def run(run: Run) -> Ablation:
    """The ablation table and figure, with the discussion of the confidence claim."""
    table1 = run.table("table1")
    paper = run.paper()
    table = ablation_table(table1, paper)
    write_table(table, run.path("tables", "ablation"), ("csv", "md", "tex"))
    run.save_figure(ablation_figure(table), "ablation")
    record = AblationRecord(
        configurations=list(table["configuration"]), paper_compared=paper is not None
    )
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
    )


def ablation_table(table1: pd.DataFrame, paper: Paper | None) -> pd.DataFrame:
    """Overall row per configuration, with the paper's overall numbers beside ours when given."""
    overall = table1[table1["transform"] == "overall"][["configuration", *metrics.TABLE1_COLUMNS]]
    overall = overall.reset_index(drop=True)
    return overall.merge(paper.overall, on="configuration", how="left") if paper else overall
