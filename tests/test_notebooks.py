"""The whole notebook sequence through papermill on a tiny embedded corpus."""

import base64
import json
import re
import shutil
import uuid
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from storyhash_core.errors import StoryHashError
from storyhash_core.params import PROJECT_ROOT, portable
from storyhash_core.runner import (
    NOTEBOOKS,
    NotebookError,
    _from_notebooks,
    run_notebooks,
    scratch_copy,
)

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
    "09_hard_suite": "hard_suite",
    "10_partial_copies": "partial_copies",
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


@pytest.fixture
def inside_project():
    """A scratch folder inside the project (gitignored), as a user's run folder is: its pages
    may then name it only relative to the project."""
    folder = PROJECT_ROOT / ".cache" / "tests" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


DATA_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")
TQDM = re.compile(r"\d+/\d+ \[\d\d:\d\d|[0-9.]+(?:it|task|video)/s\]|\d%\|")
ABSOLUTE = re.compile(
    r"(?<![\w.:/~-])/(?:tmp|home|root|work|Users|var|private|mnt|opt|srv|data|scratch|nfs)/"
)
DASHBOARD = re.compile(r"https?://[\w.:-]+/status")
BACKGROUNDS = {"n_videos": 2, "width": 160, "height": 90, "max_duration_s": 3.0, "seed": 7}
MAX_TABLE_CHARS = 150  # about 1,100 px of a page's 1,200: no table scrolls


def table_chars(table) -> int:
    """A table's width in characters as a browser lays it out: the widest cell per column (a
    header wraps at its spaces, so its longest word), plus padding."""
    widths: dict[int, int] = {}
    for row in table.find_all("tr"):
        for i, cell in enumerate(row.find_all(["td", "th"])):
            words = cell.get_text(" ", strip=True)
            width = max(map(len, words.split()), default=0) if cell.name == "th" else len(words)
            widths[i] = max(widths.get(i, 0), width)
    return sum(widths.values()) + 2 * len(widths)


def page_problems(html: str, figures: list[Path]) -> list[str]:
    """What a reader should not meet in a rendered page: a figure the notebook saved but the
    page does not show, progress-bar output, a dashboard link, this machine's folders, a
    table too wide for the page."""
    from bs4 import BeautifulSoup

    shown = set(re.findall(r"data:image/[a-z]+;base64,([A-Za-z0-9+/=]+)", html))
    problems = [
        f"figure {f.name} not shown"
        for f in figures
        if base64.b64encode(f.read_bytes()).decode() not in shown
    ]
    text = DATA_URI.sub("", html)
    problems += [f"progress bar: {m.group(0)!r}" for m in TQDM.finditer(text)][:3]
    problems += ["dashboard link"] if DASHBOARD.search(text) else []
    problems += [
        f"machine path: {text[max(m.start() - 30, 0) : m.end() + 30]!r}"
        for m in ABSOLUTE.finditer(text)
    ][:3]
    problems += ["this project's folder"] if str(PROJECT_ROOT) in text else []
    for table in BeautifulSoup(text, "html.parser").find_all("table"):
        if (chars := table_chars(table)) > MAX_TABLE_CHARS:
            header = [c.get_text(" ", strip=True) for c in table.find("tr").find_all(["th", "td"])]
            problems.append(f"table {chars} characters wide: {header[:4]}")
    return problems


