"""The discussion the notebooks print: sentences built from the measured tables, and from the
paper's numbers (:class:`~storyhash_core.paper.Paper`) wherever they cite the paper."""

from __future__ import annotations

import pandas as pd

from .pages import p_is, p_text
from .paper import Paper

NO_PAPER = "no paper numbers (paper_results not found)"
BEST_SELECTION = "cv_best"  # the fusion-weight study's choice over every kind


def _row(table1: pd.DataFrame, configuration: str, transform: str = "overall") -> pd.Series | None:
    hit = table1[(table1["configuration"] == configuration) & (table1["transform"] == transform)]
    return hit.iloc[0] if len(hit) else None


def _text(value: object) -> bool:
    """True for a non-empty string (an empty CSV column reads back as NaN)."""
    return isinstance(value, str) and value != ""


def overall(table1: pd.DataFrame, paper: Paper | None) -> str:
    """Our overall R@1 per configuration against the paper's."""
    known = set(paper.overall["configuration"]) if paper else set()
    lines = []
    for configuration in dict.fromkeys(table1["configuration"]):
        r = _row(table1, configuration)
        theirs = (
            f"the paper reports {paper.overall_value(configuration, 'paper_recall_at_1'):.1f} %"
            if configuration in known
            else "no paper number"
        )
        index = (
            f", {r['recall_at_1_index']:.1f} % from the index's ranking"
            if pd.notna(r.get("recall_at_1_index")) and r["recall_at_1_index"] != r["recall_at_1"]
            else ""
        )
        lines.append(
            f"- **{configuration}**: R@1 {r['recall_at_1']:.1f} % by exact search{index} over"
            f" {int(r['queries'])} queries ({theirs}); mean similarity to the true reference"
            f" {r['sim_mean']:.3f},"
            f" margin over the best wrong reference {r['margin_mean']:.3f}"
            f" (minimum {r['margin_min']:.3f})."
        )
    return "\n".join(lines)


def resolution_note(n: int) -> str:
    """How much a single query moves R@1 at this size, for reading small differences."""
    return (
        f"With {n} queries per transform one query is {100.0 / n:.1f} points of R@1." if n else ""
    )


def _paper_confidence(paper: Paper | None) -> str:
    if paper is None:
        return f"Paper: {NO_PAPER}."
    sim = {c: paper.overall_value(c, "paper_sim_mean") for c in ("fusion", "visual_padded")}
    r1 = {c: paper.overall_value(c, "paper_recall_at_1") for c in ("fusion", "visual_padded")}
    lift = 100.0 * (sim["fusion"] / sim["visual_padded"] - 1)
    quoted = 100.0 * (1 - sim["visual_padded"] / sim["fusion"])  # the paper's own "+28 %"
    return (
        f"Paper: mean similarity {sim['visual_padded']:.3f} (CLIP) → {sim['fusion']:.3f} (fusion),"
        f' {lift:+.1f} % (its "{quoted:+.0f} %" divides the difference by the fused value), while'
        f" R@1 moves {r1['fusion'] - r1['visual_padded']:+.1f} points."
    )


def confidence(table1: pd.DataFrame, paper: Paper | None) -> str:
    """The paper's claim: action features raise similarity ("confidence"), not detection."""
    f, v = _row(table1, "fusion"), _row(table1, "visual_padded")
    if f is None or v is None:
        return (
            "The confidence claim needs both the `fusion` and `visual_padded` configurations"
            " in this run."
        )
    lift = 100.0 * (f["sim_mean"] / v["sim_mean"] - 1)
    wrong_lift = f["best_wrong_mean"] - v["best_wrong_mean"]
    verdict = (
        "so fusion raises the scores of wrong references at least as much as those of true"
        " ones: higher similarity here is not higher confidence"
        if f["margin_mean"] <= v["margin_mean"]
        else "so the true matches do separate better from the best wrong ones with fusion"
    )
    return (
        f"{_paper_confidence(paper)} Here: mean similarity {v['sim_mean']:.3f} (visual) →"
        f" {f['sim_mean']:.3f} (fusion), {lift:+.1f} %; R@1 {v['recall_at_1']:.1f} →"
        f" {f['recall_at_1']:.1f} % ({f['recall_at_1'] - v['recall_at_1']:+.1f} points). The best"
        f" wrong reference moves {v['best_wrong_mean']:.3f} → {f['best_wrong_mean']:.3f}"
        f" ({wrong_lift:+.3f}) and the mean margin {v['margin_mean']:.3f} →"
        f" {f['margin_mean']:.3f}, {verdict}."
    )


