"""Rerun a committed run into a scratch folder and compare every table with the committed one.

Tolerances (also in the README): every text and integer cell, and every float column that is
a rate, rank or count (recall, rank, queries, positives, …: :data:`EXACT`), must be identical;
other floats (similarities, margins, μAP, AUC, TPR, p-values, motion statistics) must agree
within :data:`TOLERANCE`. ``extraction_cost.csv`` holds wall-clock times and is not compared.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .errors import StoryHashError
from .params import PROJECT_ROOT, load_params

TOLERANCE = 1e-4
EXACT = re.compile(r"recall|rank|queries|distractors|positives|pairs|only_|frames|objects|vectors|dim|bytes|angle|"
                   r"significant")
SKIP = {"extraction_cost.csv"}


@dataclass(frozen=True)
class Difference:
    """One table (and column) where the rerun differs from the committed run."""

    table: str
    column: str
    detail: str

    def __str__(self) -> str:
        return f"{self.table}: {self.column}: {self.detail}" if self.column else f"{self.table}: {self.detail}"


def compare_table(name: str, committed: pd.DataFrame, rerun: pd.DataFrame) -> list[Difference]:
    """The differences between two versions of one table, by the rules above."""
    if list(committed.columns) != list(rerun.columns):
        return [Difference(name, "", f"columns {list(committed.columns)} -> {list(rerun.columns)}")]
    if len(committed) != len(rerun):
        return [Difference(name, "", f"{len(committed)} rows -> {len(rerun)}")]
    out = []
    for column in committed.columns:
        a, b = committed[column], rerun[column]
        if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b) and not EXACT.search(column):
            gap = np.abs(a.to_numpy() - b.to_numpy())
            bad = ~((gap <= TOLERANCE) | (a.isna() & b.isna()).to_numpy())
            if bad.any():
                out.append(Difference(name, column, f"{int(bad.sum())} rows beyond {TOLERANCE:g}, largest"
                                      f" {np.nanmax(gap):.3g} (row {int(np.nanargmax(gap))})"))
        else:
            same = (a.astype(str) == b.astype(str)).to_numpy()
            if not same.all():
                row = int(np.argmin(same))
                out.append(Difference(name, column, f"{int((~same).sum())} rows differ, first row {row}:"
                                      f" {a.iloc[row]!r} -> {b.iloc[row]!r}"))
    return out


def compare_runs(committed: Path, rerun: Path) -> tuple[list[str], list[Difference]]:
    """The tables compared, and every difference between the two run folders' ``tables/*.csv``."""
    names = sorted(p.name for p in (committed / "tables").glob("*.csv") if p.name not in SKIP)
    if not names:
        raise StoryHashError(f"{committed / 'tables'} has no tables (is {committed} a run folder?)")
    out = []
    for name in names:
        other = rerun / "tables" / name
        if not other.is_file():
            out.append(Difference(name, "", "missing from the rerun"))
            continue
        out += compare_table(name, pd.read_csv(committed / "tables" / name, keep_default_na=False, na_values=[""]),
                             pd.read_csv(other, keep_default_na=False, na_values=[""]))
    extra = sorted({p.name for p in (rerun / "tables").glob("*.csv")} - set(names) - SKIP)
    out += [Difference(name, "", "only in the rerun") for name in extra]
    return names, out


def rerun(params_file: Path, scratch: Path) -> Path:
    """Run the whole notebook sequence of ``params_file`` into ``scratch`` (a fresh folder), with
    the params' own cache; return the run folder."""
    from .runner import run_notebooks

    load_params(params_file)  # a params error before anything is deleted
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    raw = yaml.safe_load(params_file.read_text()) | {"output_dir": str(scratch.resolve())}
    copy = scratch / params_file.name
    copy.write_text(yaml.safe_dump(raw, sort_keys=False))
    return run_notebooks(copy)


def check(params_file: Path, committed: Path, scratch: Path | None = None) -> list[Difference]:
    """Rerun ``params_file`` and compare it with the committed run folder; print the verdict."""
    if not (committed / "tables").is_dir():
        raise StoryHashError(f"{committed} has no tables/ folder (give --run the committed run folder)")
    scratch = scratch or PROJECT_ROOT / ".cache" / "reproduce" / committed.name
    names, differences = compare_runs(committed, rerun(params_file, scratch))
    for d in differences:
        print(f"DIFFERS  {d}")
    verdict = "reproduced" if not differences else f"{len(differences)} difference(s)"
    print(f"{len(names)} tables of {committed} compared with the rerun in {scratch}: {verdict}"
          f" (rates, ranks and counts identical, other floats within {TOLERANCE:g})")
    return differences
