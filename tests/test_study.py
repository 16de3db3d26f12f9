import json

import pandas as pd
import pytest
import yaml

from storyhash_core.cli import main
from storyhash_core.errors import ParamsError
from storyhash_core.params import load_params
from storyhash_core.study import run_study

from .conftest import TINY


def write_params(tmp_path, **overrides):
    params = {
        "run_name": "tiny",
        "corpus": {"kind": "synthetic", "synthetic": TINY.model_dump()},
        "transforms": ["flip_v", "speed_1.1"],
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
        "cluster": {"n_workers": 2, "processes": False},
        "backbone": {"name": "dct"},
        "evaluation": {"configurations": ["fusion", "visual_padded", "action_padded", "visual"]},
        **overrides,
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_study_writes_tables_and_reruns_from_cache(tmp_path):
    params = load_params(write_params(tmp_path))
    out = run_study(params)
    tables = out / "tables"
    queries = pd.read_csv(tables / "queries.csv", keep_default_na=False)
    assert len(queries) == 6 and (queries.error == "").all() and not queries.cached.any()
    assert (queries.frames_sampled >= 2).all()
    rows = pd.read_csv(tables / "robustness_per_query.csv")
    assert len(rows) == 24 and set(rows.configuration) == {"fusion", "visual_padded", "action_padded", "visual"}
    table = pd.read_csv(tables / "table1.csv")
    assert table["transform"].tolist() == ["flip_v", "speed_1.1", "overall"] * 4
    assert table.configuration.unique().tolist() == ["fusion", "visual_padded", "action_padded", "visual"]
    for ext in ("md", "tex"):
        assert "overall" in (tables / f"table1.{ext}").read_text()
    padded, alone = (table[table.configuration == c].reset_index() for c in ("visual_padded", "visual"))
    assert padded.recall_at_1.tolist() == alone.recall_at_1.tolist()
    motion = pd.read_csv(tables / "motion_features.csv")
    assert len(motion) == 9 and motion.shape[1] == 1 + 15 + 8
    costs = pd.read_csv(tables / "extraction_cost.csv")
    assert len(costs) == 9 and (costs.tracking_s > 0).all() and costs.tracking_share.between(0, 1).all()
    truth = pd.read_csv(tables / "tracking_vs_truth.csv")
    assert len(truth) == 3 and (truth.truth_points > 0).all()
    assert len(list((out / "figures").glob("tracks_*.png"))) == 3
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["backbone"] == "dct" and run["summary"]["queries_failed"] == 0
    assert 0 <= run["summary"]["tracking_vs_truth"]["recall"] <= 1
    assert run["summary"]["search_latency"]["fusion"]["queries"] == 6
    again = pd.read_csv(run_study(params) / "tables" / "queries.csv")
    assert again.cached.all()
    pd.testing.assert_frame_equal(pd.read_csv(tables / "table1.csv"), table)


def test_motion_off_runs_visual_only_and_fusion_says_why(tmp_path):
    params = load_params(write_params(tmp_path, transforms=["flip_h"], motion={"enabled": False},
                                      evaluation={"configurations": ["visual_padded"]}))
    out = run_study(params)
    assert not (out / "tables" / "motion_features.csv").exists()
    with pytest.raises(ParamsError, match=r"\['fusion', 'action_padded'\] need motion features"):
        load_params(write_params(tmp_path, transforms=["flip_h"], motion={"enabled": False}))


def test_query_command_finds_the_reference(tmp_path, capsys):
    out = run_study(load_params(write_params(tmp_path, transforms=["flip_h"])))
    reference = pd.read_csv(out / "tables" / "references.csv").iloc[1]
    assert main(["query", reference.path, "--index", str(out / "index"), "-k", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[0] == "1" and first[2] == reference.video_id and float(first[1]) > 0.999


def test_failures_are_recorded_not_dropped(tmp_path):
    run_study(load_params(write_params(tmp_path, transforms=["flip_h"])))
    manifest = next((tmp_path / "cache" / "corpus").glob("synthetic-*/manifest.csv"))
    victim = manifest.parent / "clips" / "synth-01.mp4"
    victim.write_bytes(victim.read_bytes()[:200])  # a reference breaks after generation
    out = run_study(load_params(write_params(tmp_path, transforms=["flip_v"])))
    queries = pd.read_csv(out / "tables" / "queries.csv", keep_default_na=False).set_index("query_id")
    references = pd.read_csv(out / "tables" / "references.csv", keep_default_na=False).set_index("video_id")
    assert queries.loc["synth-01@flip_v", "error"].startswith("TransformError")
    assert "synth-01.mp4" in references.loc["synth-01", "error"]
    assert (references.error != "").sum() == 1 and (queries.error != "").sum() == 1
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["queries_failed"] == 1 and run["summary"]["references_failed"] == 1
    rows = pd.read_csv(out / "tables" / "robustness_per_query.csv")
    assert "synth-01@flip_v" not in set(rows.query_id) and len(rows) == 4 * 2


def test_cli_one_line_errors(tmp_path, capsys):
    assert main(["study", "--params", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storyhash: error: params file") and "\n" not in err


def test_cli_lists_transforms(capsys):
    assert main(["transforms"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 14
