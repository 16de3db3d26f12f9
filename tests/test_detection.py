"""Detection metrics (μAP, ROC, TPR@FPR), per-query rows from a matrix, and the paired tests."""

import numpy as np
import pytest

from storyhash_core.detection import (
    Pairs,
    detection_summary,
    micro_ap,
    micro_ap_resampled,
    rates_at,
    roc_auc,
    split_distractors,
    threshold_at_fpr,
    tpr_at_fpr,
    truth_matrix,
)
from storyhash_core.metrics import query_rows
from storyhash_core.significance import (
    Clusters,
    bootstrap,
    percentile_ci,
    resample_counts,
    resampled_mean,
    sign_flip_test,
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


def test_sign_flip_test_is_exact_mcnemar_with_one_query_per_source():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    b = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    out = sign_flip_test(a, b, Clusters.singletons(10))
    assert out["only_a"] == 6 and out["only_b"] == 0 and out["clusters_disagreeing"] == 6
    assert out["p_value"] == pytest.approx(2 * 0.5**6)
    assert sign_flip_test(a, a, Clusters.singletons(10))["p_value"] == 1.0
    rng = np.random.default_rng(0)
    a, b = rng.random(40) < 0.7, rng.random(40) < 0.5
    binomtest = pytest.importorskip("scipy.stats").binomtest
    n_a, n_b = int((a & ~b).sum()), int((~a & b).sum())
    expected = binomtest(min(n_a, n_b), n_a + n_b, 0.5).pvalue
    assert sign_flip_test(a, b, Clusters.singletons(40))["p_value"] == pytest.approx(expected)


def test_sign_flip_test_counts_sources_not_queries():
    """7 queries only A got right, all from one source: one coin, not seven."""
    a = np.r_[np.ones(7, bool), np.zeros(3, bool)]
    b = np.zeros(10, bool)
    sources = Clusters.of(["s0"] * 7 + ["s1", "s2", "s3"])
    assert sign_flip_test(a, b, Clusters.singletons(10))["p_value"] == pytest.approx(2 * 0.5**7)
    assert sign_flip_test(a, b, sources)["p_value"] == 1.0  # sign of one source: p = 2 × 1/2
    # two sources, differences 3 and -1: sums ±2, ±4 each with probability 1/4
    c = np.array([1, 1, 1, 0, 0], bool)
    d = np.array([0, 0, 0, 1, 0], bool)
    out = sign_flip_test(c, d, Clusters.of(["x", "x", "x", "y", "y"]))
    assert out["p_value"] == pytest.approx(1.0) and out["clusters_disagreeing"] == 2
    one = sign_flip_test(np.array([1, 0], bool), np.array([0, 1], bool), Clusters.of(["s", "s"]))
    assert one["clusters_disagreeing"] == 1 and one["p_value"] == 1.0  # nets to zero
    with pytest.raises(ValueError, match="missing"):
        Clusters.of(["a", None])


def _clustered_hits(rng, sources=30, per_source=14, p_a=0.8, p_b=0.8, spread=2.0, duel=0.0):
    """Hits of two methods whose success depends on a shared per-source difficulty and, with
    ``duel``, on a per-source edge of one method over the other (zero on average)."""
    difficulty = rng.normal(0, spread, sources)
    edge = rng.normal(0, duel, sources)
    logit_a = (np.log(p_a / (1 - p_a)) + difficulty + edge).repeat(per_source)
    logit_b = (np.log(p_b / (1 - p_b)) + difficulty - edge).repeat(per_source)
    a = rng.random(len(logit_a)) < 1 / (1 + np.exp(-logit_a))
    b = rng.random(len(logit_b)) < 1 / (1 + np.exp(-logit_b))
    return a, b, Clusters.of(np.arange(sources).repeat(per_source))


def test_source_bootstrap_is_wider_than_the_query_bootstrap_on_clustered_data():
    a, _, sources = _clustered_hits(np.random.default_rng(1))
    widths = {}
    for name, clusters in (("query", Clusters.singletons(len(a))), ("source", sources)):
        stats = {"r1": lambda c, k=clusters: resampled_mean(a, c, k)}
        low, high = percentile_ci(bootstrap(stats, clusters, 4000, seed=0)["r1"])
        widths[name] = high - low
    assert widths["source"] > 1.5 * widths["query"]


def test_clustered_paired_test_keeps_its_level_when_there_is_no_difference():
    """No difference on average, but each source favours one method or the other: ~5 %
    rejections at α = 0.05, where the query-level McNemar test rejects far more often."""
    rng = np.random.default_rng(2)
    clustered, naive = [], []
    for _ in range(400):
        a, b, sources = _clustered_hits(rng, p_a=0.7, p_b=0.7, duel=1.0)
        clustered.append(sign_flip_test(a, b, sources)["p_value"] < 0.05)
        naive.append(sign_flip_test(a, b, Clusters.singletons(len(a)))["p_value"] < 0.05)
    assert 0.01 <= np.mean(clustered) <= 0.08
    assert np.mean(naive) > 0.2


def test_clustered_paired_test_finds_a_real_difference():
    rng = np.random.default_rng(3)
    a, b, sources = _clustered_hits(rng, p_a=0.95, p_b=0.6, spread=0.5)
    assert sign_flip_test(a, b, sources)["p_value"] < 1e-3


def test_stratified_resamples_keep_every_stratum_size():
    clusters = Clusters.of(list("aabbccdde"), [0, 0, 0, 0, 0, 0, 1, 1, 1])
    assert clusters.size == 5 and list(clusters.strata) == [0, 0, 0, 1, 1]
    counts = resample_counts(clusters, 500, seed=0)
    assert (counts[:, :3].sum(axis=1) == 3).all() and (counts[:, 3:].sum(axis=1) == 2).all()
    with pytest.raises(ValueError, match="two strata"):
        Clusters.of(["a", "a"], [0, 1])


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    hits = np.r_[np.ones(80), np.zeros(20)]
    clusters = Clusters.singletons(100)
    stats = {"r1": lambda counts: resampled_mean(hits, counts, clusters)}
    s1, s2 = bootstrap(stats, clusters, 300, seed=1), bootstrap(stats, clusters, 300, seed=1)
    assert s1.equals(s2) and not s1.equals(bootstrap(stats, clusters, 300, seed=2))
    low, high = percentile_ci(s1["r1"])
    assert low < 0.8 < high and high - low < 0.25
    counts = resample_counts(clusters, 300, seed=1)
    assert counts.shape == (300, 100) and (counts.sum(axis=1) == 100).all()


def test_resampled_micro_ap_equals_micro_ap_of_the_resampled_clusters():
    rng = np.random.default_rng(5)
    sims = np.round(rng.random((30, 8)), 1)  # many ties, within and across queries
    sims[rng.random(sims.shape) < 0.2] = np.nan  # unscored pairs (a re-ranker's)
    sources = [f"r{i % 10}" for i in range(30)]  # r8, r9: distractors
    truth = truth_matrix(sources, [f"r{i}" for i in range(8)])
    for clusters in (Clusters.singletons(30), Clusters.of(sources)):
        counts = resample_counts(clusters, 40, seed=0)
        fast = micro_ap_resampled(sims, truth, counts, clusters)
        for c, value in zip(counts, fast, strict=True):
            idx = np.repeat(np.arange(30), c[clusters.codes])
            expected = micro_ap(Pairs.from_matrix(sims[idx], truth[idx]))
            assert value == pytest.approx(expected, abs=1e-12)
        no_positive = micro_ap_resampled(sims, np.zeros_like(truth), counts[:2], clusters)
        assert np.isnan(no_positive).all()


def test_threshold_at_fpr_is_the_operating_point_of_tpr_at_fpr():
    p = pairs([0.9, 0.8, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 1, 0, 0])
    assert threshold_at_fpr(p, 0.0) == 0.9  # 0.8 lets a negative in
    assert threshold_at_fpr(p, 1 / 3) == 0.7
    assert rates_at(p, 0.7) == (1.0, 1 / 3) and tpr_at_fpr(p, 1 / 3) == 1.0
    assert threshold_at_fpr(pairs([0.9], [0]), 0.0) == float("inf")
    nothing = Pairs.from_matrix(np.full((2, 2), np.nan), np.eye(2, dtype=bool))
    assert threshold_at_fpr(nothing, 0.01) == float("inf")
    assert np.isnan(rates_at(pairs([0.5], [0]), 0.1)[0])  # no positive: no TPR


def test_micro_ap_and_auc_match_scikit_learn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(500), 2)  # many ties
    positive = rng.random(500) < 0.2
    p = pairs(scores, positive)
    assert micro_ap(p) == pytest.approx(metrics.average_precision_score(positive, scores))
    assert roc_auc(p) == pytest.approx(metrics.roc_auc_score(positive, scores))


def test_top_hits_make_one_decision_per_query():
    from storyhash_core.detection import threshold_at_fpr, top_hits, tpr_at_fpr

    sims = np.array(
        [
            [0.9, 0.2, 0.1],  # a copy of reference 0, found first
            [0.3, 0.8, 0.7],  # a copy of reference 2, but reference 1 comes first: a false alarm
            [0.6, 0.5, 0.4],  # no match in the gallery
            [0.1, 0.2, 0.95],  # a copy of reference 2, found first
        ]
    )
    truth = np.zeros_like(sims, dtype=bool)
    truth[0, 0] = truth[1, 2] = truth[3, 2] = True
    hits = top_hits(sims, truth)
    assert hits.scores.tolist() == [0.9, 0.8, 0.6, 0.95]
    assert hits.positive.tolist() == [True, False, False, True]
    assert (hits.n_positives, hits.n_negatives) == (3, 2)
    # no false alarm: call only what beats 0.8; two of the three copies are found
    assert threshold_at_fpr(hits, 0.0) == 0.9 and tpr_at_fpr(hits, 0.0) == 2 / 3
    assert threshold_at_fpr(hits, 0.5) == 0.8  # one of the two negatives called a copy
