"""Tables out (CSV, Markdown, LaTeX) and the paper's reported numbers in, for side-by-side views."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .cache import atomic_path

# The paper's configuration names -> this study's
PAPER_CONFIGURATIONS = {"fusion": "fusion", "clip": "visual_padded", "action": "action_padded"}


def write_table(df: pd.DataFrame, stem: Path, formats: tuple[str, ...] = ("csv",), digits: int = 4) -> None:
    """Write ``df`` as ``stem.csv`` (full precision) and, if asked, ``.md`` / ``.tex`` (rounded)."""
    writers = {
        "csv": lambda d, f: d.to_csv(f, index=False),
        "md": lambda d, f: f.write_text(d.round(digits).to_markdown(index=False) + "\n"),
        "tex": lambda d, f: f.write_text(d.round(digits).to_latex(index=False, float_format=f"%.{digits}f")),
    }
    for fmt in formats:
        with atomic_path(stem.with_suffix(f".{fmt}")) as tmp:
            writers[fmt](df, tmp)


def paper_table1(path: Path) -> pd.DataFrame:
    """The paper's Table 1 (R@1 %, average similarity) as rows (transform, configuration, ...)."""
    data = json.loads(Path(path).read_text())["paper_table1"]
    wide = pd.DataFrame(data["rows"], columns=data["columns"])
    rows = []
    for paper_name, ours in PAPER_CONFIGURATIONS.items():
        rows.append(pd.DataFrame({
            "transform": wide["transform"],
            "configuration": ours,
            "paper_recall_at_1": wide[f"recall_at_1_{paper_name}"],
            "paper_sim_mean": wide[f"avg_sim_{paper_name}"],
        }))
    return pd.concat(rows, ignore_index=True)


def beside_paper(table: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our per-transform R@1 and mean similarity next to the paper's, where the paper has them."""
    ours = table[["configuration", "transform", "queries", "recall_at_1", "sim_mean"]]
    return ours.merge(paper, on=["configuration", "transform"], how="left")
