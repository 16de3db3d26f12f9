"""Oracle tracks: the true positions mapped through a transform land where ffmpeg draws them."""

import av
import numpy as np
import pandas as pd
import pytest

from storyhash_core.oracle import geometry, has_oracle, oracle_tracks
from storyhash_core.synthetic import write_mp4
from storyhash_core.transforms import HARD_EDITS, PAPER_TRANSFORMS, apply_transform, resolve

W, H, FPS = 160, 96, 12.0


def square_at(x: int, y: int) -> np.ndarray:
    frame = np.zeros((H, W, 3), np.uint8)
    frame[y - 3 : y + 4, x - 3 : x + 4] = 255
    return frame


def bright_centroid(path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="gray")
    ys, xs = np.nonzero(frame > 128)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # pixel centres


@pytest.mark.parametrize("name", ["flip_h", "flip_v", "crop_20", "rotate_10", "combined"])
def test_oracle_geometry_matches_ffmpeg(tmp_path, name):
    src = tmp_path / "src.mp4"
    write_mp4([square_at(112, 30)] * 6, FPS, src)
    transform = resolve([name])[0]
    out = tmp_path / "out.mp4"
    apply_transform(src, transform, out)
    expected = geometry(transform, W, H)(np.array([[112.5, 30.5]]))[0]
    assert bright_centroid(out) == pytest.approx(expected, abs=1.0)


def test_every_paper_transform_has_an_oracle_and_compositions_do_not():
    assert all(has_oracle(t) for t in PAPER_TRANSFORMS.values())
    assert has_oracle(resolve(["rotate_45"])[0])
    rng = np.random.default_rng(0)
    assert not has_oracle(HARD_EDITS["pip"](rng))
    assert not has_oracle(HARD_EDITS["squeeze_40"](rng))


def test_oracle_tracks_by_hand():
    truth = pd.DataFrame(
        {
            "frame": [0, 0, 12],
            "object_id": [1, 2, 1],
            "cx": [10.0, 100.0, 20.0],
            "cy": [20.0, 50.0, 30.0],
            "x0": [5.0, 90.0, 15.0],
            "y0": [15.0, 40.0, 25.0],
            "x1": [15.0, 110.0, 25.0],
            "y1": [25.0, 60.0, 35.0],
            "area": [100, 400, 100],
        }
    )
    plain = oracle_tracks(truth, FPS, W, H, np.array([0.0, 1.0]))
    assert plain.frame.tolist() == [0, 0, 1] and plain.centroid[2].tolist() == [20.0, 30.0]
    flipped = oracle_tracks(truth, FPS, W, H, np.array([0.0]), PAPER_TRANSFORMS["flip_h"])
    assert flipped.centroid.tolist() == [[150.0, 20.0], [60.0, 50.0]]
    assert flipped.box[0].tolist() == [145.0, 15.0, 155.0, 25.0]
    # crop 20 %: 128 x 76 from (16, 10); the object at x=10 is now at -6, outside: dropped
    cropped = oracle_tracks(truth, FPS, W, H, np.array([0.0]), PAPER_TRANSFORMS["crop_20"])
    assert (cropped.width, cropped.height) == (128, 76)
    assert cropped.object_id.tolist() == [2] and cropped.centroid[0].tolist() == [84.0, 40.0]
    assert cropped.box[0].tolist() == [74.0, 30.0, 94.0, 50.0]
    # speed 1.1: query time 1 s shows source time 1.1 s = frame 13, which has no row
    fast = oracle_tracks(truth, FPS, W, H, np.array([1.0]), PAPER_TRANSFORMS["speed_1.1"])
    assert len(fast.frame) == 0
