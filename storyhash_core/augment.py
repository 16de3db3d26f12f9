"""Frame variants for test-time (query-side) and gallery-side augmentation.

A variant is a name applied to every sampled frame before the backbone sees it:
``hflip`` (mirror left-right), ``vflip`` (upside down), ``hvflip`` (both, i.e. 180°), and
``rot<deg>`` (rotate by ``deg`` degrees, counter-clockwise for positive angles, about the
centre; multiples of 90 are exact and swap width and height, other angles keep the frame
size with black corners, like the ``rotate_*`` transforms), and ``crop<keep>@<fx>,<fy>``
(a region: ``keep`` of the width and height, its offset ``fx``, ``fy`` in [0, 1] of the
room left, e.g. ``crop0.5@1,0`` the top-right quarter). The sign is the opposite of
ffmpeg's (clockwise for positive angles), so ``rot<d>`` undoes ``rotate_<d>``; test-time
augmentation that does not know the direction uses both signs. Features of a variant are
cached separately (the variant is part of the feature key).
"""

from __future__ import annotations

import re

import numpy as np

from .opencv import cv2

_ROT = re.compile(r"^rot(-?\d+(?:\.\d+)?)$")
_NUMBER = r"(\d+(?:\.\d+)?)"
_CROP = re.compile(rf"^crop{_NUMBER}@{_NUMBER},{_NUMBER}$")


def check_variant(name: str) -> str:
    """``name`` if it is a known variant, else ``ValueError`` naming the known ones."""
    if name in ("hflip", "vflip", "hvflip") or _ROT.match(name):
        return name
    crop = _CROP.match(name)
    if crop and 0 < float(crop[1]) <= 1 and all(float(c) <= 1 for c in crop.groups()[1:]):
        return name
    raise ValueError(
        f"unknown frame variant {name!r} (hflip, vflip, hvflip, rot<degrees>, e.g. rot-90,"
        " or crop<keep>@<x>,<y> with each in [0, 1], e.g. crop0.5@1,0)"
    )


def crop_frames(frames: np.ndarray, keep: float, fx: float, fy: float) -> np.ndarray:
    """The region keeping ``keep`` of the height and width, offset by ``fx``, ``fy`` of the
    room left (at least one pixel each way)."""
    h, w = frames.shape[1:3]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    y, x = int((h - ch) * fy + 0.5), int((w - cw) * fx + 0.5)  # halves round up
    return np.ascontiguousarray(frames[:, y : y + ch, x : x + cw])


def rotate_frame(frame: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise by ``degrees``; exact for multiples of 90."""
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(frame, int(degrees // 90) % 4))
    h, w = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def apply_variant(frames: np.ndarray, name: str) -> np.ndarray:
    """The variant ``name`` of every frame (N×H×W×3 uint8)."""
    check_variant(name)
    if name == "hflip":
        return np.ascontiguousarray(frames[:, :, ::-1])
    if name == "vflip":
        return np.ascontiguousarray(frames[:, ::-1])
    if name == "hvflip":
        return np.ascontiguousarray(frames[:, ::-1, ::-1])
    crop = _CROP.match(name)
    if crop:
        return crop_frames(frames, *(float(c) for c in crop.groups()))
    degrees = float(_ROT.match(name).group(1))
    return np.stack([rotate_frame(f, degrees) for f in frames])
