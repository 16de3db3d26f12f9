"""Notebook 10: partial copies, detected and localised in time (the VSC2022 matching task).

Seeded partial-copy queries (:mod:`~storyhash_core.partial`) splice stretches of the
detection gallery's references into footage in no gallery (the held-out sources and the hard
suite's synthetic backgrounds), with negatives made of that footage only. Two methods answer
each query: ``pooled`` (the paper's median-pooled visual vector against the gallery's: whole
videos, detection only) and ``frame`` (:mod:`~storyhash_core.frame_matching`: a frame index,
candidate references, temporal localisation). Written:

- ``partial/ground_truth.csv``, ``partial/predictions_<method>.csv`` in the VSC2022 matching
  layout, with VSC-style ids (``Q…``, ``R…``; ``partial/ids.csv`` maps them to ours);
- ``tables/partial_copies`` (per method: segment AP, pairwise μAP, detection at FPR 1 %,
  with query-bootstrap intervals), ``partial_copies_pairs`` (per copied pair: its share of
  the query, edit, whether each method found it, the IoU on each axis),
  ``partial_copies_cost`` (matching milliseconds per query: wall-clock, not reproduced),
  ``partial_copies_bins`` (detection, with an interval, and IoU per copied-share bin),
  ``partial_copies_edits`` (the same per edit), ``partial_queries``
  (every query made, with its error if it failed);
- ``indexes/frames.npz``: every reference's frames, the frame index of ``storyhash query``;
- ``figures/partial_matrix`` (one query × reference frame-similarity matrix with the true and
  predicted segments), ``figures/partial_detection`` (detection against copied share).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import prose
from ..detection import Pairs, micro_ap, threshold_at_fpr
from ..frame_matching import (
    FRAMES_FILE,
    FrameIndex,
    cross_reference_threshold,
    match_query,
    pooled_matches,
    save_frames,
)
from ..matching import Match, length, pair_scores, segment_ap, shared, union, write_matches
from ..parallel import run_batch
from ..partial import Frame, PartialJob, copied_segments, make_partial, partial_path, plan_queries
from ..plots import partial_detection_figure, partial_matrix_figure
from ..report import write_table
from ..transforms import HARD_EDITS, hard_transform, resolve
from .fuse import load_blocks
from .inputs import (
    QUERY_FOLDER_FPS,
    extracted_backbone,
    features_of,
    hard_backgrounds,
    load_cached,
    load_corpus,
    query_meta,
)
from .memo import memoised
from .records import PartialCopiesRecord
from .run import Run
from .scoring import detection_setup

METHODS = ("pooled", "frame")
BINS = [0.0, 0.1, 0.2, 0.4, 0.7, 1.0001]  # copied share of the query


@dataclass
class PartialCopies:
    """What notebook 10 shows."""

    table: pd.DataFrame
    bins: pd.DataFrame
    queries: pd.DataFrame
    threshold: float
    bytes_per_frame: int
    reference_frames: int
    edits: pd.DataFrame  # detection and IoU per edit
    discussion: str
    cost: pd.DataFrame  # wall-clock matching time per query and method

    @property
    def kinds(self) -> pd.DataFrame:
        """Queries made per kind, and how many failed."""
        failed = self.queries["error"] != ""
        return (
            self.queries.assign(failed=failed)
            .groupby("kind", sort=False)
            .agg(queries=("query_id", "size"), failed=("failed", "sum"))
            .reset_index()
        )


def edit_of(name: str):
    """The edit a copied stretch gets: None, a paper transform or a hard edit."""
    if name == "none":
        return None
    if name in HARD_EDITS:
        edit = hard_transform(name, "partial")
        if edit.backgrounds:
            raise ValueError(f"partial_copies.edits: {name} composes backgrounds; drop it")
        return edit
    return resolve([name])[0]


@memoised("10_partial_copies")
def run(run: Run) -> PartialCopies | None:
    """Make, extract and match the partial-copy queries; None when the params ask for none."""
    settings = run.params.partial_copies
    if not settings.enabled:  # nor a frame index of an earlier run with them
        run.path("indexes", FRAMES_FILE).unlink(missing_ok=True)
        return None
    blocks = load_blocks(run)
    setup = detection_setup(run, blocks.ref_ids, query_meta(run, blocks.query_ids))
    corpus = {v.video_id: v for v in load_corpus(run.params, run.cache)}
    fillers = [corpus[h] for h in setup.held_out] + hard_backgrounds(run.params, run.cache)
    jobs = plan_queries(
        [corpus[r] for r in setup.gallery],
        fillers,
        [edit_of(e) for e in settings.edits],
        {"single": settings.single, "double": settings.double, "negative": settings.negative},
        settings.query_s,
        settings.seed,
    )
    frame = Frame(settings.width, settings.height, settings.fps)
    files = run.table("files", "artifacts").set_index("id")
    backbone = extracted_backbone(run)
    with run.client() as client:
        made, failed = run_batch(
            client,
            make_partial,
            jobs,
            [j.query_id for j in jobs],
            "partial queries",
            cached=lambda j: _cached(j, frame, run),
            cache_root=run.cache.url,
            frame=frame,
        )
        items = {q: (path, QUERY_FOLDER_FPS) for q, (path, _) in made.items()}
        features = dict(
            zip(
                items,
                features_of(run, client, items, [(backbone, "")], "partial")[(backbone, "")],
                strict=True,
            )
        )
    errors = {f.key: f.error for f in failed}
    queries = query_table(jobs, errors)
    write_table(queries, run.path("tables", "partial_queries"))
    every = load_cached(list(files.loc[blocks.ref_ids, "features"]), run.cache)
    # the query command's frame index: every reference, its threshold fitted on them all
    save_frames(
        run.path("indexes", FRAMES_FILE),
        blocks.ref_ids,
        every,
        cross_reference_threshold(every, settings.threshold_quantile),
    )
    refs = [every[blocks.ref_ids.index(r)] for r in setup.gallery]
    index = FrameIndex(setup.gallery, refs)
    threshold = cross_reference_threshold(refs, settings.threshold_quantile)
    kept = [j for j in jobs if j.query_id in features]
    truth = [m for j in kept for m in copied_segments(j.query_id, list(j.pieces))]
    gallery_pooled = np.stack([r.pooled(run.params.pooling) for r in refs])
    ref_s = {r: f.duration_s for r, f in zip(setup.gallery, refs, strict=True)}
    predictions: dict[str, list[Match]] = {m: [] for m in METHODS}
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    for job in kept:
        q = features[job.query_id]
        started = time.perf_counter()
        scores = dict(
            zip(setup.gallery, gallery_pooled @ q.pooled(run.params.pooling), strict=True)
        )
        predictions["pooled"] += pooled_matches(
            job.query_id, scores, q.duration_s, ref_s, settings.max_refs
        )
        seconds["pooled"].append(time.perf_counter() - started)
        started = time.perf_counter()
        predictions["frame"] += match_query(
            job.query_id, q, index, threshold, settings.frame_k, settings.max_refs
        )
        seconds["frame"].append(time.perf_counter() - started)
    cost_table = pd.DataFrame(
        [
            {"method": m, "ms_per_query_median": 1000 * float(np.median(t)), "queries": len(t)}
            for m, t in seconds.items()
        ]
    )
    write_table(cost_table, run.path("tables", "partial_copies_cost"))
    write_vsc(run, truth, predictions, [j.query_id for j in kept], setup.gallery)
    scored = scored_pairs(kept, truth, predictions, setup.gallery)
    pairs = pair_table(kept, truth, predictions, scored)
    write_table(pairs, run.path("tables", "partial_copies_pairs"))
    table = method_table(kept, truth, predictions, scored, settings.bootstrap, settings.seed)
    table = table.merge(detection_rates(pairs), on="method")
    write_table(table, run.path("tables", "partial_copies"), ("csv", "md"))
    bins = share_bins(pairs, seed=settings.seed)
    write_table(bins, run.path("tables", "partial_copies_bins"), ("csv", "md"))
    edits = edit_rates(pairs)
    write_table(edits, run.path("tables", "partial_copies_edits"), ("csv", "md"))
    run.save_figure(partial_detection_figure(bins), "partial_detection")
    example = next(j for j in kept if j.kind == "single")
    mine = copied_segments(example.query_id, list(example.pieces))[0]
    ref = refs[setup.gallery.index(mine.ref_id)]
    q = features[example.query_id]
    shown = [
        p
        for m in METHODS
        for p in predictions[m]
        if (p.query_id, p.ref_id) == (mine.query_id, mine.ref_id) and m == "frame"
    ]
    run.save_figure(
        partial_matrix_figure(q.frames @ ref.frames.T, q.timestamps, ref.timestamps, mine, shown),
        "partial_matrix",
    )
    run.record(
        PartialCopiesRecord(
            queries=len(jobs),
            failed=len(failed),
            negatives=sum(j.kind == "negative" for j in kept),
            copied_pairs=len(pairs),
            threshold=threshold,
            reference_frames=index.index.ntotal,
            bytes_per_frame=index.bytes_per_frame,
            methods=table.to_dict("records"),
        )
    )
    cost = {
        "ms_per_query": cost_table.set_index("method")["ms_per_query_median"].to_dict(),
        "threshold": threshold,
        "quantile": settings.threshold_quantile,
        "reference_frames": index.index.ntotal,
        "references": len(setup.gallery),
        "bytes_per_frame": index.bytes_per_frame,
    }
    return PartialCopies(
        table,
        bins,
        queries,
        threshold,
        index.bytes_per_frame,
        index.index.ntotal,
        edits,
        prose.partial_copies(table, bins, cost),
        cost_table,
    )


def _cached(job: PartialJob, frame: Frame, run: Run):
    path = partial_path(job, frame, run.cache)
    return (path, True) if run.cache.exists(path) else None


def query_table(jobs: list[PartialJob], errors: dict[str, str]) -> pd.DataFrame:
    """One row per planned query: kind, length, copied share and edits, and its error."""
    rows = []
    for j in jobs:
        seconds = sum(p.length_in_query for p in j.pieces)
        copies = [p for p in j.pieces if p.reference_id]
        rows.append(
            {
                "query_id": j.query_id,
                "kind": j.kind,
                "duration_s": round(seconds, 3),
                "copied_share": round(sum(c.length_in_query for c in copies) / seconds, 4),
                "references": " ".join(c.reference_id for c in copies),
                "edits": " ".join(c.edit.name if c.edit else "none" for c in copies),
                "error": errors.get(j.query_id, ""),
            }
        )
    return pd.DataFrame(rows)


def vsc_ids(query_ids: list[str], ref_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """VSC-style ids (``Q`` / ``R`` and six digits), as the VSC2022 tools read them."""
    return (
        {q: f"Q{i:06d}" for i, q in enumerate(query_ids)},
        {r: f"R{i:06d}" for i, r in enumerate(ref_ids)},
    )


def write_vsc(run: Run, truth, predictions, query_ids, ref_ids) -> None:
    """Ground truth and predictions in the VSC2022 matching layout, and the id map."""
    qmap, rmap = vsc_ids(query_ids, ref_ids)

    def renamed(matches):
        return [m._replace(query_id=qmap[m.query_id], ref_id=rmap[m.ref_id]) for m in matches]

    write_matches(renamed(truth), run.path("partial", "ground_truth.csv"), scored=False)
    for method, found in predictions.items():
        write_matches(renamed(found), run.path("partial", f"predictions_{method}.csv"))
    ids = [("query", v, k) for k, v in qmap.items()] + [
        ("reference", v, k) for k, v in rmap.items()
    ]
    write_table(pd.DataFrame(ids, columns=["role", "vsc_id", "id"]), run.path("partial", "ids"))


def pair_matrix(query_ids, gallery, matches) -> np.ndarray:
    """Queries × gallery, each pair's best segment score (NaN: not predicted)."""
    sims = np.full((len(query_ids), len(gallery)), np.nan)
    rows, cols = {q: i for i, q in enumerate(query_ids)}, {r: j for j, r in enumerate(gallery)}
    for (q, r), s in pair_scores(matches).items():
        sims[rows[q], cols[r]] = s
    return sims


