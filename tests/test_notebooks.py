"""The whole notebook sequence through papermill on a tiny embedded corpus."""

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from storyhash_core.params import PROJECT_ROOT
from storyhash_core.runner import NOTEBOOKS, NotebookError, _from_notebooks, run_notebooks

from .test_stages import write_params

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"


def test_notebooks_are_committed_clean_with_a_parameters_cell():
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.outputs or c.execution_count for c in code), name
        assert "parameters" in code[0].metadata.get("tags", []), name


STAGES = {
    "01_extract": "extract",
    "02_fuse": "fuse",
    "03_index": "index",
    "04_robustness": "robustness",
    "05_ablation": "ablation",
    "06_failure_analysis": "failures",
    "07_figures": "figures",
    "08_baselines_mitigation": "baselines",
}


def test_every_notebook_calls_its_one_stage_and_writes_nothing_itself():
    assert set(STAGES) == set(NOTEBOOKS)
    for name, stage in STAGES.items():
        nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        calls = re.findall(r"stages\.(\w+)\.run\(run\)", code)
        assert calls == [stage], (name, calls)
        for forbidden in (
            "write_table",
            "save_figure",
            "save_image",
            "to_csv",
            "storyhash_core import report",
        ):
            assert forbidden not in code, (name, forbidden)


def test_the_sequence_renders_every_artifact(tmp_path):
    params = write_params(
        tmp_path,
        transforms=["flip_h", "flip_v"],
        cluster={"n_workers": 1, "threads_per_worker": 2, "processes": False},
    )
    run_dir = run_notebooks(params)
    for name in NOTEBOOKS:
        executed = nbformat.read(run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
        assert executed.cells[-1].execution_count, name
        assert (run_dir / "notebooks" / f"{name}.html").stat().st_size > 10_000, name
    tables = {p.name for p in (run_dir / "tables").iterdir()}
    for stem in ("table1", "ablation"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= tables
    assert {
        "failures.csv",
        "rotation_sweep.csv",
        "rotation_sweep_per_query.csv",
        "robustness_per_query.csv",
        "detection_overall.csv",
        "detection_significance.csv",
        "baselines_overall.csv",
        "flip_mitigation.csv",
        "rotation_mitigation.csv",
        "table1_tests.csv",
        "detection_splits_spread.csv",
        "baselines_splits_spread.csv",
        "rotation_mitigation_groups.csv",
        "detection_scores.npz",
        "baselines_scores.npz",
    } <= tables
    for fig in (
        "ablation",
        "flips",
        "rotation_sweep",
        "table1_recall",
        "score_distributions",
        "rotation_mitigation",
    ):
        for ext in ("png", "pdf"):
            assert (run_dir / "figures" / f"{fig}.{ext}").stat().st_size > 1000, fig
    sweep = pd.read_csv(run_dir / "tables" / "rotation_sweep.csv")
    assert sorted(sweep.angle.unique()) == [0, 45]
    record = json.loads((run_dir / "run.json").read_text())
    assert set(record["notebook_timings_s"]) == set(NOTEBOOKS) and record["wall_time_s"] > 0
    assert {
        "extract",
        "fuse",
        "index",
        "robustness",
        "rotation_sweep",
        "detection",
        "baselines",
        "rotation_mitigation",
    } <= set(record["stages"])
    html = (run_dir / "notebooks" / "05_ablation.html").read_text()
    assert "What the numbers say" in html and "mean margin" in html and "over sources" in html
    html = (run_dir / "notebooks" / "08_baselines_mitigation.html").read_text()
    assert "pdq_chamfer" in html and "of the similarity gap closed" in html
    assert "distractor splits" in html and "visual_top" in html


def test_a_failing_cell_names_notebook_and_cell(tmp_path):
    params = write_params(tmp_path)
    with pytest.raises(NotebookError, match=r"02_fuse.ipynb failed in cell \d+: StoryHashError"):
        run_notebooks(params, ("02_fuse",))


def test_the_committed_pages_name_no_machine_folder():
    notebooks = PROJECT_ROOT / "notebooks"
    assert (
        _from_notebooks(PROJECT_ROOT / "params" / "real.yaml", notebooks) == "../params/real.yaml"
    )
    assert _from_notebooks(Path("/elsewhere/p.yaml"), notebooks) == "/elsewhere/p.yaml"
    for page in sorted((PROJECT_ROOT / "outputs" / "real" / "notebooks").glob("*.html")):
        text = page.read_text()
        assert "outputs/real" in text and not re.search(r"/[\w.-]+/outputs/real", text), page.name
