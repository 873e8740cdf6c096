"""Hand-made PolicyResults with known figures, for tests of merging and of the report."""

from __future__ import annotations

from collections.abc import Sequence

from mmr_gym.evaluate import BudgetPoint, PolicyResult

RATIOS = (0.1, 0.5, 1.0)
BEST_SINGLE = {"model": "model3", "accuracy": 0.6, "mean_cost": 1.0}


def hand_result(
    name: str,
    accuracies: Sequence[float],
    *,
    ratios: Sequence[float] = RATIOS,
    regrets: Sequence[float] | None = None,
    overrun_rates: Sequence[float] | None = None,
    nAUC: float = 0.5,
    Ps: float | None = None,
    QNC: float = float("inf"),
    privileged: bool = False,
    protocol: str = "budgeted stream",
    violations: Sequence[int] | None = None,
    seed: int = 0,
) -> PolicyResult:
    """A one-seed result: one point per budget ratio with the given accuracy, regret and overrun rate.

    The point at budget ratio ``r`` costs ``r`` (cost units per query); ``regret`` and
    ``overrun_rate`` of the result are the means over its points, as :func:`evaluate_policy` gives
    them for one seed.
    """
    n = len(accuracies)
    regrets = list(regrets) if regrets is not None else [0.1] * n
    overrun_rates = list(overrun_rates) if overrun_rates is not None else [0.0] * n
    violations = list(violations) if violations is not None else [0] * n
    points = [
        BudgetPoint(
            budget_ratio=float(ratios[b]),
            cost=float(ratios[b]),
            accuracy=float(accuracies[b]),
            cost_std=0.0,
            accuracy_std=0.0,
            regret=regrets[b],
            regret_std=0.0,
            oracle_accuracy=accuracies[b] + regrets[b],
            overrun_rate=overrun_rates[b],
            unanswered_rate=0.0,
            overrun_rate_std=0.0,
            max_overrun=0.05 if overrun_rates[b] > 0 else 0.0,
            unrecorded_overspend=0.2 if violations[b] else 0.0,
            budget_violations=violations[b],
        )
        for b in range(n)
    ]
    regret = sum(regrets) / n
    overrun = sum(overrun_rates) / n
    return PolicyResult(
        name=name,
        points=points,
        frontier=[[p.cost, p.accuracy] for p in points],
        nAUC=nAUC,
        Ps=max(accuracies) if Ps is None else Ps,
        QNC=QNC,
        nAUC_std=0.0,
        Ps_std=0.0,
        QNC_per_seed=[QNC],
        regret=regret,
        overrun_rate=overrun,
        best_single=dict(BEST_SINGLE),
        cost_unit="test units",
        privileged=privileged,
        protocol=protocol,
        extra={"seeds": [seed]},
        regret_std=0.0,
        overrun_rate_std=0.0,
        regret_per_seed=[regret],
        overrun_rate_per_seed=[overrun],
        budget_violations=sum(violations),
    )
