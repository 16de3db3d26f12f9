import faiss
import numpy as np
import pandas as pd
import pytest

from storyhash_core.detection import truth_matrix
from storyhash_core.errors import StoryHashError
from storyhash_core.features import l2_normalize, pool
from storyhash_core.fusion import MissingBlockError, fuse
from storyhash_core.index import (
    IndexSpec,
    add_shards,
    build_index,
    load_index,
    save_index,
    search,
    train_ivfpq,
)
from storyhash_core.metrics import TABLE1_COLUMNS, query_rows, retrieval_summary, summarize

RNG = np.random.default_rng(0)


def blocks(n=6, dv=512):
    return {
        "visual": l2_normalize(RNG.normal(size=(n, dv))),
        "action": RNG.uniform(size=(n, 15)),
        "graph": RNG.dirichlet(np.ones(8), size=n),
    }


def test_l2_normalize_keeps_zero_rows_zero():
    x = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize(
    "method, expected", [("median", [2.0, 20.0]), ("mean", [3.0, 20.0]), ("max", [6.0, 30.0])]
)
def test_pooling(method, expected):
    frames = np.array([[1.0, 10.0], [2.0, 20.0], [6.0, 30.0]])
    np.testing.assert_allclose(pool(frames, method), l2_normalize(np.array(expected)))


def test_fused_widths_and_norms():
    b = blocks()
    widths = {
        c: fuse(b, c).shape[1]
        for c in [
            "fusion",
            "visual_padded",
            "action_padded",
            "visual",
            "action",
            "graph",
            "visual_action",
        ]
    }
    assert widths == {
        "fusion": 535,
        "visual_padded": 535,
        "action_padded": 535,
        "visual": 512,
        "action": 15,
        "graph": 8,
        "visual_action": 527,
    }
    np.testing.assert_allclose(np.linalg.norm(fuse(b, "fusion"), axis=1), 1.0, rtol=1e-6)


def test_zero_padding_is_exactly_the_block_alone():
    b = blocks()
    padded, alone = fuse(b, "visual_padded"), fuse(b, "visual")
    np.testing.assert_allclose(padded @ padded.T, alone @ alone.T, atol=1e-6)
    assert not padded[:, 512:].any()
    act = fuse(b, "action_padded")
    assert not act[:, :512].any() and not act[:, 527:].any()
    np.testing.assert_allclose(act @ act.T, fuse(b, "action") @ fuse(b, "action").T, atol=1e-6)


def test_padding_needs_no_motion_but_fusion_does():
    visual_only = {"visual": blocks()["visual"]}
    assert fuse(visual_only, "visual_padded").shape[1] == 535
    assert issubclass(MissingBlockError, StoryHashError)
    with pytest.raises(MissingBlockError, match="needs the action, graph block"):
        fuse(visual_only, "fusion")


def test_weighted_blocks():
    b = blocks()
    w = fuse(b, "weighted", {"visual": 1.0, "action": 0.0, "graph": 0.0})
    np.testing.assert_allclose(w, fuse(b, "visual_padded"), atol=1e-7)
    with pytest.raises(ValueError, match="unknown configuration"):
        fuse(b, "everything")


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_index_round_trip(tmp_path, kind):
    gallery = l2_normalize(RNG.normal(size=(50, 32)))
    spec = IndexSpec(kind=kind, ef_search=40)
    index = build_index(gallery, spec)
    before = search(index, gallery[:10], k=5)
    assert (before.rows[:, 0] == np.arange(10)).all()
    np.testing.assert_allclose(before.scores[:, 0], 1.0, rtol=1e-5)
    assert len(before.latency_ms) == 10 and (before.latency_ms > 0).all()
    ids = [f"v{i}" for i in range(50)]
    save_index(index, ids, {"index": spec.model_dump()}, tmp_path / "idx")
    save_index(index, ids, {"index": spec.model_dump()}, tmp_path / "idx")  # replacing works
    loaded, loaded_ids, meta = load_index(tmp_path / "idx")
    after = search(loaded, gallery[:10], k=5)
    assert loaded_ids == ids and meta["index"]["kind"] == kind
    np.testing.assert_array_equal(before.rows, after.rows)
    if kind == "hnsw":
        assert loaded.hnsw.efSearch == 40


def known_case():
    """3 references on the unit circle, 3 queries with hand-computable answers."""
    angle = np.deg2rad([0, 90, 180])
    gallery = np.stack([np.cos(angle), np.sin(angle)], 1)
    q_angle = np.deg2rad([10, 50, 170])  # near r0; between r0 and r1 (closer to r1); near r2
    queries = np.stack([np.cos(q_angle), np.sin(q_angle)], 1)
    truth = ["r0", "r0", "r2"]
    index = build_index(gallery, IndexSpec(kind="flat"))
    result = search(index, queries, k=3)
    ids = ["r0", "r1", "r2"]
    return query_rows(queries @ gallery.T, truth_matrix(truth, ids), ids, result.rows)


def test_query_rows_on_a_known_case():
    rows = known_case()
    assert rows["rank"].tolist() == [1.0, 2.0, 1.0]
    assert rows["top1_id"].tolist() == ["r0", "r1", "r2"]
    np.testing.assert_allclose(rows["sim_true"], np.cos(np.deg2rad([10, 50, 10])), atol=1e-6)
    assert rows["best_wrong_id"].tolist() == ["r1", "r1", "r1"]
    np.testing.assert_allclose(
        rows["margin"],
        np.cos(np.deg2rad([10, 50, 10])) - np.cos(np.deg2rad([80, 40, 80])),
        atol=1e-6,
    )


