import json
import time

import cv2
import numpy as np
import pandas as pd
import pytest

from storyhash_core import plots, prose
from storyhash_core.cache import ArtifactCache
from storyhash_core.paper import Paper
from storyhash_core.stages.ablation import ablation_table
from storyhash_core.stages.failures import failures
from storyhash_core.stages.figures import flip_table, flip_tests
from storyhash_core.stages.scoring import paired_tests

from .conftest import index_frames, write_folder, write_video


def table1() -> pd.DataFrame:
    """A hand-made Table 1: fusion lifts every score but narrows the margin."""
    rows = []
    for configuration, sim, wrong, r1 in (
        ("fusion", 0.95, 0.93, 80.0),
        ("visual_padded", 0.80, 0.60, 95.0),
    ):
        for transform, drop in (
            ("flip_h", 0.0),
            ("flip_v", 0.05),
            ("rotate_5", 0.02),
            ("overall", 0.01),
        ):
            rows.append(
                {
                    "configuration": configuration,
                    "transform": transform,
                    "queries": 10,
                    "recall_at_1": r1 - 10 * drop * (configuration == "fusion"),
                    "recall_at_3": 100.0,
                    "recall_at_1_index": r1 - 10 * drop * (configuration == "fusion") - 1,
                    "recall_at_3_index": 100.0,
                    "sim_mean": sim - drop,
                    "sim_min": sim - 0.2,
                    "sim_max": 1.0,
                    "best_wrong_mean": wrong,
                    "margin_mean": sim - drop - wrong,
                    "margin_min": -0.1,
                }
            )
    return pd.DataFrame(rows)


def test_ablation_table_takes_overall_rows_and_paper_numbers():
    paper = Paper(
        pd.DataFrame(), pd.DataFrame({"configuration": ["fusion"], "paper_recall_at_1": [98.6]})
    )
    ab = ablation_table(table1(), paper)
    assert ab["configuration"].tolist() == ["fusion", "visual_padded"]
    assert ab["paper_recall_at_1"].iloc[0] == 98.6 and np.isnan(ab["paper_recall_at_1"].iloc[1])


def test_confidence_discussion_reads_the_margin():
    text = prose.confidence(table1(), None)
    assert "0.790 (visual) → 0.940 (fusion), +19.0 %" in text
    assert "higher similarity here is not higher confidence" in text


def test_flip_table_and_discussion():
    flips = flip_table(table1())
    assert flips["configuration"].tolist() == ["fusion", "visual_padded"]
    assert flips["recall_gap"].tolist() == pytest.approx([0.5, 0.0])
    text = prose.flips(flips, None)
    assert (
        "fusion: flip_h 80.0 % vs flip_v 79.5 %" in text
        and "flip_v lowers the similarity more" in text
    )
    missing = flip_table(table1()[table1()["transform"] != "flip_h"])
    assert "does not have both" in prose.flips(missing, None)


def test_rotation_discussion_with_sweep():
    sweep = pd.DataFrame(
        {
            "configuration": ["fusion", "fusion", "visual_padded", "visual_padded"],
            "angle": [0, 90, 0, 90],
            "recall_at_1": [100, 40, 100, 10],
        }
    )
    text = prose.rotation(table1(), sweep, None)
    assert "rotate_5: fusion 79.8 % vs visual 95.0 %" in text
    assert "fusion 40.0 % at 90°; visual_padded 10.0 % at 90°" in text


def test_failures_list_every_miss_in_transform_order():
    rows = pd.DataFrame(
        {
            "configuration": ["c"] * 4,
            "transform": ["b", "a", "a", "b"],
            "query_id": ["q1", "q2", "q3", "q4"],
            "reference_id": ["r"] * 4,
            "rank": [1.0, 2.0, np.nan, 3.0],
            "top1_id": ["r", "x", "y", "z"],
            "top1_sim": [0.9] * 4,
            "sim_true": [0.9, 0.5, 0.4, 0.3],
            "best_wrong_id": ["x"] * 4,
            "best_wrong_sim": [0.6] * 4,
            "margin": [0.3, -0.1, -0.2, -0.3],
        }
    )
    misses = failures(rows, "c", ["a", "b"])
    assert misses["query_id"].tolist() == ["q3", "q2", "q4"]
    assert [plots.rank_label(r, 10) for r in misses["rank"]] == ["> 10", "2", "3"]


def test_failure_sheet_shows_each_miss_and_caches_thumbnails(tmp_path):
    frames = index_frames(12, 64, 96)
    videos = {
        "q": write_video(tmp_path / "q.mp4", frames, 12),
        "top": write_folder(tmp_path / "top", frames[::-1]),
        "true": write_video(tmp_path / "true.mp4", frames[:, :, ::-1], 12),
    }
    misses = pd.DataFrame(
        {
            "query_id": ["q"],
            "reference_id": ["true"],
            "top1_id": ["top"],
            "top1_sim": [0.9],
            "rank": [2.0],
            "sim_true": [0.8],
        }
    )
    cache = ArtifactCache(tmp_path / "cache")
    sheet = plots.failure_sheet(
        misses, {k: str(v) for k, v in videos.items()}, 10, cache, height=32
    )
    assert sheet.shape[0] == 18 + 32 + 6 and sheet.shape[1] >= 3 * 48
    cached = sorted((tmp_path / "cache" / "thumbnails").rglob("*.png"))
    assert len(cached) == 3
    middle = plots.middle_frame(videos["true"])
    assert (
        np.abs(
            plots.thumbnail(videos["true"], 32, cache).astype(int)
            - cv2.resize(middle, (48, 32), interpolation=cv2.INTER_AREA)
        ).max()
        <= 1
    )  # PNG: lossless


