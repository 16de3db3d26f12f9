"""Weighting the motion blocks against the visual one, chosen by cross-validation over sources.

A :class:`Weighting` is one way to let the action and graph blocks into the score:

- ``early``: the cosine of ``[visual, w_a·action, w_g·graph]`` (the paper's fused vector is
  ``w_a = w_g = 1`` with min-max scaling);
- ``late``: ``(cos_visual + w_a·cos_action + w_g·cos_graph) / (1 + w_a + w_g)``, each cosine
  of its own block (the division changes no ranking of one weighting; it keeps every kind's
  scores in [-1, 1], so that the held-out rows of different choices share one threshold);
- ``rerank``: the late score on the visual top-k only (the other pairs unscored, NaN).

The action block is scaled first (``minmax``, ``zscore`` or ``rank``,
:data:`~storyhash_core.motion.SCALERS`), fitted on the gallery's references. Every
weighting's matrix comes from the blocks' inner products (:class:`BlockProducts`), so a grid
of hundreds costs a few element-wise operations each.

Selection is honest: :func:`source_folds` splits the query *sources* into k folds (every edit
of a source in one fold), and :func:`cross_validate` chooses, for each fold, the weighting
with the best criterion on the other folds' queries, and scores the fold with it. The
held-out matrix (:func:`held_out`) takes each query's row from the weighting chosen without
its fold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from .motion import SCALERS

KINDS = ("early", "late", "rerank")
CRITERIA = ("micro_ap", "recall_at_1")
MEASURES = ["recall_at_1", "micro_ap", "tpr_at_fpr_0.01"]


class Weighting(NamedTuple):
    """One candidate: the fusion kind, the action block's scaling and the two block weights."""

    kind: str
    scaling: str
    action: float
    graph: float

    @property
    def name(self) -> str:
        return f"{self.kind} {self.scaling} w_a={self.action:g} w_g={self.graph:g}"


def grid(
    kinds: Sequence[str],
    scalings: Sequence[str],
    action_weights: Sequence[float],
    graph_weights: Sequence[float],
) -> list[Weighting]:
    """Every combination, in this order (the tie-break of :func:`choose` after simplicity)."""
    return [
        Weighting(k, s, float(a), float(g))
        for k in kinds
        for s in scalings
        for a in action_weights
        for g in graph_weights
    ]


class BlockProducts:
    """Inner products of every block between queries and gallery, and the squared norms,
    from which every weighting's similarity matrix follows."""

    def __init__(self, queries: dict[str, np.ndarray], gallery: dict[str, np.ndarray]) -> None:
        self.inner = {
            b: np.asarray(queries[b], np.float64) @ np.asarray(gallery[b], np.float64).T
            for b in queries
        }
        self.query_sq = {
            b: (np.asarray(x, np.float64) ** 2).sum(axis=1) for b, x in queries.items()
        }
        self.gallery_sq = {
            b: (np.asarray(x, np.float64) ** 2).sum(axis=1) for b, x in gallery.items()
        }

    def cosine(self, block: str) -> np.ndarray:
        """Cosine of one block (0 where either vector is all zeros)."""
        norms = np.sqrt(np.outer(self.query_sq[block], self.gallery_sq[block]))
        return np.divide(
            self.inner[block], norms, out=np.zeros_like(self.inner[block]), where=norms > 0
        )

    def early(self, w_action: float, w_graph: float) -> np.ndarray:
        """Cosine of the concatenation ``[visual, w_a·action, w_g·graph]``."""
        weights = {"visual": 1.0, "action": w_action, "graph": w_graph}
        used = [b for b in weights if weights[b] and b in self.inner]
        dot = sum(weights[b] ** 2 * self.inner[b] for b in used)
        q = sum(weights[b] ** 2 * self.query_sq[b] for b in used)
        g = sum(weights[b] ** 2 * self.gallery_sq[b] for b in used)
        norms = np.sqrt(np.outer(q, g))
        return np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)

    def late(self, w_action: float, w_graph: float) -> np.ndarray:
        """``(cos_visual + w_a·cos_action + w_g·cos_graph) / (1 + w_a + w_g)``: a weighted
        mean of cosines, in [-1, 1] like the early scores, so that rows of different
        weightings can share one threshold."""
        out = self.cosine("visual")
        for block, w in (("action", w_action), ("graph", w_graph)):
            if w:
                out = out + w * self.cosine(block)
        return out / (1.0 + w_action + w_graph)


