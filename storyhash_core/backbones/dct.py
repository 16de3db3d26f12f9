"""A weight-free global descriptor: low-frequency DCT coefficients per colour channel.

In the spirit of MPEG-7's colour layout: the frame is shrunk to 32×32 in YCrCb, each
channel is DCT-transformed, and the 8×8 lowest-frequency coefficients of each channel
(192 values, DC included) form the descriptor. It runs anywhere, needs no weights, and is
the baseline every learned backbone has to beat.
"""

from __future__ import annotations

import numpy as np

from ..opencv import cv2

GRID = 32
KEEP = 8


class DctDescriptor:
    name = "dct"
    dim = 3 * KEEP * KEEP
    weights_id = f"dct:{GRID}x{GRID}:{KEEP}"

    def embed(self, frames: np.ndarray) -> np.ndarray:
        out = np.empty((len(frames), self.dim), np.float32)
        for i, frame in enumerate(frames):
            small = cv2.resize(frame, (GRID, GRID), interpolation=cv2.INTER_AREA)
            ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255.0
            out[i] = np.concatenate([cv2.dct(ycc[..., c])[:KEEP, :KEEP].ravel() for c in range(3)])
        return out
