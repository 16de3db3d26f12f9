"""What a reader of the rendered pages sees: tables trimmed to the columns the page discusses,
with short headers and one number format per kind of value. The CSVs under ``tables/`` keep
every column at full precision; these are views of them.

- Recall and other percentages: one decimal. Counts: integers. Similarities, μAP, AUC, TPR and
  FPR (fractions): three decimals.
- p-values, everywhere (tables and prose): three decimals, or ``< 0.001``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

P_FLOOR = 0.001

# short headers; spaces let a narrow column's header wrap
LABELS = {
    "recall_at_1": "R@1 %",
    "recall_at_3": "R@3 %",
    "recall_at_1_index": "R@1 % (HNSW)",
    "recall_at_3_index": "R@3 % (HNSW)",
    "recall_at_1_ci": "R@1 95 % CI",
    "micro_ap": "μAP",
    "micro_ap_ci": "μAP 95 % CI",
    "roc_auc": "ROC AUC",
    "tpr_at_fpr_0.01": "TPR at FPR 1 %",
    "tpr_at_fpr_0.001": "TPR at FPR 0.1 %",
    "sim_mean": "sim. to true",
    "sim_min": "min sim.",
    "sim_max": "max sim.",
    "best_wrong_mean": "sim. to best wrong",
    "margin_mean": "margin",
    "margin_min": "min margin",
    "distractors": "no-match queries",
    "positives": "true pairs",
    "segment_ap": "segment AP",
    "segment_ap_ci": "segment AP 95 % CI",
    "detected_at_fpr_0.01": "found at FPR 1 %",
    "fpr_realised": "FPR realised",
    "iou_query": "IoU query",
    "iou_ref": "IoU ref",
    "copied_pairs": "copied pairs",
    "d_prime": "d′",
    "top_hit_roc_auc": "top-hit ROC AUC",
    "brier": "Brier",
    "ece": "ECE",
    "train_micro_ap": "μAP on training folds",
    "visual_recall_at_1": "visual R@1 %",
    "visual_micro_ap": "visual μAP",
    "visual_tpr_at_fpr_0.01": "visual TPR at FPR 1 %",
    "r1_a": "R@1 % of a",
    "r1_b": "R@1 % of b",
    "only_a_correct": "only a right",
    "only_b_correct": "only b right",
    "sources_disagreeing": "sources differing",
    "r1_p": "p",
    "r1_p_bonferroni": "p (Bonferroni)",
    "r1_significant": "R@1 differs",
    "r1_diff_ci": "ΔR@1 CI",
    "uap_diff_ci": "ΔμAP CI",
    "uap_significant": "μAP differs",
    "wilcoxon_p": "Wilcoxon p",
    "wilcoxon_p_bonferroni": "Wilcoxon p (Bonferroni)",
    "sim_diff_median": "median sim. difference",
    "paper_recall_at_1": "paper R@1 %",
    "paper_recall_at_3": "paper R@3 %",
    "paper_sim_mean": "paper sim.",
    "tpr_transferred_0.01": "TPR at the other half's FPR-1 % threshold,",
    "fpr_transferred_0.01": "FPR there,",
    "recall_gap": "R@1 gap",
    "r1_gap": "R@1 gap",
    "r1_gap_closed": "R@1 gap closed",
    "sim_gap": "sim. gap",
    "sim_gap_closed": "sim. gap closed",
    "embeddings_per_frame": "images embedded per frame",
    "no_match_best_mean": "best score of no-match queries",
    "threshold": "visual threshold (FPR 1 %)",
    "tpr_at_visual_threshold": "TPR there",
    "fpr_at_visual_threshold": "FPR there",
    "no_match_called_copies": "no-match queries called copies",
}

# the columns a page shows of each kind of table
VIEWS = {
    "detection": [
        "method",
        "queries",
        "distractors",
        "recall_at_1",
        "recall_at_1_ci",
        "micro_ap",
        "micro_ap_ci",
        "roc_auc",
        "tpr_at_fpr_0.01",
        "tpr_at_fpr_0.001",
    ],
    "similarity": ["method", "recall_at_3", "sim_mean", "best_wrong_mean", "margin_mean"],
    "paired": [
        "transform",
        "edit",
        "angle",
        "angles",
        "configuration",
        "a",
        "b",
        "r1_a",
        "r1_b",
        "only_a_correct",
        "only_b_correct",
        "r1_p_bonferroni",
        "r1_significant",
        "r1_diff_ci",
        "uap_diff_ci",
        "uap_significant",
        "wilcoxon_p_bonferroni",
    ],
    "splits": [
        "method",
        "recall_at_1_min",
        "recall_at_1_max",
        "micro_ap_min",
        "micro_ap_max",
        "tpr_transferred_0.01_mean",
        "fpr_transferred_0.01_mean",
    ],
    "ablation": [
        "configuration",
        "queries",
        "recall_at_1",
        "recall_at_1_index",
        "paper_recall_at_1",
        "sim_mean",
        "paper_sim_mean",
        "best_wrong_mean",
        "margin_mean",
    ],
    "fusion_heldout": [
        "tracks",
        "selection",
        "baseline",
        "recall_at_1",
        "recall_at_1_ci",
        "visual_recall_at_1",
        "r1_p_bonferroni",
        "micro_ap",
        "micro_ap_ci",
        "visual_micro_ap",
        "uap_diff_ci",
        "tpr_at_fpr_0.01",
        "visual_tpr_at_fpr_0.01",
    ],
    "fusion_folds": [
        "tracks",
        "selection",
        "fold",
        "queries",
        "kind",
        "scaling",
        "w_a",
        "w_g",
        "train_micro_ap",
        "recall_at_1",
        "micro_ap",
    ],
    "fusion_hindsight": [
        "tracks",
        "kind",
        "scaling",
        "w_a",
        "w_g",
        "recall_at_1",
        "micro_ap",
        "tpr_at_fpr_0.01",
    ],
    "fusion_calibration": [
        "method",
        "calibrator",
        "roc_auc",
        "d_prime",
        "top_hit_roc_auc",
        "brier",
        "ece",
    ],
    "failures": ["transform", "query_id", "rank", "top1_id", "top1_sim", "sim_true", "margin"],
    "hard_edit": [
        "transform",
        "method",
        "recall_at_1",
        "recall_at_1_ci",
        "recall_at_3",
        "sim_mean",
        "best_wrong_mean",
        "micro_ap",
        "tpr_at_fpr_0.01",
    ],
    "flip_mitigation": [
        "method",
        "recall_at_1_flip_h",
        "recall_at_1_flip_v",
        "r1_gap",
        "r1_gap_closed",
        "sim_mean_flip_h",
        "sim_mean_flip_v",
        "sim_gap_closed",
        "micro_ap_flip_v",
    ],
    "rotation_mitigation": [
        "method",
        "transform",
        "recall_at_1",
        "sim_mean",
        "margin_mean",
        "micro_ap",
        "tpr_at_fpr_0.01",
    ],
    "groups": [
        "angles",
        "method",
        "recall_at_1",
        "recall_at_1_ci",
        "micro_ap",
        "micro_ap_ci",
        "tpr_at_fpr_0.01",
    ],
}


def p_text(p: float) -> str:
    """A p-value as tables print it: ``0.034``, ``< 0.001``, or ``–`` when there is none."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"< {P_FLOOR:g}" if p < P_FLOOR else f"{p:.3f}"


