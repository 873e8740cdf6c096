"""The report: spreads in every file, and the comparison with the baselines, on hand-made results."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from _results import hand_result

from mmr_gym.evaluate import merge_seed_results
from mmr_gym.report import baseline_comparison, comparison_markdown, markdown_table, write_report

NAN = float("nan")


def _two_seed(name: str, accuracies: list[float], **kwargs) -> object:
    """``name`` over two seeds: per-seed regret 0.2 and 0.4, overrun rate 0.25 and 0.5."""
    seed0 = hand_result(name, accuracies, regrets=[0.1, 0.2, 0.3], overrun_rates=[0.0, 0.25, 0.5], **kwargs)
    seed1 = hand_result(
        name, accuracies, regrets=[0.3, 0.4, 0.5], overrun_rates=[0.5, 0.5, 0.5], seed=1, **kwargs
    )
    return merge_seed_results([seed0, seed1])


@pytest.fixture
def results() -> list:
    """Baselines, a policy above them at every budget, one below Random at 0.5, a threshold router, an oracle."""
    return [
        hand_result("Random", [0.30, 0.40, 0.50], nAUC=0.40),
        hand_result("Cheapest", [0.20, 0.20, 0.20], nAUC=NAN),
        hand_result("BestSingle", [0.10, 0.30, 0.60], nAUC=0.35, QNC=1.0),
        _two_seed("Good", [0.40, 0.50, 0.65], nAUC=0.60),
        hand_result("Bad", [0.35, 0.38, 0.55], nAUC=0.45),
        hand_result("Router (threshold)", [0.3, 0.62], ratios=[NAN, NAN], nAUC=0.70, QNC=0.8, protocol="t"),
        hand_result("Oracle", [0.6, 0.8, 0.9], nAUC=0.9, privileged=True),
    ]


def _row(markdown: str, name: str) -> str:
    (row,) = [line for line in markdown.splitlines() if line.startswith(f"| {name} |")]
    return row


def test_markdown_csv_and_json_carry_the_spread_of_regret_and_overrun_rate(results, tmp_path):
    good = results[3]
    assert (good.regret, good.regret_std) == pytest.approx((0.3, 0.1))
    assert (good.overrun_rate, good.overrun_rate_std) == pytest.approx((0.375, 0.125))
    row = _row(markdown_table(results), "Good")
    assert "| 0.3000 ± 0.1000 | 0.3750 ± 0.1250 |" in row
    assert "±" not in _row(markdown_table(results), "Bad").split("|")[5]  # one seed: no spread shown

    files = write_report(results, tmp_path)
    csv = pd.read_csv(files["csv"]).set_index("name")
    assert csv.loc["Good", ["regret", "regret_std", "overrun_rate_std"]].tolist() == pytest.approx(
        [0.3, 0.1, 0.125]
    )
    assert csv.loc["Bad", "budget_violations"] == 0
    points = pd.read_csv(files["points"])
    assert {"overrun_rate_std", "max_overrun", "unrecorded_overspend", "budget_violations"} <= set(points)

    def no_nan(token: str) -> None:
        raise AssertionError(f"JSON holds {token}")

    payload = json.loads(files["json"].read_text(), parse_constant=no_nan)
    record = payload["results"][3]
    assert set(record) >= {"name", "nAUC", "Ps", "QNC", "regret", "overrun_rate", "points"}
    assert (record["regret_std"], record["overrun_rate_std"]) == pytest.approx((0.1, 0.125))
    assert record["regret_per_seed"] == pytest.approx([0.2, 0.4])
    assert record["budget_violations"] == 0 and record["points"][0]["budget_violations"] == 0
    assert payload["comparison"] == json.loads(json.dumps(payload["comparison"]))
    assert [p["name"] for p in payload["comparison"]["policies"]] == ["Good", "Bad", "Router (threshold)"]


def test_comparison_passes_a_policy_above_the_baselines_and_flags_one_below(results):
    comparison = baseline_comparison(results)
    by_name = {p["name"]: p for p in comparison["policies"]}
    assert set(by_name) == {"Good", "Bad", "Router (threshold)"}  # no baseline, no privileged policy
    good, bad = by_name["Good"], by_name["Bad"]
    assert good["vs_Random"]["status"] == "compared"
    assert (good["vs_Random"]["above"], good["vs_Random"]["budgets"]) == (3, 3)
    assert good["vs_Random"]["not_above"] == []
    assert good["vs_Random"]["min_margin"] == pytest.approx(0.10)
    assert (good["vs_Cheapest"]["above"], good["vs_Cheapest"]["budgets"]) == (3, 3)
    assert (bad["vs_Random"]["above"], bad["vs_Random"]["budgets"]) == (2, 3)
    assert bad["vs_Random"]["not_above"] == [
        {"budget_ratio": 0.5, "accuracy": 0.38, "baseline_accuracy": pytest.approx(0.40)}
    ]
    assert bad["vs_Cheapest"]["above"] == 3
    # The reference is the best budgeted-stream learning policy by nAUC: never the oracle, and not
    # the threshold-protocol router although its nAUC (0.70) is higher.
    assert comparison["reference"]["name"] == "Good"
    assert good["nAUC_minus_reference"] == 0.0
    assert bad["nAUC_minus_reference"] == pytest.approx(0.45 - results[3].nAUC)  # merged: from its curve
    assert by_name["Router (threshold)"]["nAUC_minus_reference"] == pytest.approx(0.70 - results[3].nAUC)
    assert by_name["Router (threshold)"]["vs_Random"] == {"status": "no budget points"}
    # Ps against the best single model (accuracy 0.6), and QNC < 1.
    assert good["reaches_best_single"] and good["Ps_minus_best_single"] == pytest.approx(0.05)
    assert not bad["reaches_best_single"] and not bad["QNC_below_1"]
    assert by_name["Router (threshold)"]["QNC_below_1"]

    markdown = comparison_markdown(results)
    assert markdown.startswith("## Comparison with the baselines")
    assert _row(markdown, "Good").startswith(
        "| Good | 3/3 (min margin +0.1000) | 3/3 (min margin +0.2000) | 0 (reference) |"
    )
    assert "| Bad | 2/3; not above at 0.5 (-0.0200) | 3/3" in markdown
    assert "| Router (threshold) | n/a (no budget points) | n/a (no budget points) | +0." in markdown
    assert "Budget check passed" in markdown and "VIOLATION" not in markdown


def test_a_tie_with_the_baseline_is_not_above_it():
    tie = [hand_result("Random", [0.3, 0.4, 0.5]), hand_result("Tied", [0.3, 0.45, 0.5])]
    record = baseline_comparison(tie)["policies"][0]["vs_Random"]
    assert record["above"] == 1 and [m["budget_ratio"] for m in record["not_above"]] == [0.1, 1.0]


def test_missing_baselines_are_reported_not_fatal(results, tmp_path):
    without = [r for r in results if r.name not in ("Random", "Cheapest")]
    comparison = baseline_comparison(without)
    assert comparison["baselines_present"] == {"Random": False, "Cheapest": False, "BestSingle": True}
    good = next(p for p in comparison["policies"] if p["name"] == "Good")
    assert good["vs_Random"] == good["vs_Cheapest"] == {"status": "baseline absent"}
    markdown = write_report(without, tmp_path)["markdown"].read_text()
    assert "Random is not in this run: no comparison with it." in markdown
    assert "Cheapest is not in this run" in markdown and "BestSingle is not in this run" not in markdown
    assert "| Good | n/a (baseline absent) | n/a (baseline absent) |" in markdown

    # Only a baseline: nothing to compare, and still no failure.
    alone = comparison_markdown([results[0]])
    assert "No non-privileged policy other than the baselines in this run." in alone
    assert baseline_comparison([])["policies"] == [] and "no budgeted-stream result" in comparison_markdown(
        []
    )


def test_budgets_the_baseline_did_not_run_are_not_counted():
    results = [hand_result("Random", [0.3, 0.4], ratios=[0.1, 0.5]), hand_result("Wider", [0.4, 0.5, 0.6])]
    record = baseline_comparison(results)["policies"][0]["vs_Random"]
    assert (record["above"], record["budgets"]) == (2, 2)
    assert record["not_in_baseline_sweep"] == [1.0]


def test_a_budget_violation_is_reported_loudly(results, tmp_path):
    leaky = hand_result("Leaky", [0.4, 0.5, 0.65], violations=[0, 2, 0])
    comparison = baseline_comparison([*results, leaky])
    assert comparison["budget_violations"] == 2
    check = next(c for c in comparison["budget_check"] if c["name"] == "Leaky")
    assert check["budget_violations"] == 2 and check["unrecorded_overspend_budget_ratio"] == 0.5
    # Threshold-protocol results have no budget: they are not in the check.
    assert "Router (threshold)" not in {c["name"] for c in comparison["budget_check"]}
    lines = write_report([*results, leaky], tmp_path)["markdown"].read_text().splitlines()
    violations = [line for line in lines if line.startswith("VIOLATION")]
    assert violations == [
        "VIOLATION: Leaky: 2 episodes spent beyond their budget and the recorded final-call overrun "
        "(worst: 20% of the budget at budget ratio 0.5). The environment's budget rule is broken."
    ]
    assert not any("Budget check passed" in line for line in lines)
    record = json.loads((tmp_path / "results.json").read_text())["comparison"]
    assert record["budget_violations"] == 2 and math.isnan(
        float(record["budget_check"][0]["max_overrun_budget_ratio"])
    )


def test_the_pareto_figure_is_paper_ready(results, tmp_path, monkeypatch):
    """Legend outside the axes, every curve its own look, spread over seeds drawn, a plain x label,
    the caption's note, and PDF and SVG beside the PNG."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from mmr_gym import pareto_figure

    spread = merge_seed_results(
        [hand_result("Spread", [0.30, 0.50, 0.70]), hand_result("Spread", [0.40, 0.60, 0.70], seed=1)]
    )
    figures = []
    monkeypatch.setattr(pareto_figure.plt, "close", figures.append)  # keep the figure to look at it
    files = write_report([*results, spread], tmp_path, title="T", figure_note="Simulated outcome table.")
    (fig,) = figures
    ax = fig.axes[0]
    fig.canvas.draw()
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1, "the legend covers the axes"
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "best single model: model3"
    frontiers = [line for line in ax.get_lines() if line.get_linestyle() != "None"]  # not bar caps
    looks = {(str(line.get_color()), line.get_linestyle(), line.get_marker()) for line in frontiers}
    assert len(frontiers) == len(results) + 1 == len(looks)
    # one standard deviation over the two seeds: 0.05 at the first two budgets, none at the third
    segments = [s for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    heights = [round((s[1][1] - s[0][1]) / 2, 9) for s in segments if s[0][0] == s[1][0]]
    assert sorted(h for h in heights if h > 0) == [0.05, 0.05], heights
    assert ax.get_xlabel() == "mean cost per query, in test units" and "((" not in ax.get_xlabel()
    plt.close(fig)
    for suffix in ("png", "pdf", "svg"):
        assert (tmp_path / f"pareto.{suffix}").stat().st_size > 0, suffix
    svg = (tmp_path / "pareto.svg").read_text(encoding="utf-8")
    assert "Simulated outcome table." in svg and "one standard deviation over 2 seeds" in svg
    assert files["plot_svg"] == tmp_path / "pareto.svg" and files["plot_pdf"] == tmp_path / "pareto.pdf"
    # drawn again, the same bytes: no date, no random ids (a figure under version control diffs cleanly)
    pareto_figure.plot_pareto(
        [*results, spread], tmp_path / "again.png", "T", note="Simulated outcome table."
    )
    for suffix in ("svg", "pdf"):
        assert (tmp_path / f"again.{suffix}").read_bytes() == (tmp_path / f"pareto.{suffix}").read_bytes()
