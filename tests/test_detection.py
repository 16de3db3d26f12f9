"""Detection metrics (μAP, ROC, TPR@FPR), per-query rows from a matrix, and the paired tests."""

import numpy as np
import pytest

from storyhash_core.detection import (
    Pairs,
    detection_summary,
    micro_ap,
    micro_ap_resampled,
    roc_auc,
    split_distractors,
    tpr_at_fpr,
    truth_matrix,
)
from storyhash_core.metrics import query_rows
from storyhash_core.significance import (
    bootstrap,
    mcnemar,
    percentile_ci,
    resample_counts,
    weighted_mean,
)


def pairs(scores, positive, n_positives=None, n_negatives=None) -> Pairs:
    positive = np.array(positive, bool)
    return Pairs(
        np.array(scores, float),
        positive,
        int(positive.sum()) if n_positives is None else n_positives,
        int((~positive).sum()) if n_negatives is None else n_negatives,
    )


def test_micro_ap_by_hand():
    # ranked: + - + -  -> precision at the positives 1/1 and 2/3, recall steps of 1/2
    assert micro_ap(pairs([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert micro_ap(pairs([0.9, 0.8], [1, 1])) == 1.0
    assert micro_ap(pairs([0.9, 0.8], [0, 1])) == pytest.approx(0.5)


def test_micro_ap_counts_positives_never_scored():
    # one of two positives was not among the scored pairs: recall stops at 1/2
    assert micro_ap(pairs([0.9, 0.5], [1, 0], n_positives=2)) == pytest.approx(0.5)


def test_micro_ap_ties_enter_together_whatever_the_order():
    # a positive and a negative tie at the top: precision 1/2 at recall 1
    assert micro_ap(pairs([0.5, 0.5], [1, 0])) == pytest.approx(0.5)
    assert micro_ap(pairs([0.5, 0.5], [0, 1])) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)
    positive = rng.random(200) < 0.3
    perm = rng.permutation(200)
    assert micro_ap(pairs(scores, positive)) == micro_ap(pairs(scores[perm], positive[perm]))


def test_micro_ap_without_positives_is_nan():
    assert np.isnan(micro_ap(pairs([0.3, 0.2], [0, 0])))


def test_roc_auc_and_tpr_at_fpr_by_hand():
    p = pairs([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    # ROC: (0,.5) (.5,.5) (.5,1) (1,1) -> area 0.75
    assert roc_auc(p) == pytest.approx(0.75)
    assert tpr_at_fpr(p, 0.0) == pytest.approx(0.5)
    assert tpr_at_fpr(p, 0.5) == pytest.approx(1.0)
    perfect = pairs([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert roc_auc(perfect) == 1.0 and tpr_at_fpr(perfect, 0.001) == 1.0
    assert roc_auc(pairs([0.5, 0.5], [1, 0])) == pytest.approx(0.5)  # a tie is a coin toss


def test_roc_with_unscored_positive_closes_to_the_corner():
    # one positive scored above the negative, one never scored
    p = pairs([0.9, 0.1], [1, 0], n_positives=2)
    assert tpr_at_fpr(p, 0.01) == pytest.approx(0.5)
    # unscored pairs tie below every scored one: (0,0) (0,.5) (1,.5) then straight to (1,1)
    assert roc_auc(p) == pytest.approx(0.5)


def test_unscored_negatives_count_in_the_false_positive_rate():
    # a re-ranker scored only each row's top 2: the other non-copies are still non-copies
    truth = truth_matrix(["a", "b"], ["a", "b", "c", "d", "e"])
    full = np.array([[0.9, 0.8, 0.3, 0.2, 0.1], [0.85, 0.7, 0.6, 0.2, 0.1]])
    top2 = np.where(np.argsort(np.argsort(-full, axis=1), axis=1) < 2, full, np.nan)
    p_full, p_top2 = Pairs.from_matrix(full, truth), Pairs.from_matrix(top2, truth)
    assert p_top2.n_negatives == p_full.n_negatives == 8
    # same scores above every unscored pair: the low-FPR part of the curve is the same
    assert tpr_at_fpr(p_top2, 0.125) == tpr_at_fpr(p_full, 0.125) == pytest.approx(0.5)
    assert tpr_at_fpr(p_top2, 0.25) == tpr_at_fpr(p_full, 0.25) == 1.0
    assert roc_auc(p_full) == pytest.approx(0.875)  # (0,.5) to (.25,.5), then TPR 1
    assert roc_auc(p_top2) == pytest.approx(0.875)  # the positives were all among the scored


def test_summary_from_matrix_with_a_distractor_query():
    gallery = ["a", "b"]
    truth = truth_matrix(["a", "b", "x"], gallery)  # "x" is not in the gallery: a distractor
    assert truth.tolist() == [[True, False], [False, True], [False, False]]
    sims = np.array([[0.9, 0.2], [0.3, 0.8], [0.85, 0.1]])
    s = detection_summary(Pairs.from_matrix(sims, truth))
    # ranked: .9+ .85- .8+ .3- .2- .1- -> AP = (1 + 2/3)/2
    assert s["micro_ap"] == pytest.approx((1 + 2 / 3) / 2)
    assert s["positives"] == 2 and s["pairs"] == 6
    assert s["tpr_at_fpr_0.01"] == pytest.approx(0.5)


def test_exact_rows_rank_ties_against_the_true_match():
    truth = truth_matrix(["a", "b", "x", "a"], ["a", "b", "c"])
    sims = np.array([[0.9, 0.5, 0.1], [0.7, 0.7, 0.2], [0.4, 0.3, 0.2], [np.nan, 0.6, 0.5]])
    rows = query_rows(sims, truth, ["a", "b", "c"])
    assert rows["rank"].tolist()[:2] == [1, 2]  # the tie at 0.7 counts against "b"
    assert np.isnan(rows["rank"][2]) and rows["distractor"].tolist() == [False, False, True, False]
    assert np.isnan(rows["rank"][3]) and np.isnan(
        rows["sim_true"][3]
    )  # never scored: not retrieved
    assert rows["margin"][0] == pytest.approx(0.4)
    assert rows["best_wrong_sim"][2] == pytest.approx(0.4) and rows["best_wrong_id"][2] == "a"
    assert rows["top1_id"].tolist() == ["a", "a", "a", "b"] and rows["top1_sim"][
        3
    ] == pytest.approx(0.6)


def test_split_distractors_is_seeded_and_order_independent():
    ids = [f"v{i}" for i in range(20)]
    held = split_distractors(ids, 0.25, seed=3)
    assert len(held) == 5 and held == split_distractors(ids[::-1], 0.25, seed=3)
    assert held != split_distractors(ids, 0.25, seed=4)
    assert len(split_distractors(["a", "b"], 0.75, seed=0)) == 1  # never every source


def test_mcnemar_counts_only_disagreements():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    b = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    out = mcnemar(a, b)
    assert out["only_a"] == 6 and out["only_b"] == 0
    assert out["p_value"] == pytest.approx(2 * 0.5**6)
    assert mcnemar(a, a)["p_value"] == 1.0


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    hits = np.r_[np.ones(80), np.zeros(20)]
    stats = {"r1": lambda counts: weighted_mean(hits, counts)}
    s1, s2 = bootstrap(stats, 100, 300, seed=1), bootstrap(stats, 100, 300, seed=1)
    assert s1.equals(s2) and not s1.equals(bootstrap(stats, 100, 300, seed=2))
    low, high = percentile_ci(s1["r1"])
    assert low < 0.8 < high and high - low < 0.25
    counts = resample_counts(100, 300, seed=1)
    assert counts.shape == (300, 100) and (counts.sum(axis=1) == 100).all()


def test_resampled_micro_ap_equals_micro_ap_of_the_resampled_queries():
    rng = np.random.default_rng(5)
    sims = np.round(rng.random((30, 8)), 1)  # many ties, within and across queries
    sims[rng.random(sims.shape) < 0.2] = np.nan  # unscored pairs (a re-ranker's)
    truth = truth_matrix(
        [f"r{i % 10}" for i in range(30)], [f"r{i}" for i in range(8)]
    )  # r8, r9: distractors
    counts = resample_counts(30, 40, seed=0)
    fast = micro_ap_resampled(sims, truth, counts)
    for c, value in zip(counts, fast, strict=True):
        idx = np.repeat(np.arange(30), c)
        assert value == pytest.approx(micro_ap(Pairs.from_matrix(sims[idx], truth[idx])), abs=1e-12)
    no_positive = micro_ap_resampled(sims, np.zeros_like(truth), counts[:2])
    assert np.isnan(no_positive).all()


def test_micro_ap_and_auc_match_scikit_learn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(500), 2)  # many ties
    positive = rng.random(500) < 0.2
    p = pairs(scores, positive)
    assert micro_ap(p) == pytest.approx(metrics.average_precision_score(positive, scores))
    assert roc_auc(p) == pytest.approx(metrics.roc_auc_score(positive, scores))
