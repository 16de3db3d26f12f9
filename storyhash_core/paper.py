"""The paper's reported numbers (``paper_results.json``), in this study's configuration names.

Every sentence or table that cites the paper reads its numbers from here: Table 1 per
transform (:attr:`Paper.table1`) and the README's overall table (:attr:`Paper.overall`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# The paper's configuration names -> this study's
TABLE1_NAMES = {"fusion": "fusion", "clip": "visual_padded", "action": "action_padded"}
OVERALL_NAMES = {"fusion": "fusion", "clip_only": "visual_padded", "action_only": "action_padded"}


@dataclass(frozen=True)
class Paper:
    """Table 1 (transform, configuration, paper_recall_at_1, paper_sim_mean) and the overall
    table (configuration, paper_recall_at_1, paper_recall_at_3, paper_sim_mean, _min, _max)."""

    table1: pd.DataFrame
    overall: pd.DataFrame

    @classmethod
    def load(cls, path: Path) -> Paper | None:
        """The paper's numbers, or None when ``path`` does not exist."""
        if not Path(path).is_file():
            return None
        data = json.loads(Path(path).read_text())
        return cls(_table1(data["paper_table1"]), _overall(data["readme_overall"]))

    def recall_at_1(self, configuration: str, transform: str) -> float:
        """Table 1's R@1 (%) of a configuration under a transform (``overall`` included)."""
        t = self.table1
        return float(
            t.loc[
                (t["configuration"] == configuration) & (t["transform"] == transform),
                "paper_recall_at_1",
            ].iloc[0]
        )

    def overall_value(self, configuration: str, column: str) -> float:
        """A value of the overall table, e.g. ``paper_sim_mean`` of ``fusion``."""
        return float(self.overall.set_index("configuration").at[configuration, column])


def _table1(data: dict) -> pd.DataFrame:
    wide = pd.DataFrame(data["rows"], columns=data["columns"])
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "transform": wide["transform"],
                    "configuration": ours,
                    "paper_recall_at_1": wide[f"recall_at_1_{theirs}"],
                    "paper_sim_mean": wide[f"avg_sim_{theirs}"],
                }
            )
            for theirs, ours in TABLE1_NAMES.items()
        ],
        ignore_index=True,
    )


def _overall(data: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "configuration": OVERALL_NAMES[k],
                "paper_recall_at_1": v["recall_at_1"],
                "paper_recall_at_3": v["recall_at_3"],
                "paper_sim_mean": v["avg_sim"],
                "paper_sim_min": v["min_sim"],
                "paper_sim_max": v["max_sim"],
            }
            for k, v in data.items()
        ]
    )


def beside_paper(table: pd.DataFrame, paper: Paper) -> pd.DataFrame:
    """Our per-transform R@1 and mean similarity next to the paper's, where the paper has them."""
    ours = table[["configuration", "transform", "queries", "recall_at_1", "sim_mean"]]
    return ours.merge(paper.table1, on=["configuration", "transform"], how="left")
