"""Temporal localisation on hand-made frame-similarity matrices (2 fps)."""

import numpy as np
import pytest

from storyhash_core.localise import localise

FPS = 2.0


def matrix(n_q, n_r, cells, seed=0):
    sims = np.random.default_rng(seed).uniform(0.0, 0.3, size=(n_q, n_r))
    for i, j in cells:
        sims[i, j] = 0.9
    return sims


def times(n):
    return np.arange(n) / FPS


def test_a_copied_stretch_is_found_with_its_times_on_both_axes():
    sims = matrix(20, 30, [(4 + k, 10 + k) for k in range(10)])
    (found,) = localise(sims, times(20), times(30), threshold=0.5)
    assert found[:4] == (2.0, 7.0, 5.0, 10.0)  # frames 4-13 and 10-19, plus one frame
    assert found.score == pytest.approx(0.9) and found.frames == 10


def test_speed_changes_and_dropped_or_repeated_frames_keep_one_segment():
    faster = [(k, round(k * 1.1)) for k in range(16)]  # the query is the reference sped up
    (found,) = localise(matrix(16, 20, faster), times(16), times(20), threshold=0.5)
    assert (found.query_start, found.query_end) == (0.0, 8.0) and found.ref_end == 17 / FPS
    gappy = [(k, 5 + k) for k in range(12) if k not in (3, 7, 8)]  # 3 query frames lost
    gappy += [(12, 16), (13, 16)]  # a repeated reference frame
    (found,) = localise(matrix(14, 20, gappy), times(14), times(20), threshold=0.5)
    assert (found.query_start, found.query_end, found.ref_start, found.ref_end) == (
        0.0,
        7.0,
        2.5,
        8.5,
    )


def test_two_copied_stretches_from_two_places_are_two_segments():
    cells = [(k, 20 + k) for k in range(6)] + [(10 + k, 2 + k) for k in range(8)]
    found = localise(matrix(20, 30, cells), times(20), times(30), threshold=0.5)
    assert sorted((s.query_start, s.ref_start) for s in found) == [(0.0, 10.0), (5.0, 1.0)]
    assert [s.frames for s in found] == [8, 6]  # best (longest) first


def test_nothing_is_found_below_the_threshold_or_in_single_frames():
    assert localise(matrix(10, 10, []), times(10), times(10), threshold=0.5) == []
    lone = matrix(10, 10, [(3, 3), (8, 1)])  # no time-ordered chain of two frames
    assert localise(lone, times(10), times(10), threshold=0.5) == []
