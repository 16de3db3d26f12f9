"""Frame variants (flip / rotation TTA), the PDQ baseline, Chamfer similarity, re-ranking, and
comparing methods on the same queries."""

import numpy as np
import pandas as pd
import pytest

from storyhash_core.augment import apply_variant, check_variant
from storyhash_core.backbones import BackboneSpec, load_backbone
from storyhash_core.cache import ArtifactCache, content_digest, spec_key
from storyhash_core.comparison import (
    bootstrap_methods,
    compare,
    evaluate,
    overall_with_ci,
    source_clusters,
    summarize,
)
from storyhash_core.detection import truth_matrix
from storyhash_core.features import FEATURE_VERSION, feature_path, l2_normalize, load_features
from storyhash_core.pipeline import VideoJob, process_video
from storyhash_core.similarity import chamfer_matrix, max_over_variants, rerank
from storyhash_core.video import sample_frames

from .conftest import index_frames, write_video


def frames(n=2, h=4, w=6):
    return np.arange(n * h * w * 3, dtype=np.uint8).reshape(n, h, w, 3)


def test_flip_variants_and_exact_right_angles():
    f = frames()
    np.testing.assert_array_equal(apply_variant(f, "hflip")[0], f[0, :, ::-1])
    np.testing.assert_array_equal(apply_variant(f, "vflip")[0], f[0, ::-1])
    np.testing.assert_array_equal(apply_variant(f, "hvflip")[0], f[0, ::-1, ::-1])
    np.testing.assert_array_equal(apply_variant(f, "rot180")[1], f[1, ::-1, ::-1])
    assert apply_variant(f, "rot90").shape == (2, 6, 4, 3)
    np.testing.assert_array_equal(apply_variant(f, "rot90")[0], np.rot90(f[0]))  # counter-clockwise
    np.testing.assert_array_equal(
        apply_variant(f, "rot90")[0][0], f[0][:, -1]
    )  # top row = old right column
    np.testing.assert_array_equal(apply_variant(apply_variant(f, "rot90"), "rot-90"), f)


def test_small_rotation_keeps_size_turns_counter_clockwise_and_blackens_corners():
    f = np.full((1, 41, 61, 3), 200, np.uint8)
    r = apply_variant(f, "rot30")
    assert r.shape == f.shape and r[0, 0, 0].max() == 0 and r[0, 20, 30].min() == 200
    dot = np.zeros((1, 41, 61, 3), np.uint8)
    dot[0, 20, 50] = 255  # right of the centre
    y, x = np.unravel_index(apply_variant(dot, "rot90")[0, ..., 0].argmax(), (61, 41))
    assert (y, x) < (30, 41) and y < 20  # counter-clockwise: the dot moves up, above the centre


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown frame variant 'flip'"):
        check_variant("flip")


def test_variant_features_embed_the_variant_frames_and_are_cached_apart(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(20, 48, 64), fps=10)
    root, dct = str(tmp_path / "c"), BackboneSpec(name="dct")
    plain, flipped = process_video(
        VideoJob(video, 24.0, 2.0, ((dct, ""), (dct, "hflip"))), root
    ).features
    assert plain != flipped
    expected = l2_normalize(
        load_backbone(dct).embed(sample_frames(video, 2.0).frames[:, :, ::-1].copy())
    )
    np.testing.assert_allclose(load_features(flipped).frames, expected, atol=1e-6)
    assert not np.allclose(load_features(plain).frames, expected)


def test_the_plain_feature_key_has_no_variant_field(tmp_path):
    video = write_video(tmp_path / "v.mp4", index_frames(10, 32, 32), fps=10)
    dct = BackboneSpec(name="dct")
    key = spec_key(
        source=content_digest(video),
        weights=load_backbone(dct).weights_id,
        fps=2.0,
        folder_fps=None,
        version=FEATURE_VERSION,
    )
    cache = ArtifactCache(tmp_path)
    assert feature_path(cache.digest(video), None, dct, 2.0, "", cache) == cache.path(
        "features", key, ".npz"
    )


