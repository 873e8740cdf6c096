"""Routing collapse: the dearest model's share of spend per policy and budget, in every report."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
from PIL import Image

from mmr_gym.collapse import collapse_frame, collapse_markdown, dearest_model, plot_collapse
from mmr_gym.metrics import pool_spend_shares, spend_shares
from mmr_gym.report import baseline_comparison, price_sources_markdown, write_report
from tests._results import BEST_SINGLE, RATIOS, hand_result

COSTS = {"cheap": 0.1, "mid": 0.5, "dear": 2.0}


def _with_spend(name: str, dear_shares: list[float]) -> object:
    """A result whose points spend ``share`` on the dearest model and the rest on the cheapest."""
    result = hand_result(name, [0.4, 0.5, 0.6])
    points = [
        replace(
            p, spend_by_model={"cheap": 1 - share, "mid": 0.0, "dear": share} if share is not None else {}
        )
        for p, share in zip(result.points, dear_shares, strict=True)
    ]
    return replace(result, points=points, model_mean_cost=dict(COSTS))


def test_collapse_frame_reads_the_dearest_models_share() -> None:
    collapsing = _with_spend("Collapsing", [0.2, 0.9, 1.0])
    assert dearest_model(collapsing) == "dear"
    frame = collapse_frame([collapsing, _with_spend("Thrifty", [0.0, 0.1, 0.25])])
    assert frame["name"].tolist() == ["Collapsing"] * 3 + ["Thrifty"] * 3
    assert frame["budget_ratio"].tolist() == list(RATIOS) * 2
    assert frame["dearest_share"].tolist() == [0.2, 0.9, 1.0, 0.0, 0.1, 0.25]
    assert set(frame["dearest_model"]) == {"dear"}


def test_results_without_spend_records_are_skipped() -> None:
    plain = hand_result("Plain", [0.4, 0.5, 0.6])  # the evaluator filled neither field
    no_costs = replace(_with_spend("NoCosts", [0.1, 0.2, 0.3]), model_mean_cost={})
    threshold = replace(_with_spend("Router", [0.1, 0.2, 0.3]), protocol="threshold (per query)")
    no_spend = _with_spend("NoSpend", [None, None, None])  # costs recorded, spend not
    assert collapse_frame([plain, no_costs, threshold, no_spend]).empty
    assert "no routing-collapse figure" in collapse_markdown([plain])
    assert plot_collapse([plain], "unused.png") is None
    # A point that spent nothing has no share: NaN in the frame, "n/a" in the table.
    partial = _with_spend("Partial", [None, 0.5, 1.0])
    assert math.isnan(collapse_frame([partial])["dearest_share"].iloc[0])
    assert "| Partial | n/a | 50.0% | 100.0% |" in collapse_markdown([partial])


def test_collapse_markdown_is_a_table_of_percentages() -> None:
    text = collapse_markdown(
        [_with_spend("Collapsing", [0.2, 0.9, 1.0]), _with_spend("Thrifty", [0.0, 0.1, 0.25])]
    )
    assert "dearest model (dear, the highest mean cost per query" in text
    assert "| policy | 0.1 | 0.5 | 1 |" in text
    assert "| Collapsing | 20.0% | 90.0% | 100.0% |" in text
    assert "| Thrifty | 0.0% | 10.0% | 25.0% |" in text


def test_every_report_has_the_collapse_section_and_figure(tmp_path) -> None:
    results = [hand_result("Random", [0.3, 0.35, 0.4]), _with_spend("Collapsing", [0.2, 0.9, 1.0])]
    files = write_report(results, tmp_path, title="t")
    markdown = files["markdown"].read_text()
    assert "## Routing collapse" in markdown and "| Collapsing | 20.0% | 90.0% | 100.0% |" in markdown
    assert "![routing collapse](collapse.png)" in markdown
    with Image.open(files["collapse"]) as image:
        assert image.size[0] > 400 and image.size[1] > 300
    points = pd.read_csv(files["points"])
    collapsing = points[points["name"] == "Collapsing"]
    assert collapsing["spend_share[dear]"].tolist() == [0.2, 0.9, 1.0]
    assert points[points["name"] == "Random"]["spend_share[dear]"].isna().all()
    # Without spend records the section says so and no figure is drawn.
    bare = write_report([hand_result("Random", [0.3, 0.35, 0.4])], tmp_path / "bare")
    assert "collapse" not in bare and "no routing-collapse figure" in bare["markdown"].read_text()


def test_spend_shares_and_pooling() -> None:
    assert spend_shares(["a", "b", "c"], [1.0, 3.0, 0.0]) == {"a": 0.25, "b": 0.75, "c": 0.0}
    assert spend_shares(["a", "b"], [0.0, 0.0]) == {}
    with pytest.raises(ValueError, match="one entry per model"):
        spend_shares(["a"], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite and >= 0"):
        spend_shares(["a", "b"], [1.0, -2.0])
    # Two seeds: one spent 1.0 all on "a", the other 3.0 all on "b": pooled by spend, 1/4 and 3/4.
    pooled = pool_spend_shares([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}], [1.0, 3.0])
    assert pooled == {"a": 0.25, "b": 0.75}
    assert pool_spend_shares([{}, {"a": 1.0}], [0.0, 2.0]) == {"a": 1.0}
    assert pool_spend_shares([], []) == {}


def test_reaches_best_single_tolerates_float_rounding() -> None:
    """The report's 'reaches the best single model' is QNC's test, rounding included."""
    best = {**BEST_SINGLE, "accuracy": 20 / 21}
    near = replace(hand_result("Near", [0.5, 0.9, 0.9523809523809522]), best_single=best)
    below = replace(hand_result("Below", [0.5, 0.9, 19 / 21]), best_single=best)
    records = {r["name"]: r for r in baseline_comparison([near, below])["policies"]}
    assert records["Near"]["reaches_best_single"] is True
    assert records["Below"]["reaches_best_single"] is False


def test_price_sources_section() -> None:
    sources = {
        "GPT": {
            "status": "sourced",
            "input_usd_per_1m": 10.0,
            "output_usd_per_1m": 30.0,
            "source_url": "https://x.org/p",
            "as_of": "2024-03-04",
            "read_on": "2026-12-07",
        },
        "Open-7B": {
            "status": "unsourced",
            "input_usd_per_1m": 0.2,
            "output_usd_per_1m": 0.2,
            "source_url": "",
            "as_of": "",
            "read_on": "",
        },
    }
    text = price_sources_markdown(sources)
    assert "1 of 2 models' per-token prices are UNSOURCED" in text and "Open-7B." in text
    assert "| GPT | 10 | 30 | sourced | https://x.org/p | 2024-03-04 | 2026-12-07 |" in text
    assert "| Open-7B | 0.2 | 0.2 | UNSOURCED | - | - | - |" in text
    assert "Every model's per-token price was read" in price_sources_markdown({"GPT": sources["GPT"]})


def test_write_report_prints_the_price_sources(tmp_path) -> None:
    sources = {"M": {"status": "unsourced", "input_usd_per_1m": 1.0, "output_usd_per_1m": 2.0}}
    files = write_report([hand_result("Random", [0.3, 0.35, 0.4])], tmp_path, price_sources=sources)
    assert "## Prices behind the estimated costs" in files["markdown"].read_text()
    plain = write_report([hand_result("Random", [0.3, 0.35, 0.4])], tmp_path / "plain")
    assert "Prices behind" not in plain["markdown"].read_text()
