import pandas as pd
import pytest

from storyhash_core.errors import StoryHashError
from storyhash_core.params import PROJECT_ROOT
from storyhash_core.reproduce import (
    SCRATCH_MARK,
    check_params,
    compare_runs,
    compare_table,
    prepare_scratch,
)


def table(**changes) -> pd.DataFrame:
    rows = {
        "configuration": ["fusion", "visual"],
        "recall_at_1": [0.82, 0.95],
        "queries": [798, 798],
        "sim_mean": [0.9401, 0.9372],
        "top1_id": ["a", "b"],
    }
    return pd.DataFrame(rows | changes)


def test_identical_tables_and_floats_within_tolerance_pass():
    assert compare_table("t.csv", table(), table()) == []
    assert compare_table("t.csv", table(), table(sim_mean=[0.94019, 0.93711])) == []


def test_rates_counts_and_text_must_be_identical():
    (d,) = compare_table("t.csv", table(), table(recall_at_1=[0.82, 0.95 + 1e-9]))
    assert (d.table, d.column) == (
        "t.csv",
        "recall_at_1",
    ) and "1 rows differ, first row 1" in d.detail
    (d,) = compare_table("t.csv", table(), table(top1_id=["a", "c"]))
    assert str(d) == "t.csv: top1_id: 1 rows differ, first row 1: b -> c"
    assert (
        compare_table("t.csv", table(), table(queries=[798.0, 798.0])) == []
    )  # an int read back as float


def test_floats_beyond_tolerance_are_reported_with_the_first_row():
    (d,) = compare_table("t.csv", table(), table(sim_mean=[0.9401, 0.9375]))
    assert str(d) == "t.csv: sim_mean: 1 rows beyond 0.0001, first row 1: 0.9372 -> 0.9375"
    nan = float("nan")
    assert compare_table("t.csv", table(sim_mean=[nan, 0.5]), table(sim_mean=[nan, 0.5])) == []
    (d,) = compare_table("t.csv", table(sim_mean=[nan, nan]), table(sim_mean=[0.1, 0.2]))
    assert str(d) == "t.csv: sim_mean: 2 rows beyond 0.0001, first row 0: nan -> 0.1"


def test_printed_intervals_allow_one_unit_of_their_last_digit_unless_exact():
    committed = pd.DataFrame({"micro_ap_ci": ["[0.73, 0.793]"], "recall_at_1_ci": ["[85.2, 90.4]"]})
    assert compare_table("t.csv", committed, committed.assign(micro_ap_ci=["[0.731, 0.792]"])) == []
    (d,) = compare_table("t.csv", committed, committed.assign(micro_ap_ci=["[0.73, 0.795]"]))
    assert d.column == "micro_ap_ci"
    (d,) = compare_table("t.csv", committed, committed.assign(recall_at_1_ci=["[85.2, 90.5]"]))
    assert d.column == "recall_at_1_ci"


def test_shape_changes_are_one_difference():
    assert [str(d) for d in compare_table("t.csv", table(), table().iloc[:1])] == [
        "t.csv: 2 rows -> 1"
    ]
    assert "columns" in str(compare_table("t.csv", table(), table().drop(columns="queries"))[0])


def test_runs_compare_every_table_but_the_timings(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        (run / "tables").mkdir(parents=True)
        table().to_csv(run / "tables" / "table1.csv", index=False)
        pd.DataFrame({"decode_s": [0.1 if run == a else 0.2]}).to_csv(
            run / "tables" / "extraction_cost.csv"
        )
    table().to_csv(a / "tables" / "ablation.csv", index=False)
    table().to_csv(b / "tables" / "new.csv", index=False)
    names, differences = compare_runs(a, b)
    assert names == ["ablation.csv", "table1.csv"]
    assert [str(d) for d in differences] == [
        "ablation.csv: missing from the rerun",
        "new.csv: only in the rerun",
    ]
    with pytest.raises(StoryHashError, match="has no tables"):
        compare_runs(tmp_path / "none", b)


def test_a_rerun_never_empties_the_committed_run_or_a_folder_it_did_not_make(tmp_path):
    committed = tmp_path / "outputs" / "real"
    (committed / "tables").mkdir(parents=True)
    for scratch in (committed, tmp_path / "outputs", committed / "x", PROJECT_ROOT):
        with pytest.raises(StoryHashError, match="--scratch"):
            prepare_scratch(scratch, committed)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(StoryHashError, match="not empty"):
        prepare_scratch(other, committed)
    assert (other / "notes.txt").is_file()
    scratch = tmp_path / "scratch"
    prepare_scratch(scratch, committed)
    (scratch / "old").write_text("from the last rerun")
    prepare_scratch(scratch, committed)
    assert (
        sorted(p.name for p in scratch.iterdir()) == [SCRATCH_MARK]
        and (committed / "tables").is_dir()
    )


def test_params_must_be_the_committed_runs(tmp_path):
    import json

    committed = tmp_path / "real"
    committed.mkdir()
    params = PROJECT_ROOT / "params" / "default.yaml"
    from storyhash_core.params import load_params

    record = load_params(params).model_dump() | {"output_dir": "elsewhere"}
    (committed / "run.json").write_text(json.dumps({"params": record}, default=str))
    check_params(params, committed)
    (committed / "run.json").write_text(
        json.dumps({"params": record | {"pooling": "mean"}}, default=str)
    )
    with pytest.raises(StoryHashError, match="differs from the params in .* in pooling"):
        check_params(params, committed)


def test_table_bytes_diff_lists_changed_and_one_sided_files(tmp_path, capsys):
    from storyhash_core.cli import main
    from storyhash_core.reproduce import table_bytes_diff

    first, second = tmp_path / "a", tmp_path / "b"
    for run, extra in ((first, "old.md"), (second, "new.csv")):
        (run / "tables").mkdir(parents=True)
        table().to_csv(run / "tables" / "same.csv", index=False)
        (run / "tables" / extra).write_text("x\n")
    table().to_csv(first / "tables" / "moved.csv", index=False)
    table(sim_mean=[0.9401, 0.93720001]).to_csv(second / "tables" / "moved.csv", index=False)
    found = table_bytes_diff(first, second)
    assert (found.identical, found.changed) == (["same.csv"], ["moved.csv"])
    assert (found.only_first, found.only_second) == (["old.md"], ["new.csv"])
    assert main(["diff-tables", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert "CHANGED  moved.csv" in out and out.strip().endswith(
        f"1 table files byte-identical, 1 changed, 1 only in {first}, 1 only in {second}"
    )
    assert main(["diff-tables", str(first), str(tmp_path)]) == 2  # not a run folder
