"""Video-to-video similarity matrices.

- :func:`inner_products`: every query × reference inner product, the same bytes on every CPU;
- :func:`chamfer_matrix`: frame-level Chamfer similarity, training-free in the spirit of
  ViSiL_f: for a query and a reference, the mean over query frames of the best-matching
  reference frame's cosine similarity. It sees *which* frames match, not only an average
  appearance, and tolerates speed changes and partial overlap.
- :func:`rerank`: keep each query's exact top-k references by a first-stage score (what an
  index returns, exactly for a flat one) and score only those with a second-stage matrix; the
  rest are unscored (NaN).
- :func:`max_over_variants`: the best score over augmented versions of the query or of
  the references (flip / rotation test-time augmentation).
"""

from __future__ import annotations

import numpy as np


def inner_products(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """``queries @ references.T`` in float64, rounded to float32. Float32 BLAS sums in an order
    its kernel (chosen per CPU) decides, so its last bits differ between CPUs (up to 6e-7 on
    unit vectors, ``bench/cpus.py``); float64 sums round to the same float32 everywhere."""
    return (np.asarray(queries, np.float64) @ np.asarray(references, np.float64).T).astype(
        np.float32
    )


def chamfer_matrix(queries: list[np.ndarray], references: list[np.ndarray]) -> np.ndarray:
    """Chamfer similarity of every query × reference (lists of L2-normalised frame matrices):
    the mean over query frames of the maximum cosine similarity to any reference frame."""
    if any(len(f) == 0 for f in [*queries, *references]):
        raise ValueError("chamfer_matrix: every video needs at least one frame")
    ref_all = np.concatenate(references).astype(np.float32)
    bounds = np.cumsum([0] + [len(r) for r in references])
    out = np.empty((len(queries), len(references)), np.float32)
    for i, q in enumerate(queries):
        frame_sims = inner_products(q, ref_all)  # query frames × all reference frames
        best = np.maximum.reduceat(frame_sims, bounds[:-1], axis=1)  # best frame of each reference
        out[i] = best.mean(axis=0)
    return out


def rerank(first_stage: np.ndarray, second_stage: np.ndarray, k: int) -> np.ndarray:
    """``second_stage`` scores on each row's top-``k`` of ``first_stage``; NaN elsewhere."""
    k = min(k, first_stage.shape[1])
    top = np.argpartition(-first_stage, k - 1, axis=1)[:, :k]
    out = np.full(first_stage.shape, np.nan, np.float32)
    rows = np.arange(len(first_stage))[:, None]
    out[rows, top] = second_stage[rows, top]
    return out


def max_over_variants(matrices: list[np.ndarray]) -> np.ndarray:
    """Element-wise maximum of same-shaped similarity matrices (one per variant)."""
    return np.max(np.stack(matrices), axis=0)
