"""Rerun a committed run into a scratch folder and compare every table with the committed one.

Tolerances (also in the README): every text and integer cell, and every float column that is
a rate, rank or count (recall, rank, queries, positives, …: :data:`EXACT`), must be identical;
other floats (similarities, margins, μAP, AUC, TPR, p-values, motion statistics) must agree
within :data:`TOLERANCE`. ``extraction_cost*.csv`` hold wall-clock times and are not compared.
:func:`table_bytes_diff` is the stricter check for a refactoring: which table files (CSV,
Markdown, LaTeX) of two runs are byte-identical.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .errors import StoryHashError
from .params import NOT_RESULTS, PROJECT_ROOT, load_params
from .stages.records import ExtractRecord
from .stages.run import Run

TOLERANCE = 1e-4
EXACT = re.compile(
    r"recall|r1_|rank|queries|distractors|positives|pairs|only_|frames|objects|vectors|dim|bytes|"
    r"angle|significant"
)
SKIP = {  # wall-clock seconds
    "extraction_cost.csv",
    "extraction_cost_summary.csv",
    "partial_copies_cost.csv",
}
SCRATCH_MARK = ".storyhash-scratch"  # only a folder holding this is ever emptied by a rerun
INTERVAL = re.compile(r"^\[(\S+), (\S+)\]$")  # a bootstrap interval printed as "[low, high]"


@dataclass(frozen=True)
class Difference:
    """One table (and column) where the rerun differs from the committed run."""

    table: str
    column: str
    detail: str

    def __str__(self) -> str:
        return (
            f"{self.table}: {self.column}: {self.detail}"
            if self.column
            else f"{self.table}: {self.detail}"
        )


def compare_table(name: str, committed: pd.DataFrame, rerun: pd.DataFrame) -> list[Difference]:
    """The differences between two versions of one table, by the rules above."""
    if list(committed.columns) != list(rerun.columns):
        return [Difference(name, "", f"columns {list(committed.columns)} -> {list(rerun.columns)}")]
    if len(committed) != len(rerun):
        return [Difference(name, "", f"{len(committed)} rows -> {len(rerun)}")]
    out = []
    for column in committed.columns:
        a, b = committed[column], rerun[column]
        exact = bool(EXACT.search(column))
        if _numeric(a) and _numeric(b):
            x, y = a.to_numpy(float), b.to_numpy(float)
            bad = ~(
                np.isclose(x, y, rtol=0, atol=0 if exact else TOLERANCE, equal_nan=True) | (x == y)
            )
            rule = "differ" if exact else f"beyond {TOLERANCE:g}"
        elif (
            intervals := _intervals(a, b)
        ) is not None:  # "[low, high]" rounded to 3 significant digits
            x, y = intervals
            unit = np.maximum(_last_digit(x), _last_digit(y))
            bad = ~(
                np.isclose(x, y, rtol=0, atol=0 if exact else np.maximum(unit, TOLERANCE))
                | (x == y)
            ).all(1)
            rule = "differ" if exact else "beyond the printed precision"
        else:
            bad = (a.astype(str) != b.astype(str)).to_numpy()
            rule = "differ"
        if bad.any():
            row = int(np.argmax(bad))
            out.append(
                Difference(
                    name,
                    column,
                    f"{int(bad.sum())} rows {rule}, first row {row}:"
                    f" {a.iloc[row]} -> {b.iloc[row]}",
                )
            )
    return out


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _intervals(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Both columns' "[low, high]" cells as (n, 2) arrays; None unless every cell is one."""
    parsed = []
    for column in (a, b):
        cells = [INTERVAL.match(str(v)) for v in column]
        if not cells or not all(cells):
            return None
        parsed.append(np.array([m.groups() for m in cells], float))
    return parsed[0], parsed[1]


def _last_digit(values: np.ndarray) -> np.ndarray:
    """The unit of the third significant digit of each value (how the intervals are printed)."""
    magnitude = np.floor(np.log10(np.where(values == 0, 1.0, np.abs(values))))
    return 10.0 ** (magnitude - 2) * (1 + 1e-9)  # one unit, with room for the decimal parse


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
        out += compare_table(
            name,
            pd.read_csv(committed / "tables" / name, keep_default_na=False, na_values=[""]),
            pd.read_csv(other, keep_default_na=False, na_values=[""]),
        )
    extra = sorted({p.name for p in (rerun / "tables").glob("*.csv")} - set(names) - SKIP)
    out += [Difference(name, "", "only in the rerun") for name in extra]
    return names, out


