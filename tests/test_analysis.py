import numpy as np
import pandas as pd
import pytest

import cv2

from storyhash_core import analysis, figures
from storyhash_core.cache import ArtifactCache

from .conftest import index_frames, write_folder, write_video


def table1() -> pd.DataFrame:
    """A hand-made Table 1: fusion lifts every score but narrows the margin."""
    rows = []
    for configuration, sim, wrong, r1 in (("fusion", 0.95, 0.93, 80.0), ("visual_padded", 0.80, 0.60, 95.0)):
        for transform, drop in (("flip_h", 0.0), ("flip_v", 0.05), ("rotate_5", 0.02), ("overall", 0.01)):
            rows.append({"configuration": configuration, "transform": transform, "queries": 10,
                         "recall_at_1": r1 - 10 * drop * (configuration == "fusion"), "recall_at_3": 100.0,
                         "sim_mean": sim - drop, "sim_min": sim - 0.2, "sim_max": 1.0,
                         "best_wrong_mean": wrong, "margin_mean": sim - drop - wrong, "margin_min": -0.1})
    return pd.DataFrame(rows)


def test_ablation_table_takes_overall_rows_and_paper_numbers():
    paper = pd.DataFrame({"configuration": ["fusion"], "paper_recall_at_1": [98.6]})
    ab = analysis.ablation_table(table1(), paper)
    assert ab["configuration"].tolist() == ["fusion", "visual_padded"]
    assert ab["paper_recall_at_1"].iloc[0] == 98.6 and np.isnan(ab["paper_recall_at_1"].iloc[1])


def test_confidence_discussion_reads_the_margin():
    text = analysis.discuss_confidence(table1())
    assert "0.790 (visual) → 0.940 (fusion), +19.0 %" in text
    assert "higher similarity here is not higher confidence" in text


def test_flip_table_and_discussion():
    flips = analysis.flip_table(table1())
    assert flips["configuration"].tolist() == ["fusion", "visual_padded"]
    assert flips["recall_gap"].tolist() == pytest.approx([0.5, 0.0])
    text = analysis.discuss_flips(flips)
    assert "fusion: flip_h 80.0 % vs flip_v 79.5 %" in text and "flip_v lowers the similarity more" in text
    missing = analysis.flip_table(table1()[table1()["transform"] != "flip_h"])
    assert "does not have both" in analysis.discuss_flips(missing)


def test_rotation_discussion_with_sweep():
    sweep = pd.DataFrame({"configuration": ["fusion", "fusion", "visual_padded", "visual_padded"],
                          "angle": [0, 90, 0, 90], "recall_at_1": [100, 40, 100, 10]})
    text = analysis.discuss_rotation(table1(), sweep)
    assert "rotate_5: fusion 79.8 % vs visual 95.0 %" in text
    assert "fusion 40.0 % at 90°; visual_padded 10.0 % at 90°" in text


def test_failures_list_every_miss_in_transform_order():
    rows = pd.DataFrame({"configuration": ["c"] * 4, "transform": ["b", "a", "a", "b"],
                         "query_id": ["q1", "q2", "q3", "q4"], "reference_id": ["r"] * 4,
                         "rank": [1.0, 2.0, np.nan, 3.0], "top1_id": ["r", "x", "y", "z"], "top1_sim": [0.9] * 4,
                         "sim_true": [0.9, 0.5, 0.4, 0.3], "best_wrong_id": ["x"] * 4, "best_wrong_sim": [0.6] * 4,
                         "margin": [0.3, -0.1, -0.2, -0.3]})
    misses = analysis.failures(rows, "c", ["a", "b"])
    assert misses["query_id"].tolist() == ["q3", "q2", "q4"]
    assert [analysis.rank_label(r, 10) for r in misses["rank"]] == ["> 10", "2", "3"]


def test_failure_sheet_shows_each_miss_and_caches_thumbnails(tmp_path):
    frames = index_frames(12, 64, 96)
    videos = {"q": write_video(tmp_path / "q.mp4", frames, 12), "top": write_folder(tmp_path / "top", frames[::-1]),
              "true": write_video(tmp_path / "true.mp4", frames[:, :, ::-1], 12)}
    misses = pd.DataFrame({"query_id": ["q"], "reference_id": ["true"], "top1_id": ["top"], "top1_sim": [0.9],
                           "rank": [2.0], "sim_true": [0.8]})
    cache = ArtifactCache(tmp_path / "cache")
    sheet = figures.failure_sheet(misses, {k: str(v) for k, v in videos.items()}, 10, cache, height=32)
    assert sheet.shape[0] == 18 + 32 + 6 and sheet.shape[1] >= 3 * 48
    cached = sorted((tmp_path / "cache" / "thumbnails").rglob("*.png"))
    assert len(cached) == 3
    middle = figures.middle_frame(videos["true"])
    assert np.abs(figures.thumbnail(videos["true"], 32, cache).astype(int)
                  - cv2.resize(middle, (48, 32), interpolation=cv2.INTER_AREA)).max() <= 1  # PNG: lossless


def test_flip_tests_pair_the_two_flips_of_each_source():
    rows = pd.DataFrame({"configuration": "visual", "reference_id": [f"v{i}" for i in range(8)] * 2,
                         "transform": ["flip_h"] * 8 + ["flip_v"] * 8,
                         "rank": [1.0] * 8 + [np.nan] + [2.0] * 6 + [1.0],  # NaN: not retrieved, a miss
                         "sim_true": [0.9] * 8 + [0.7] * 8})
    tests = analysis.flip_tests(rows)
    r = tests.iloc[0]
    assert (r["sources"], r["only_flip_h_found"], r["only_flip_v_found"]) == (8, 7, 0)
    assert r["mcnemar_p"] == pytest.approx(2 * 0.5**7)
    assert r["sim_diff_median"] == pytest.approx(0.2) and r["wilcoxon_p"] < 0.05
    assert "only flip_h right 7, only flip_v 0" in analysis.discuss_flip_tests(tests)


def test_paired_tests_per_angle():
    rows = pd.DataFrame({"configuration": ["fusion"] * 6 + ["visual_padded"] * 6,
                         "query_id": [f"q{i}" for i in range(6)] * 2, "angle": [0, 0, 0, 90, 90, 90] * 2,
                         "rank": [1, 1, 1, np.nan, 2, 1] + [1, 1, 1, 1, 1, 1]})
    tests = analysis.paired_tests(rows, "fusion", "visual_padded", "angle")
    assert tests["angle"].tolist() == [0, 90]
    assert tests[["only_fusion", "only_visual_padded"]].values.tolist() == [[0, 0], [0, 2]]
    assert tests["r1_fusion"].tolist() == pytest.approx([100, 100 / 3]) and tests["mcnemar_p"].iloc[1] == 0.5