def flips(table: pd.DataFrame, paper: Paper | None) -> str:
    """The paper's claim: a vertical-flip bias (flip_v R@1 below flip_h)."""
    columns = ["recall_at_1_flip_h", "recall_at_1_flip_v"]
    if not len(table) or table[columns].isna().any().any():
        return (
            "This run does not have both flip_h and flip_v queries, so the flip comparison"
            " is not made."
        )
    parts = [
        f"{r.configuration}: flip_h {r.recall_at_1_flip_h:.1f} % vs flip_v"
        f" {r.recall_at_1_flip_v:.1f} % (gap {r.recall_gap:+.1f} points; mean similarity"
        f" {r.sim_mean_flip_h:.3f} vs {r.sim_mean_flip_v:.3f})"
        for r in table.itertuples()
    ]
    gaps = (table["sim_mean_flip_h"] - table["sim_mean_flip_v"]).round(3)
    reading = (
        "In every configuration flip_v lowers the similarity more than flip_h: the"
        " orientation bias of a backbone trained with horizontal-flip augmentation only,"
        " visible even where R@1 survives."
        if (gaps > 0).all()
        else "flip_v does not lower the similarity more than flip_h in every configuration here."
    )
    theirs = (
        f"flip_v {paper.recall_at_1('visual_padded', 'flip_v'):.1f} % vs flip_h"
        f" {paper.recall_at_1('visual_padded', 'flip_h'):.1f} %"
        if paper
        else NO_PAPER
    )
    return f"Paper (CLIP): {theirs}. Here: " + "; ".join(parts) + ". " + reading


def rotation(table1: pd.DataFrame, sweep: pd.DataFrame | None, paper: Paper | None) -> str:
    """The paper's claim: rotation is the one case where action features help detection."""
    parts = []
    for transform in ("rotate_5", "rotate_10"):
        f, v = _row(table1, "fusion", transform), _row(table1, "visual_padded", transform)
        if f is not None and v is not None:
            parts.append(
                f"{transform}: fusion {f['recall_at_1']:.1f} % vs visual {v['recall_at_1']:.1f} %"
            )
    theirs = (
        "; ".join(
            f"{t}: fusion {paper.recall_at_1('fusion', t):.1f} % vs CLIP-only"
            f" {paper.recall_at_1('visual_padded', t):.1f} %"
            for t in ("rotate_5", "rotate_10")
            if t in set(paper.table1["transform"])
        )
        if paper
        else NO_PAPER
    )
    text = (
        f"Paper: rotation is the only transform where fusion beats CLIP-only, {theirs}. Here: "
        + ("; ".join(parts) if parts else "no rotation queries in this run")
        + "."
    )
    if sweep is not None and len(sweep):
        wide = sweep.pivot(index="angle", columns="configuration", values="recall_at_1")
        worst = "; ".join(
            f"{c} {wide[c].min():.1f} % at {wide[c].idxmin():g}°" for c in wide.columns
        )
        text += f" Over the sweep, the lowest R@1 per configuration: {worst}."
    return text


def _verdict(row: pd.Series) -> str:
    significant = "significant" if row["r1_significant"] else "not significant"
    r1 = (
        f"R@1 {row['r1_a']:.1f} vs {row['r1_b']:.1f} % (only {row['a']} right:"
        f" {int(row['only_a_correct'])} queries, only {row['b']}: {int(row['only_b_correct'])},"
        f" from {int(row['sources_disagreeing'])} sources; paired test over sources"
        f" {p_is(row['r1_p'])}, {p_text(row['r1_p_bonferroni'])} after Bonferroni: {significant}"
        " at 5 %)"
    )
    if _text(row.get("uap_diff_ci")):
        excludes = "excludes" if row["uap_significant"] else "includes"
        uap = (
            f"R@1 difference {row['r1_diff_ci']} points, μAP difference {row['uap_diff_ci']}"
            f" (Bonferroni-level source-bootstrap intervals; the μAP one {excludes} 0)"
        )
    else:
        uap = "differences not resampled (detection.bootstrap is 0)"
    return f"- **{row['a']} vs {row['b']}**: {r1}; {uap}."