def test_flip_tests_pair_the_two_flips_of_each_source():
    rows = pd.DataFrame(
        {
            "configuration": "visual",
            "reference_id": [f"v{i}" for i in range(8)] * 2,
            "transform": ["flip_h"] * 8 + ["flip_v"] * 8,
            "rank": [1.0] * 8 + [np.nan] + [2.0] * 6 + [1.0],  # NaN: not retrieved, a miss
            "sim_true": [0.9] * 8 + [0.7] * 8,
        }
    )
    tests = flip_tests(rows)
    r = tests.iloc[0]
    assert (r["sources"], r["a"], r["b"], r["only_a_correct"], r["only_b_correct"]) == (
        8,
        "flip_h",
        "flip_v",
        7,
        0,
    )
    assert r["r1_p"] == pytest.approx(2 * 0.5**7)
    assert r["sim_diff_median"] == pytest.approx(0.2) and r["wilcoxon_p"] < 0.05
    assert "only flip_h right 7, only flip_v 0" in prose.flip_tests(tests)


def test_paired_tests_per_angle():
    rows = pd.DataFrame(
        {
            "configuration": ["fusion"] * 6 + ["visual_padded"] * 6,
            "query_id": [f"q{i}" for i in range(6)] * 2,
            "reference_id": ["a", "b", "c", "a", "b", "c"] * 2,
            "angle": [0, 0, 0, 90, 90, 90] * 2,
            "rank": [1, 1, 1, np.nan, 2, 1] + [1, 1, 1, 1, 1, 1],
        }
    )
    tests = paired_tests(rows, [("fusion", "visual_padded")], "angle")
    assert tests["angle"].tolist() == [0, 90]
    assert tests[["only_a_correct", "only_b_correct"]].values.tolist() == [[0, 0], [0, 2]]
    assert tests["r1_a"].tolist() == pytest.approx([100, 100 / 3]) and tests["r1_p"].iloc[1] == 0.5
    assert tests["r1_p_bonferroni"].tolist() == [1.0, 1.0] and not tests["r1_significant"].any()
    ordered = paired_tests(rows, [("fusion", "visual_padded")], "angle", [90, 0])
    assert ordered["angle"].tolist() == [90, 0]
    none = paired_tests(rows, [("fusion", "action_padded")], "angle")
    assert len(none) == 0 and "r1_p_bonferroni" in none


def paper_numbers(tmp_path) -> Paper:
    """A paper_results.json of two configurations with round numbers."""
    columns = ["transform"] + [
        f"{m}_{c}" for m in ("recall_at_1", "avg_sim") for c in ("fusion", "clip", "action")
    ]
    rows = [
        ["flip_h", 100, 90, 1, 0.9, 0.6, 0.7],
        ["flip_v", 80, 70, 1, 0.9, 0.6, 0.7],
        ["rotate_5", 97, 95, 1, 0.9, 0.6, 0.7],
        ["overall", 98, 96, 1, 0.9, 0.6, 0.7],
    ]
    overall = {
        name: {
            "recall_at_1": r1,
            "recall_at_3": 100,
            "avg_sim": sim,
            "min_sim": 0.1,
            "max_sim": 1.0,
        }
        for name, r1, sim in (
            ("fusion", 98.5, 0.9),
            ("clip_only", 98.0, 0.6),
            ("action_only", 1.0, 0.7),
        )
    }
    path = tmp_path / "paper.json"
    path.write_text(
        json.dumps({"paper_table1": {"columns": columns, "rows": rows}, "readme_overall": overall})
    )
    return Paper.load(path)


def test_prose_cites_the_paper_numbers_it_is_given(tmp_path):
    paper = paper_numbers(tmp_path)
    assert Paper.load(tmp_path / "missing.json") is None
    assert (
        paper.recall_at_1("visual_padded", "flip_v") == 70
        and paper.overall_value("fusion", "paper_sim_mean") == 0.9
    )
    assert "Paper: mean similarity 0.600 (CLIP) → 0.900 (fusion), +50.0 %" in prose.confidence(
        table1(), paper
    )
    assert "R@1 moves +0.5 points" in prose.confidence(table1(), paper)
    assert "Paper (CLIP): flip_v 70.0 % vs flip_h 90.0 %" in prose.flips(
        flip_table(table1()), paper
    )
    assert "fusion 97.0 % vs CLIP-only 95.0 %" in prose.rotation(table1(), None, paper)
    assert "the paper reports 98.5 %" in prose.overall(table1(), paper)
    assert "no paper numbers" in prose.flips(flip_table(table1()), None)


def test_a_figure_saved_twice_is_the_same_bytes(tmp_path):
    ablation = pd.DataFrame(
        {
            "configuration": ["fusion", "visual_padded"],
            "recall_at_1": [0.8, 0.9],
            "sim_mean": [0.7, 0.8],
            "margin_mean": [0.1, 0.2],
        }
    )
    files = []
    for name in ("a", "b"):
        files.append(plots.save_figure(plots.ablation_figure(ablation), tmp_path / name))
        time.sleep(1.1)  # a PDF creation date would differ by now
    for first, second in zip(*files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.suffix


def test_a_family_of_tests_says_how_many_are_significant():
    tests = pd.DataFrame({"r1_significant": [False, True, False]})
    assert prose.significant_tests(tests) == "1 of the 3 tests is significant after Bonferroni:"
    assert prose.significant_tests(tests.iloc[[0, 2]]) == (
        "None of the 2 tests is significant after Bonferroni."
    )
