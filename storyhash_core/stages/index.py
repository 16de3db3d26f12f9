"""Notebook 03: one FAISS index per configuration -> ``indexes/<configuration>/`` (with the
metadata ``storyhash query`` needs to embed a new video the same way) and ``tables/indexes``."""

from __future__ import annotations

import pandas as pd

from ..features import FEATURE_VERSION
from ..fusion import fuse
from ..index import build_index, save_index
from ..report import write_table
from ..tracking import TRACK_VERSION
from .fuse import load_blocks
from .memo import memoised
from .records import ExtractRecord, IndexEntry, IndexRecord
from .run import Run, Stopwatch


@memoised("03_index")
def run(run: Run) -> pd.DataFrame:
    """Build and save every configuration's index; return ``tables/indexes`` (build seconds
    are wall-clock, so they are in ``run.json`` only)."""
    params = run.params
    blocks = load_blocks(run)
    backbone = run.load(ExtractRecord).backbone.model_dump()
    entries = []
    for configuration in params.evaluation.configurations:
        vectors = fuse(blocks.refs, configuration, params.evaluation.weights)
        clock = Stopwatch()
        index = build_index(vectors, params.index)
        build_s = clock()
        meta = {
            "configuration": configuration,
            "backbone": backbone,
            "pooling": params.pooling,
            "sampling_fps": params.sampling.fps,
            "index": params.index.model_dump(),
            "weights": params.evaluation.weights,
            "feature_version": FEATURE_VERSION,
        }
        if blocks.scaler is not None:
            meta["motion"] = {
                "tracker": params.motion.tracker.model_dump(),
                "track_version": TRACK_VERSION,
                "action_low": blocks.scaler.low.tolist(),
                "action_high": blocks.scaler.high.tolist(),
            }
        folder = run.path("indexes", configuration)
        save_index(index, blocks.ref_ids, meta, folder)
        entries.append(
            IndexEntry(
                configuration=configuration,
                kind=params.index.kind,
                vectors=index.ntotal,
                dim=vectors.shape[1],
                build_s=build_s,
                bytes=(folder / "index.faiss").stat().st_size,
            )
        )
    table = pd.DataFrame([e.model_dump(exclude={"build_s"}) for e in entries])
    write_table(table, run.path("tables", "indexes"), ("csv", "md"))
    run.record(IndexRecord(indexes=entries))
    return table