def truth_pairs(query_ids, gallery, truth) -> np.ndarray:
    out = np.zeros((len(query_ids), len(gallery)), bool)
    rows, cols = {q: i for i, q in enumerate(query_ids)}, {r: j for j, r in enumerate(gallery)}
    for m in truth:
        out[rows[m.query_id], cols[m.ref_id]] = True
    return out


class Scored(NamedTuple):
    """One method's pair scores (queries × gallery, NaN: not predicted), which pairs are
    copies, and its cut for FPR 1 % over all non-copy pairs."""

    sims: np.ndarray
    positive: np.ndarray
    cut: float


def scored_pairs(jobs, truth, predictions, gallery) -> dict[str, Scored]:
    """Every method's :class:`Scored`, computed once for the tables that read them."""
    ids = [j.query_id for j in jobs]
    positive = truth_pairs(ids, gallery, truth)
    out = {}
    for method, found in predictions.items():
        sims = pair_matrix(ids, gallery, found)
        out[method] = Scored(
            sims, positive, threshold_at_fpr(Pairs.from_matrix(sims, positive), 0.01)
        )
    return out


def grouped(matches, key) -> dict:
    """``matches`` by ``key(match)``, in their order."""
    out: dict = {}
    for m in matches:
        out.setdefault(key(m), []).append(m)
    return out


