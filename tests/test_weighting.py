"""Fusion weightings, source folds, cross-validated selection and calibration."""

import numpy as np
import pytest

from storyhash_core.calibration import (
    calibration_scores,
    cross_fitted,
    d_prime,
    fit_predict,
    reliability,
)
from storyhash_core.detection import Pairs, micro_ap, tpr_at_fpr, truth_matrix
from storyhash_core.fusion import fuse
from storyhash_core.motion import SCALERS, MinMax, Ranks, ZScore
from storyhash_core.weighting import (
    BlockProducts,
    Similarities,
    SortedPairs,
    Weighting,
    choose,
    cross_validate,
    grid,
    held_out,
    of_kinds,
    source_folds,
)


def blocks(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    visual = rng.normal(size=(n, 6))
    return {
        "visual": visual / np.linalg.norm(visual, axis=1, keepdims=True),
        "action_raw": rng.random((n, 15)) * 10,
        "graph": rng.dirichlet(np.ones(8), n),
    }


def test_scalers_by_hand():
    refs = np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    x = np.array([[2.0, 5.0], [8.0, 1.0]])
    assert MinMax.fit(refs).apply(x).tolist() == [[0.5, 0.0], [1.0, 0.0]]
    z = ZScore.fit(refs).apply(x)
    assert z[:, 0] == pytest.approx([0.0, 6 / np.sqrt(8 / 3)]) and z[:, 1].tolist() == [0, 0]
    # share below, ties half: 2 is above 0 and ties 2 -> (1 + 2) / 6; 8 is above all three
    assert Ranks.fit(refs).apply(x).tolist() == [[0.5, 0.5], [1.0, 0.0]]
    assert set(SCALERS) == {"minmax", "zscore", "rank"}


def test_early_weighting_is_the_papers_fused_vector():
    refs, queries = blocks(9, 0), blocks(5, 1)
    scaler = MinMax.fit(refs["action_raw"])
    ref_fused = refs | {"action": scaler.apply(refs["action_raw"])}
    query_fused = queries | {"action": scaler.apply(queries["action_raw"])}
    sims = Similarities(queries, refs, ["minmax"], rerank_k=3)
    paper = fuse(query_fused, "fusion") @ fuse(ref_fused, "fusion").T
    assert sims(Weighting("early", "minmax", 1.0, 1.0)) == pytest.approx(paper, abs=1e-6)
    weighted = {"visual": 1.0, "action": 0.3, "graph": 0.05}
    expected = fuse(query_fused, "weighted", weighted) @ fuse(ref_fused, "weighted", weighted).T
    assert sims(Weighting("early", "minmax", 0.3, 0.05)) == pytest.approx(expected, abs=1e-6)
    visual = queries["visual"] @ refs["visual"].T
    assert sims(Weighting("early", "minmax", 0.0, 0.0)) == pytest.approx(visual)
    assert sims.visual == pytest.approx(visual)


def test_late_and_rerank_by_hand():
    queries = {"visual": np.array([[1.0, 0.0]]), "action": np.array([[1.0, 1.0]])}
    gallery = {
        "visual": np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]),
        "action": np.array([[1.0, 1.0], [2.0, 2.0], [1.0, 0.0]]),
    }
    late = BlockProducts(queries, gallery).late(0.5, 0.0)
    assert late[0] == pytest.approx(np.array([1.5, 0.5, 0.6 + 0.5 / np.sqrt(2)]) / 1.5)
    refs, probes = blocks(6, 2), blocks(4, 3)
    sims = Similarities(probes, refs, ["zscore"], rerank_k=2)
    rerank = sims(Weighting("rerank", "zscore", 0.2, 0.1))
    assert (~np.isnan(rerank)).sum(axis=1).tolist() == [2, 2, 2, 2]
    top2 = np.argsort(-sims.visual, axis=1)[:, :2]
    assert all(
        set(np.flatnonzero(~np.isnan(r))) == set(t) for r, t in zip(rerank, top2, strict=True)
    )
    late = sims(Weighting("late", "zscore", 0.2, 0.1))
    assert rerank[~np.isnan(rerank)] == pytest.approx(late[~np.isnan(rerank)])


def test_folds_are_disjoint_by_source_and_stratified():
    sources = [f"s{i:02d}" for i in range(23)]
    held = sources[::4]  # 6 distractor sources
    folds = source_folds(sources, held, 5, seed=7)
    assert set(folds) == set(sources) and set(folds.values()) == set(range(5))
    assert source_folds(list(reversed(sources)), held, 5, seed=7) == folds  # order-free
    per_fold = [[s for s in sources if folds[s] == f] for f in range(5)]
    assert sorted(map(len, per_fold)) == [4, 4, 5, 5, 5]
    assert all(1 <= len(set(p) & set(held)) <= 2 for p in per_fold)
    assert source_folds(sources[:3], [], 5, seed=0).keys() == set(sources[:3])
    assert sorted(source_folds(sources[:3], [], 5, seed=0).values()) == [0, 1, 2]


