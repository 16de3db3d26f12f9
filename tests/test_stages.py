import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from storyhash_core import stages
from storyhash_core.cli import main
from storyhash_core.errors import ParamsError, StoryHashError
from storyhash_core.params import PROJECT_ROOT, load_params
from storyhash_core.reproduce import SKIP
from storyhash_core.stages import inputs
from storyhash_core.stages.records import ExtractRecord, FuseRecord

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
        "figures": {"rotation_angles": [0, 45]},
        "detection": {"bootstrap": 20},
        "mitigation": {"flips": ["vflip"], "rotations": ["rot45"]},
        **overrides,
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_stages(params_file, client) -> stages.Run:
    run = stages.Run.open(params_file)
    stages.extract.extract(run, client)
    stages.fuse.run(run)
    stages.index.run(run)
    stages.robustness.table1_stage(run)
    return run


def test_stages_write_tables_and_rerun_from_cache(tmp_path, client):
    run = run_stages(write_params(tmp_path), client)
    queries = run.table("queries")
    assert len(queries) == 6 and (queries.error == "").all()
    assert (queries.frames_sampled >= 2).all()
    rows = run.table("robustness_per_query")
    assert len(rows) == 24 and set(rows.configuration) == {
        "fusion",
        "visual_padded",
        "action_padded",
        "visual",
    }
    table = run.table("table1")
    assert table["transform"].tolist() == ["flip_v", "speed_1.1", "overall"] * 4
    assert table.configuration.unique().tolist() == [
        "fusion",
        "visual_padded",
        "action_padded",
        "visual",
    ]
    for ext in ("md", "tex"):
        assert "overall" in run.path("tables", f"table1.{ext}").read_text()
    padded, alone = (
        table[table.configuration == c].reset_index() for c in ("visual_padded", "visual")
    )
    assert padded.recall_at_1.tolist() == alone.recall_at_1.tolist()
    motion = run.table("motion_features")
    assert len(motion) == 9 and motion.shape[1] == 2 + 15 + 8
    costs = run.table("extraction_cost")
    assert (
        len(costs) == 9
        and (costs.tracking_s > 0).all()
        and costs.tracking_share.between(0, 1).all()
    )
    assert len(run.table("tracking_vs_truth")) == 3
    assert len(list(run.path("figures").glob("tracks_*.png"))) == 3
    record = json.loads(run.path("run.json").read_text())["stages"]
    assert (
        record["extract"]["backbone"]["name"] == "dct" and record["extract"]["queries_failed"] == 0
    )
    assert 0 <= record["extract"]["tracking_vs_truth"]["recall"] <= 1
    assert record["robustness"]["search_latency"]["fusion"]["queries"] == 6
    assert record["fuse"]["widths"] == {"visual": 192, "action": 15, "graph": 8}
    assert record["extract"]["queries_cached"] == 0
    assert record["extract"]["worker_cpus"] == [json.loads(run.path("run.json").read_text())["cpu"]]
    extracted = run.load(ExtractRecord)  # the typed record the later stages read
    assert extracted.transforms == ["flip_v", "speed_1.1"] and extracted.backbone.name == "dct"
    assert run.load(FuseRecord).action_share_mean == pytest.approx(
        run.table("block_energy")["action"].mean()
    )
    before = run.table("table1")
    run_stages(write_params(tmp_path), client)
    assert json.loads(run.path("run.json").read_text())["stages"]["extract"]["queries_cached"] == 6
    pd.testing.assert_frame_equal(run.table("table1"), before)
    tables = "".join(f.read_text() for f in run.path("tables").glob("*.csv"))
    for machine_path in (str(tmp_path), str(PROJECT_ROOT), str(Path.home())):
        assert machine_path not in tables  # ids and portable paths only
    assert set(run.table("references").path) == {
        "JPEGImages/480p/synth-00",
        "clips/synth-01.mp4",
        "clips/synth-02.mp4",
    }


def test_two_runs_of_the_same_params_give_bit_identical_tables(tmp_path, client):
    """Everything but the wall-clock costs is reproducible: the second run starts from an empty
    cache and output folder, so every video is decoded, transformed, embedded and tracked again."""
    import shutil

    params = write_params(tmp_path)
    tables = {}
    for attempt in range(2):
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        run = run_stages(params, client)
        stages.robustness.detection_stage(run)
        tables[attempt] = {
            p.name: p.read_bytes()
            for p in sorted(run.path("tables").glob("*.csv"))
            if p.name not in SKIP
        }
    assert {"queries.csv", "references.csv", "table1.csv", "detection_overall.csv"} <= set(
        tables[0]
    )
    assert tables[0] == tables[1]


def test_only_parameters_that_shape_an_artifact_recompute_it(tmp_path, client):
    def extract(**overrides) -> dict[str, tuple[str, str]]:
        run = stages.Run.open(write_params(tmp_path, transforms=["flip_v"], **overrides))
        stages.extract.extract(run, client)
        return {r.id: (r.features, r.tracks) for r in run.table("files", "artifacts").itertuples()}

    base = extract()
    cache = tmp_path / "cache"  # files.csv names its entries relative to it
    stamps = {p: (cache / p).stat().st_mtime_ns for pair in base.values() for p in pair}
    assert (
        extract(pooling="mean", detection={"bootstrap": 5}, evaluation={"k": 5}) == base
    )  # used later only
    resampled = extract(sampling={"fps": 1.0})
    assert all(resampled[k][0] != base[k][0] and resampled[k][1] == base[k][1] for k in base)
    retracked = extract(motion={"tracker": {"min_area": 0.01}})
    assert all(retracked[k][0] == base[k][0] and retracked[k][1] != base[k][1] for k in base)
    assert {
        p: (cache / p).stat().st_mtime_ns for p in stamps
    } == stamps  # nothing of the first run rewritten


