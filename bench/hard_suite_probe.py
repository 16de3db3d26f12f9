"""Is the hard suite hard? The visual baseline's R@1 per hard edit on the real corpus.

Generates every hard edit (:data:`storyhash_core.transforms.HARD_EDITS`) of the 57 DAVIS query
sources of ``params/real.yaml``, with background videos from the embedded synthetic generator
(in no gallery), embeds them with the run's backbone (no tracking), and ranks each against
the 121 references' pooled visual block of the committed ``outputs/real``. Writes
``bench/results/hard_suite_probe.json``. Needs ``../shared`` (or ``STORYHASH_SHARED``) and a
rendered ``outputs/real``; about 5 minutes on 2 cores from an empty query cache.

    python bench/hard_suite_probe.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from storyhash_core import stages
from storyhash_core.corpus import load_manifest
from storyhash_core.features import load_features
from storyhash_core.machine import cpu
from storyhash_core.pipeline import process_videos
from storyhash_core.queries import hard_jobs, run_jobs
from storyhash_core.stages.fuse import load_blocks
from storyhash_core.stages.inputs import (
    extracted_backbone,
    load_corpus,
    query_items,
    query_sources,
)
from storyhash_core.synthetic import SyntheticSpec, synthetic_corpus
from storyhash_core.transforms import HARD_EDITS

ROOT = Path(__file__).resolve().parents[1]
BACKGROUNDS = SyntheticSpec(n_videos=12, width=640, height=360, max_duration_s=8.0, seed=2026)


def main() -> None:
    run = stages.Run.open(ROOT / "params" / "real.yaml")
    params, cache = run.params, run.cache
    sources = query_sources(params, load_corpus(params, cache))
    pool = [v for v in load_manifest(synthetic_corpus(BACKGROUNDS, cache)) if v.path.is_file()]
    blocks = load_blocks(run)
    refs = blocks.refs["visual"]
    t0 = time.perf_counter()
    with run.client() as client:
        queries = run_jobs(client, hard_jobs(sources, list(HARD_EDITS), pool), cache)
        made = time.perf_counter() - t0
        backbone = extracted_backbone(run)
        done, failed = process_videos(
            client, query_items(queries), params.sampling.fps, [(backbone, "")], None, cache
        )
    by_edit: dict[str, list[tuple[bool, float]]] = {name: [] for name in HARD_EDITS}
    for q in queries:
        if q.query_id not in done:
            continue
        vector = load_features(done[q.query_id].features[0]).pooled(params.pooling)
        sims = refs @ (vector / np.linalg.norm(vector))
        true = blocks.ref_ids.index(q.reference_id)
        by_edit[q.transform].append((int(np.argmax(sims)) == true, float(sims[true])))
    rows = {
        name: {
            "queries": len(hits),
            "recall_at_1": 100 * float(np.mean([h for h, _ in hits])),
            "sim_true_mean": float(np.mean([s for _, s in hits])),
        }
        for name, hits in by_edit.items()
    }
    result = {
        "what": "visual baseline (exact search, pooled visual block) per hard edit, 57 sources",
        "backbone": backbone.name,
        "backgrounds": BACKGROUNDS.model_dump() | {"files_used": len(pool)},
        "generation_failures": [q.query_id for q in queries if q.error],
        "extraction_failures": [f.key for f in failed],
        "seconds": {"generate": round(made, 1), "total": round(time.perf_counter() - t0, 1)},
        "cpu": cpu(),
        "per_edit": rows,
        "below_80": sorted(n for n, r in rows.items() if r["recall_at_1"] < 80),
    }
    out = ROOT / "bench" / "results" / "hard_suite_probe.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in rows.items():
        print(f"{name:16s} R@1 {r['recall_at_1']:5.1f} %  sim {r['sim_true_mean']:.3f}")
    print(f"-> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
