import numpy as np
import pytest

from storyhash_core.motion import (
    ACTION_NAMES,
    GRAPH_NAMES,
    INTERACT,
    NEAR,
    MinMax,
    action_features,
    graph_features,
)
from storyhash_core.tracking import Tracks

W, H = 300, 400  # diagonal 500 px
TIMES = [0.0, 0.5, 1.0, 1.5]


def make_tracks(
    objects: dict[int, dict[int, tuple[float, float]]], half: float = 5.0, scale: float = 1.0
) -> Tracks:
    """``objects``: id -> {frame: (x, y)} in pixels of a 300×400 frame (times 0, 0.5, 1, 1.5 s)."""
    rows = [
        (
            f,
            i,
            x * scale,
            y * scale,
            (x - half) * scale,
            (y - half) * scale,
            (x + half) * scale,
            (y + half) * scale,
            (2 * half * scale) ** 2,
        )
        for i, path in objects.items()
        for f, (x, y) in path.items()
    ]
    return Tracks.from_rows(TIMES, W * scale, H * scale, rows)


def action(tracks) -> dict[str, float]:
    return dict(zip(ACTION_NAMES, action_features(tracks), strict=True))


def test_constant_velocity():
    a = action(make_tracks({0: {f: (10 + 50 * f, 100) for f in range(4)}}))
    # 50 px per 0.5 s on a 500 px diagonal = 0.2 diagonals per second
    assert a["velocity_mean"] == pytest.approx(0.2) and a["velocity_max"] == pytest.approx(0.2)
    assert a["velocity_std"] == pytest.approx(0.0, abs=1e-12)
    assert a["acceleration_mean"] == pytest.approx(0.0, abs=1e-12)
    assert a["direction_cos_mean"] == pytest.approx(1.0) and a[
        "direction_cos_std"
    ] == pytest.approx(0.0, abs=1e-7)
    assert a["spread_mean"] == a["interaction_mean"] == a["interaction_coherence"] == 0.0


def test_acceleration():
    a = action(make_tracks({0: {0: (0, 0), 1: (25, 0), 2: (75, 0), 3: (175, 0)}}))
    assert a["velocity_mean"] == pytest.approx(0.7 / 3)
    assert a["velocity_std"] == pytest.approx(np.std([0.1, 0.2, 0.4]))
    assert a["velocity_max"] == pytest.approx(0.4)
    assert a["acceleration_mean"] == pytest.approx(0.3) and a["acceleration_std"] == pytest.approx(
        0.1
    )


def test_direction_consistency():
    a = action(make_tracks({0: {0: (0, 0), 1: (50, 0), 2: (100, 0), 3: (50, 0)}}))
    assert a["direction_cos_mean"] == pytest.approx(0.0, abs=1e-12) and a[
        "direction_cos_std"
    ] == pytest.approx(1.0)
    turn = action(make_tracks({0: {0: (0, 0), 1: (50, 0), 2: (50, 50), 3: (0, 50)}}))
    assert turn["direction_cos_mean"] == pytest.approx(0.0, abs=1e-12)
    assert turn["direction_cos_std"] == pytest.approx(0.0, abs=1e-12)


def two_objects(b_frames=range(4), half=15.0):
    """A at (100, 100); B 250 px away at frames 0 and 3, 20 px away at 1 and 2."""
    b = {0: (100, 350), 1: (120, 100), 2: (120, 100), 3: (100, 350)}
    return make_tracks(
        {0: {f: (100, 100) for f in range(4)}, 1: {f: b[f] for f in b_frames}}, half=half
    )


def test_spread_and_interaction():
    assert 20 / 500 < INTERACT < 250 / 500
    a = action(two_objects())
    assert a["spread_mean"] == pytest.approx(0.27) and a["spread_max"] == pytest.approx(0.5)
    assert a["spread_std"] == pytest.approx(np.std([0.5, 0.04, 0.04, 0.5]))
    assert (a["interaction_mean"], a["interaction_std"], a["interaction_max"]) == pytest.approx(
        (0.5, 0.5, 1.0)
    )
    assert a["interaction_edge_ratio"] == pytest.approx(0.5)
    assert a["interaction_coherence"] == pytest.approx(0.5)  # one unbroken run of 2 of 4 frames


def test_graph_histogram():
    assert 20 / 500 < NEAR < 3 * NEAR < 250 / 500
    g = dict(zip(GRAPH_NAMES, graph_features(two_objects()), strict=True))
    expected = {
        "co_occurs": 4,
        "near": 2,
        "far": 2,
        "overlaps": 2,
        "approaches": 1,
        "recedes": 1,
        "follows": 0,
        "alone": 0,
    }
    assert g == pytest.approx({k: v / 12 for k, v in expected.items()})


def test_graph_follows_and_alone():
    g = dict(zip(GRAPH_NAMES, graph_features(two_objects(b_frames=[2, 3], half=5.0)), strict=True))
    # frames 0-1: A alone; frames 2-3: together (near at 2, far at 3; B appeared after A)
    expected = {
        "co_occurs": 2,
        "near": 1,
        "far": 1,
        "overlaps": 0,
        "approaches": 0,
        "recedes": 1,
        "follows": 2,
        "alone": 2,
    }
    assert g == pytest.approx({k: v / 9 for k, v in expected.items()})


def test_no_objects_gives_defined_zero_blocks():
    empty = Tracks.from_rows(TIMES, W, H, [])
    assert action_features(empty).shape == (15,) and not action_features(empty).any()
    assert graph_features(empty).shape == (8,) and not graph_features(empty).any()


def test_features_do_not_depend_on_resolution():
    small, big = two_objects(), two_objects()
    big = make_tracks(
        {
            0: {f: (100, 100) for f in range(4)},
            1: {0: (100, 350), 1: (120, 100), 2: (120, 100), 3: (100, 350)},
        },
        half=15.0,
        scale=2.0,
    )
    np.testing.assert_allclose(action_features(small), action_features(big), atol=1e-12)
    np.testing.assert_allclose(graph_features(small), graph_features(big), atol=1e-12)


def test_minmax_is_fitted_on_references_only():
    refs = np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0]])
    scaler = MinMax.fit(refs)
    np.testing.assert_allclose(scaler.apply(refs), [[0, 0, 0], [1, 0, 1]])
    np.testing.assert_allclose(
        scaler.apply(np.array([[1.0, 9.0, 7.0], [-1.0, 5.0, 2.0]])), [[0.5, 0, 1], [0, 0, 0.5]]
    )