def significance(tests: pd.DataFrame) -> str:
    """Every "A beats B" of a comparison table (one family), with its paired test."""
    return (
        "\n".join(_verdict(r) for _, r in tests.iterrows())
        if len(tests)
        else "No pair of methods to compare."
    )


def detection(table: pd.DataFrame, record) -> str:
    """Detection (μAP, TPR at low FPR) next to retrieval (R@1), per method; ``record`` is the
    stage's :class:`~storyhash_core.stages.records.DetectionRecord`."""
    if not len(table):
        return "No method was evaluated."
    lines = [
        f"- **{r['method']}**: R@1 {r['recall_at_1']:.1f} % {r['recall_at_1_ci']}, μAP"
        f" {r['micro_ap']:.3f} {r['micro_ap_ci']}, ROC AUC {r['roc_auc']:.3f}, TPR"
        f" {100 * r['tpr_at_fpr_0.01']:.1f} % at FPR 1 % and {100 * r['tpr_at_fpr_0.001']:.1f} %"
        f" at FPR 0.1 % ({int(r['pairs'])} pairs scored)"
        for _, r in table.iterrows()
    ]
    first = table.iloc[0]
    intervals = (
        f"intervals are 95 % bootstrap over the {record.sources} source videos"
        f" ({record.bootstrap:,} resamples, gallery and held-out sources resampled apart)"
        if _text(first["micro_ap_ci"])
        else "no bootstrap intervals (detection.bootstrap is 0)"
    )
    head = (
        f"{int(first['queries'])} queries, {int(first['distractors'])} of them distractors (their"
        f" source held out of the gallery), {int(first['positives'])} true copies; {intervals}."
    )
    return head + "\n" + "\n".join(lines)


def splits(spread: pd.DataFrame, record) -> str:
    """How much the choice of held-out sources moves each method, and the operating threshold
    chosen on one half of the sources applied to the other."""
    if record.splits < 2:
        return "One distractor split (detection.splits is 1): no spread to report."
    lines = [
        f"- **{r['method']}**: R@1 {r['recall_at_1_min']:.1f}–{r['recall_at_1_max']:.1f} %"
        f" (s.d. {r['recall_at_1_std']:.2f}), μAP {r['micro_ap_min']:.3f}–{r['micro_ap_max']:.3f}"
        f" (s.d. {r['micro_ap_std']:.4f}); the FPR-1 % threshold of one half of the sources"
        f" gives {100 * r['tpr_transferred_0.01_mean']:.1f} % TPR at"
        f" {100 * r['fpr_transferred_0.01_mean']:.2f} % FPR on the other half"
        f" (in-sample TPR {100 * r['tpr_at_fpr_0.01_mean']:.1f} %)"
        for _, r in spread.iterrows()
    ]
    return (
        f"Over {record.splits} distractor splits (seeds {record.seed} to"
        f" {record.seed + record.splits - 1}; the tables above are the first), min–max:\n"
        + "\n".join(lines)
    )


def _flip_reading(delta: float) -> str:
    if delta != delta:
        return "not measured"
    if abs(delta) < 0.001:
        return "about the same: what the flipped copies gain, the raised non-copies take back"
    if delta < 0:
        return (
            "a net false-positive cost: the maximum over variants raises non-copies more"
            " than it helps"
        )
    return "the maximum over variants also raises non-copies, but copies gain more"


