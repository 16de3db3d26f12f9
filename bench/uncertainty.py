"""Benchmark: what clustering and the number of resamples do to the committed run's intervals.

Reads a committed run's similarity matrices (``tables/<name>_scores.npz`` and the per-query
table; default ``outputs/real``) and, for every method of ``detection`` and ``baselines``:

- the 95 % intervals of R@1 and μAP from resampling queries against resampling source videos
  (the study's), and the paired R@1 test both ways (query-level: exact McNemar; source-level:
  the exact sign-flip test over sources);
- how far the endpoints of a Bonferroni-level μAP-difference interval move between bootstrap
  seeds, at 1 000 and at the study's 10 000 resamples (the standard deviation over
  ``--seeds`` seeds).

Writes ``bench/results/uncertainty.json``.

    python bench/uncertainty.py [--run outputs/real] [--seeds 5] [--out F]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from record import machine, write_record

from storyhash_core.comparison import bootstrap_methods, compare, evaluate, source_clusters
from storyhash_core.scores import Scores
from storyhash_core.significance import Clusters, corrected_level, percentile_ci

META = ["query_id", "reference_id", "transform", "family"]
ROOT = Path(__file__).resolve().parents[1]


def load(run: Path, name: str):
    scores = Scores.load(run / "tables" / f"{name}_scores.npz")
    per_query = pd.read_csv(run / "tables" / f"{name}_per_query.csv")
    meta = per_query.loc[per_query["method"] == per_query["method"].iloc[0], META]
    meta = meta.reset_index(drop=True)
    truth = scores.truth
    rows = evaluate(scores.matrices, truth, scores.gallery_ids, meta)
    pairs = pd.read_csv(run / "tables" / f"{name}_significance.csv")[["a", "b"]]
    return scores, meta, truth, rows, list(pairs.itertuples(index=False, name=None))


def levels(name: str, run: Path, resamples: int, seed: int) -> dict:
    """Per method and pair: query-level vs source-level intervals and tests."""
    scores, meta, truth, rows, pairs = load(run, name)
    by = {  # both stratified alike (gallery / held-out), so only the clustering differs
        "query": Clusters.of(list(range(len(meta))), list(~truth.any(axis=1))),
        "source": source_clusters(meta, truth),
    }
    out: dict = {"methods": {}, "pairs": {}}
    tests = {}
    for level, clusters in by.items():
        samples = bootstrap_methods(rows, scores.matrices, truth, clusters, resamples, seed)
        for method in scores.matrices:
            entry = out["methods"].setdefault(method, {})
            for stat in ("r1", "uap"):
                low, high = percentile_ci(samples[f"{method}|{stat}"])
                entry[f"{stat}_ci_{level}"] = [round(low, 4), round(high, 4)]
        tests[level] = compare(rows, samples, pairs, clusters).set_index(["a", "b"])
    for a, b in pairs:
        out["pairs"][f"{a} vs {b}"] = {
            f"{column}_{level}": tests[level].loc[(a, b), column]
            for level in by
            for column in ("r1_p", "uap_diff_ci")
        }
    return out


def endpoint_noise(run: Path, seeds: int) -> dict:
    """SD over bootstrap seeds of the Bonferroni-level interval endpoints of the μAP
    difference of each baselines pair, at 1 000 and 10 000 resamples."""
    scores, meta, truth, rows, pairs = load(run, "baselines")
    clusters = source_clusters(meta, truth)
    level = corrected_level(len(pairs))
    out = {}
    for resamples in (1_000, 10_000):
        ends = {f"{a} vs {b}": [] for a, b in pairs}
        for seed in range(seeds):
            samples = bootstrap_methods(rows, scores.matrices, truth, clusters, resamples, seed)
            for a, b in pairs:
                diff = samples[f"{a}|uap"] - samples[f"{b}|uap"]
                ends[f"{a} vs {b}"].append(percentile_ci(diff, level))
        out[str(resamples)] = {
            pair: {
                "low_sd": float(np.std([e[0] for e in values], ddof=1)),
                "high_sd": float(np.std([e[1] for e in values], ddof=1)),
            }
            for pair, values in ends.items()
        }
    return {"level": level, "resamples": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "outputs" / "real")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "uncertainty.json")
    args = parser.parse_args()
    record = {
        "run": str(args.run.resolve().relative_to(ROOT))
        if args.run.resolve().is_relative_to(ROOT)
        else args.run.name,
        "machine": machine(),
        "detection": levels("detection", args.run, 10_000, 0),
        "baselines": levels("baselines", args.run, 10_000, 0),
        "endpoint_noise": endpoint_noise(args.run, args.seeds),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
