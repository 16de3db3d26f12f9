"""The VSC2022 matching format and segment AP, on hand-made cases with values worked by hand."""

import numpy as np
import pytest

from storyhash_core.errors import StoryHashError
from storyhash_core.matching import (
    Match,
    pair_scores,
    read_matches,
    segment_ap,
    shared,
    union,
    write_matches,
)


def seg(q, r, qs, qe, rs, re, score=1.0):
    return Match(q, r, qs, qe, rs, re, score)


TRUTH = [seg("Q1", "R1", 0, 10, 20, 30)]


def test_one_perfect_match():
    result = segment_ap(TRUTH, [seg("Q1", "R1", 0, 10, 20, 30, 0.7)])
    assert result.ap == 1.0
    assert result.recall.tolist() == [1.0] and result.precision.tolist() == [1.0]


def test_a_half_overlap_on_both_axes():
    # 5 s of 10 found on each axis, 5 s of the 10 predicted are right: R = P = 0.5
    assert segment_ap(TRUTH, [seg("Q1", "R1", 5, 15, 25, 35, 0.7)]).ap == pytest.approx(0.25)


def test_overlap_on_one_axis_only_counts_nothing():
    # the right query time matched to the wrong reference time: the boxes do not overlap
    assert segment_ap(TRUTH, [seg("Q1", "R1", 0, 10, 40, 50, 0.7)]).ap == 0.0


def test_two_predictions_over_one_segment():
    halves = [seg("Q1", "R1", 0, 5, 20, 25, 0.9), seg("Q1", "R1", 5, 10, 25, 30, 0.8)]
    result = segment_ap(TRUTH, halves)
    assert result.recall.tolist() == [0.5, 1.0] and result.ap == pytest.approx(1.0)
    # overlapping predictions are a union: the repeated seconds are not spent twice
    overlapping = [seg("Q1", "R1", 0, 8, 20, 28, 0.9), seg("Q1", "R1", 2, 10, 22, 30, 0.8)]
    assert segment_ap(TRUTH, overlapping).ap == pytest.approx(0.8 + 0.2)


def test_tied_scores_enter_together():
    truth = [*TRUTH, seg("Q2", "R2", 0, 10, 0, 10)]
    right, wrong = seg("Q1", "R1", 0, 10, 20, 30), seg("Q2", "R9", 0, 10, 0, 10)
    # together: half the truth found with half the predicted time right, R = P = 0.5
    tied = segment_ap(truth, [right._replace(score=0.5), wrong._replace(score=0.5)])
    assert tied.ap == pytest.approx(0.25)
    # the right one first: R = 0.5 at P = 1, then no more recall
    ordered = segment_ap(truth, [right._replace(score=0.6), wrong._replace(score=0.5)])
    assert ordered.ap == pytest.approx(0.5)
    # and the order inside a tie does not matter
    swapped = segment_ap(truth, [wrong._replace(score=0.5), right._replace(score=0.5)])
    assert swapped.ap == tied.ap


def test_a_pair_without_ground_truth_costs_precision():
    # the no-truth pair first: no recall; then the perfect one at precision 10 / 20
    predictions = [seg("Q3", "R1", 0, 10, 0, 10, 0.95), seg("Q1", "R1", 0, 10, 20, 30, 0.9)]
    assert segment_ap(TRUTH, predictions).ap == pytest.approx(0.5)
    assert segment_ap(TRUTH, []).ap == 0.0
    assert segment_ap([], predictions).ap != segment_ap([], predictions).ap  # NaN


def test_intervals():
    assert union([(5, 7), (0, 2), (1, 3), (7, 8)]) == [(0, 3), (5, 8)]
    assert shared([(0, 3), (5, 8)], [(2, 6), (7, 10)]) == 3.0


def test_matches_round_trip_in_the_vsc2022_layout(tmp_path):
    matches = [seg("Q1", "R1", 0, 10, 20, 30, 0.7), seg("Q000042", "R7", 1.5, 2, 3, 3.5, 0.1)]
    write_matches(matches, tmp_path / "p.csv")
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "query_id,ref_id,query_start,query_end,ref_start,ref_end,score"
    assert read_matches(tmp_path / "p.csv") == matches  # ids stay strings: Q000042, not 42
    write_matches(matches, tmp_path / "gt.csv", scored=False)
    assert [m.score for m in read_matches(tmp_path / "gt.csv")] == [1.0, 1.0]
    assert pair_scores([*matches, matches[0]._replace(score=0.9)])[("Q1", "R1")] == 0.9
    (tmp_path / "bad.csv").write_text("query_id,ref_id,query_start\nQ1,R1,0\n")
    with pytest.raises(StoryHashError, match=r"bad.csv: missing column\(s\) query_end"):
        read_matches(tmp_path / "bad.csv")


def rasterised_ap(truth, predictions, step=0.5):
    """The same metric counted in grid cells of ``step`` seconds: an independent check."""

    def cells(m, axis):
        start, end = m.interval(axis)
        return set(range(round(start / step), round(end / step)))

    def boxes_meet(a, b):
        return all(cells(a, x) & cells(b, x) for x in ("query", "ref"))

    pairs = {(m.query_id, m.ref_id) for m in truth}
    gt_total = {
        x: sum(
            len(set().union(*(cells(g, x) for g in truth if (g.query_id, g.ref_id) == p)))
            for p in pairs
        )
        for x in ("query", "ref")
    }
    ap, recall, seen = 0.0, 0.0, []
    for score in sorted({p.score for p in predictions}, reverse=True):
        seen += [p for p in predictions if p.score == score]
        found, spent = {"query": 0, "ref": 0}, {"query": 0, "ref": 0}
        for pair in {(p.query_id, p.ref_id) for p in seen}:
            mine = [p for p in seen if (p.query_id, p.ref_id) == pair]
            counted = [
                g
                for g in truth
                if (g.query_id, g.ref_id) == pair and any(boxes_meet(g, p) for p in mine)
            ]
            for x in found:
                predicted = set().union(*(cells(p, x) for p in mine))
                found[x] += len(predicted & set().union(*(cells(g, x) for g in counted)))
                spent[x] += len(predicted)
        new_recall = (found["query"] / gt_total["query"] * found["ref"] / gt_total["ref"]) ** 0.5
        precision = (found["query"] / spent["query"] * found["ref"] / spent["ref"]) ** 0.5
        ap += precision * (new_recall - recall)
        recall = new_recall
    return ap


def test_segment_ap_agrees_with_a_rasterised_count_on_random_cases():
    rng = np.random.default_rng(0)

    def random_match(score):
        q, r = rng.integers(0, 3, size=2)
        qs, rs = rng.integers(0, 30, size=2) / 2
        qn, rn = rng.integers(1, 16, size=2) / 2
        return Match(f"Q{q}", f"R{r}", qs, qs + qn, rs, rs + rn, score)

    for _ in range(60):
        truth = [random_match(1.0) for _ in range(rng.integers(1, 5))]
        scores = rng.integers(0, 4, size=rng.integers(1, 9)) / 4  # ties on purpose
        predictions = [random_match(float(s)) for s in scores]
        expected = rasterised_ap(truth, predictions)
        assert segment_ap(truth, predictions).ap == pytest.approx(expected, abs=1e-12)