def flip_mitigation(table: pd.DataFrame, costs: dict, baseline: str = "visual_padded") -> str:
    """How much of the flip_v gap each flip augmentation closes, and at what cost."""
    rows = table.set_index("method")
    if baseline not in rows.index or "visual_flip_tta_query" not in rows.index:
        return "This run has no flip augmentation (mitigation.flips is empty)."
    b = rows.loc[baseline]
    parts = [
        f"{baseline}: flip_h vs flip_v mean similarity {b['sim_mean_flip_h']:.3f} vs"
        f" {b['sim_mean_flip_v']:.3f}, R@1 {b['recall_at_1_flip_h']:.1f} vs"
        f" {b['recall_at_1_flip_v']:.1f} %, overall μAP {b['micro_ap_overall']:.3f}"
    ]
    nan = float("nan")
    base_s = costs.get("decode_s", nan) + costs.get("embed_s", nan)
    factor = costs.get("gallery_factor_flip_aug_reference")
    query_cost = (
        f"{costs.get('variants_embed_s', nan):.2f} s more per query on top of {base_s:.2f} s"
        " (decode + embed, medians), and one search per variant"
    )
    gallery_cost = f"a {factor:g}× gallery" if factor else "a larger gallery"
    for method, cost in (
        ("visual_flip_tta_query", query_cost),
        ("visual_flip_aug_reference", gallery_cost),
    ):
        r = rows.loc[method]
        delta = r["micro_ap_overall"] - b["micro_ap_overall"]
        closed = (
            f"{100 * r['sim_gap_closed']:.0f} % of the similarity gap closed"
            if r["sim_gap_closed"] == r["sim_gap_closed"]
            else "no flip_h/flip_v gap to close"
        )
        parts.append(
            f"{method}: flip_v similarity {r['sim_mean_flip_v']:.3f} ({closed}), flip_v R@1"
            f" {r['recall_at_1_flip_v']:.1f} %, overall μAP {r['micro_ap_overall']:.3f}"
            f" ({delta:+.3f}: {_flip_reading(delta)}); cost: {cost}"
        )
    return "\n".join(f"- {p}" for p in parts)


def rotation_mitigation(table: pd.DataFrame, groups: pd.DataFrame, tests: pd.DataFrame) -> str:
    """R@1 and μAP per angle with and without rotated query variants, and the gain at the
    variants' own angles apart from the gain between them."""
    sweep = table[table["transform"] != "overall"]
    wide = sweep.pivot(index="angle", columns="method", values="recall_at_1")
    if "visual_rotation_tta" not in wide:
        return "No rotation mitigation in this run."
    cells = ", ".join(
        f"{a:g}°: {r['visual_padded']:.1f} → {r['visual_rotation_tta']:.1f} %"
        for a, r in wide.iterrows()
    )
    overall_rows = table[table["transform"] == "overall"].set_index("method")
    text = (
        f"R@1 without → with rotated query variants: {cells}. Over the sweep, μAP"
        f" {overall_rows.loc['visual_padded', 'micro_ap']:.3f} →"
        f" {overall_rows.loc['visual_rotation_tta', 'micro_ap']:.3f}."
    )
    for _, t in tests.iterrows():
        mine = groups[groups["angles"] == t["angles"]].set_index("method")
        b, a = mine.loc[t["b"]], mine.loc[t["a"]]
        angles = ", ".join(f"{a.removeprefix('rotate_')}°" for a in t["transforms"].split())
        difference = f", difference {t['uap_diff_ci']}" if _text(t.get("uap_diff_ci")) else ""
        text += (
            f" {t['angles'].capitalize()} ({angles}): μAP {b['micro_ap']:.3f}"
            f" {b['micro_ap_ci']} → {a['micro_ap']:.3f} {a['micro_ap_ci']}{difference}; R@1"
            f" {t['r1_b']:.1f} → {t['r1_a']:.1f} % ({p_is(t['r1_p_bonferroni'])} after"
            " Bonferroni over the family)."
        )
    return text


def flip_tests(tests: pd.DataFrame) -> str:
    """The flip bias as paired tests: is flip_v worse than flip_h on the same sources?"""
    if not len(tests):
        return "No flip_h / flip_v pairs in this run."
    return "\n".join(
        f"- **{r.configuration}** ({r.sources} sources): R@1 only flip_h right {r.only_a_correct},"
        f" only flip_v {r.only_b_correct} (exact McNemar {p_is(r.r1_p)},"
        f" {p_text(r.r1_p_bonferroni)} after Bonferroni over the configurations); similarity"
        f" flip_h − flip_v median {r.sim_diff_median:+.3f} (exact Wilcoxon {p_is(r.wilcoxon_p)},"
        f" {p_text(r.wilcoxon_p_bonferroni)} after Bonferroni)"
        for r in tests.itertuples()
    )


def failures(misses: pd.DataFrame) -> str:
    """Where the misses of one configuration fall, and which references attract them."""
    if not len(misses):
        return "No failures."
    per_transform = ", ".join(
        f"{t} {n}" for t, n in misses.groupby("transform", sort=False).size().items()
    )
    hubs = ", ".join(f"{r} ({n}×)" for r, n in misses["top1_id"].value_counts().head(3).items())
    return (
        f"Failures by transform: {per_transform}. Most often retrieved instead: {hubs}. A"
        " reference that attracts many failures of one transform is a hub for that distortion."
    )


