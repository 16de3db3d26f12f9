"""Fusing blocks (visual, action, graph) into one vector per video, and the ablations.

The paper's StoryHash vector is ``[visual, action(15), graph(8)]`` L2-normalised (its
blocks: the L2-normalised pooled visual embedding, min-max normalised motion features).
With CLIP that is 512 + 15 + 8 = 535 values, not the 527 the paper states: 527 is
512 + 15, i.e. without the graph block, which the paper reports as contributing nothing.
``fusion`` follows the paper's equation (all three blocks); ``visual_action`` is the
527-wide variant.
Its ablations keep the fused width and zero the other blocks (``visual_padded``,
``action_padded``); zero blocks change no inner product, so they rank exactly as the
block alone (``visual``, ``action``, ``graph``), which the tests check. ``weighted``
scales each block before concatenation.
"""

from __future__ import annotations

import numpy as np

from .errors import StoryHashError
from .features import l2_normalize

BLOCKS = ("visual", "action", "graph")
BLOCK_DIMS = {"action": 15, "graph": 8}  # the visual width is the backbone's
CONFIGURATIONS: dict[str, tuple[str, ...]] = {
    "fusion": BLOCKS,
    "visual_action": ("visual", "action"),
    "visual_padded": ("visual",),
    "action_padded": ("action",),
    "visual": ("visual",),
    "action": ("action",),
    "graph": ("graph",),
}
PADDED = {"fusion", "visual_padded", "action_padded", "weighted"}


class MissingBlockError(StoryHashError):
    """A configuration needs a block that was not extracted."""


def used_blocks(configuration: str, weights: dict[str, float] | None = None) -> tuple[str, ...]:
    """The blocks ``configuration`` reads (``weighted``: those whose weight is not 0)."""
    if configuration == "weighted":
        used = tuple(b for b in BLOCKS if (weights or {}).get(b, 1.0) != 0)
        if not used:
            raise ValueError("configuration 'weighted' uses no block (every weight is 0)")
        return used
    if configuration in CONFIGURATIONS:
        return CONFIGURATIONS[configuration]
    raise ValueError(
        f"unknown configuration {configuration!r} "
        f"(one of {', '.join([*CONFIGURATIONS, 'weighted'])})"
    )


def fuse(
    blocks: dict[str, np.ndarray], configuration: str, weights: dict[str, float] | None = None
) -> np.ndarray:
    """Vectors (n×d) for ``configuration`` from ``blocks`` (each n×d_block), L2-normalised.

    Padded configurations lay out every block of the fused width in ``BLOCKS`` order and
    zero the unused ones; the others concatenate only the blocks they use.
    """
    used = used_blocks(configuration, weights)
    weights = (weights or {}) if configuration == "weighted" else {}
    missing = [b for b in used if b not in blocks]
    if missing:
        raise MissingBlockError(
            f"configuration {configuration!r} needs the {', '.join(missing)} block(s),"
            " which this run did not extract (enable motion features)"
        )
    n = len(blocks[used[0]])
    parts = []
    for b in BLOCKS if configuration in PADDED else used:
        if b in used:
            x = np.asarray(blocks[b], np.float32)
            if len(x) != n:
                raise ValueError(f"block {b!r} has {len(x)} rows, expected {n}")
            parts.append(x * weights.get(b, 1.0))
        else:  # a padding block: zeros of the block's width
            parts.append(
                np.zeros((n, blocks[b].shape[1] if b in blocks else BLOCK_DIMS[b]), np.float32)
            )
    return l2_normalize(np.concatenate(parts, axis=1))
