"""The committed real run recomputes from its committed similarity matrices: a reader needs
only ``tables/<name>_scores.npz`` and the per-query table to get every detection number."""

import json
from pathlib import Path

import pandas as pd
import pytest

from storyhash_core.comparison import (
    bootstrap_methods,
    compare,
    evaluate,
    overall_with_ci,
    source_clusters,
    summarize,
)
from storyhash_core.scores import Scores
from storyhash_core.stages.records import DetectionRecord

RUN = Path(__file__).resolve().parents[1] / "outputs" / "real"
META = ["query_id", "reference_id", "transform", "family"]


def recomputed(name: str, record: DetectionRecord) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The overall and significance tables of ``tables/<name>*`` from its scores file."""
    scores = Scores.load(RUN / "tables" / f"{name}_scores.npz")
    per_query = pd.read_csv(RUN / "tables" / f"{name}_per_query.csv")
    first = per_query["method"].iloc[0]
    meta = per_query.loc[per_query["method"] == first, META].reset_index(drop=True)
    assert list(meta["query_id"]) == scores.query_ids
    assert list(meta["reference_id"]) == scores.source_ids
    truth = scores.truth
    rows = evaluate(scores.matrices, truth, scores.gallery_ids, meta)
    order = list(dict.fromkeys(meta["transform"]))
    summary = summarize(rows, scores.matrices, truth, order)
    clusters = source_clusters(meta, truth)
    assert clusters.size == record.sources
    samples = bootstrap_methods(
        rows, scores.matrices, truth, clusters, record.bootstrap, record.seed
    )
    pairs = [(r["a"], r["b"]) for r in record.significance]
    return overall_with_ci(summary, samples), compare(rows, samples, pairs, clusters)


@pytest.mark.skipif(not (RUN / "tables" / "detection_scores.npz").is_file(), reason="no real run")
def test_detection_tables_recompute_from_the_committed_scores():
    record = DetectionRecord.model_validate(
        json.loads((RUN / "run.json").read_text())["stages"]["detection"]
    )
    overall, tests = recomputed("detection", record)
    for table, name in ((overall, "detection_overall"), (tests, "detection_significance")):
        committed = pd.read_csv(RUN / "tables" / f"{name}.csv")
        pd.testing.assert_frame_equal(
            table.reset_index(drop=True), committed, check_dtype=False, rtol=1e-12
        )