def all_queries(n: int) -> str:
    """Which queries an R@1 over every query counts."""
    return (
        f"R@1 here is over all {n} queries, each with its reference in the gallery (the paper's"
        " protocol); notebook 04's detection section and notebook 08 count only the queries"
        " whose source stays in the gallery."
    )


def distractor_queries(overall: pd.DataFrame) -> str:
    """Which queries the detection tables' R@1 counts."""
    row = overall.iloc[0]
    matched = int(row["queries"] - row["distractors"])
    return (
        f"R@1 here is over the {matched} queries whose source is in the gallery; the"
        f" {int(row['distractors'])} queries of held-out sources (no match) enter μAP, AUC and the"
        f" TPR at a fixed FPR as non-copies. Of {int(row['queries'])} queries in all."
    )


def hard_suite(
    overall: pd.DataFrame,
    significance: pd.DataFrame,
    tests: pd.DataFrame,
    price: pd.DataFrame,
    record,
) -> str:
    """What the hard suite says: the visual baseline's hardest edits, which methods beat it
    over the suite and on which edits (after Bonferroni), and what the region descriptors
    cost; ``tests`` are the per-edit tests, ``record`` the stage's HardSuiteRecord."""
    if not len(overall):
        return "No hard suite in this run."
    by = overall.set_index("method")
    base = by.loc["visual_padded"] if "visual_padded" in by.index else by.iloc[0]
    wins = significance[
        significance["r1_significant"] & (significance["r1_a"] > significance["r1_b"])
    ]
    losses = significance[
        significance["r1_significant"] & (significance["r1_a"] < significance["r1_b"])
    ]
    best = overall.loc[overall["recall_at_1"].idxmax()]
    lines = [
        f"Over the {len(record.edits)} hard edits the visual baseline finds"
        f" {base['recall_at_1']:.1f} % {base['recall_at_1_ci']} at rank 1 (μAP"
        f" {base['micro_ap']:.3f}); the best method is **{best['method']}** with"
        f" {best['recall_at_1']:.1f} % {best['recall_at_1_ci']} (μAP {best['micro_ap']:.3f}).",
        "Better than the visual baseline over the suite after Bonferroni: "
        + (
            ", ".join(
                f"{r.a} (R@1 +{r.r1_a - r.r1_b:.1f} points, {r.r1_diff_ci}; μAP {r.uap_diff_ci})"
                for r in wins.itertuples()
            )
            or "none"
        )
        + "; worse: "
        + (", ".join(f"{r.a} ({r.r1_a - r.r1_b:.1f})" for r in losses.itertuples()) or "none")
        + ".",
    ]
    gains = tests[tests["r1_a"] > tests["r1_b"]]
    if len(tests):
        found = ", ".join(
            f"{r.a} on {r.edit} ({r.r1_a:.1f} vs {r.r1_b:.1f} %, {p_is(r.r1_p_bonferroni)})"
            for r in gains.itertuples()
        )
        worse = tests[tests["r1_a"] < tests["r1_b"]]["a"].value_counts()
        lines.append(
            "Per edit (one family over every edit and pair), gains over the visual baseline: "
            + (found or "none")
            + "; losses: "
            + (", ".join(f"{m} on {n} edits" for m, n in worse.items()) or "none")
            + "."
        )
    regions = price.set_index("method")
    if "visual_regions" in regions.index:
        r, v = regions.loc["visual_regions"], regions.loc["visual_padded"]
        lines.append(
            f"The region descriptors embed {int(r['embeddings_per_frame'])} images per frame"
            f" instead of 1 (+{record.costs['visual_regions_extra_embed_s']:.2f} s per query,"
            f" median, against {record.costs['embed_s']:.2f} s for the full frame); at the visual"
            f" baseline's query-level threshold for FPR 1 % ({v['threshold']:.3f}) they call"
            f" {100 * r['no_match_called_copies']:.1f} % of the queries without a match copies"
            f" (visual {100 * v['no_match_called_copies']:.1f} %), whose best score rises from"
            f" {v['no_match_best_mean']:.3f} to {r['no_match_best_mean']:.3f} on average."
        )
    return "\n\n".join(lines)