def by_query(m: Match) -> str:
    return m.query_id


def by_pair(m: Match) -> tuple[str, str]:
    return (m.query_id, m.ref_id)


def method_table(
    jobs, truth, predictions, scored: dict[str, Scored], bootstrap: int, seed: int
) -> pd.DataFrame:
    """Per method: segment AP and pairwise μAP, with 95 % intervals over resampled queries."""
    ids = [j.query_id for j in jobs]
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(ids), len(ids)) for _ in range(bootstrap)]
    truth_of = grouped(truth, by_query)
    rows = []
    for method, found in predictions.items():
        sims, positive, cut = scored[method]
        negative = ~positive & ~np.isnan(sims)
        row = {
            "method": method,
            "queries": len(ids),
            "negatives": sum(j.kind == "negative" for j in jobs),
            "copied_pairs": int(positive.sum()),
            "segment_ap": segment_ap(truth, found).ap,
            "micro_ap": micro_ap(Pairs.from_matrix(sims, positive)),
            # the share of all non-copy pairs at or above that cut: a method that predicts few
            # pairs may stay below 1 % with every prediction counted
            "fpr_realised": float((sims[negative] >= cut).sum() / (~positive).sum()),
        }
        found_of = grouped(found, by_query)
        samples = np.array([_resampled(d, ids, truth_of, found_of, scored[method]) for d in draws])
        for k, name in enumerate(("segment_ap", "micro_ap")):
            if len(samples):
                low, high = np.quantile(samples[:, k], [0.025, 0.975])
                row[f"{name}_ci"] = f"[{low:.3g}, {high:.3g}]"
        rows.append(row)
    return pd.DataFrame(rows)


