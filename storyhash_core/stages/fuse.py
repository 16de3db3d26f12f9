"""Notebook 02: the blocks of every usable reference and query (visual pooled, action
min-max scaled with bounds fitted on the references, graph) -> ``artifacts/blocks.npz``,
``tables/motion_features.csv``, ``tables/block_energy.csv`` (each block's share of the
fused vector's squared norm, per reference) and its summary ``block_energy_summary.csv``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import ArtifactCache, atomic_path
from ..errors import StoryHashError
from ..features import load_features
from ..fusion import BLOCKS
from ..motion import ACTION_NAMES, GRAPH_NAMES, MinMax, motion_blocks
from ..params import StudyParams
from ..report import write_table
from ..tracking import load_tracks
from .memo import memoised
from .records import FuseRecord
from .run import Run


@dataclass
class Blocks:
    """Per-video blocks of the gallery (references) and the probes (queries)."""

    ref_ids: list[str]
    refs: dict[str, np.ndarray]
    query_ids: list[str]
    queries: dict[str, np.ndarray]
    scaler: MinMax | None


@memoised("02_fuse")
def run(run: Run) -> FuseRecord:
    """Blocks of every usable reference and query; writes the files listed above."""
    files = run.table("files", "artifacts")
    queries = run.table("queries")
    ok = files[files["error"] == ""]
    refs = ok[ok["role"] == "reference"]
    usable = set(queries.loc[queries["error"] == "", "query_id"])
    probes = ok[(ok["role"] == "query") & ok["id"].isin(usable)]
    ref_blocks, scaler = blocks_for(refs, run.params, None, run.cache)
    probe_blocks, _ = blocks_for(probes, run.params, scaler, run.cache)
    blocks = Blocks(list(refs["id"]), ref_blocks, list(probes["id"]), probe_blocks, scaler)
    save_blocks(blocks, run.path("artifacts", "blocks.npz"))
    energy = block_energy(blocks)
    write_table(energy, run.path("tables", "block_energy"))
    summary = energy.drop(columns="video_id").describe().round(3)
    write_table(summary.reset_index(names="statistic"), run.path("tables", "block_energy_summary"))
    if scaler is not None:
        table = pd.concat(
            [
                motion_table(blocks.ref_ids, ref_blocks, "reference"),
                motion_table(blocks.query_ids, probe_blocks, "query"),
            ]
        )
        write_table(table, run.path("tables", "motion_features"))
    record = FuseRecord(
        references=len(blocks.ref_ids),
        queries=len(blocks.query_ids),
        widths={name: int(ref_blocks[name].shape[1]) for name in BLOCKS if name in ref_blocks},
        action_share_mean=float(energy["action"].mean()) if "action" in energy else None,
    )
    run.record(record)
    return record


def blocks_for(
    files: pd.DataFrame, params: StudyParams, scaler: MinMax | None, cache: ArtifactCache
) -> tuple[dict, MinMax | None]:
    """Blocks for the rows of ``files`` (cache entries, fetched if the cache is at a URL); the
    action scaler is fitted here when none is given."""
    pooled = [load_features(cache.fetch(f)).pooled(params.pooling) for f in files["features"]]
    blocks = {"visual": np.stack(pooled)}
    if params.motion.enabled:
        action, graph = motion_blocks([load_tracks(cache.fetch(t))[0] for t in files["tracks"]])
        scaler = scaler or MinMax.fit(action)
        blocks |= {"action": scaler.apply(action), "graph": graph, "action_raw": action}
    return blocks, scaler


def block_energy(blocks: Blocks) -> pd.DataFrame:
    """Each block's share of the squared norm of a reference's ``fusion`` vector (before the
    final L2 normalisation, which keeps the shares)."""
    present = [name for name in BLOCKS if name in blocks.refs]
    energy = pd.DataFrame({name: (blocks.refs[name] ** 2).sum(axis=1) for name in present})
    share = energy.div(energy.sum(axis=1), axis=0)
    return pd.concat([pd.DataFrame({"video_id": blocks.ref_ids}), share], axis=1)


def motion_table(ids: list[str], blocks: dict, role: str) -> pd.DataFrame:
    return pd.concat(
        [
            pd.DataFrame({"id": ids, "role": role}),
            pd.DataFrame(blocks["action_raw"], columns=list(ACTION_NAMES)),
            pd.DataFrame(blocks["graph"], columns=[f"graph_{n}" for n in GRAPH_NAMES]),
        ],
        axis=1,
    )


def save_blocks(blocks: Blocks, path: Path) -> None:
    arrays = {f"ref_{k}": v for k, v in blocks.refs.items()}
    arrays |= {f"query_{k}": v for k, v in blocks.queries.items()}
    if blocks.scaler is not None:
        arrays |= {"scaler_low": blocks.scaler.low, "scaler_high": blocks.scaler.high}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f, ref_ids=np.array(blocks.ref_ids), query_ids=np.array(blocks.query_ids), **arrays
            )


def load_blocks(run: Run, suite: str = "paper") -> Blocks:
    """The blocks of the references and of the queries of ``suite`` (``paper``: the paper's
    transforms, ``hard``: the hard suite; ``tables/queries.csv`` says which is which)."""
    path = run.path("artifacts", "blocks.npz")
    if not path.is_file():
        raise StoryHashError(f"{path} not found: run notebooks/02_fuse first")
    queries = run.table("queries")
    suites = queries["suite"] if "suite" in queries else "paper"  # a run from before the suites
    wanted = set(queries.loc[queries.assign(suite=suites)["suite"] == suite, "query_id"])
    with np.load(path) as z:
        refs = {k[4:]: z[k] for k in z.files if k.startswith("ref_") and k != "ref_ids"}
        ids = z["query_ids"].tolist()
        keep = np.array([q in wanted for q in ids], dtype=bool)
        probes = {k[6:]: z[k][keep] for k in z.files if k.startswith("query_") and k != "query_ids"}
        scaler = MinMax(z["scaler_low"], z["scaler_high"]) if "scaler_low" in z.files else None
        kept = [q for q, k in zip(ids, keep, strict=True) if k]
        return Blocks(z["ref_ids"].tolist(), refs, kept, probes, scaler)