def _weighting(row: pd.Series) -> str:
    return f"{row['kind']} / {row['scaling']} / w_a {row['w_a']:g} / w_g {row['w_g']:g}"


CRITERION_NAMES = {"micro_ap": "μAP", "recall_at_1": "R@1"}


def fusion_weights(
    heldout: pd.DataFrame,
    folds: pd.DataFrame,
    transforms: pd.DataFrame,
    tests: pd.DataFrame,
    calibration: pd.DataFrame,
    criterion: str,
) -> str:
    """The answer of the fusion-weight study: what cross-validation chose, what it does held
    out (overall, on rotations), whether any weighting makes the confidence better, and the
    oracle-track bound when there is one."""
    flow = heldout[heldout["tracks"] == "flow"].set_index("selection")
    if not len(flow):
        return "No fusion-weight study in this run."
    n_folds = folds.loc[folds["tracks"] == "flow", "fold"].nunique()
    lines = [
        f"Weights chosen by {n_folds}-fold cross-validation over query sources on"
        f" {CRITERION_NAMES.get(criterion, criterion)}"
        " (a fold's choice never sees its queries); every number below is held out."
    ]
    for selection, r in flow.iterrows():
        picked = folds[(folds["tracks"] == "flow") & (folds["selection"] == selection)]
        choices = picked.apply(_weighting, axis=1).value_counts()
        chose = "; ".join(f"{c} ({n} of {n_folds} folds)" for c, n in choices.items())
        tested = isinstance(r.get("r1_diff_ci"), str)
        same_pairs = " on the same scored pairs" if r["baseline"] != "visual_padded" else ""
        lines.append(
            f"- **{selection}** ({f'chose {chose}' if tested else 'the paper’s fixed weights'}):"
            f" R@1 {r['recall_at_1']:.1f} % {r['recall_at_1_ci']} against"
            f" {r['visual_recall_at_1']:.1f} % for visual alone{same_pairs}"
            + (
                f", difference {r['r1_diff_ci']} points ({p_text(r['r1_p_bonferroni'])} after"
                " Bonferroni)"
                if tested
                else ""
            )
            + f"; μAP {r['micro_ap']:.3f} against {r['visual_micro_ap']:.3f}"
            + (f", difference {r['uap_diff_ci']}" if tested else "")
            + f"; TPR at FPR 1 % {100 * r['tpr_at_fpr_0.01']:.1f} against"
            f" {100 * r['visual_tpr_at_fpr_0.01']:.1f} %."
        )
    rotated = transforms[transforms["suite"] == "rotation"]
    if len(rotated):
        r1 = (
            rotated.groupby("method")["recall_at_1"]
            .mean()
            .reindex([BEST_SELECTION, "fusion", "visual_padded"])
        )
        angles = set(rotated["transform"])
        found = tests[tests["transform"].isin(angles) & tests["r1_significant"]]
        lines.append(
            f"- **Rotation sweep** (the paper's claim; {len(angles)} angles, the same queries"
            f" per angle): R@1 {r1[BEST_SELECTION]:.1f} % with the cross-validated weights,"
            f" {r1['fusion']:.1f} % with the paper's fusion, {r1['visual_padded']:.1f} % for"
            " visual alone; significant after Bonferroni:"
            f" {len(found[found['r1_a'] > found['r1_b']])} angle(s) better,"
            f" {len(found[found['r1_a'] < found['r1_b']])} worse."
        )
    hard = transforms[transforms["suite"] == "hard"]
    if len(hard):
        r1 = hard.groupby("method")["recall_at_1"].mean()
        edits = set(hard["transform"])
        better = tests[tests["transform"].isin(edits) & tests["r1_significant"]]
        lines.append(
            f"- **Hard suite** ({len(edits)} edits): mean R@1 over the edits"
            f" {r1[BEST_SELECTION]:.1f} % with the cross-validated weights,"
            f" {r1['visual_padded']:.1f} % for visual alone; significant after Bonferroni:"
            f" {len(better[better['r1_a'] > better['r1_b']])} edit(s) better,"
            f" {len(better[better['r1_a'] < better['r1_b']])} worse."
        )
    iso = calibration[calibration["calibrator"] == "isotonic"].set_index("method")
    raw = calibration[calibration["calibrator"] == "raw"].set_index("method")
    baselines = flow["baseline"].to_dict()
    pairs = [("fusion", "visual_padded")]
    if BEST_SELECTION in baselines:
        pairs.append((BEST_SELECTION, baselines[BEST_SELECTION]))
    lines.append(
        "- **Confidence** (each against visual alone on the same pairs): "
        + "; ".join(
            f"{m} ROC AUC {iso.loc[m, 'roc_auc']:.4f} against {iso.loc[b, 'roc_auc']:.4f},"
            f" d′ {iso.loc[m, 'd_prime']:.2f} against {iso.loc[b, 'd_prime']:.2f}, top-hit"
            f" Brier calibrated (isotonic) {iso.loc[m, 'brier']:.3f} against"
            f" {iso.loc[b, 'brier']:.3f}, ECE {iso.loc[m, 'ece']:.3f} against"
            f" {iso.loc[b, 'ece']:.3f} (raw similarity as probability: Brier"
            f" {raw.loc[m, 'brier']:.3f} against {raw.loc[b, 'brier']:.3f})"
            for m, b in pairs
            if m in iso.index and b in iso.index
        )
        + "."
    )
    oracle = heldout[heldout["tracks"] == "oracle"].set_index("selection")
    if BEST_SELECTION in oracle.index:
        r = oracle.loc[BEST_SELECTION]
        lines.append(
            f"- **Oracle tracks** (the true object tracks of the synthetic corpus): R@1"
            f" {r['recall_at_1']:.1f} % {r['recall_at_1_ci']} against {r['visual_recall_at_1']:.1f}"
            f" % (difference {r['r1_diff_ci']}), μAP {r['micro_ap']:.3f} against"
            f" {r['visual_micro_ap']:.3f} (difference {r['uap_diff_ci']})."
        )
    return "\n".join(lines)