def _resampled(draw, ids, truth_of, found_of, scored: Scored) -> tuple[float, float]:
    """Segment AP and μAP of one query resample (a query drawn twice counts twice)."""
    t, f = [], []
    for n, i in enumerate(draw):
        q = ids[i]
        t += [m._replace(query_id=f"{q}#{n}") for m in truth_of.get(q, [])]
        f += [m._replace(query_id=f"{q}#{n}") for m in found_of.get(q, [])]
    resampled = Pairs.from_matrix(scored.sims[draw], scored.positive[draw])
    return segment_ap(t, f).ap, micro_ap(resampled)


def pair_table(jobs, truth, predictions, scored: dict[str, Scored]) -> pd.DataFrame:
    """Per copied pair: its share of the query, edit and kind; per method, whether its pair
    score reaches the method's FPR-1 % threshold over all non-copy pairs, and the IoU of the
    predicted segments with the truth on each axis."""
    query_s = {j.query_id: sum(p.length_in_query for p in j.pieces) for j in jobs}
    kind = {j.query_id: j.kind for j in jobs}
    edit = {
        (j.query_id, p.reference_id): p.edit.name if p.edit else "none"
        for j in jobs
        for p in j.pieces
        if p.reference_id
    }
    rows = {
        (m.query_id, m.ref_id): {
            "query_id": m.query_id,
            "ref_id": m.ref_id,
            "kind": kind[m.query_id],
            "edit": edit[(m.query_id, m.ref_id)],
            "copied_share": (m.query_end - m.query_start) / query_s[m.query_id],
        }
        for m in truth
    }
    gt = grouped(truth, by_pair)
    for method, found in predictions.items():
        scores = pair_scores(found)
        mine = grouped(found, by_pair)
        for pair, row in rows.items():
            row[f"{method}_found"] = bool(scores.get(pair, -np.inf) >= scored[method].cut)
            for axis in ("query", "ref"):
                row[f"{method}_iou_{axis}"] = _iou(mine.get(pair, []), gt[pair], axis)
    return pd.DataFrame(list(rows.values()))