def test_pdq_inner_product_is_one_minus_twice_the_normalised_hamming_distance():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    pdq = load_backbone(BackboneSpec(name="pdq"))
    e = pdq.embed(img)
    assert e.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-6)
    bits = e > 0
    hamming = (bits[0] != bits[1]).sum()
    assert e[0] @ e[1] == pytest.approx(1 - 2 * hamming / 256, abs=1e-6)
    mirrored = pdq.embed(img[:, :, ::-1].copy())  # PDQ is not flip invariant
    assert (mirrored[0] > 0).tolist() != bits[0].tolist()


def test_chamfer_matches_its_definition_and_tolerates_reordered_frames():
    rng = np.random.default_rng(1)
    q, r1, r2 = (l2_normalize(rng.normal(size=(n, 8))) for n in (3, 5, 4))
    expected = np.mean([max(qi @ rj for rj in r1) for qi in q])
    m = chamfer_matrix([q, r1[::-1]], [r1, r2])
    assert m[0, 0] == pytest.approx(expected, rel=1e-5)
    assert m[1, 0] == pytest.approx(1.0, rel=1e-5)  # the same frames in another order
    assert m[0, 1] == pytest.approx(np.mean([max(qi @ rj for rj in r2) for qi in q]), rel=1e-5)
    with pytest.raises(ValueError, match="at least one frame"):
        chamfer_matrix([q], [r1[:0]])


def test_rerank_scores_only_the_top_k_and_max_over_variants():
    first = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    second = np.array([[0.1, 0.8, 0.7], [0.6, 0.5, 0.4]])
    out = rerank(first, second, 2)
    np.testing.assert_array_equal(np.isnan(out), [[False, True, False], [False, False, True]])
    assert out[0, 2] == pytest.approx(0.7)
    np.testing.assert_array_equal(max_over_variants([first, second]), np.maximum(first, second))


def test_methods_compared_on_the_same_queries():
    gallery = ["a", "b", "c"]
    meta = pd.DataFrame(
        {
            "query_id": ["a@x", "b@x", "c@y", "d@y"],
            "reference_id": ["a", "b", "c", "d"],
            "transform": ["x", "x", "y", "y"],
            "family": ["x", "x", "y", "y"],
        }
    )
    truth = truth_matrix(list(meta["reference_id"]), gallery)  # d@y is a distractor
    good = np.array([[0.9, 0.1, 0.2], [0.1, 0.8, 0.2], [0.2, 0.1, 0.7], [0.3, 0.2, 0.1]])
    bad = np.array([[0.5, 0.6, 0.2], [0.1, 0.8, 0.2], [0.9, 0.1, 0.7], [0.95, 0.2, 0.1]])
    matrices = {"good": good, "bad": bad}
    rows = evaluate(matrices, truth, gallery, meta)
    table = summarize(rows, matrices, truth, ["x", "y"])
    overall = table[table["transform"] == "overall"].set_index("method")
    assert overall.loc["good", "recall_at_1"] == 100 and overall.loc[
        "bad", "recall_at_1"
    ] == pytest.approx(100 / 3)
    assert overall.loc["good", "micro_ap"] == 1.0 and overall.loc["good", "distractors"] == 1
    assert (
        table.loc[(table["method"] == "good") & (table["transform"] == "y"), "queries"].item() == 2
    )
    clusters = source_clusters(meta, truth)
    assert clusters.size == 4 and list(clusters.strata) == [0, 0, 0, 1]
    samples = bootstrap_methods(rows, matrices, truth, clusters, 50, seed=0)
    assert list(samples.columns) == ["good|r1", "good|uap", "bad|r1", "bad|uap"]
    with_ci = overall_with_ci(table, samples)
    assert with_ci.columns.tolist()[:6] == [
        "method",
        "queries",
        "distractors",
        "recall_at_1",
        "recall_at_1_ci",
        "recall_at_3",
    ]
    test = compare(rows, samples, [("good", "bad")], clusters).iloc[0]
    assert (test["only_a_correct"], test["only_b_correct"]) == (2, 0)
    assert test["sources_disagreeing"] == 2
    assert not test["r1_significant"]  # two disagreements cannot reach 5 %
    assert test["r1_p"] == 0.5 and test["r1_p_bonferroni"] == 1.0  # R@1 and μAP: two tests
    assert test["r1_diff_ci"].startswith("[") and test["uap_diff_ci"].startswith("[")
    empty = compare(rows, samples, [], clusters)
    assert len(empty) == 0 and "r1_p_bonferroni" in empty and "uap_diff_ci" in empty
