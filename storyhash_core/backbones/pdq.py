"""PDQ, Meta's perceptual image hash (via ``pdqhash``), as a frame "embedding".

Each frame's 256-bit PDQ hash becomes a ±1/16 vector (unit norm), so the inner product of
two frames is ``1 - 2 * hamming / 256``: cosine similarity and Hamming distance rank pairs
identically, and the frame-level Chamfer similarity of the study applies unchanged. PDQ is
the classical baseline of copy detection (ThreatExchange; TMK+PDQF for video). PDQ's quality
score is not used: flat or black frames (quality < 50) hash unstably and may match each other.
"""

from __future__ import annotations

import numpy as np

BITS = 256


class PdqHash:
    name = "pdq"
    dim = BITS

    def __init__(self) -> None:
        from importlib.metadata import version

        import pdqhash

        self._pdq = pdqhash
        self.weights_id = f"pdq:pdqhash-{version('pdqhash')}"

    def embed(self, frames: np.ndarray) -> np.ndarray:
        out = np.empty((len(frames), BITS), np.float32)
        for i, frame in enumerate(frames):
            bits, _quality = self._pdq.compute(np.ascontiguousarray(frame))
            out[i] = (2.0 * bits - 1.0) / np.sqrt(BITS)
        return out
