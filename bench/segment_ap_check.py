"""Recompute the segment AP of a run's partial-copy files by an independent route.

Reads ``<run>/partial/ground_truth.csv`` and ``predictions_<method>.csv`` (VSC2022 layout)
and counts the matching-track metric on a time grid of ``--step`` seconds (boolean arrays per
pair and axis, no interval arithmetic), following the definition in
``../shared/reference/vsc2022-notes.md``; prints it beside ``tables/partial_copies.csv``. The
grid rounds each interval end to a cell, so the two agree to about ``step`` / segment length.

    python bench/segment_ap_check.py outputs/real --step 0.001
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def cells(start: float, end: float, step: float, size: int) -> slice:
    return slice(int(round(start / step)), min(size, int(round(end / step))))


def rasterised_ap(truth: pd.DataFrame, found: pd.DataFrame, step: float) -> float:
    axes = {"query": ("query_start", "query_end"), "ref": ("ref_start", "ref_end")}
    size = {
        a: int(np.ceil(max(truth[e].max(), found[e].max()) / step)) + 2
        for a, (_, e) in axes.items()
    }
    gt = {}
    for pair, rows in truth.groupby(["query_id", "ref_id"]):
        gt[pair] = rows
    gt_total = {a: 0 for a in axes}
    for rows in gt.values():
        for a, (s, e) in axes.items():
            mask = np.zeros(size[a], bool)
            for _, r in rows.iterrows():
                mask[cells(r[s], r[e], step, size[a])] = True
            gt_total[a] += mask.sum()
    state: dict = {}
    found_sum = {a: 0 for a in axes}
    spent_sum = {a: 0 for a in axes}
    ap, recall = 0.0, 0.0
    for _, group in found.sort_values("score", ascending=False).groupby("score", sort=False):
        for _, p in group.iterrows():
            pair = (p["query_id"], p["ref_id"])
            mine = state.setdefault(
                pair,
                {"preds": [], "found": dict.fromkeys(axes, 0), "spent": dict.fromkeys(axes, 0)},
            )
            mine["preds"].append(p)
            rows = gt.get(pair)
            counted = []
            if rows is not None:
                for _, g in rows.iterrows():
                    if any(
                        min(g["query_end"], q["query_end"])
                        > max(g["query_start"], q["query_start"])
                        and min(g["ref_end"], q["ref_end"]) > max(g["ref_start"], q["ref_start"])
                        for q in mine["preds"]
                    ):
                        counted.append(g)
            for a, (s, e) in axes.items():
                pred = np.zeros(size[a], bool)
                for q in mine["preds"]:
                    pred[cells(q[s], q[e], step, size[a])] = True
                true = np.zeros(size[a], bool)
                for g in counted:
                    true[cells(g[s], g[e], step, size[a])] = True
                now_found, now_spent = int((pred & true).sum()), int(pred.sum())
                found_sum[a] += now_found - mine["found"][a]
                spent_sum[a] += now_spent - mine["spent"][a]
                mine["found"][a], mine["spent"][a] = now_found, now_spent
        new_recall = np.sqrt(np.prod([found_sum[a] / gt_total[a] for a in axes]))
        precision = np.sqrt(np.prod([found_sum[a] / max(spent_sum[a], 1) for a in axes]))
        ap += precision * max(0.0, new_recall - recall)
        recall = max(recall, new_recall)
    return float(ap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder, e.g. outputs/real")
    parser.add_argument("--step", type=float, default=0.001, help="grid cell in seconds")
    args = parser.parse_args()
    truth = pd.read_csv(args.run / "partial" / "ground_truth.csv")
    table = pd.read_csv(args.run / "tables" / "partial_copies.csv").set_index("method")
    for method in table.index:
        found = pd.read_csv(args.run / "partial" / f"predictions_{method}.csv")
        ap = rasterised_ap(truth, found, args.step)
        print(
            f"{method}: table {table.loc[method, 'segment_ap']:.6f},"
            f" grid of {args.step:g} s {ap:.6f}"
        )


if __name__ == "__main__":
    main()