def test_summaries():
    rows = known_case().assign(configuration="c", transform=["a", "a", "b"])
    table = summarize(rows, "configuration", ["b", "a"], TABLE1_COLUMNS)
    s = table.set_index("transform")
    assert s.loc["a", "recall_at_1"] == 50.0 and s.loc["a", "recall_at_3"] == 100.0
    assert s.loc["b", "queries"] == 1
    assert table.columns.tolist() == ["configuration", "transform", *TABLE1_COLUMNS]
    assert table["transform"].tolist() == ["b", "a", "overall"]
    assert table.iloc[-1]["recall_at_1"] == pytest.approx(200 / 3)


def test_rank_is_nan_when_missing_from_the_list():
    ids = ["a", "b", "c"]
    rows = query_rows(np.eye(3)[:1], truth_matrix(["c"], ids), ids, np.array([[0, 1]]))
    assert np.isnan(rows["rank"][0]) and rows["top1_id"][0] == "a"
    assert retrieval_summary(rows)["recall_at_3"] == 0.0
    exact = query_rows(
        np.eye(3)[:1], truth_matrix(["c"], ids), ids
    )  # without the index: the exact rank
    assert (
        exact["rank"][0] == 3.0
    )  # c ties with b at 0, and a tie counts against the true reference
    assert isinstance(rows, pd.DataFrame)


def test_ivfpq_finds_noisy_copies_from_shards_and_round_trips(tmp_path):
    """50-D vectors (padded to 64 for 16 sub-quantizers) in 40 clusters; queries: noisy copies."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 50))
    gallery = l2_normalize(centres[rng.integers(0, 40, 2000)] + 0.5 * rng.normal(size=(2000, 50)))
    queries = l2_normalize(gallery[:200] + 0.05 * rng.normal(size=(200, 50)))
    spec = IndexSpec(kind="ivfpq", nlist=32, pq_m=16, nprobe=8, train_size=1500)
    trained = train_ivfpq(gallery[rng.choice(2000, 1500, replace=False)], spec)
    whole, sharded = (
        add_shards(trained, [gallery]),
        add_shards(trained, [gallery[:700], gallery[700:]]),
    )
    assert whole.ntotal == sharded.ntotal == 2000 and trained.ntotal == 0
    a, b = search(whole, queries, k=5), search(sharded, queries, k=5)
    np.testing.assert_array_equal(a.rows, b.rows)  # shard by shard = all at once
    assert (a.rows[:, 0] == np.arange(200)).mean() >= 0.9  # recall@1 of the true copy
    exact = (queries * gallery[a.rows[:, 0]]).sum(axis=1)
    assert np.abs(a.scores[:, 0] - exact).mean() < 0.03  # PQ scores approximate inner products
    save_index(
        whole, [f"v{i}" for i in range(2000)], {"index": spec.model_dump()}, tmp_path / "idx"
    )
    loaded, _, _ = load_index(tmp_path / "idx")
    assert faiss.extract_index_ivf(loaded).nprobe == 8
    np.testing.assert_array_equal(search(loaded, queries, k=5).rows, a.rows)
    small = build_index(gallery[:100], spec)  # fewer vectors than lists or codes: both shrink
    assert small.ntotal == 100 and faiss.extract_index_ivf(small).nlist == 2


def test_ivfpq_rerank_restores_exact_top1_from_vectors_on_disk(tmp_path):
    """4-byte codes cannot tell near neighbours apart; re-scoring 50 candidates exactly can."""
    rng = np.random.default_rng(4)
    gallery = l2_normalize(rng.normal(size=(3000, 48)))
    queries = l2_normalize(gallery[:300] + 0.1 * rng.normal(size=(300, 48)))
    exact = (queries @ gallery.T).argmax(axis=1)
    coarse = IndexSpec(kind="ivfpq", nlist=16, pq_m=4, nprobe=16, train_size=3000)
    plain = search(build_index(gallery, coarse), queries, k=3)
    reranked = build_index(gallery, coarse.model_copy(update={"rerank": 50}))
    fine = search(reranked, queries, k=3)
    assert (plain.rows[:, 0] == exact).mean() < 0.8 <= (fine.rows[:, 0] == exact).mean() - 0.15
    np.testing.assert_allclose(
        fine.scores, np.take_along_axis(queries @ gallery.T, fine.rows, axis=1), rtol=1e-5
    )
    assert (np.diff(fine.scores, axis=1) <= 0).all()  # best first
    save_index(
        reranked,
        [f"v{i}" for i in range(3000)],
        {"index": coarse.model_dump() | {"rerank": 50}},
        tmp_path / "i",
    )
    loaded, _, _ = load_index(tmp_path / "i")
    assert isinstance(loaded.vectors, np.memmap)  # the vectors stay on disk
    with pytest.raises(ValueError, match="ivfpq only"):
        IndexSpec(kind="hnsw", rerank=10)
    np.testing.assert_array_equal(search(loaded, queries, k=3).rows, fine.rows)


def test_hnsw_build_is_repeatable_and_leaves_the_thread_count():
    """The build runs on one OpenMP thread (FAISS documents parallel HNSW insertion as
    order-dependent; not observed on this 2-core machine) and restores the thread count."""
    import faiss

    vectors = np.random.default_rng(0).normal(size=(3000, 32)).astype(np.float32)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(4)
    try:
        graphs = {
            faiss.serialize_index(build_index(vectors, IndexSpec(kind="hnsw"))).tobytes()
            for _ in range(3)
        }
        assert len(graphs) == 1 and faiss.omp_get_max_threads() == 4
    finally:
        faiss.omp_set_num_threads(before)