def significant_tests(tests: pd.DataFrame) -> str:
    """What a page says above the significant rows of a family of paired tests."""
    found = int(tests["r1_significant"].sum())
    if not found:
        return f"None of the {len(tests)} tests is significant after Bonferroni."
    verb = "is" if found == 1 else "are"
    return f"{found} of the {len(tests)} tests {verb} significant after Bonferroni:"


def partial_copies(table: pd.DataFrame, bins: pd.DataFrame, cost: dict) -> str:
    """What notebook 10's numbers say: each method's segment AP, μAP and detection, how
    detection falls with the copied share, and what the frame index costs."""
    lines = []
    for _, r in table.iterrows():
        lines.append(
            f"- **{r['method']}**: segment AP {r['segment_ap']:.3f} {r.get('segment_ap_ci', '')},"
            f" pairwise μAP {r['micro_ap']:.3f} {r.get('micro_ap_ci', '')}; at its FPR-1 %"
            f" threshold it finds {100 * r['detected_at_fpr_0.01']:.1f} % of the"
            f" {r['copied_pairs']} copied pairs, mean IoU of the found ones"
            f" {r['iou_query']:.2f} on the query axis and {r['iou_ref']:.2f} on the reference."
        )
    for method, part in bins.groupby("method", sort=False):
        steps = ", ".join(
            f"{100 * b['share_from']:.0f}–{100 * b['share_to']:.0f} %: {100 * b['detected']:.0f} %"
            f" of {b['pairs']}"
            for _, b in part.iterrows()
        )
        lines.append(f"- **{method}** by copied share of the query: {steps}.")
    lines.append(
        f"- **frame**'s chains pass only frame similarities of at least {cost['threshold']:.3f},"
        f" the {100 * cost['quantile']:g}th percentile of the similarities between frames of"
        " different gallery references."
    )
    per_ref = cost["reference_frames"] / cost["references"]
    at_scale = 40_000 * per_ref * cost["bytes_per_frame"] / 1e9
    timing = ", ".join(f"{m} {ms:.1f} ms" for m, ms in cost["ms_per_query"].items())
    lines.append(
        f"- **Cost**: matching takes (median per query, after extraction) {timing}; the frame"
        f" index holds {cost['reference_frames']} reference frames"
        f" ({per_ref:.1f} per reference at 2 fps), {cost['bytes_per_frame']} bytes each;"
        f" 40 000 references of this length would take {at_scale:.2f} GB in an exact index"
        " (longer references scale it linearly; a compressed index such as IVF-PQ, notebook 03,"
        " cuts it by the code size)."
    )
    return "\n".join(lines)
