"""Oracle tracks: the synthetic corpus's true object tracks as a perfect tracker would report
them in a video, a reference or a transformed query.

The generator writes every object's visible centroid, box and area per source frame
(``ground_truth.csv``). A query's oracle tracks are the source's, read at the source time of
each query time (a speed change ``s`` plays source time ``s·t`` at query time ``t``) and
mapped through the transform's geometry (:func:`geometry`): flips mirror, a centred crop
shifts and clips, a rotation turns about the frame centre (ffmpeg turns positive angles
clockwise); colour, compression and caption edits leave positions alone. An object whose
centroid leaves the frame is dropped; boxes are clipped to it. Transforms with any other
filter (the hard suite's compositions) have no oracle.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from .tracking import Tracks
from .transforms import Transform

Points = Callable[[np.ndarray], np.ndarray]  # (n, 2) pixel points -> (n, 2)
CROP = re.compile(r"crop=trunc\(iw\*([\d.]+)/2\)\*2:trunc\(ih\*([\d.]+)/2\)\*2")
ROTATE = re.compile(r"rotate=(-?[\d.]+)\*PI/180(:fillcolor=black)?")
IDENTITY = re.compile(r"eq=.*")


class Geometry:
    """A chain of point maps and the frame size after them."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = float(width), float(height)
        self.maps: list[Points] = []

    def then(self, filter_: str) -> Geometry:
        """Add one ffmpeg filter of the registry (ValueError for one without a geometry)."""
        w, h = self.width, self.height
        if filter_ == "hflip":
            self.maps.append(lambda p: np.c_[w - p[:, 0], p[:, 1]])
        elif filter_ == "vflip":
            self.maps.append(lambda p: np.c_[p[:, 0], h - p[:, 1]])
        elif m := CROP.fullmatch(filter_):
            cw, ch = (np.trunc(size * float(k) / 2) * 2 for size, k in ((w, m[1]), (h, m[2])))
            ox, oy = np.trunc((w - cw) / 2), np.trunc((h - ch) / 2)
            self.maps.append(lambda p: p - [ox, oy])
            self.width, self.height = cw, ch
        elif m := ROTATE.fullmatch(filter_):
            a = np.deg2rad(float(m[1]))
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            centre = np.array([w / 2, h / 2])
            self.maps.append(lambda p: (p - centre) @ rot.T + centre)
        elif not IDENTITY.fullmatch(filter_):
            raise ValueError(f"no oracle geometry for the filter {filter_!r}")
        return self

    def __call__(self, points: np.ndarray) -> np.ndarray:
        for f in self.maps:
            points = f(points)
        return points


def geometry(transform: Transform | None, width: int, height: int) -> Geometry:
    """The geometry of ``transform`` (None: the source itself) on a ``width``×``height`` frame."""
    g = Geometry(width, height)
    if transform is None:
        return g
    if transform.backgrounds:
        raise ValueError(f"no oracle geometry for {transform.name!r}: it composes other videos")
    for filter_ in (f for f in transform.vf.split(",") if f):
        g.then(filter_)
    return g


def has_oracle(transform: Transform) -> bool:
    try:
        geometry(transform, 64, 64)
    except ValueError:
        return False
    return True


def oracle_tracks(
    truth: pd.DataFrame,
    source_fps: float,
    width: int,
    height: int,
    times: np.ndarray,
    transform: Transform | None = None,
) -> Tracks:
    """The true tracks of one video's ``truth`` rows (frame, object_id, cx, cy, x0, y0, x1,
    y1, area; the source at ``source_fps``, ``width``×``height``) at query ``times``."""
    g = geometry(transform, width, height)
    speed = transform.speed if transform else 1.0
    by_frame = dict(list(truth.groupby("frame")))
    rows = []
    for i, t in enumerate(np.asarray(times, np.float64)):
        here = by_frame.get(int(round(t * speed * source_fps)))
        if here is None:
            continue
        centre = g(here[["cx", "cy"]].to_numpy(np.float64))
        x0, y0, x1, y1 = here[["x0", "y0", "x1", "y1"]].to_numpy(np.float64).T
        corners = [g(np.c_[x, y]) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
        low, high = np.min(corners, axis=0), np.max(corners, axis=0)
        size = [g.width, g.height]
        low, high = np.clip(low, 0, size), np.clip(high, 0, size)
        inside = (centre >= 0).all(axis=1) & (centre < size).all(axis=1)
        for k in np.flatnonzero(inside):
            rows.append(
                (i, here["object_id"].iloc[k], *centre[k], *low[k], *high[k], here["area"].iloc[k])
            )
    return Tracks.from_rows(times, int(g.width), int(g.height), rows)