def scaled_blocks(
    blocks: dict[str, np.ndarray], refs_raw: np.ndarray, scaling: str
) -> dict[str, np.ndarray]:
    """``blocks`` (visual, action_raw, graph) with the action block scaled by ``scaling``
    fitted on ``refs_raw`` (the gallery's raw action features)."""
    scaler = SCALERS[scaling].fit(refs_raw)
    return {"visual": blocks["visual"], "graph": blocks["graph"]} | {
        "action": scaler.apply(blocks["action_raw"])
    }


def top_k_mask(sims: np.ndarray, k: int) -> np.ndarray:
    """True at each row's ``k`` highest scores (ties broken by column order)."""
    k = min(k, sims.shape[1])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    mask = np.zeros(sims.shape, bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


class Similarities:
    """Every weighting's queries × gallery matrix for one set of queries and one gallery."""

    def __init__(
        self,
        queries: dict[str, np.ndarray],
        gallery: dict[str, np.ndarray],
        scalings: Sequence[str],
        rerank_k: int,
    ) -> None:
        self.products = {
            s: BlockProducts(
                scaled_blocks(queries, gallery["action_raw"], s),
                scaled_blocks(gallery, gallery["action_raw"], s),
            )
            for s in scalings
        }
        visual = next(iter(self.products.values())).cosine("visual")
        self.visual = visual
        self.candidates = top_k_mask(visual, rerank_k)

    def __call__(self, w: Weighting) -> np.ndarray:
        products = self.products[w.scaling]
        if w.kind == "early":
            return products.early(w.action, w.graph)
        late = products.late(w.action, w.graph)
        if w.kind == "late":
            return late
        if w.kind == "rerank":
            return np.where(self.candidates, late, np.nan)
        raise ValueError(f"unknown fusion kind {w.kind!r} (one of {', '.join(KINDS)})")


def source_folds(
    sources: Sequence[str], held_out: Sequence[str], k: int, seed: int
) -> dict[str, int]:
    """Fold (0..k-1) of every source: a seeded shuffle of the sorted sources, dealt round
    robin within each stratum (the gallery's sources and the held-out ones), so every fold
    has matched and distractor queries in the study's proportion. Fewer sources than ``k``
    give fewer, non-empty folds."""
    held = set(held_out)
    rng = np.random.default_rng(seed)
    folds: dict[str, int] = {}
    offset = 0
    for stratum in (sorted(set(sources) - held), sorted(set(sources) & held)):
        order = [stratum[i] for i in rng.permutation(len(stratum))]
        for i, source in enumerate(order):
            folds[source] = (offset + i) % k
        offset += len(stratum)
    used = sorted(set(folds.values()))
    return {s: used.index(f) for s, f in folds.items()}


class SortedPairs:
    """One matrix's scored pairs sorted once, highest first, so that the measures of any
    subset of its queries (:meth:`measures`) cost a pass, not a sort."""

    def __init__(self, sims: np.ndarray, truth: np.ndarray) -> None:
        scored = ~np.isnan(sims)
        row = np.broadcast_to(np.arange(len(sims))[:, None], sims.shape)[scored]
        order = np.argsort(-sims[scored], kind="stable")
        self.scores, self.positive, self.row = sims[scored][order], truth[scored][order], row[order]
        self.truth = truth
        filled = np.where(scored, sims, -np.inf)
        true = np.where(truth, filled, -np.inf).max(axis=1)
        self.hit = np.isfinite(true) & (true > np.where(truth, -np.inf, filled).max(axis=1))

    def measures(self, rows: np.ndarray) -> dict[str, float]:
        """R@1 (%, over the queries with a match; ties count against the true reference),
        μAP and TPR at FPR 1 % of the queries where ``rows`` is True (as
        :func:`~storyhash_core.detection.micro_ap` and
        :func:`~storyhash_core.detection.tpr_at_fpr` on their sub-matrix)."""
        truth = self.truth[rows]
        matched = truth.any(axis=1)
        n_pos, n_neg = int(truth.sum()), int((~truth).sum())
        keep = rows[self.row]
        scores, positive = self.scores[keep], self.positive[keep]
        last = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1] if len(scores) else []
        tp, fp = np.cumsum(positive)[last], np.cumsum(~positive)[last]
        if n_pos:
            precision = tp / np.maximum(tp + fp, 1)
            uap = float(np.sum(np.diff(tp / n_pos, prepend=0.0) * precision))
            fpr, tpr = np.r_[0.0, fp / max(n_neg, 1)], np.r_[0.0, tp / n_pos]
            tpr_1 = float(tpr[fpr <= 0.01].max())
        else:
            uap = tpr_1 = float("nan")
        return {
            "recall_at_1": 100.0 * self.hit[rows][matched].mean() if matched.any() else np.nan,
            "micro_ap": uap,
            "tpr_at_fpr_0.01": tpr_1,
        }