def test_rotation_sweep(tmp_path, client):
    run = run_stages(write_params(tmp_path, transforms=["flip_h"]), client)
    sweep, _ = stages.figures.rotation_sweep(run, client)
    assert sweep["angle"].tolist() == [0.0, 45.0] * 4 and (sweep.queries == 3).all()
    upright, turned = (sweep[sweep.angle == a].recall_at_1.to_numpy() for a in (0, 45))
    assert (upright >= turned).all()


def test_query_command_finds_the_reference(tmp_path, client, capsys):
    run = run_stages(write_params(tmp_path, transforms=["flip_h"]), client)
    reference = run.table("references").iloc[1]
    path = inputs.video_files(run)[reference.video_id]
    for configuration in ("fusion", "visual"):
        index = str(run.path("indexes", configuration))
        assert main(["query", str(path), "--index", index, "-k", "2", "--threshold", "0.99"]) == 0
        first, second = capsys.readouterr().out.splitlines()
        assert first.split() == ["1", first.split()[1], reference.video_id, "copy"]
        assert float(first.split()[1]) > 0.999 and second.endswith(" no copy")
        # the same video called a copy of nothing: exit 1
        assert main(["query", str(path), "--index", index, "--threshold", "1.01"]) == 1
        assert capsys.readouterr().out.count(" no copy") == 3  # all three references


def test_a_query_gets_the_studys_vector_through_the_studys_pipeline(tmp_path, client):
    from storyhash_core.query import rank_video

    run = run_stages(write_params(tmp_path, transforms=["flip_h"]), client)
    rows = run.table("robustness_per_query").set_index(["configuration", "query_id"])
    query_id = "synth-01@flip_h"
    path = inputs.video_files(run)[query_id]
    cached = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())
    for configuration in ("fusion", "visual_padded"):
        index = run.path("indexes", configuration)
        ranking = rank_video(path, index, k=3, cache_dir=str(tmp_path / "cache"))
        (top_id, score), *_ = ranking.hits
        study = rows.loc[(configuration, query_id)]
        assert top_id == study["top1_id"] and score == pytest.approx(study["top1_sim"], abs=1e-6)
        assert ranking.notes == [] and ranking.index_dir == index
        assert ranking.segments == []  # no notebook 10 here, so no frame index to localise on
        fresh = rank_video(path, index, k=3, cache_dir=str(tmp_path / "elsewhere"))
        assert fresh.hits[0] == (top_id, pytest.approx(score, abs=1e-6))  # recomputed: the same
    assert sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file()) == cached  # all reused


def test_failures_are_recorded_not_dropped(tmp_path, client):
    run_stages(write_params(tmp_path, transforms=["flip_h"]), client)
    manifest = next((tmp_path / "cache" / "corpus").glob("synthetic-*/manifest.csv"))
    victim = manifest.parent / "clips" / "synth-01.mp4"
    victim.write_bytes(victim.read_bytes()[:200])  # a reference breaks after generation
    run = run_stages(write_params(tmp_path, transforms=["flip_v"]), client)
    queries = run.table("queries").set_index("query_id")
    references = run.table("references").set_index("video_id")
    assert queries.loc["synth-01@flip_v", "error"].startswith("TransformError")
    assert "synth-01.mp4" in references.loc["synth-01", "error"]
    assert (references.error != "").sum() == 1 and (queries.error != "").sum() == 1
    record = json.loads(run.path("run.json").read_text())["stages"]["extract"]
    assert record["queries_failed"] == 1 and record["references_failed"] == 1
    rows = run.table("robustness_per_query")
    assert "synth-01@flip_v" not in set(rows.query_id) and len(rows) == 4 * 2


def test_a_stage_before_its_inputs_says_which_notebook(tmp_path):
    run = stages.Run.open(write_params(tmp_path))
    with pytest.raises(StoryHashError, match="02_fuse"):
        stages.fuse.load_blocks(run)
    with pytest.raises(StoryHashError, match="no extract record: run notebooks/01_extract first"):
        run.load(ExtractRecord)


def test_motion_off_allows_visual_only(tmp_path, client):
    params = write_params(
        tmp_path,
        transforms=["flip_h"],
        motion={"enabled": False},
        evaluation={"configurations": ["visual_padded"]},
    )
    run = run_stages(params, client)
    assert not run.path("tables", "motion_features.csv").exists()
    with pytest.raises(ParamsError, match=r"\['fusion', 'action_padded'\] need motion features"):
        load_params(write_params(tmp_path, transforms=["flip_h"], motion={"enabled": False}))


def test_cli_one_line_errors(tmp_path, capsys):
    assert main(["study", "--params", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storyhash: error: params file") and "\n" not in err


def test_cli_lists_transforms(capsys):
    assert main(["transforms"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 14