def _iou(predicted: list[Match], truth: list[Match], axis: str) -> float:
    a = union(m.interval(axis) for m in predicted)
    b = union(m.interval(axis) for m in truth)
    total = length(union([*a, *b]))
    return shared(a, b) / total if total else 0.0


def detection_rates(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per method: the share of copied pairs found at its FPR-1 % threshold, and the mean
    IoU on each axis of the found ones."""
    rows = []
    for method in METHODS:
        found = pairs[f"{method}_found"]
        rows.append(
            {
                "method": method,
                "detected_at_fpr_0.01": float(found.mean()),
                "iou_query": float(pairs.loc[found, f"{method}_iou_query"].mean()),
                "iou_ref": float(pairs.loc[found, f"{method}_iou_ref"].mean()),
            }
        )
    return pd.DataFrame(rows)


def share_bins(pairs: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Detection and IoU per bin of the copied share, per method, with a 95 % interval of the
    detection rate over resampled pairs of the bin."""
    binned = pairs.assign(bin=pd.cut(pairs["copied_share"], BINS, right=False))
    rng = np.random.default_rng(seed)
    rows = []
    for interval, part in binned.groupby("bin", observed=True):
        draws = rng.integers(0, len(part), (resamples, len(part)))
        for method in METHODS:
            found = part[f"{method}_found"]
            rates = found.to_numpy()[draws].mean(axis=1)
            low, high = np.quantile(rates, [0.025, 0.975])
            rows.append(
                {
                    "share_from": interval.left,
                    "share_to": min(interval.right, 1.0),
                    "method": method,
                    "pairs": len(part),
                    "detected": float(found.mean()),
                    "detected_ci": f"[{low:.3g}, {high:.3g}]",
                    "iou_query": float(part.loc[found, f"{method}_iou_query"].mean()),
                }
            )
    return pd.DataFrame(rows)


def edit_rates(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per edit of the copied stretch: its pairs, and per method the share found and the
    mean query-axis IoU of the found ones."""
    rows = []
    for edit, part in pairs.groupby("edit"):
        row = {"edit": edit, "pairs": len(part)}
        for method in METHODS:
            found = part[f"{method}_found"]
            row[f"{method}_detected"] = float(found.mean())
            row[f"{method}_iou_query"] = float(part.loc[found, f"{method}_iou_query"].mean())
        rows.append(row)
    return pd.DataFrame(rows)
