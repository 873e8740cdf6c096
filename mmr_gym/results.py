"""Evaluation results as plain data: one :class:`BudgetPoint` per budget, one :class:`PolicyResult`
per policy, and how results of several seeds combine (:func:`merge_seed_results`).

A result holds the cost-accuracy points of a budget sweep (or of MMR-Bench's threshold protocol),
their Pareto frontier and the paper's metrics (nAUC, Ps, QNC, :mod:`mmr_gym.metrics`), the regret
to the hindsight oracle and the budget check, each with its spread over seeds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from mmr_gym.metrics import curve_summary, pareto_frontier, pool_spend_shares

BUDGETED_STREAM = "budgeted stream"
THRESHOLD_PROTOCOL = "per-query threshold (MMR-Bench)"
_ROUNDING = 1e-12  # spreads below this (relative to the value) are float rounding, reported as 0


@dataclass
class BudgetPoint:
    """One budget ratio's outcome, mean (and standard deviation) over seeds.

    ``cost`` is the mean spend per test query in the table's cost unit; ``accuracy`` the mean
    correctness over all test queries; ``regret`` the mean over episodes of the hindsight oracle's
    accuracy minus the policy's; ``overrun_rate`` the share of episodes whose last call overshot.

    The budget check, over every episode of every seed: ``max_overrun`` is the largest recorded
    (final-call) overrun as a fraction of the budget; ``unrecorded_overspend`` the largest spend
    beyond what the budget and that overrun allow, as a fraction of the budget
    (:func:`mmr_gym.budget.unrecorded_overspend`; 0 when the invariant holds); ``budget_violations`` the number of
    episodes where it exceeds :data:`mmr_gym.budget.BUDGET_CHECK_TOLERANCE` (must be 0). Threshold-protocol
    points have no budget: NaN, NaN and 0.
    """

    budget_ratio: float
    cost: float
    accuracy: float
    cost_std: float
    accuracy_std: float
    regret: float
    regret_std: float
    oracle_accuracy: float
    overrun_rate: float
    unanswered_rate: float
    overrun_rate_std: float = float("nan")
    max_overrun: float = float("nan")
    unrecorded_overspend: float = float("nan")
    budget_violations: int = 0
    # Routing collapse: model name -> share of this point's spend (all seeds and streams pooled)
    # that went to that model; sums to 1 when anything was spent. Empty: not recorded.
    spend_by_model: dict[str, float] = field(default_factory=dict)


@dataclass
class PolicyResult:
    """A policy's sweep, summarised. ``to_dict()`` gives the JSON record written by the report.

    ``regret`` and ``overrun_rate`` are means over budgets and seeds; ``regret_std`` and
    ``overrun_rate_std`` their standard deviation over seeds (of the per-seed means over budgets,
    kept in ``regret_per_seed`` and ``overrun_rate_per_seed``), as ``nAUC_std`` is over the per-seed
    nAUCs. ``budget_violations`` is the number of episodes, over all points, that spent beyond
    their budget and recorded overrun (see :class:`BudgetPoint`); it must be 0.
    """

    name: str
    points: list[BudgetPoint]
    frontier: list[list[float]]
    nAUC: float
    Ps: float
    QNC: float
    nAUC_std: float
    Ps_std: float
    QNC_per_seed: list[float]
    regret: float
    overrun_rate: float
    best_single: dict[str, Any]
    cost_unit: str
    privileged: bool = False
    protocol: str = BUDGETED_STREAM
    extra: dict[str, Any] = field(default_factory=dict)
    regret_std: float = float("nan")
    overrun_rate_std: float = float("nan")
    regret_per_seed: list[float] = field(default_factory=list)
    overrun_rate_per_seed: list[float] = field(default_factory=list)
    budget_violations: int = 0
    # Model name -> mean cost per query of that model on the evaluated queries (the table's cost
    # unit); the report's dearest model is its largest. Empty: not recorded.
    model_mean_cost: dict[str, float] = field(default_factory=dict)
    # Under a scenario: the scenario (mmr_gym.scenarios.Scenario.to_dict) and one record per
    # episode of every (budget, seed) lane, in time order: budget_ratio, seed, time (where it
    # started on the lane's timeline), length, answered, accuracy, oracle_accuracy, spend, budget,
    # overrun. Empty without a scenario.
    scenario: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["points"] = [asdict(p) for p in self.points]
        return json_safe(record)


def merge_seed_results(results: Sequence[PolicyResult]) -> PolicyResult:
    """One result from per-seed results of the same policy (each evaluated on its own seed's streams).

    Budgeted-stream results are combined exactly as :func:`~mmr_gym.evaluate.evaluate_policy` combines
    seeds: points are the mean over seeds (with their spread), nAUC/Ps/QNC come from the mean curve,
    their spread from the per-seed curves; regret and overrun rate are the mean of the per-seed
    values, their spread the standard deviation of those; the budget check takes the worst case and
    adds the violations up. Threshold-protocol curves have no common grid: the metrics are the mean
    over seeds and the points those of the first seed.
    """
    if len(results) == 1:
        return results[0]
    first = results[0]
    seeds = [s for r in results for s in r.extra.get("seeds", [])]
    if first.protocol != BUDGETED_STREAM:
        return replace(
            first,
            nAUC=nanmean([r.nAUC for r in results]),
            Ps=nanmean([r.Ps for r in results]),
            QNC=nanmean([r.QNC for r in results]),
            nAUC_std=nanstd([r.nAUC for r in results]),
            Ps_std=nanstd([r.Ps for r in results]),
            QNC_per_seed=[r.QNC for r in results],
            extra={**first.extra, "seeds_fitted": len(results), "points_from": "the first seed's fit"},
        )
    cost = np.array([[p.cost for p in r.points] for r in results])  # [seeds, budgets]
    accuracy = np.array([[p.accuracy for p in r.points] for r in results])
    regret = np.array([[p.regret for p in r.points] for r in results])
    overruns = np.array([[p.overrun_rate for p in r.points] for r in results])
    points = [
        BudgetPoint(
            budget_ratio=p.budget_ratio,
            cost=float(cost[:, b].mean()),
            accuracy=float(accuracy[:, b].mean()),
            cost_std=float(cost[:, b].std()),
            accuracy_std=float(accuracy[:, b].std()),
            regret=float(regret[:, b].mean()),
            regret_std=float(regret[:, b].std()),
            oracle_accuracy=nanmean([r.points[b].oracle_accuracy for r in results]),
            overrun_rate=nanmean([r.points[b].overrun_rate for r in results]),
            unanswered_rate=nanmean([r.points[b].unanswered_rate for r in results]),
            overrun_rate_std=nanstd(overruns[:, b].tolist()),
            max_overrun=nanmax([r.points[b].max_overrun for r in results]),
            unrecorded_overspend=nanmax([r.points[b].unrecorded_overspend for r in results]),
            budget_violations=sum(r.points[b].budget_violations for r in results),
            # Each result's shares weighted by its spend: its mean cost per query times its seeds.
            spend_by_model=pool_spend_shares(
                [r.points[b].spend_by_model for r in results],
                [float(cost[i, b]) * len(r.extra.get("seeds", [0])) for i, r in enumerate(results)],
            ),
        )
        for b, p in enumerate(first.points)
    ]
    # Results that each cover several seeds carry their per-seed values; older ones only their mean.
    regret_per_seed = [v for r in results for v in (r.regret_per_seed or [r.regret])]
    overrun_per_seed = [v for r in results for v in (r.overrun_rate_per_seed or [r.overrun_rate])]
    mean_curve = np.stack([cost.mean(axis=0), accuracy.mean(axis=0)], axis=1)
    best = first.best_single
    summary = curve_summary(mean_curve[:, 0], mean_curve[:, 1], best["accuracy"], best["mean_cost"])
    return replace(
        first,
        points=points,
        frontier=pareto_frontier(mean_curve).tolist(),
        nAUC=summary["nAUC"],
        Ps=summary["Ps"],
        QNC=summary["QNC"],
        nAUC_std=nanstd([r.nAUC for r in results]),
        Ps_std=nanstd([r.Ps for r in results]),
        QNC_per_seed=[r.QNC for r in results],
        regret=nanmean(regret_per_seed),
        overrun_rate=nanmean(overrun_per_seed),
        extra={**first.extra, "seeds": seeds, "seeds_fitted": len(results)},
        regret_std=nanstd(regret_per_seed),
        overrun_rate_std=nanstd(overrun_per_seed),
        regret_per_seed=regret_per_seed,
        overrun_rate_per_seed=overrun_per_seed,
        budget_violations=sum(p.budget_violations for p in points),
        timeline=[record for r in results for record in r.timeline],
    )


def warn_on_violations(name: str, points: Sequence[BudgetPoint]) -> None:
    """A broken budget invariant is a bug in the environment: say so at once, not only in the report."""
    bad = [p for p in points if p.budget_violations]
    if bad:
        worst = max(bad, key=lambda p: p.unrecorded_overspend)
        warnings.warn(
            f"{name}: {sum(p.budget_violations for p in bad)} episodes spent beyond their budget and "
            f"recorded final-call overrun (worst {worst.unrecorded_overspend:.3g} of the budget at "
            f"budget ratio {worst.budget_ratio:g})",
            RuntimeWarning,
            stacklevel=3,
        )


def nanmax(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(max(finite)) if finite else float("nan")


def nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def nanstd(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return float("nan")
    spread = float(np.std(finite))
    # Seeds with equal figures summed in another order differ by float rounding (~1e-17): no spread.
    return 0.0 if spread <= _ROUNDING * max(1.0, abs(float(np.mean(finite)))) else spread


def json_safe(value: Any) -> Any:
    """Floats that JSON cannot hold (inf, nan) become the strings "inf", "-inf", "nan"."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value
