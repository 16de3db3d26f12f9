"""Reading the tables: the ablation summary, failures, flips, and the discussion of each
paper claim in numbers (pure pandas; text is built from the measured values)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SUMMARY_COLUMNS = ["queries", "recall_at_1", "recall_at_3", "sim_mean", "sim_min", "sim_max",
                   "best_wrong_mean", "margin_mean", "margin_min"]


def paper_overall(paper_json: Path) -> pd.DataFrame:
    """The paper's overall numbers per configuration (its README table)."""
    data = json.loads(Path(paper_json).read_text())["readme_overall"]
    names = {"fusion": "fusion", "clip_only": "visual_padded", "action_only": "action_padded"}
    return pd.DataFrame([{"configuration": names[k], "paper_recall_at_1": v["recall_at_1"],
                          "paper_recall_at_3": v["recall_at_3"], "paper_sim_mean": v["avg_sim"],
                          "paper_sim_min": v["min_sim"], "paper_sim_max": v["max_sim"]} for k, v in data.items()])


def ablation_table(table1: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Overall row per configuration, with the paper's numbers beside ours when given."""
    overall = table1[table1["transform"] == "overall"][["configuration", *SUMMARY_COLUMNS]].reset_index(drop=True)
    return overall.merge(paper, on="configuration", how="left") if paper is not None else overall


def failures(rows: pd.DataFrame, configuration: str, transform_order: list[str]) -> pd.DataFrame:
    """Every query of ``configuration`` whose true reference is not ranked first."""
    miss = rows[(rows["configuration"] == configuration) & ~(rows["rank"] == 1)].copy()
    order = {t: i for i, t in enumerate(transform_order)}
    miss = miss.sort_values(["transform", "margin"], key=lambda c: c.map(order) if c.name == "transform" else c)
    return miss[["transform", "query_id", "reference_id", "rank", "top1_id", "top1_sim", "sim_true",
                 "best_wrong_id", "best_wrong_sim", "margin"]].reset_index(drop=True)


def flip_table(table1: pd.DataFrame) -> pd.DataFrame:
    """R@1 and mean similarity under flip_h and flip_v, per configuration."""
    flips = table1[table1["transform"].isin(["flip_h", "flip_v"])]
    wide = flips.pivot(index="configuration", columns="transform", values=["recall_at_1", "sim_mean", "margin_mean"])
    wide.columns = [f"{metric}_{t}" for metric, t in wide.columns]
    wide = wide.reindex(columns=[f"{m}_{t}" for m in ("recall_at_1", "sim_mean", "margin_mean")
                                 for t in ("flip_h", "flip_v")])  # a run without one of them shows NaN
    wide["recall_gap"] = wide["recall_at_1_flip_h"] - wide["recall_at_1_flip_v"]
    order = list(dict.fromkeys(table1["configuration"]))
    return wide.loc[[c for c in order if c in wide.index]].reset_index()


def _row(table1: pd.DataFrame, configuration: str, transform: str = "overall") -> pd.Series | None:
    hit = table1[(table1["configuration"] == configuration) & (table1["transform"] == transform)]
    return hit.iloc[0] if len(hit) else None


def discuss_overall(table1: pd.DataFrame, paper: pd.DataFrame) -> str:
    """Our overall R@1 per configuration against the paper's."""
    lines = []
    for ours in dict.fromkeys(table1["configuration"]):
        r = _row(table1, ours)
        p = paper[paper["configuration"] == ours]
        paper_txt = f"the paper reports {p['paper_recall_at_1'].iloc[0]:.1f} %" if len(p) else "no paper number"
        lines.append(f"- **{ours}**: R@1 {r['recall_at_1']:.1f} % over {int(r['queries'])} queries ({paper_txt}); "
                     f"mean similarity to the true reference {r['sim_mean']:.3f}, margin over the best wrong "
                     f"reference {r['margin_mean']:.3f} (minimum {r['margin_min']:.3f}).")
    return "\n".join(lines)


def discuss_confidence(table1: pd.DataFrame) -> str:
    """The paper's claim: action features raise similarity ("confidence") without changing detection."""
    f, v = _row(table1, "fusion"), _row(table1, "visual_padded")
    if f is None or v is None:
        return "The confidence claim needs both the `fusion` and `visual_padded` configurations in this run."
    lift = 100.0 * (f["sim_mean"] / v["sim_mean"] - 1)
    wrong_lift = f["best_wrong_mean"] - v["best_wrong_mean"]
    verdict = ("so fusion raises the scores of wrong references at least as much as those of true ones: higher "
               "similarity here is not higher confidence" if f["margin_mean"] <= v["margin_mean"] else
               "so the true matches do separate better from the best wrong ones with fusion")
    return (f"Paper: fusion lifts the mean similarity by 28 % (0.975 vs 0.700) while R@1 moves +0.4 points. "
            f"Here: mean similarity {v['sim_mean']:.3f} (visual) → {f['sim_mean']:.3f} (fusion), {lift:+.1f} %; "
            f"R@1 {v['recall_at_1']:.1f} → {f['recall_at_1']:.1f} % ({f['recall_at_1'] - v['recall_at_1']:+.1f} points). "
            f"The best wrong reference moves {v['best_wrong_mean']:.3f} → {f['best_wrong_mean']:.3f} "
            f"({wrong_lift:+.3f}) and the mean margin {v['margin_mean']:.3f} → {f['margin_mean']:.3f}, {verdict}.")


def discuss_flips(flips: pd.DataFrame) -> str:
    """The paper's claim: a vertical-flip bias (flip_v R@1 84.3 % vs flip_h 100 %)."""
    if flips[["recall_at_1_flip_h", "recall_at_1_flip_v"]].isna().any().any() or not len(flips):
        return "This run does not have both flip_h and flip_v queries, so the flip comparison is not made."
    parts = [f"{r.configuration}: flip_h {r.recall_at_1_flip_h:.1f} % vs flip_v {r.recall_at_1_flip_v:.1f} % "
             f"(gap {r.recall_gap:+.1f} points; mean similarity {r.sim_mean_flip_h:.3f} vs {r.sim_mean_flip_v:.3f})"
             for r in flips.itertuples()]
    gaps = (flips["sim_mean_flip_h"] - flips["sim_mean_flip_v"]).round(3)
    reading = ("In every configuration flip_v lowers the similarity more than flip_h: the orientation bias of a "
               "backbone trained with horizontal-flip augmentation only, visible even where R@1 survives."
               if (gaps > 0).all() else
               "flip_v does not lower the similarity more than flip_h in every configuration here.")
    return "Paper (CLIP): flip_v 84.3 % vs flip_h 100 %. Here: " + "; ".join(parts) + ". " + reading


def discuss_rotation(table1: pd.DataFrame, sweep: pd.DataFrame | None = None) -> str:
    """The paper's claim: rotation is the one case where action features help detection."""
    parts = []
    for t in ("rotate_5", "rotate_10"):
        f, v = _row(table1, "fusion", t), _row(table1, "visual_padded", t)
        if f is not None and v is not None:
            parts.append(f"{t}: fusion {f['recall_at_1']:.1f} % vs visual {v['recall_at_1']:.1f} %")
    text = "Paper: rotation is the only transform where fusion beats CLIP-only (98.9 % vs 96.6 %). Here: " + \
        ("; ".join(parts) if parts else "no rotation queries in this run") + "."
    if sweep is not None and len(sweep):
        wide = sweep.pivot(index="angle", columns="configuration", values="recall_at_1")
        worst = {c: f"{wide[c].min():.1f} % at {wide[c].idxmin():g}°" for c in wide.columns}
        text += " Over the sweep, the lowest R@1 per configuration: " + \
            "; ".join(f"{c} {w}" for c, w in worst.items()) + "."
    return text


def resolution_note(n: int) -> str:
    """How much a single query moves R@1 at this size, for reading small differences."""
    return f"With {n} queries per transform one query is {100.0 / n:.1f} points of R@1." if n else ""



def rank_label(rank: float, k: int) -> str:
    """A rank for display: the number, or '> k' when the true reference was not retrieved."""
    return f"{int(rank)}" if rank == rank else f"> {k}"


def _text(value: object) -> bool:
    """True for a non-empty string (an empty CSV column reads back as NaN)."""
    return isinstance(value, str) and value != ""


def _verdict(row: pd.Series) -> str:
    r1 = (f"R@1 {row['r1_a']:.1f} vs {row['r1_b']:.1f} % (only {row['a']} right: {int(row['only_a_correct'])}, "
          f"only {row['b']}: {int(row['only_b_correct'])}; McNemar p = {row['mcnemar_p']:.2g}, "
          f"{row['mcnemar_p_bonferroni']:.2g} after Bonferroni: "
          f"{'significant' if row['r1_significant'] else 'not significant'} at 5 %)")
    uap = (f"μAP difference {row['uap_diff_ci']} (Bonferroni-corrected bootstrap interval; "
           f"{'excludes' if row['uap_significant'] else 'includes'} 0)" if _text(row["uap_diff_ci"]) else
           "μAP difference not tested (no bootstrap resamples)")
    return f"- **{row['a']} vs {row['b']}**: {r1}; {uap}."


def discuss_significance(tests: pd.DataFrame) -> str:
    """Every "A beats B" of a comparison table, with its paired test."""
    return "\n".join(_verdict(r) for _, r in tests.iterrows()) if len(tests) else "No pair of methods to compare."


def discuss_detection(overall: pd.DataFrame) -> str:
    """Detection (μAP, TPR at low FPR) next to retrieval (R@1), per method."""
    if not len(overall):
        return "No method was evaluated."
    lines = [f"- **{r['method']}**: R@1 {r['recall_at_1']:.1f} % {r['recall_at_1_ci']}, μAP {r['micro_ap']:.3f} "
             f"{r['micro_ap_ci']}, ROC AUC {r['roc_auc']:.3f}, TPR {100 * r['tpr_at_fpr_0.01']:.1f} % at FPR 1 % "
             f"and {100 * r['tpr_at_fpr_0.001']:.1f} % at FPR 0.1 % ({int(r['pairs'])} pairs scored)"
             for _, r in overall.iterrows()]
    n = overall.iloc[0]
    intervals = ("intervals are bootstrap 95 % over queries" if _text(n["micro_ap_ci"]) else
                 "no bootstrap intervals (detection.bootstrap is 0)")
    head = (f"{int(n['queries'])} queries, {int(n['distractors'])} of them distractors (their source held out of the "
            f"gallery), {int(n['positives'])} true copies; {intervals}.")
    return head + "\n" + "\n".join(lines)


def discuss_flip_mitigation(flips: pd.DataFrame, costs: dict, baseline: str = "visual_padded") -> str:
    """How much of the flip_v gap each flip augmentation closes, and at what cost."""
    rows = flips.set_index("method")
    if baseline not in rows.index or "visual_flip_tta_query" not in rows.index:
        return "This run has no flip augmentation (mitigation.flips is empty)."
    b = rows.loc[baseline]
    parts = [f"{baseline}: flip_h vs flip_v mean similarity {b['sim_mean_flip_h']:.3f} vs {b['sim_mean_flip_v']:.3f}, "
             f"R@1 {b['recall_at_1_flip_h']:.1f} vs {b['recall_at_1_flip_v']:.1f} %, overall μAP {b['micro_ap_overall']:.3f}"]
    base_s = costs.get("decode_s", float("nan")) + costs.get("embed_s", float("nan"))
    factor = costs.get("gallery_factor_flip_aug_reference")
    for m, cost in (("visual_flip_tta_query", f"{costs.get('variants_embed_s', float('nan')):.2f} s more per query "
                     f"on top of {base_s:.2f} s (decode + embed, medians), and one search per variant"),
                    ("visual_flip_aug_reference", f"a {factor}× gallery" if factor else "a larger gallery")):
        r = rows.loc[m]
        delta = r["micro_ap_overall"] - b["micro_ap_overall"]
        reading = ("not measured" if delta != delta else
                   "about the same: what the flipped copies gain, the raised non-copies take back"
                   if abs(delta) < 0.001 else
                   "a net false-positive cost: the maximum over variants raises non-copies more than it helps"
                   if delta < 0 else "the maximum over variants also raises non-copies, but copies gain more")
        closed = (f"{100 * r['sim_gap_closed']:.0f} % of the similarity gap closed" if r["sim_gap_closed"] ==
                  r["sim_gap_closed"] else "no flip_h/flip_v gap to close")
        parts.append(f"{m}: flip_v similarity {r['sim_mean_flip_v']:.3f} ({closed}), flip_v R@1 "
                     f"{r['recall_at_1_flip_v']:.1f} %, overall μAP {r['micro_ap_overall']:.3f} ({delta:+.3f}: "
                     f"{reading}); cost: {cost}")
    return "\n".join(f"- {p}" for p in parts)


def discuss_rotation_mitigation(table: pd.DataFrame) -> str:
    """R@1 and μAP per angle with and without rotated query variants."""
    sweep = table[table["transform"] != "overall"]
    wide = sweep.pivot(index="angle", columns="method", values="recall_at_1")
    if "visual_rotation_tta" not in wide:
        return "No rotation mitigation in this run."
    cells = ", ".join(f"{a:g}°: {r['visual_padded']:.1f} → {r['visual_rotation_tta']:.1f} %" for a, r in wide.iterrows())
    overall = table[table["transform"] == "overall"].set_index("method")
    return (f"R@1 without → with rotated query variants: {cells}. Over the sweep, μAP "
            f"{overall.loc['visual_padded', 'micro_ap']:.3f} → {overall.loc['visual_rotation_tta', 'micro_ap']:.3f}.")


def flip_tests(rows: pd.DataFrame) -> pd.DataFrame:
    """flip_h vs flip_v of the same source videos, per configuration: McNemar on R@1 and the
    Wilcoxon signed-rank test on the similarity to the true reference (both paired by source)."""
    from scipy.stats import wilcoxon

    from .significance import mcnemar

    out = []
    for configuration, part in rows[rows["transform"].isin(["flip_h", "flip_v"])].groupby("configuration", sort=False):
        wide = part.pivot(index="reference_id", columns="transform", values=["rank", "sim_true"])
        if not {"flip_h", "flip_v"} <= set(wide["rank"].columns):
            continue
        wide = wide[wide["sim_true"].notna().all(axis=1)]  # both copies queried; rank NaN = not retrieved, a miss
        hits = wide["rank"] <= 1
        test = mcnemar(hits["flip_h"].to_numpy(), hits["flip_v"].to_numpy())
        diff = wide["sim_true"]["flip_h"] - wide["sim_true"]["flip_v"]
        out.append({"configuration": configuration, "sources": len(wide), "only_flip_h_found": test["only_a"],
                    "only_flip_v_found": test["only_b"], "mcnemar_p": test["p_value"],
                    "sim_diff_median": float(diff.median()),
                    "wilcoxon_p": float(wilcoxon(diff).pvalue) if (diff != 0).any() else 1.0})
    return pd.DataFrame(out)


def discuss_flip_tests(tests: pd.DataFrame) -> str:
    """The flip bias as paired tests: is flip_v worse than flip_h on the same sources?"""
    if not len(tests):
        return "No flip_h / flip_v pairs in this run."
    return "\n".join(
        f"- **{r.configuration}** ({r.sources} sources): R@1 only flip_h right {r.only_flip_h_found}, only flip_v "
        f"{r.only_flip_v_found} (McNemar p = {r.mcnemar_p:.2g}); similarity flip_h − flip_v median "
        f"{r.sim_diff_median:+.3f} (Wilcoxon p = {r.wilcoxon_p:.2g})" for r in tests.itertuples())


def paired_tests(rows: pd.DataFrame, a: str, b: str, by: str) -> pd.DataFrame:
    """Configuration ``a`` vs ``b`` on the same queries, per value of ``by`` (e.g. the angle):
    R@1 of both and McNemar's exact test (a query not retrieved is a miss), Bonferroni-corrected
    over the values of ``by``."""
    from .significance import mcnemar

    out = []
    for value, part in rows[rows["configuration"].isin([a, b])].groupby(by, sort=True):
        hits = part.assign(hit=part["rank"] <= 1).pivot(index="query_id", columns="configuration", values="hit")
        if not {a, b} <= set(hits.columns):
            continue
        test = mcnemar(hits[a].to_numpy(bool), hits[b].to_numpy(bool))
        out.append({by: value, "queries": len(hits), f"r1_{a}": 100 * hits[a].mean(), f"r1_{b}": 100 * hits[b].mean(),
                    f"only_{a}": test["only_a"], f"only_{b}": test["only_b"], "mcnemar_p": test["p_value"]})
    out = pd.DataFrame(out)
    if len(out):  # Bonferroni over the groups tested
        out["mcnemar_p_bonferroni"] = (out["mcnemar_p"] * len(out)).clip(upper=1.0)
    return out
