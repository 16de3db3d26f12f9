import pandas as pd
import pytest

from storyhash_core.errors import StoryHashError
from storyhash_core.reproduce import compare_runs, compare_table


def table(**changes) -> pd.DataFrame:
    rows = {"configuration": ["fusion", "visual"], "recall_at_1": [0.82, 0.95], "queries": [798, 798],
            "sim_mean": [0.9401, 0.9372], "top1_id": ["a", "b"]}
    return pd.DataFrame(rows | changes)


def test_identical_tables_and_floats_within_tolerance_pass():
    assert compare_table("t.csv", table(), table()) == []
    assert compare_table("t.csv", table(), table(sim_mean=[0.94019, 0.93711])) == []


def test_rates_counts_and_text_must_be_identical():
    (d,) = compare_table("t.csv", table(), table(recall_at_1=[0.82, 0.95 + 1e-9]))
    assert (d.table, d.column) == ("t.csv", "recall_at_1") and "1 rows differ, first row 1" in d.detail
    (d,) = compare_table("t.csv", table(), table(top1_id=["a", "c"]))
    assert d.column == "top1_id" and "'b' -> 'c'" in d.detail


def test_floats_beyond_tolerance_are_reported_with_the_largest_gap():
    (d,) = compare_table("t.csv", table(), table(sim_mean=[0.9401, 0.9375]))
    assert str(d) == "t.csv: sim_mean: 1 rows beyond 0.0001, largest 0.0003 (row 1)"


def test_shape_changes_are_one_difference():
    assert [str(d) for d in compare_table("t.csv", table(), table().iloc[:1])] == ["t.csv: 2 rows -> 1"]
    assert "columns" in str(compare_table("t.csv", table(), table().drop(columns="queries"))[0])


def test_runs_compare_every_table_but_the_timings(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        (run / "tables").mkdir(parents=True)
        table().to_csv(run / "tables" / "table1.csv", index=False)
        pd.DataFrame({"decode_s": [0.1 if run == a else 0.2]}).to_csv(run / "tables" / "extraction_cost.csv")
    table().to_csv(a / "tables" / "ablation.csv", index=False)
    table().to_csv(b / "tables" / "new.csv", index=False)
    names, differences = compare_runs(a, b)
    assert names == ["ablation.csv", "table1.csv"]
    assert [str(d) for d in differences] == ["ablation.csv: missing from the rerun", "new.csv: only in the rerun"]
    with pytest.raises(StoryHashError, match="has no tables"):
        compare_runs(tmp_path / "none", b)