def test_sorted_pairs_match_the_detection_measures_on_every_subset():
    rng = np.random.default_rng(4)
    sims = rng.integers(0, 6, (30, 7)).astype(float) / 5  # many ties
    sims[rng.random(sims.shape) < 0.1] = np.nan
    truth = truth_matrix([f"g{i % 9}" for i in range(30)], [f"g{j}" for j in range(7)])
    pairs = SortedPairs(sims, truth)
    for rows in (np.ones(30, bool), np.arange(30) % 3 == 0, np.arange(30) >= 11):
        sub = Pairs.from_matrix(sims[rows], truth[rows])
        found = pairs.measures(rows)
        assert found["micro_ap"] == pytest.approx(micro_ap(sub))
        assert found["tpr_at_fpr_0.01"] == pytest.approx(tpr_at_fpr(sub, 0.01))
        filled = np.where(np.isnan(sims[rows]), -np.inf, sims[rows])
        true = np.where(truth[rows], filled, -np.inf).max(axis=1)
        wrong = np.where(truth[rows], -np.inf, filled).max(axis=1)
        matched = truth[rows].any(axis=1)
        expected = 100 * (np.isfinite(true) & (true > wrong))[matched].mean()
        assert found["recall_at_1"] == pytest.approx(expected)


def test_selection_never_sees_its_test_fold():
    # candidate 1 is perfect on fold 0's queries only and wrong elsewhere; candidate 0 is
    # right everywhere but by a small margin on fold 0. Fold 0's choice, made on folds 1-2,
    # must be candidate 0; folds 1 and 2 choose candidate 0 too (candidate 1 fails there).
    truth = np.eye(6, dtype=bool)[[0, 1, 2, 3, 4, 5, 0, 1, 2]]
    fold = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    good = np.where(truth, 0.6, 0.5)
    leaky = np.where(truth, 0.9, 0.1)
    leaky[fold != 0] = np.where(truth[fold != 0], 0.1, 0.9)
    candidates = [Weighting("early", "minmax", 0.0, 0.0), Weighting("late", "minmax", 1.0, 0.0)]
    matrices = {candidates[0]: good, candidates[1]: leaky}
    cv = cross_validate(candidates, matrices.__getitem__, truth, fold, "micro_ap", {"any": [0, 1]})
    assert cv.chosen["candidate"].tolist() == [0, 0, 0]
    assert held_out(cv.chosen, "any", candidates, matrices.__getitem__, fold) == pytest.approx(good)
    # the per-kind selection of "late" has one candidate: held out it is the leaky matrix
    cv = cross_validate(
        candidates,
        matrices.__getitem__,
        truth,
        fold,
        "micro_ap",
        {"l": of_kinds(candidates, ["late"])},
    )
    assert cv.chosen["candidate"].tolist() == [1, 1, 1]
    assert cv.chosen["recall_at_1"].tolist() == [100.0, 0.0, 0.0]
    assert cv.grid["recall_at_1"].tolist() == [100.0, pytest.approx(100 / 3)]


def test_choice_prefers_the_lighter_weighting_on_ties():
    table = grid(["early"], ["minmax"], [0.0, 0.5], [0.0, 1.0])
    assert [w.name for w in table][:2] == ["early minmax w_a=0 w_g=0", "early minmax w_a=0 w_g=1"]
    import pandas as pd

    train = pd.DataFrame({"w_a": [0.5, 0.0, 1.0], "w_g": [0.0, 0.2, 0.0], "micro_ap": [0.8] * 3})
    assert choose(train, "micro_ap") == 1


def test_calibration_by_hand():
    assert d_prime(Pairs(np.array([3.0, 5.0, 0.0, 2.0]), np.array([1, 1, 0, 0], bool), 2, 2)) == (
        pytest.approx(3 / np.sqrt(2))
    )
    assert fit_predict("raw", [0, 1], [0, 1], [-0.5, 0.3, 1.7]).tolist() == [0.0, 0.3, 1.0]
    iso = fit_predict("isotonic", [0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1], [0.1, 0.25, 0.9])
    assert iso.tolist() == [0.0, 0.5, 1.0]
    platt = fit_predict("platt", [0.1, 0.2, 0.8, 0.9, 0.5, 0.45], [0, 0, 1, 1, 1, 0], [0.0, 1.0])
    assert platt[0] < 0.5 < platt[1]
    table = reliability(np.array([0.05, 0.15, 0.12, 0.95]), np.array([0, 0, 1, 1]))
    assert table["count"].tolist() == [1, 2, 1] and table["observed"].tolist() == [0, 0.5, 1]
    scores = calibration_scores(np.array([0.05, 0.15, 0.12, 0.95]), np.array([0, 0, 1, 1]))
    assert scores["brier"] == pytest.approx((0.05**2 + 0.15**2 + 0.88**2 + 0.05**2) / 4)
    assert scores["ece"] == pytest.approx((0.05 + abs(0.135 - 0.5) * 2 + 0.05) / 4)


def test_cross_fitted_calibration_uses_other_folds_only():
    # fold 1's scores are all high but wrong: fitted on fold 0 (high = right) it predicts 1
    sims = np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.1], [0.1, 0.97]])
    truth = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], bool)
    probability, outcome = cross_fitted(sims, truth, np.array([0, 0, 1, 1]), "isotonic")
    assert outcome.tolist() == [True, True, False, False]
    assert probability[2:].tolist() == [1.0, 1.0]
