"""Frame-level candidates and segments on hand-built embeddings (2 fps)."""

import numpy as np

from storyhash_core.features import VideoFeatures, l2_normalize
from storyhash_core.frame_matching import FrameIndex, match_query, pooled_matches
from storyhash_core.matching import segment_ap

FPS = 2.0
RNG = np.random.default_rng(3)


def video(frames):
    frames = l2_normalize(np.asarray(frames, np.float32))
    return VideoFeatures(np.arange(len(frames)) / FPS, frames, len(frames) / FPS)


def test_a_short_copy_inside_other_footage_is_found_and_placed():
    refs = {f"r{i}": video(RNG.normal(size=(30, 64))) for i in range(6)}
    copied = refs["r3"].frames[8:14] + 0.05 * RNG.normal(size=(6, 64))  # 3 s, lightly edited
    query = video(np.concatenate([RNG.normal(size=(20, 64)), copied, RNG.normal(size=(14, 64))]))
    index = FrameIndex(list(refs), list(refs.values()))
    assert index.candidates(query)[0][0] == "r3" and index.bytes_per_frame == 64 * 4 + 8
    (found,) = match_query("q", query, index, threshold=0.5)
    assert (found.ref_id, found.query_start, found.query_end) == ("r3", 10.0, 13.0)
    assert (found.ref_start, found.ref_end) == (4.0, 7.0) and found.score > 0.9
    truth = [found._replace(score=1.0)]
    assert segment_ap(truth, [found]).ap == 1.0


def test_the_pooled_method_predicts_whole_videos():
    found = pooled_matches("q", {"a": 0.2, "b": 0.9, "c": 0.5}, 20.0, {"a": 5, "b": 8, "c": 9}, 2)
    assert [(m.ref_id, m.query_end, m.ref_end, m.score) for m in found] == [
        ("b", 20.0, 8, 0.9),
        ("c", 20.0, 9, 0.5),
    ]
