"""The stages beyond the paper on the tiny synthetic corpus: detection with distractor queries,
baselines side by side, and flip / rotation mitigation."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from storyhash_core import stages
from storyhash_core.fusion import fuse
from storyhash_core.motion import MinMax
from storyhash_core.params import StudyParams
from storyhash_core.scores import Scores
from storyhash_core.similarity import inner_products
from storyhash_core.stages.fuse import Blocks
from storyhash_core.stages.records import RotationMitigationRecord
from storyhash_core.stages.scoring import configuration_matrices

from .test_stages import run_stages, write_params


def test_detection_baselines_and_mitigation(tmp_path, client):
    run = run_stages(
        write_params(tmp_path, transforms=["flip_h", "flip_v"]), client
    )  # 3 references, 6 queries
    stages.robustness.detection_stage(run)
    overall = run.table("detection_overall").set_index("method")
    assert list(overall.index) == ["fusion", "visual_padded", "action_padded", "visual"]
    # one of the 3 query sources is held out: its 2 queries are distractors, 2 references remain
    assert (
        (overall["distractors"] == 2).all()
        and (overall["positives"] == 4).all()
        and (overall["pairs"] == 12).all()
    )
    assert (
        overall["micro_ap"].between(0, 1).all()
        and overall["recall_at_1_ci"].str.startswith("[").all()
    )
    assert len(run.table("detection_significance")) == 6  # every pair of 4 configurations
    scores = Scores.load(run.path("tables", "detection_scores.npz"))
    assert list(scores.matrices) == list(overall.index) and scores.truth.sum() == 4
    first = scores.matrices["fusion"].copy()
    scores.save(tmp_path / "again.npz")  # the same scores, the same bytes
    assert (tmp_path / "again.npz").read_bytes() == run.path(
        "tables", "detection_scores.npz"
    ).read_bytes()
    assert (Scores.load(tmp_path / "again.npz").matrices["fusion"] == first).all()
    splits = run.table("detection_splits")
    assert splits["split_seed"].tolist() == [s for s in range(5) for _ in range(4)]
    primary = splits[splits["split_seed"] == 0].set_index("method")
    assert primary["micro_ap"].to_dict() == overall["micro_ap"].to_dict()
    assert splits["fpr_transferred_0.01"].between(0, 1).all()
    spread = run.table("detection_splits_spread").set_index("method")
    assert (spread["micro_ap_min"] <= spread["micro_ap_max"]).all()
    assert run.path("figures", "score_distributions.png").stat().st_size > 1000

    entry = stages.baselines.baselines(run, client)
    assert set(entry.methods) >= {
        "visual_mean",
        "visual_max",
        "visual_chamfer_top10",
        "pdq_chamfer",
        "visual_flip_tta_query",
        "visual_flip_aug_reference",
    }
    rows = run.table("baselines_per_query")
    assert len(rows) == 6 * len(entry.methods)
    by = {m: part.set_index("query_id") for m, part in rows.groupby("method")}
    matched = ~by["visual_padded"]["distractor"]
    flip_v = matched & by["visual_padded"].index.str.endswith("@flip_v")
    for tta in (
        "visual_flip_tta_query",
        "visual_flip_aug_reference",
    ):  # the vflip variant undoes flip_v
        assert (by[tta]["sim_true"][flip_v] > 0.99).all()
        assert (by[tta]["sim_true"][flip_v] > by["visual_padded"]["sim_true"][flip_v]).all()
    assert (
        by["visual_chamfer_top10"]["sim_true"][matched].notna().all()
    )  # k >= gallery: every pair re-scored
    tests = run.table("baselines_significance").set_index("a")
    assert tests.loc["visual_chamfer_top10", "b"] == "visual_top10"  # the same scored pairs
    assert set(tests["b"]) == {"visual_padded", "visual_top10"}
    assert not {"fusion", "action_padded"} & set(tests.index)  # tested in notebook 04
    flips = run.table("flip_mitigation").set_index("method")
    assert flips.loc["visual_flip_tta_query", "sim_gap_closed"] > 0.9
    record = json.loads(run.path("run.json").read_text())["stages"]["baselines"]
    costs = record["costs"]
    assert (
        costs["pdq_s"] > 0
        and costs["variants_embed_s"] > 0
        and costs["gallery_factor_flip_aug_reference"] == 2
    )

    table, _ = stages.baselines.rotation_mitigation(run, client)
    sweep = table[table["transform"] != "overall"]
    assert sorted(sweep.angle.unique()) == [0, 45] and set(sweep.method) == {
        "visual_padded",
        "visual_rotation_tta",
    }
    base, tta = (
        sweep[sweep.method == m].set_index("angle")
        for m in ("visual_padded", "visual_rotation_tta")
    )
    assert (
        tta.loc[45, "sim_mean"] > base.loc[45, "sim_mean"] + 0.005
    )  # rot45 undoes ffmpeg's clockwise 45°
    assert run.path("figures", "rotation_mitigation.pdf").is_file()
    assert run.load(RotationMitigationRecord).variants == ["rot45"]
    groups = run.table("rotation_mitigation_groups")
    assert set(groups["angles"]) == {"at a variant's angle"} and len(groups) == 2
    assert len(run.table("rotation_mitigation_significance")) == 1


def test_the_detection_scaler_is_fitted_on_the_gallery_only():
    """A held-out reference with extreme action values must not move the scaling."""
    raw = np.array([[0.0, 1.0], [2.0, 3.0], [100.0, -50.0]])  # c: held out
    refs = {"action_raw": raw, "action": raw}
    queries = {"action_raw": np.array([[1.0, 2.0]]), "action": np.array([[1.0, 2.0]])}
    blocks = Blocks(["a", "b", "c"], refs, ["q"], queries, None)
    run = SimpleNamespace(params=StudyParams(evaluation={"configurations": ["action"]}))
    sims = configuration_matrices(run, blocks, ["a", "b"])["action"]
    scaler = MinMax.fit(raw[:2])
    expected = inner_products(
        fuse({"action": scaler.apply(queries["action_raw"])}, "action"),
        fuse({"action": scaler.apply(raw[:2])}, "action"),
    )
    assert sims == pytest.approx(expected)
    leaky = MinMax.fit(raw)
    assert not np.allclose(
        sims,
        inner_products(
            fuse({"action": leaky.apply(queries["action_raw"])}, "action"),
            fuse({"action": leaky.apply(raw[:2])}, "action"),
        ),
    )


HARD = {
    "edits": ["grid_2x2", "crop_off_30", "grayscale"],  # in the registry's order
    "backgrounds": {"n_videos": 6, "width": 160, "height": 90, "max_duration_s": 3.0, "seed": 7},
}
QUADRANTS = ["crop0.5@0,0", "crop0.5@1,0", "crop0.5@0,1", "crop0.5@1,1"]


def test_the_hard_suite_scores_every_method_on_the_detection_gallery(tmp_path, client):
    params = write_params(
        tmp_path,
        hard_suite=HARD,
        mitigation={"flips": ["vflip"], "rotations": ["rot45"], "regions": QUADRANTS},
    )
    run = run_stages(params, client)  # 3 references: 6 paper queries, 9 hard ones
    queries = run.table("queries")
    assert queries.groupby("suite").size().to_dict() == {"hard": 9, "paper": 6}
    assert (queries["error"] == "").all()
    assert len(stages.fuse.load_blocks(run).query_ids) == 6
    assert len(stages.fuse.load_blocks(run, "hard").query_ids) == 9
    table1 = run.table("table1")  # Table 1 keeps the paper's transforms only
    assert set(table1["transform"]) == {"flip_v", "speed_1.1", "overall"}
    hard1 = run.table("table1_hard")
    assert list(dict.fromkeys(hard1["transform"])) == [*HARD["edits"], "overall"]

    record = stages.hard_suite.hard_suite(run, client)
    baselines = stages.baselines.baselines(run, client)
    assert record.held_out == baselines.held_out  # the same gallery and distractors
    assert {"fusion", "pdq_chamfer", "visual_flip_tta_query", "visual_rotation_tta"} <= set(
        record.methods
    )
    summary = run.table("hard_suite")
    assert len(summary) == len(record.methods) * 4  # every method × (3 edits + overall)
    assert summary["recall_at_1_ci"].str.startswith("[").all()
    rows = run.table("hard_suite_per_query").set_index(["method", "query_id"])
    grid = [q for q in queries["query_id"] if q.endswith("@grid_2x2")]
    matched = [q for q in grid if not rows.loc[("visual_padded", q), "distractor"]]
    regions, full = (
        rows.loc[m].loc[matched, "sim_true"] for m in ("visual_regions", "visual_padded")
    )
    assert (regions > full + 0.01).all()  # the source's own cell of the grid matches it best
    tests = run.table("hard_suite_tests")
    pairs = len(run.table("hard_suite_significance"))
    assert len(tests) == 3 * pairs and set(tests["edit"]) == set(HARD["edits"])
    expected = np.minimum(1, tests["r1_p"] * len(tests))  # one family over every edit and pair
    assert np.allclose(tests["r1_p_bonferroni"], expected)
    price = run.table("hard_suite_price").set_index("method")
    assert price.loc["visual_regions", "embeddings_per_frame"] == 5
    assert (
        price.loc["visual_padded", "no_match_best_mean"]
        <= price.loc["visual_regions", "no_match_best_mean"]
    )  # a best over more crops can only raise a no-match query's best score
    assert record.contact_source in set(queries["reference_id"])
    assert run.path("figures", "hard_suite_contact.jpg").stat().st_size > 5000

    failures = stages.failures.run(run)
    assert failures.record.hard_queries == 9 and failures.record.queries == 6
    assert set(failures.hard_per_edit["transform"]) <= set(HARD["edits"])


def test_the_fusion_weight_study_chooses_on_other_sources_and_reports_held_out(tmp_path, client):
    study = {"folds": 3, "action_weights": [0, 0.1, 1], "graph_weights": [0, 1]}
    params = write_params(tmp_path, transforms=["flip_h", "flip_v"], fusion_weights=study)
    run = run_stages(params, client)  # 3 references, 6 queries, all with an oracle geometry
    stages.robustness.detection_stage(run)
    ablation = stages.ablation.run(run)
    weights = run.table("fusion_weights")
    # per tracks: 3 kinds × 3 scalings × 3 w_a × 2 w_g, each with its metrics on all queries
    assert weights.groupby("tracks").size().to_dict() == {"flow": 54, "oracle": 54}
    assert weights["micro_ap"].between(0, 1).all()
    table = run.table("fusion_heldout")
    folds = table[table["fold"] != "all"]
    heldout = table[table["fold"] == "all"].set_index(["tracks", "selection"])
    assert set(heldout.index.get_level_values("selection")) == {
        "fusion",
        "cv_early",
        "cv_late",
        "cv_rerank",
        "cv_best",
    }
    assert set(folds["tracks"]) == {"flow", "oracle"} and folds["fold"].nunique() == 3
    selected = heldout.drop(index="fusion", level="selection")  # fusion's test is notebook 04's
    assert selected["r1_p_bonferroni"].between(0, 1).all()
    assert np.isnan(heldout.loc[("flow", "fusion"), "r1_p_bonferroni"])
    # every source sits in one fold, and a fold's queries are exactly its sources' queries
    sources = run.table("fusion_source_folds")
    assert sources["source"].is_unique and set(sources["source"]) == {
        "synth-00",
        "synth-01",
        "synth-02",
    }
    per_source = run.table("queries").groupby("reference_id").size()
    expected = sources.assign(n=sources["source"].map(per_source)).groupby("fold")["n"].sum()
    flow = folds[(folds["tracks"] == "flow") & (folds["selection"] == "cv_best")]
    assert flow.set_index(flow["fold"].astype(int))["queries"].to_dict() == expected.to_dict()
    # visual alone is perfect on every training fold here: the tie goes to the lightest weights
    assert (folds[["w_a", "w_g"]] == 0).all().all()
    assert (
        heldout.loc[("flow", "fusion"), "micro_ap"] < heldout.loc[("flow", "cv_best"), "micro_ap"]
    )
    assert ablation.weights is not None and len(ablation.weights.heldout) == 10
    transforms = run.table("fusion_cv_transforms")
    assert {"paper", "rotation"} <= set(transforms["suite"])
    calibration = run.table("fusion_calibration")
    assert set(calibration["calibrator"]) == {"raw", "platt", "isotonic"}
    assert calibration["brier"].between(0, 1).all()
    assert run.path("figures", "fusion_weights.png").stat().st_size > 1000
    assert run.path("figures", "fusion_reliability.png").stat().st_size > 1000


def test_partial_copies_are_made_matched_and_written_in_the_vsc2022_layout(tmp_path, client):
    from storyhash_core.matching import read_matches, segment_ap

    partial = {"single": 6, "double": 2, "negative": 3, "query_s": [4.0, 8.0], "bootstrap": 5}
    partial |= {"width": 96, "height": 64, "edits": ["none", "flip_h"]}
    params = write_params(tmp_path, transforms=["flip_h"], partial_copies=partial)
    run = run_stages(params, client)
    stages.robustness.detection_stage(run)
    result = stages.partial_copies.run(run)
    queries = run.table("partial_queries")
    assert len(queries) == 11 and (queries["error"] == "").all()
    truth = read_matches(run.path("partial", "ground_truth.csv"))
    assert len(truth) == 6 + 2 * 2 and all(m.query_id.startswith("Q") for m in truth)
    table = result.table.set_index("method")
    for method in ("pooled", "frame"):
        found = read_matches(run.path("partial", f"predictions_{method}.csv"))
        # the table's segment AP is the metric of the two files as written
        assert table.loc[method, "segment_ap"] == pytest.approx(segment_ap(truth, found).ap)
    assert table["micro_ap"].between(0, 1).all() and (table["copied_pairs"] == 10).all()
    pairs = run.table("partial_copies_pairs")
    assert len(pairs) == 10 and pairs["copied_share"].between(0, 1.0001).all()
    assert (pairs["pooled_iou_query"] <= 1).all() and result.bytes_per_frame == 192 * 4 + 8
    assert run.path("figures", "partial_matrix.png").stat().st_size > 1000
    assert run.path("figures", "partial_detection.png").stat().st_size > 1000
    # the query command now reports where a video copies a reference (the saved frame index)
    from storyhash_core.query import rank_video
    from storyhash_core.stages import inputs

    reference = run.table("references").iloc[1]
    path = inputs.video_files(run)[reference.video_id]
    ranking = rank_video(path, run.path("indexes", "visual"), k=2, cache_dir=str(tmp_path / "c"))
    best = ranking.segments[0]
    assert best.ref_id == reference.video_id and best.query_start == best.ref_start == 0.0
    assert best.query_end == pytest.approx(best.ref_end) and best.score > 0.99
