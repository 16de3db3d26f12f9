"""Confidence, measured: separation of the scores, and a score calibrated to P(copy).

The paper reads "confidence" off raw similarity. A similarity is a confidence only if it
separates copies from non-copies and means a probability. So:

- :func:`separation`: over every scored (query, reference) pair, ROC AUC and d′ (the
  difference of the mean scores of true copies and of other pairs over their pooled standard
  deviation);
- the decision a user reads is about a query's best match ("this upload is a copy of Y"), so
  calibration is of each query's top hit (:func:`~storyhash_core.detection.top_hits`: positive
  when the top hit is the true reference): :func:`cross_fitted` fits Platt scaling (a
  logistic curve in the score) or isotonic regression on the other folds' queries and predicts
  each fold's; ``raw`` takes the similarity, clipped to [0, 1], as the probability;
- :func:`reliability`: predicted against observed frequency in equal-width bins, the Brier
  score and the expected calibration error (ECE, the bins' count-weighted gap).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .detection import Pairs, roc_auc, top_hits

CALIBRATORS = ("raw", "platt", "isotonic")
BINS = 10


def d_prime(pairs: Pairs) -> float:
    """(mean of positives − mean of negatives) / sqrt of their mean variance (scored pairs)."""
    pos, neg = pairs.scores[pairs.positive], pairs.scores[~pairs.positive]
    if len(pos) < 2 or len(neg) < 2:
        return float("nan")
    spread = np.sqrt((pos.var(ddof=1) + neg.var(ddof=1)) / 2)
    return float((pos.mean() - neg.mean()) / spread) if spread > 0 else float("nan")


def separation(sims: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """ROC AUC and d′ of every pair, and the ROC AUC of the queries' top hits."""
    pairs = Pairs.from_matrix(sims, truth)
    return {
        "roc_auc": roc_auc(pairs),
        "d_prime": d_prime(pairs),
        "top_hit_roc_auc": roc_auc(top_hits(sims, truth)),
    }


def fit_predict(kind: str, train_x, train_y, test_x) -> np.ndarray:
    """P(copy) of ``test_x`` from a calibrator fitted on (``train_x``, ``train_y``)."""
    test_x = np.asarray(test_x, np.float64)
    if kind == "raw":
        return np.clip(test_x, 0.0, 1.0)
    if len(set(np.asarray(train_y).tolist())) < 2:  # one class only: its frequency
        return np.full(len(test_x), float(np.mean(train_y)))
    if kind == "platt":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1e6).fit(np.asarray(train_x)[:, None], train_y)
        return model.predict_proba(test_x[:, None])[:, 1]
    if kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        return model.fit(train_x, train_y).predict(test_x)
    raise ValueError(f"unknown calibrator {kind!r} (one of {', '.join(CALIBRATORS)})")


def cross_fitted(
    sims: np.ndarray, truth: np.ndarray, fold: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Every query's top-hit score calibrated by a ``kind`` fitted without its fold, and
    whether the top hit is the true reference."""
    hits = top_hits(sims, truth)
    probability = np.empty(len(sims))
    for f in np.unique(fold):
        test = fold == f
        probability[test] = fit_predict(
            kind, hits.scores[~test], hits.positive[~test], hits.scores[test]
        )
    return probability, hits.positive


def reliability(probability: np.ndarray, outcome: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """Per equal-width bin of the predicted probability: its count, mean prediction and the
    observed frequency of copies (empty bins dropped)."""
    which = np.minimum((np.asarray(probability) * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": which, "predicted": probability, "observed": outcome})
    table = frame.groupby("bin").agg(
        count=("predicted", "size"), predicted=("predicted", "mean"), observed=("observed", "mean")
    )
    table.insert(0, "low", table.index / bins)
    return table.reset_index(drop=True)


def calibration_scores(probability: np.ndarray, outcome: np.ndarray) -> dict[str, float]:
    """Brier score and ECE of held-out predictions."""
    outcome = np.asarray(outcome, np.float64)
    bins = reliability(probability, outcome)
    gap = (bins["predicted"] - bins["observed"]).abs()
    return {
        "brier": float(np.mean((probability - outcome) ** 2)),
        "ece": float((gap * bins["count"]).sum() / len(outcome)),
    }
