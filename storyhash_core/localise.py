"""Temporal localisation of copied segments on a query × reference frame-similarity matrix.

A copied segment shows up as a chain of high similarities running down and to the right:
query frame i matches reference frame j, a later query frame matches a later (or the same)
reference frame, and so on. :func:`localise` finds such chains by dynamic programming, in the
spirit of VCSL's temporal network (a longest path through frame matches that keeps the time
order on both axes):

- a cell takes part only if its similarity reaches ``threshold``, and is worth
  ``similarity − threshold``;
- a chain steps from (i, j) to (i', j') with 1 ≤ i' − i ≤ ``max_step`` and
  0 ≤ j' − j ≤ ``max_step``, so any slope (a speed-up or slow-down), a repeated reference frame
  and dropped frames on either side are allowed, but time never runs backwards;
- the best chain is a segment (its first and last frames on each axis, plus one frame
  interval), scored by the mean similarity along it; its query frames and reference frames
  are then removed and the search repeats, up to ``max_segments``, while a chain of at least
  ``min_frames`` query frames remains.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Segment(NamedTuple):
    """A localised copy: start and end seconds on the query and on the reference, and its
    score (the mean frame similarity along the chain)."""

    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float
    frames: int  # query frames on the chain


def best_chain(gain: np.ndarray, max_step: int) -> list[tuple[int, int]]:
    """The highest-total chain of cells of finite ``gain`` (≥ 0; −inf: excluded), as (query
    frame, reference frame) pairs in time order; empty when every cell is excluded."""
    n_q, n_r = gain.shape
    total = np.where(np.isfinite(gain), gain, -np.inf)
    parent = np.full((n_q, n_r, 2), -1, dtype=np.int64)
    for i in range(1, n_q):
        for j in range(n_r):
            if not np.isfinite(gain[i, j]):
                continue
            rows = slice(max(0, i - max_step), i)
            cols = slice(max(0, j - max_step), j + 1)
            window = total[rows, cols]
            if window.size and np.isfinite(window).any():
                k = int(np.argmax(window))
                total[i, j] = gain[i, j] + window.flat[k]
                parent[i, j] = (rows.start + k // window.shape[1], cols.start + k % window.shape[1])
    if not np.isfinite(total).any():
        return []
    i, j = np.unravel_index(int(np.argmax(total)), total.shape)
    chain = [(int(i), int(j))]
    while parent[chain[-1]][0] >= 0:
        chain.append(tuple(int(v) for v in parent[chain[-1]]))
    return chain[::-1]


def localise(
    sims: np.ndarray,
    query_times: np.ndarray,
    ref_times: np.ndarray,
    threshold: float,
    max_step: int = 3,
    min_frames: int = 2,
    max_segments: int = 4,
    frame_s: float | None = None,
) -> list[Segment]:
    """The copied segments of one (query, reference) pair (see the module), best first.
    ``frame_s`` is a frame's duration (default: the median spacing of ``query_times``)."""
    sims = np.asarray(sims, np.float64)
    if frame_s is None:
        frame_s = float(np.median(np.diff(query_times))) if len(query_times) > 1 else 0.5
    gain = np.where(sims >= threshold, sims - threshold, -np.inf)
    out: list[Segment] = []
    while len(out) < max_segments:
        chain = best_chain(gain, max_step)
        if len({i for i, _ in chain}) < min_frames:
            break
        q, r = (np.array(axis) for axis in zip(*chain, strict=True))
        out.append(
            Segment(
                float(query_times[q[0]]),
                float(query_times[q[-1]] + frame_s),
                float(ref_times[r[0]]),
                float(ref_times[r[-1]] + frame_s),
                float(sims[q, r].mean()),
                len(set(q.tolist())),
            )
        )
        gain[q[0] : q[-1] + 1, :] = -np.inf  # each query second is copied from one place
        gain[:, r[0] : r[-1] + 1] = -np.inf
    return out