@dataclass(frozen=True)
class TableFiles:
    """Table files (``tables/*``) of two runs by name: byte-identical, changed, or in one only."""

    identical: list[str]
    changed: list[str]
    only_first: list[str]
    only_second: list[str]


def table_bytes_diff(first: Path, second: Path) -> TableFiles:
    """Compare every table file of two run folders byte for byte (wall-clock tables included)."""
    names = [{p.name for p in (run / "tables").iterdir() if p.is_file()} for run in (first, second)]
    both = sorted(names[0] & names[1])
    same = [
        n
        for n in both
        if (first / "tables" / n).read_bytes() == (second / "tables" / n).read_bytes()
    ]
    return TableFiles(
        same,
        [n for n in both if n not in same],
        sorted(names[0] - names[1]),
        sorted(names[1] - names[0]),
    )


def prepare_scratch(scratch: Path, committed: Path) -> None:
    """Empty ``scratch`` for a rerun, refusing any folder that holds, or sits inside, the committed
    run or the project, and any non-empty folder a rerun did not make."""
    scratch, committed = scratch.resolve(), committed.resolve()
    for protected in (committed, PROJECT_ROOT):
        if scratch == protected or protected.is_relative_to(scratch):
            raise StoryHashError(
                f"--scratch {scratch} holds {protected}; choose an empty folder of its own"
            )
    if scratch.is_relative_to(committed):
        raise StoryHashError(
            f"--scratch {scratch} is inside the committed run {committed}; choose another folder"
        )
    if scratch.exists() and any(scratch.iterdir()) and not (scratch / SCRATCH_MARK).is_file():
        raise StoryHashError(
            f"--scratch {scratch} is not empty and was not made by check-reproducible;"
            " choose an empty folder"
        )
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    (scratch / SCRATCH_MARK).write_text(
        "made by storyhash check-reproducible; emptied by the next one\n"
    )


def rerun(params_file: Path, scratch: Path, fresh_cache: bool = False) -> Path:
    """Run the whole notebook sequence of ``params_file`` into ``scratch`` (prepared by
    :func:`prepare_scratch`), with the params' cache or, with ``fresh_cache``, an empty one
    inside ``scratch``; return the run folder."""
    from .runner import run_notebooks

    raw = yaml.safe_load(params_file.read_text()) | {
        "output_dir": str(scratch / "outputs"),
        "memo": False,  # every stage recomputed, none restored
    }
    if fresh_cache:
        raw["cache_dir"] = str(scratch / "cache")
    copy = scratch / params_file.name
    copy.write_text(yaml.safe_dump(raw, sort_keys=False))
    return run_notebooks(copy)


def check_params(params_file: Path, committed: Path) -> None:
    """Refuse params that are not the committed run's (output and cache locations aside)."""
    record = committed / "run.json"
    if not record.is_file():
        return
    ignore = set(NOT_RESULTS) - {"run_name"}  # the committed run's name is the rerun's
    ours = {k: v for k, v in load_params(params_file).model_dump().items() if k not in ignore}
    theirs = {
        k: v for k, v in json.loads(record.read_text()).get("params", {}).items() if k not in ignore
    }
    changed = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if changed:
        raise StoryHashError(
            f"--params {params_file} differs from the params in {record} in {', '.join(changed)};"
            " give the params file the committed run was made with"
        )


def check(
    params_file: Path, committed: Path, scratch: Path | None = None, fresh_cache: bool = False
) -> list[Difference]:
    """Rerun ``params_file`` and compare it with the committed run folder; print the verdict."""
    if not (committed / "tables").is_dir():
        raise StoryHashError(
            f"{committed} has no tables/ folder (give --run the committed run folder)"
        )
    check_params(params_file, committed)
    scratch = (scratch or PROJECT_ROOT / ".cache" / "reproduce" / committed.name).resolve()
    prepare_scratch(scratch, committed)
    run_dir = rerun(params_file, scratch, fresh_cache)
    names, differences = compare_runs(committed, run_dir)
    for d in differences:
        print(f"DIFFERS  {d}")
    extract = Run(load_params(params_file), run_dir).load(ExtractRecord)
    reused = (
        f"{extract.queries_cached} of {extract.queries} query videos came from the cache"
        if not fresh_cache
        else "everything recomputed in an empty cache"
    )
    verdict = "reproduced" if not differences else f"{len(differences)} difference(s)"
    print(
        f"{len(names)} tables of {committed} compared with the rerun in {run_dir} ({reused}):"
        f" {verdict}"
        f" (rates, ranks, counts and text identical, other floats within {TOLERANCE:g})"
    )
    return differences