def p_is(p: float) -> str:
    """A p-value as prose states it: ``p = 0.034`` or ``p < 0.001``."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _label(column: str) -> str:
    if column in LABELS:
        return LABELS[column]
    for stem in sorted(LABELS, key=len, reverse=True):  # recall_at_1_flip_h -> R@1 % flip h
        if column.startswith(stem + "_"):
            return f"{LABELS[stem]} {column[len(stem) + 1 :].replace('_', ' ')}"
    return column.replace("_", " ")


def _formatter(column: str, values: pd.Series, number: str | None):
    name = column.lower()
    if name in ("p", "r1_p") or name.endswith("_p") or "_p_" in name:
        return p_text
    present = values.dropna()
    if pd.api.types.is_bool_dtype(values) or (
        len(present) and present.map(lambda v: isinstance(v, bool | np.bool_)).all()
    ):  # a test's verdict, missing (–) where it was not run
        return lambda v: "yes" if v else "no"
    if not pd.api.types.is_numeric_dtype(values):
        return None
    if number:
        return number
    if name.endswith("_closed"):  # a share of a gap
        return "{:.0%}"
    if name.startswith(("recall", "r1", "paper_recall", "visual_recall", "train_recall")):
        return "{:.1f}"
    numbers = values.dropna()
    if pd.api.types.is_integer_dtype(values) or (
        len(numbers) and (numbers == numbers.round()).all() and numbers.abs().max() >= 10
    ):
        return "{:.0f}"
    return "{:.3f}"


def show(
    df: pd.DataFrame, view: str | list[str] | None = None, number: str | None = None
) -> Styler:
    """``df`` as a page shows it: the columns of ``view`` (a name in :data:`VIEWS` or a list;
    those it lacks are skipped), short headers, no index, the formats above, or ``number``
    (e.g. ``"{:.1f}"``) for every number but p-values (a table of one kind of value)."""
    if view is not None:
        wanted = VIEWS[view] if isinstance(view, str) else view
        df = df[[c for c in wanted if c in df.columns]]
    df = df.reset_index(drop=isinstance(df.index, pd.RangeIndex))  # a named index is a column
    labels = {c: _label(str(c)) for c in df.columns}
    formats = {
        labels[c]: f for c in df.columns if (f := _formatter(str(c), df[c], number)) is not None
    }
    labelled = df.rename(columns=labels)
    styled = labelled.style.format(formats, na_rep="–")
    text = labelled.select_dtypes(exclude="number").astype(str)
    counts = labelled.index[text.eq("count").any(axis=1)]  # the count row of a describe() table
    numeric = [c for c in labelled.columns if pd.api.types.is_float_dtype(labelled[c])]
    if len(counts) and numeric:
        styled = styled.format("{:.0f}", subset=pd.IndexSlice[counts, numeric], na_rep="–")
    return (
        styled.hide(axis="index")
        .set_table_attributes('class="dataframe"')
        .set_table_styles([{"selector": "th", "props": "white-space: normal;"}])  # headers wrap
    )


def table1(table: pd.DataFrame, value: str = "recall_at_1", paper: pd.DataFrame | None = None):
    """Table 1 as the paper lays it out: one row per transform, one column per configuration
    (``value``), and the paper's number beside each configuration it reports."""
    order = list(dict.fromkeys(table["transform"]))
    configurations = list(dict.fromkeys(table["configuration"]))
    ours = table.pivot(index="transform", columns="configuration", values=value)
    out = pd.DataFrame(index=order)
    theirs = None
    if paper is not None and f"paper_{value}" in paper:
        theirs = paper.pivot(index="transform", columns="configuration", values=f"paper_{value}")
    for configuration in configurations:
        out[configuration] = ours[configuration]
        if theirs is not None and configuration in theirs and theirs[configuration].notna().any():
            out[f"{configuration} (paper)"] = theirs[configuration]
    return out.rename_axis("transform").reset_index()