def check_pages(run_dir: Path) -> None:
    figures = json.loads((run_dir / "run.json").read_text())["figures"]
    made = {p.name for p in (run_dir / "figures").iterdir() if p.suffix in (".png", ".jpg")}
    assert made == {f for names in figures.values() for f in names}  # each is some page's
    for name in NOTEBOOKS:
        html = (run_dir / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
        saved = [run_dir / "figures" / f for f in figures.get(name, [])]
        assert page_problems(html, saved) == [], name


def test_the_sequence_renders_every_artifact(inside_project, capfd):
    params = write_params(
        inside_project,
        transforms=["flip_h", "flip_v"],
        hard_suite={"edits": ["pip", "grayscale"], "backgrounds": BACKGROUNDS},
        mitigation={"flips": ["vflip"], "rotations": ["rot45"], "regions": ["crop0.5@0,0"]},
        cluster={"n_workers": 1, "threads_per_worker": 2, "processes": False},
    )
    run_dir = run_notebooks(params)
    for name in NOTEBOOKS:
        executed = nbformat.read(run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
        assert executed.cells[-1].execution_count, name
        paths = executed.metadata.papermill  # where it ran from and to, project-relative
        assert paths.input_path == f"notebooks/{name}.ipynb", name
        assert paths.output_path == f"{portable(run_dir)}/notebooks/{name}.ipynb", name
        assert (run_dir / "notebooks" / f"{name}.html").stat().st_size > 10_000, name
    check_pages(run_dir)
    for name in NOTEBOOKS[1:]:  # each result page names its models and what they stand for
        html = (run_dir / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
        assert "Visual block:</strong> <code>dct</code> (" in html, name
        assert "a weight-free DCT descriptor, in place of the paper's CLIP ViT-B/32" in html
        assert "Tracker:</strong> <code>flow</code> at 6 fps" in html, name
    html = (run_dir / "notebooks" / "04_robustness.html").read_text(encoding="utf-8")
    assert "R@1 here is over all 6 queries" in html and "R@1 here is over the" in html
    terminal = capfd.readouterr()  # the progress went here instead
    assert "[storyhash] 01_extract · reference videos (0 cached): 100%" in terminal.err
    assert re.search(r"\[storyhash\] 05_ablation · sweep videos .*\| (\d+)/\1 ", terminal.err)
    assert "[storyhash] 08_baselines_mitigation took" in terminal.out
    figures = json.loads((run_dir / "run.json").read_text())["figures"]
    assert figures["04_robustness"] == ["score_distributions.png", "table1_recall.png"]
    assert len(figures["01_extract"]) == 3 and figures["02_fuse"] == []
    assert figures["09_hard_suite"] == ["hard_suite_contact.jpg", "hard_suite_recall.png"]
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
        "table1_hard.csv",
        "hard_suite.csv",
        "hard_suite_overall.csv",
        "hard_suite_tests.csv",
        "hard_suite_price.csv",
        "fusion_weights.csv",
        "fusion_heldout.csv",
        "fusion_calibration.csv",
    } <= tables
    for fig in (
        "ablation",
        "flips",
        "rotation_sweep",
        "table1_recall",
        "score_distributions",
        "rotation_mitigation",
        "hard_suite_recall",
        "fusion_weights",
        "fusion_reliability",
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
        "hard_suite",
    } <= set(record["stages"])
    html = (run_dir / "notebooks" / "05_ablation.html").read_text()
    assert "What the numbers say" in html and "mean margin" in html and "over sources" in html
    assert "Can motion help at all" in html and "cross-validation over query sources" in html
    html = (run_dir / "notebooks" / "08_baselines_mitigation.html").read_text()
    assert "pdq_chamfer" in html and "of the similarity gap closed" in html
    assert "distractor splits" in html and "visual_top" in html


def test_a_failing_cell_names_notebook_and_cell(tmp_path):
    params = write_params(tmp_path)
    with pytest.raises(NotebookError, match=r"02_fuse.ipynb failed in cell \d+: StoryHashError"):
        run_notebooks(params, ("02_fuse",))


def test_a_page_with_a_missing_figure_a_progress_bar_or_a_path_is_caught(tmp_path):
    figure = tmp_path / "f.png"
    figure.write_bytes(b"\x89PNG not really")
    shown = f'<img src="data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode()}">'
    assert page_problems(shown, [figure]) == []
    assert page_problems("<p>no image</p>", [figure]) == ["figure f.png not shown"]
    bar = "<pre>sweep videos (0 cached):   8%|█  | 31/399 [00:10&lt;02:00,  3.1task/s]</pre>"
    assert page_problems(bar, [])[0].startswith("progress bar")
    found = page_problems("<pre>run folder: /home/me/storyhash/outputs/real</pre>", [])
    assert found == ["machine path: '<pre>run folder: /home/me/storyhash/outputs/real</pre'"]
    wide = "<table><tr>" + "<td>0.123456789</td>" * 20 + "</tr></table>"
    assert page_problems(wide, [])[0].startswith("table 260 characters wide")


def test_the_committed_run_s_pages_show_their_figures_and_no_clutter():
    check_pages(PROJECT_ROOT / "outputs" / "real")


def test_the_committed_pages_name_no_machine_folder():
    notebooks = PROJECT_ROOT / "notebooks"
    assert (
        _from_notebooks(PROJECT_ROOT / "params" / "real.yaml", notebooks) == "../params/real.yaml"
    )
    assert _from_notebooks(Path("/elsewhere/p.yaml"), notebooks) == "/elsewhere/p.yaml"
    for page in sorted((PROJECT_ROOT / "outputs" / "real" / "notebooks").glob("*.html")):
        text = page.read_text()
        assert "outputs/real" in text and not re.search(r"/[\w.-]+/outputs/real", text), page.name
    for executed in sorted((PROJECT_ROOT / "outputs" / "real" / "notebooks").glob("*.ipynb")):
        paths = nbformat.read(executed, as_version=4).metadata.papermill
        assert paths.output_path == f"outputs/real/notebooks/{executed.name}", executed.name


def test_a_scratch_run_starts_as_a_copy_and_never_overlaps_the_run(tmp_path):
    run = tmp_path / "outputs" / "real"
    for part in ("tables/t.csv", "artifacts/blocks.npz", "notebooks/01.html", "logs/01.log"):
        (run / part).parent.mkdir(parents=True, exist_ok=True)
        (run / part).write_text(part)
    (run / "run.json").write_text("{}")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    scratch = tmp_path / "outputs" / "scratch"
    scratch_copy(run, scratch)
    copied = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file())
    assert copied == ["artifacts/blocks.npz", "run.json", "tables/t.csv"]  # no pages, no logs
    (scratch / "tables" / "t.csv").write_text("rerun")
    scratch_copy(run, scratch)  # a second time: continues, copies nothing over it
    assert (scratch / "tables" / "t.csv").read_text() == "rerun"
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    for overlapping in (run, run / "scratch", tmp_path / "outputs"):
        with pytest.raises(StoryHashError, match="overlaps the run"):
            scratch_copy(run, overlapping)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(StoryHashError, match="not empty and holds no run"):
        scratch_copy(run, tmp_path / "other")
