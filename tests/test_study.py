import json

import pandas as pd
import yaml

from storyhash_core.cli import main
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
        **overrides,
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_study_writes_tables_and_reruns_from_cache(tmp_path):
    params = load_params(write_params(tmp_path))
    out = run_study(params)
    queries = pd.read_csv(out / "queries.csv", keep_default_na=False)
    decoded = pd.read_csv(out / "decoded.csv", keep_default_na=False)
    assert len(queries) == 6 and (queries.error == "").all() and not queries.cached.any()
    assert len(decoded) == 9 and (decoded.error == "").all() and (decoded.n_sampled >= 2).all()
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["queries"] == 6 and run["summary"]["decode_failed"] == 0
    again = pd.read_csv(run_study(params) / "queries.csv")
    assert again.cached.all()


def test_failures_are_recorded_not_dropped(tmp_path):
    run_study(load_params(write_params(tmp_path, transforms=["flip_h"])))
    manifest = next((tmp_path / "cache" / "corpus").glob("synthetic-*/manifest.csv"))
    victim = manifest.parent / "clips" / "synth-01.mp4"
    victim.write_bytes(victim.read_bytes()[:200])  # a reference breaks after generation
    params = load_params(write_params(tmp_path, transforms=["flip_v"]))
    out = run_study(params)
    queries = pd.read_csv(out / "queries.csv", keep_default_na=False)
    decoded = pd.read_csv(out / "decoded.csv", keep_default_na=False)
    assert queries.set_index("query_id").loc["synth-01@flip_v", "error"].startswith("TransformError")
    assert "synth-01.mp4" in decoded.set_index("id").loc["synth-01", "error"]
    assert (decoded.error != "").sum() == 1
    assert json.loads((out / "run.json").read_text())["summary"]["queries_failed"] == 1


def test_cli_one_line_errors(tmp_path, capsys):
    assert main(["study", "--params", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storyhash: error: params file") and "\n" not in err


def test_cli_lists_transforms(capsys):
    assert main(["transforms"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 14
