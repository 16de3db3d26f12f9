"""A memoised stage runs once per code, params and inputs; a rerun restores what it wrote."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from storyhash_core.params import StudyParams
from storyhash_core.report import write_table
from storyhash_core.stages import memo
from storyhash_core.stages.memo import memoised
from storyhash_core.stages.run import Run, StageRecord

from .conftest import index_frames, write_video


class ToyRecord(StageRecord):
    stage: ClassVar[str] = "toy"
    notebook: ClassVar[str] = "99_toy"
    total: float


@dataclass
class Toy:
    record: ToyRecord
    figure: Path
    table: pd.DataFrame


calls: list[str] = []


@memoised("98_toy")
def toy(run: Run) -> Toy:
    """Reads ``tables/earlier.csv`` (an earlier stage's), writes a table and a "figure",
    deletes ``tables/stale.csv``, records its total."""
    calls.append(run.dir.name)
    earlier = run.table("earlier")
    table = earlier.assign(doubled=earlier["x"] * 2 * run.params.evaluation.k)
    write_table(table, run.path("tables", "toy"))
    figure = run.save_image(np.full((4, 4, 3), len(table), np.uint8), "toy.png")
    run.path("tables", "stale.csv").unlink(missing_ok=True)
    record = ToyRecord(total=float(table["doubled"].sum()))
    run.record(record)
    return Toy(record, figure, table)


@pytest.fixture
def make_run(tmp_path):
    paper = tmp_path / "paper.json"
    paper.write_text("{}")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_video(corpus / "a.mp4", index_frames(4, 32, 48), fps=4)

    def make(name: str, x=(1, 2, 3), **updates) -> Run:
        params = StudyParams(
            cache_dir=str(tmp_path / "cache"),
            output_dir=str(tmp_path / "out"),
            run_name=name,
            paper_results=str(paper),
            corpus={"kind": "directory", "path": str(corpus)},
            **updates,
        )
        run = Run(params, tmp_path / "out" / name)
        write_table(pd.DataFrame({"x": list(x)}), run.path("tables", "earlier"))
        write_table(pd.DataFrame({"y": [0]}), run.path("tables", "stale"))
        run.path("notebooks").mkdir()
        run.path("notebooks", "page.ipynb").write_text(name)  # not an input
        return run

    calls.clear()
    return make


def files(run: Run) -> dict[str, bytes]:
    return {
        p.relative_to(run.dir).as_posix(): p.read_bytes()
        for p in run.dir.rglob("*")
        if p.is_file() and p.parts[-2] not in ("notebooks", "logs") and p.name != "run.json"
    }


def test_a_rerun_restores_files_record_and_result_without_running(make_run):
    first_run = make_run("first")
    first = toy(first_run)
    second_run = make_run("second")  # another folder and run name, the same inputs
    second = toy(second_run)
    assert calls == ["first"]
    assert files(second_run) == files(first_run)
    assert second.figure == second_run.path("figures", "toy.png")  # follows the run folder
    pd.testing.assert_frame_equal(second.table, first.table)
    assert second.record == first.record
    data = json.loads(second_run.path("run.json").read_text())
    assert data["stages"]["toy"] == {"total": 120.0}  # 2 · (1 + 2 + 3) · k 10
    assert data["figures"]["99_toy"] == ["toy.png"]
    assert not second_run.path("tables", "stale.csv").exists()  # the deletion is replayed too


def test_a_changed_input_or_params_field_runs_the_stage_again(make_run, tmp_path):
    toy(make_run("a"))
    toy(make_run("b", x=(1, 2, 4)))  # an earlier stage's table changed
    toy(make_run("c", evaluation={"k": 5}))  # a params field that shapes numbers
    toy(make_run("d", cluster={"n_workers": 1}))  # how it runs: not in the key
    (tmp_path / "paper.json").write_text('{"table1": {}}')
    toy(make_run("e"))  # the paper's results changed
    write_video(tmp_path / "corpus" / "a.mp4", index_frames(5, 32, 48), fps=4)
    toy(make_run("f"))  # a corpus video changed (stages after 01 read some)
    assert calls == ["a", "b", "c", "e", "f"]
    data = json.loads((tmp_path / "out" / "d" / "run.json").read_text())
    assert data["memo"] == {"98_toy": "restored"}


def test_another_stage_record_is_an_input_but_not_its_run_only_fields(make_run):
    """Notebook 01's wall-clock seconds and cache hits differ on every run; its counts do not."""
    for name, seconds, queries in (("a", 1.0, 3), ("b", 2.0, 3), ("c", 2.0, 4)):
        run = make_run(name)
        run.put_records({"extract": {"seconds": {"total": seconds}, "queries": queries}}, {})
        toy(run)
    assert calls == ["a", "c"]


def test_a_result_that_does_not_pickle_is_returned_and_not_stored(make_run, capsys):
    @memoised("98_toy")
    def unpicklable(run: Run):
        calls.append(run.dir.name)
        return lambda: None

    for name in ("a", "b"):
        assert callable(unpicklable(make_run(name)))
    assert calls == ["a", "b"]
    assert "not memoised" in capsys.readouterr().err


def test_memo_false_runs_the_stage_every_time(make_run):
    for name in ("a", "b"):
        toy(make_run(name, memo=False))
    assert calls == ["a", "b"]


@memoised("99_later")
def later(run: Run) -> None:
    """A stage after ``toy``: writes a table and a record ``toy`` never reads (each run's
    differ, as wall-clock values do)."""
    calls.append(f"later:{run.dir.name}")
    write_table(pd.DataFrame({"z": [len(calls)]}), run.path("tables", "later"))
    run.put_records({"later": {"calls": len(calls)}}, {"99_later": []})


def test_a_rerun_into_the_same_folder_restores(make_run, monkeypatch):
    """The stage's own files and those of the stages after it are found in the folder, and
    are not inputs of it."""
    monkeypatch.setattr(memo, "NOTEBOOKS", ("98_toy", "99_later"))
    run = make_run("a")
    for _ in range(2):
        toy(run)
        later(run)
    assert calls == ["a", "later:a"]
    write_table(pd.DataFrame({"x": [7]}), run.path("tables", "earlier"))
    toy(run)
    assert calls == ["a", "later:a", "a"]


def test_a_rerun_after_a_code_change_computes_once_then_restores(make_run, monkeypatch):
    """The later stages' files left in the folder by the run before the change are not inputs
    of the earlier stage either, so the first rerun's entries are the second rerun's."""
    monkeypatch.setattr(memo, "NOTEBOOKS", ("98_toy", "99_later"))
    run = make_run("a")
    toy(run)
    later(run)
    monkeypatch.setattr(memo, "environment", lambda: "the code changed")
    for _ in range(2):
        toy(run)
        later(run)
    assert calls == ["a", "later:a", "a", "later:a"]
    assert json.loads(run.path("run.json").read_text())["memo"] == {
        "98_toy": "restored",
        "99_later": "restored",
    }


@memoised("99_later")
def later_writes_earlier(run: Run) -> None:
    """A later stage of another code version that wrote the table ``toy`` reads."""
    calls.append(f"later_v1:{run.dir.name}")
    write_table(pd.DataFrame({"x": [9]}), run.path("tables", "earlier"))


def test_a_later_notebook_s_file_rewritten_since_is_an_input_again(make_run, monkeypatch):
    """Only files a later notebook wrote and nothing rewrote since are left out of a stage's
    inputs: once notebook 01 (not memoised) or a person rewrites one, it counts again."""
    monkeypatch.setattr(memo, "NOTEBOOKS", ("98_toy", "99_later"))
    run = make_run("a")
    later_writes_earlier(run)  # as if an older version's notebook 99 wrote tables/earlier.csv
    toy(run)
    write_table(pd.DataFrame({"x": [1, 2, 4]}), run.path("tables", "earlier"))  # 01 rewrites it
    assert toy(run).record.total == 140.0  # 2 · (1 + 2 + 4) · 10, not a restored 180
    assert calls == ["later_v1:a", "a", "a"]


def test_unreadable_memo_bookkeeping_means_rerunning(make_run, monkeypatch):
    monkeypatch.setattr(memo, "NOTEBOOKS", ("98_toy", "99_later"))
    run = make_run("a")
    toy(run)
    later(run)
    run.path("logs", "memo_writers.json").write_text("{not json")
    toy(run)
    later(run)
    assert calls == ["a", "later:a", "a"]  # toy finds later's table as an input: one rerun