class CrossValidation(NamedTuple):
    """Every candidate's pooled and per-fold measures, and the choice made for each fold."""

    grid: pd.DataFrame  # one row per candidate: kind, scaling, w_a, w_g, measures, fold spread
    chosen: pd.DataFrame  # one row per (selection, fold): the weighting, train and test measures


def choose(train: pd.DataFrame, criterion: str) -> int:
    """Index (into ``train``) of the best ``criterion``; ties go to the smaller total weight,
    then to the earlier row."""
    score = train[criterion].round(12)
    best = train[score == score.max()]
    return int((best["w_a"] + best["w_g"]).idxmin())


def cross_validate(
    candidates: list[Weighting],
    matrix: Callable[[Weighting], np.ndarray],
    truth: np.ndarray,
    fold: np.ndarray,
    criterion: str,
    selections: dict[str, Sequence[int]],
) -> CrossValidation:
    """Score every candidate on every fold and on every fold's complement, and for each
    selection (a name and the candidates it may choose from, by index) pick per fold the best
    of them on the complement (:func:`choose`), then score it on the fold."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r} (one of {', '.join(CRITERIA)})")
    folds = sorted(set(fold.tolist()))
    rows, train_rows, test_rows = [], [], []
    for i, w in enumerate(candidates):
        pairs = SortedPairs(matrix(w), truth)
        label = {"candidate": i, "kind": w.kind, "scaling": w.scaling}
        label |= {"w_a": w.action, "w_g": w.graph}
        per_fold = [pairs.measures(fold == f) for f in folds]
        spread = pd.DataFrame(per_fold)
        row = label | pairs.measures(np.ones(len(fold), bool))
        row |= {f"{m}_fold_std": float(spread[m].std(ddof=1)) for m in MEASURES}
        rows.append(row)
        for f, test in zip(folds, per_fold, strict=True):
            train_rows.append(label | {"fold": f} | pairs.measures(fold != f))
            test_rows.append(label | {"fold": f} | test)
    train, test = pd.DataFrame(train_rows), pd.DataFrame(test_rows)
    chosen = []
    for selection, allowed in selections.items():
        for f in folds:
            pool = train[(train["fold"] == f) & train["candidate"].isin(allowed)]
            best = pool.loc[choose(pool, criterion)]
            tested = test[(test["fold"] == f) & (test["candidate"] == best["candidate"])].iloc[0]
            chosen.append(
                {"selection": selection, "fold": f, "queries": int((fold == f).sum())}
                | {k: best[k] for k in ("candidate", "kind", "scaling", "w_a", "w_g")}
                | {f"train_{m}": best[m] for m in MEASURES}
                | {m: tested[m] for m in MEASURES}
            )
    return CrossValidation(pd.DataFrame(rows), pd.DataFrame(chosen))


def of_kinds(candidates: Sequence[Weighting], kinds: Sequence[str]) -> list[int]:
    """The indices of the candidates of ``kinds``: a selection of :func:`cross_validate`."""
    return [i for i, w in enumerate(candidates) if w.kind in kinds]


def held_out(
    chosen: pd.DataFrame,
    selection: str,
    candidates: list[Weighting],
    matrix: Callable[[Weighting], np.ndarray],
    fold: np.ndarray,
) -> np.ndarray:
    """The matrix whose rows of fold f come from the weighting ``selection`` chose without f."""
    mine = chosen[chosen["selection"] == selection]
    out = None
    for f, candidate in zip(mine["fold"], mine["candidate"], strict=True):
        sims = matrix(candidates[int(candidate)])
        out = np.full(sims.shape, np.nan) if out is None else out
        out[fold == f] = sims[fold == f]
    if out is None or not np.isin(fold, mine["fold"]).all():
        raise ValueError(f"selection {selection!r} has no choice for some queries' folds")
    return out
