"""What the rendered pages show of a table: trimmed columns, short headers, one format per kind
of value (exact strings, as a reader sees them)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from storyhash_core.pages import p_is, p_text, show, table1


def cells(styled) -> list[list[str]]:
    """The header and body text of a styled table, as its HTML shows them."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(styled.to_html(), "html.parser")
    return [[c.get_text(strip=True) for c in r.find_all(["th", "td"])] for r in soup.find_all("tr")]


def test_one_format_per_kind_of_value():
    df = pd.DataFrame(
        {
            "method": ["fusion", "visual"],
            "queries": [798, 798],
            "failures": [3, 0],
            "recall_at_1": [84.385, 100.0],
            "micro_ap": [0.74725, 0.97],
            "tpr_at_fpr_0.01": [0.7774, 0.9867],
            "r1_p_bonferroni": [1.5e-8, 0.25],
            "r1_significant": [True, False],
            "r1_gap_closed": [-2.0, 0.5],
        }
    )
    assert cells(show(df)) == [
        [
            "method",
            "queries",
            "failures",
            "R@1 %",
            "μAP",
            "TPR at FPR 1 %",
            "p (Bonferroni)",
            "R@1 differs",
            "R@1 gap closed",
        ],
        ["fusion", "798", "3", "84.4", "0.747", "0.777", "< 0.001", "yes", "-200%"],
        ["visual", "798", "0", "100.0", "0.970", "0.987", "0.250", "no", "50%"],
    ]


def test_a_verdict_not_run_reads_as_a_dash_not_false():
    df = pd.DataFrame({"selection": ["fusion", "cv_best"], "uap_significant": [np.nan, True]})
    assert cells(show(df))[1:] == [["fusion", "–"], ["cv_best", "yes"]]


def test_a_view_keeps_its_columns_and_a_named_index_stays_a_column():
    df = pd.DataFrame({"median_ms": [0.014], "queries": [798]}, index=["fusion"])
    assert cells(show(df.rename_axis("configuration"))) == [
        ["configuration", "median ms", "queries"],
        ["fusion", "0.014", "798"],
    ]
    wide = pd.DataFrame({"method": ["m"], "pairs": [85386], "micro_ap": [0.5], "extra": [1.0]})
    assert cells(show(wide, "detection"))[0] == ["method", "μAP"]  # the view's, in its order


def test_a_describe_table_prints_its_count_as_an_integer():
    summary = pd.DataFrame(
        {
            "step": ["decode_s", "decode_s"],
            "statistic": ["count", "mean"],
            "query": [798.0, 0.0583],
            "reference": [121.0, 0.092],
        }
    )
    assert cells(show(summary))[1:] == [
        ["decode_s", "count", "798", "121"],
        ["decode_s", "mean", "0.058", "0.092"],
    ]


def test_p_values_read_the_same_in_tables_and_prose():
    assert [p_text(p) for p in (0.0342, 0.001, 0.00099, 1.0, math.nan)] == [
        "0.034",
        "0.001",
        "< 0.001",
        "1.000",
        "–",
    ]
    assert (p_is(0.25), p_is(1e-9)) == ("p = 0.250", "p < 0.001")


def test_table1_lays_transforms_against_configurations_beside_the_paper():
    ours = pd.DataFrame(
        {
            "configuration": ["fusion", "fusion", "visual", "visual"],
            "transform": ["crop_10", "overall", "crop_10", "overall"],
            "recall_at_1": [90.0, 85.0, 100.0, 99.0],
        }
    )
    paper = ours.assign(paper_recall_at_1=[100.0, 98.6, None, None])
    laid = table1(ours, "recall_at_1", paper)
    assert list(laid.columns) == ["transform", "fusion", "fusion (paper)", "visual"]
    assert laid.values.tolist() == [["crop_10", 90.0, 100.0, 100.0], ["overall", 85.0, 98.6, 99.0]]
