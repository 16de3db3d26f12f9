"""Tables out: CSV (full precision), Markdown and LaTeX (rounded), each written atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .cache import atomic_path


def write_table(
    df: pd.DataFrame, stem: Path, formats: tuple[str, ...] = ("csv",), digits: int = 4
) -> None:
    """Write ``df`` as ``stem.csv`` (full precision) and, if asked, ``.md`` / ``.tex`` (rounded)."""
    writers = {
        "csv": lambda d, f: d.to_csv(f, index=False),
        "md": lambda d, f: f.write_text(d.round(digits).to_markdown(index=False) + "\n"),
        "tex": lambda d, f: f.write_text(
            d.round(digits).to_latex(index=False, float_format=f"%.{digits}f")
        ),
    }
    for fmt in formats:
        with atomic_path(stem.with_suffix(f".{fmt}")) as tmp:
            writers[fmt](df, tmp)
