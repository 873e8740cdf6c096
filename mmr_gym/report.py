"""Reports: the comparison table (markdown, CSV, JSON), the comparison with the baselines, the plot (PNG)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmr_gym.collapse import collapse_markdown, plot_collapse
from mmr_gym.evaluate import PolicyResult, json_safe
from mmr_gym.metrics import reaches_accuracy
from mmr_gym.pareto_figure import plot_pareto
from mmr_gym.provenance import provenance, provenance_line

SUMMARY_COLUMNS = (
    "name",
    "nAUC",
    "nAUC_std",
    "Ps",
    "Ps_std",
    "QNC",
    "regret",
    "regret_std",
    "overrun_rate",
    "overrun_rate_std",
    "budget_violations",
    "protocol",
)
#: The baselines are recognised by these names (``agents.baselines``); every other non-privileged
#: policy is a learning policy compared with them.
BASELINE_NAMES = ("Random", "Cheapest", "BestSingle")
#: The baselines a learning policy must beat at every budget of the sweep.
PER_BUDGET_BASELINES = ("Random", "Cheapest")
BUDGETED_STREAM = "budgeted stream"


def summary_frame(results: Sequence[PolicyResult]) -> pd.DataFrame:
    """One row per policy: nAUC, Ps, QNC, regret, overrun rate (each with its spread over seeds), violations."""
    rows = []
    for r in results:
        row = {c: getattr(r, c) for c in SUMMARY_COLUMNS}
        row["QNC_std"] = _std_finite(r.QNC_per_seed)
        row["privileged"] = r.privileged
        rows.append(row)
    return pd.DataFrame(rows)


def points_frame(results: Sequence[PolicyResult]) -> pd.DataFrame:
    """One row per policy and budget point (the curves behind the summary)."""
    rows = []
    for r in results:
        for p in r.points:
            row = {"name": r.name, **vars(p)}
            # One column per model (a dict does not fit a CSV cell); absent when not recorded.
            shares = row.pop("spend_by_model", None) or {}
            row.update({f"spend_share[{model}]": share for model, share in shares.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(results: Sequence[PolicyResult]) -> str:
    """The comparison as a markdown table, mean ± standard deviation over seeds."""
    header = "| policy | nAUC | Ps | QNC | regret | overrun rate | protocol |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        name = f"{r.name} (privileged)" if r.privileged else r.name
        lines.append(
            f"| {name} | {_pm(r.nAUC, r.nAUC_std)} | {_pm(r.Ps, r.Ps_std)} | "
            f"{_pm(r.QNC, _std_finite(r.QNC_per_seed))} | {_pm(r.regret, r.regret_std)} | "
            f"{_pm(r.overrun_rate, r.overrun_rate_std)} | {r.protocol} |"
        )
    return "\n".join(lines)


def baseline_comparison(results: Sequence[PolicyResult]) -> dict[str, Any]:
    """The agents issue's bars, computed from the results (the ``comparison`` record of results.json).

    Baselines are recognised by name (:data:`BASELINE_NAMES`); a *learning policy* is any other
    non-privileged result. For each learning policy:

    - ``vs_Random`` / ``vs_Cheapest``: at how many budget ratios of the sweep its accuracy is strictly
      above the baseline's at the same ratio, the ratios where it is not, and the smallest margin.
      ``status`` is ``"compared"``, ``"baseline absent"`` (not in this run) or ``"no budget points"``
      (threshold protocol: no budget ratio to compare at).
    - ``nAUC_minus_reference``: its nAUC minus that of the reference, the budgeted-stream learning
      policy with the highest finite nAUC (the bars compare agents on the same budgeted streams).
    - ``Ps_minus_best_single``, ``reaches_best_single`` (Ps >= the best single model's test accuracy,
      the model QNC refers to, up to float rounding: :func:`mmr_gym.metrics.reaches_accuracy`) and
      ``QNC_below_1``.

    ``budget_check`` lists, for every budgeted-stream result (baselines and privileged ones too),
    the episodes that spent beyond their budget and recorded final-call overrun (must be 0) and
    the largest recorded overrun as a fraction of the budget.
    """
    by_name: dict[str, PolicyResult] = {}
    for r in results:
        by_name.setdefault(r.name, r)
    learners = [r for r in results if not r.privileged and r.name not in BASELINE_NAMES]
    ranked = [r for r in learners if r.protocol == BUDGETED_STREAM and math.isfinite(r.nAUC)]
    reference = max(ranked, key=lambda r: r.nAUC) if ranked else None
    policies = []
    for r in learners:
        best_accuracy = r.best_single["accuracy"]
        record: dict[str, Any] = {
            "name": r.name,
            "protocol": r.protocol,
            "nAUC": r.nAUC,
            "nAUC_minus_reference": r.nAUC - reference.nAUC if reference is not None else float("nan"),
            "Ps": r.Ps,
            "Ps_minus_best_single": r.Ps - best_accuracy,
            # Exactly QNC's test of reaching the best single model, float rounding included.
            "reaches_best_single": reaches_accuracy(r.Ps, best_accuracy),
            "QNC": r.QNC,
            "QNC_below_1": bool(r.QNC < 1.0),
        }
        for base in PER_BUDGET_BASELINES:
            record[f"vs_{base}"] = _per_budget_comparison(r, by_name.get(base))
        policies.append(record)
    checked = [r for r in results if r.protocol == BUDGETED_STREAM]
    budget_check = [_budget_check(r) for r in checked]
    return {
        "baselines_present": {name: name in by_name for name in BASELINE_NAMES},
        "best_single": results[0].best_single if results else None,
        "reference": None
        if reference is None
        else {"name": reference.name, "nAUC": reference.nAUC, "protocol": reference.protocol},
        "policies": policies,
        "budget_violations": sum(c["budget_violations"] for c in budget_check),
        "budget_check": budget_check,
    }


def comparison_markdown(results: Sequence[PolicyResult]) -> str:
    """The "Comparison with the baselines" section of results.md (see :func:`baseline_comparison`)."""
    comparison = baseline_comparison(results)
    lines = ["## Comparison with the baselines", ""]
    lines += [
        "Accuracies are compared at the same budget ratio of the sweep; threshold-protocol results "
        "have no budget points and are left out of the per-budget columns.",
        "",
    ]
    lines += _budget_check_lines(comparison["budget_check"]) + [""]
    for name, present in comparison["baselines_present"].items():
        if not present:
            lines += [f"{name} is not in this run: no comparison with it.", ""]
    best = comparison["best_single"]
    if best is not None:
        lines += [
            f"Best single model on the evaluated queries: {best['model']} (accuracy {best['accuracy']:.4f}).",
            "",
        ]
    reference = comparison["reference"]
    if not comparison["policies"]:
        lines.append("No non-privileged policy other than the baselines in this run.")
        return "\n".join(lines)
    if reference is not None:
        lines += [
            f"nAUC reference: {reference['name']} ({_fmt(reference['nAUC'])}, {reference['protocol']}), "
            "the best non-privileged budgeted-stream policy other than the baselines.",
            "",
        ]
    header = " | ".join(f"above {b}" for b in PER_BUDGET_BASELINES)
    lines += [
        f"| policy | {header} | nAUC - reference | Ps - best single | QNC < 1 |",
        "|---|" + "---|" * len(PER_BUDGET_BASELINES) + "---:|---:|---|",
    ]
    for record in comparison["policies"]:
        cells = [record["name"]]
        cells += [_per_budget_cell(record[f"vs_{b}"]) for b in PER_BUDGET_BASELINES]
        is_reference = reference is not None and record["name"] == reference["name"]
        cells.append("0 (reference)" if is_reference else _signed(record["nAUC_minus_reference"]))
        cells.append(_signed(record["Ps_minus_best_single"]))
        cells.append(f"{'yes' if record['QNC_below_1'] else 'no'} ({_fmt(record['QNC'])})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- price sources
def price_sources_markdown(price_sources: Mapping[str, Mapping[str, Any]]) -> str:
    """The "Prices" section: for each model, its per-token prices and where they come from.

    Args:
        price_sources: a table's ``meta["price_sources"]`` (MATH-V's:
            :func:`mmr_gym.datasets.math_v.price_sources`): model -> ``status`` ("sourced" or
            "unsourced"), ``input_usd_per_1m``, ``output_usd_per_1m``, ``source_url``, ``as_of``,
            ``read_on``.
    """
    unsourced = [m for m, p in price_sources.items() if p.get("status") != "sourced"]
    lines = ["## Prices behind the estimated costs", ""]
    if unsourced:
        lines += [
            f"{len(unsourced)} of {len(price_sources)} models' per-token prices are UNSOURCED (no readable public "
            "price list confirming them was found): their costs, and every cost figure above that involves "
            f"them, rest on unverified prices: {', '.join(unsourced)}.",
            "",
        ]
    else:
        lines += ["Every model's per-token price was read in a public price list (below).", ""]
    lines += ["| model | input USD / 1M | output USD / 1M | status | source | source date | read on |"]
    lines += ["|---|---:|---:|---|---|---|---|"]
    for model, p in price_sources.items():
        sourced = p.get("status") == "sourced"
        lines.append(
            f"| {model} | {p.get('input_usd_per_1m', float('nan')):g} | {p.get('output_usd_per_1m', float('nan')):g} "
            f"| {'sourced' if sourced else 'UNSOURCED'} | {p.get('source_url') or '-'} | {p.get('as_of') or '-'} "
            f"| {p.get('read_on') or '-'} |"
        )
    return "\n".join(lines)


def write_report(
    results: Sequence[PolicyResult],
    out_dir: str | Path,
    *,
    title: str = "",
    context: dict[str, Any] | None = None,
    price_sources: Mapping[str, Mapping[str, Any]] | None = None,
    figure_note: str = "",
) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``points.csv``, ``results.md``, ``pareto.png`` (with
    ``pareto.pdf`` and ``pareto.svg``: :func:`plot_pareto`, ``figure_note`` in its caption, e.g.
    that the table is simulated) and ``collapse.png`` (the routing-collapse figure, when some
    result records its spend per model).

    ``context`` gains a ``provenance`` record (:func:`mmr_gym.provenance.provenance`: versions,
    commit, command, machine) unless it has one. ``price_sources`` (a table's
    ``meta["price_sources"]``, e.g. MATH-V's) adds a section that says where each per-token price
    comes from, or that it is unsourced.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = {**(context or {})}
    context.setdefault("provenance", provenance())
    files = {
        "json": out / "results.json",
        "csv": out / "results.csv",
        "points": out / "points.csv",
        "markdown": out / "results.md",
        "plot": out / "pareto.png",
        "plot_pdf": out / "pareto.pdf",
        "plot_svg": out / "pareto.svg",
    }
    comparison = json_safe(baseline_comparison(results))
    payload = {"context": context, "results": [r.to_dict() for r in results], "comparison": comparison}
    files["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    summary_frame(results).to_csv(files["csv"], index=False)
    points_frame(results).to_csv(files["points"], index=False)
    lines = [f"# {title or 'mmr-gym comparison'}", ""]
    for key, value in context.items():
        shown = provenance_line(value) if key == "provenance" and isinstance(value, dict) else value
        lines.append(f"- {key}: {shown}")
    lines += ["", markdown_table(results), "", comparison_markdown(results), ""]
    lines += ["![cost-accuracy frontiers](pareto.png)", ""]
    lines += [collapse_markdown(results), ""]
    collapse_plot = plot_collapse(results, out / "collapse.png", title)
    if collapse_plot is not None:
        files["collapse"] = collapse_plot
        lines += ["![routing collapse](collapse.png)", ""]
    if price_sources:
        lines += [price_sources_markdown(price_sources), ""]
    timed = [r for r in results if r.timeline]
    if timed:  # evaluated under a scenario: what each event did, and the timeline figure
        from mmr_gym.scenarios.analysis import effects_markdown, event_effects, plot_timeline

        scenario = timed[0].scenario
        lines += [f"## Scenario {scenario['name']!r}", "", scenario.get("description", ""), ""]
        lines += [effects_markdown([e for r in timed for e in event_effects(r)]), ""]
        files["timeline"] = plot_timeline(timed, out / "timeline.png", title)
        lines += ["![accuracy, regret and spend over time](timeline.png)", ""]
    files["markdown"].write_text("\n".join(lines), encoding="utf-8")
    plot_pareto(results, files["plot"], title, note=figure_note)
    return files


def _per_budget_comparison(policy: PolicyResult, baseline: PolicyResult | None) -> dict[str, Any]:
    """Where ``policy``'s accuracy is strictly above ``baseline``'s, budget ratio by budget ratio."""
    if baseline is None:
        return {"status": "baseline absent"}
    mine = _accuracy_by_budget(policy)
    theirs = _accuracy_by_budget(baseline)
    if not mine or not theirs:
        return {"status": "no budget points"}
    common = [ratio for ratio in mine if ratio in theirs]
    margins = {ratio: mine[ratio] - theirs[ratio] for ratio in common}
    return {
        "status": "compared",
        "budgets": len(common),
        "above": sum(m > 0 for m in margins.values()),
        "not_above": [
            {"budget_ratio": ratio, "accuracy": mine[ratio], "baseline_accuracy": theirs[ratio]}
            for ratio, m in margins.items()
            if not m > 0
        ],
        "min_margin": min(margins.values()) if margins else float("nan"),
        # Budgets of the policy's sweep that the baseline was not run at: not counted either way.
        "not_in_baseline_sweep": [ratio for ratio in mine if ratio not in theirs],
    }


def _accuracy_by_budget(result: PolicyResult) -> dict[float, float]:
    """Budget ratio -> accuracy of a budgeted-stream result; empty for the threshold protocol."""
    if result.protocol != BUDGETED_STREAM:
        return {}
    return {float(p.budget_ratio): p.accuracy for p in result.points if math.isfinite(p.budget_ratio)}


def _budget_check(result: PolicyResult) -> dict[str, Any]:
    """The worst episode of ``result`` for the budget invariant, and its largest final-call overrun."""
    record: dict[str, Any] = {
        "name": result.name,
        "budget_violations": sum(p.budget_violations for p in result.points),
    }
    for key in ("unrecorded_overspend", "max_overrun"):
        values = [getattr(p, key) for p in result.points]
        worst = max(range(len(values)), key=lambda b: _finite_or(values[b], -1.0), default=None)
        value = values[worst] if worst is not None else float("nan")
        record[key] = value
        # The budget ratio only where there is something to point at.
        record[f"{key}_budget_ratio"] = (
            result.points[worst].budget_ratio if _finite_or(value, 0.0) > 0 else float("nan")
        )
    return record


def _budget_check_lines(checks: Sequence[dict[str, Any]]) -> list[str]:
    if not checks:
        return ["Budget check: no budgeted-stream result in this run."]
    lines = [
        f"VIOLATION: {c['name']}: {c['budget_violations']} episodes spent beyond their budget and the "
        f"recorded final-call overrun (worst: {_percent(c['unrecorded_overspend'])} of the budget "
        f"at budget ratio {c['unrecorded_overspend_budget_ratio']:g}). The environment's budget rule is broken."
        for c in checks
        if c["budget_violations"]
    ]
    if lines:
        return lines
    largest = max(checks, key=lambda c: _finite_or(c["max_overrun"], -1.0))
    overrun = (
        f"the largest final-call overrun was {_percent(largest['max_overrun'])} of the budget, "
        f"{largest['name']} at budget ratio {largest['max_overrun_budget_ratio']:g}"
        if _finite_or(largest["max_overrun"], 0.0) > 0
        else "no episode overran"
    )
    return [
        "Budget check passed: no episode of any budgeted-stream policy spent beyond its budget except by "
        f"the recorded overrun of its final call (0 violations; {overrun})."
    ]


def _per_budget_cell(comparison: dict[str, Any]) -> str:
    status = comparison["status"]
    if status == "baseline absent":
        return "n/a (baseline absent)"
    if status == "no budget points":
        return "n/a (no budget points)"
    cell = f"{comparison['above']}/{comparison['budgets']}"
    if comparison["not_above"]:
        misses = ", ".join(
            f"{m['budget_ratio']:g} ({_signed(m['accuracy'] - m['baseline_accuracy'])})"
            for m in comparison["not_above"]
        )
        return f"{cell}; not above at {misses}"
    return f"{cell} (min margin {_signed(comparison['min_margin'])})"


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _percent(value: float) -> str:
    return f"{100 * value:.3g}%" if math.isfinite(value) else _fmt(value)


def _signed(value: float) -> str:
    return f"{value:+.4f}" if math.isfinite(value) else _fmt(value)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}"


def _pm(value: float, spread: float) -> str:
    if not math.isfinite(value) or not math.isfinite(spread) or spread == 0:
        return _fmt(value)
    return f"{value:.4f} ± {spread:.4f}"


def _std_finite(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return float("nan")
    mean = sum(finite) / len(finite)
    return math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))
