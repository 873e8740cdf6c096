"""Run any policy over a budget sweep and seeds on the test split; results as plain data.

For each budget ratio and seed, the test split is shuffled by the seed and cut into consecutive
streams of ``episode_length`` queries (the last one shorter), so every test query is answered
exactly once per seed. Each budget ratio gives one point: (mean cost per query, accuracy), both
over all test queries, unanswered ones counted wrong. From the points of the seed-mean curve come
the Pareto frontier, nAUC, Ps and QNC (MMR-Bench's definitions, :mod:`mmr_gym.metrics`), with the
spread of each metric over seeds, the regret to the budgeted hindsight oracle and the overrun rate.

Every episode is also checked against the environment's budget invariant (:func:`unrecorded_overspend`):
spend may exceed the budget only by the recorded overrun of the call that ended the episode.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmr_gym.env import MMRRoutingEnv
from mmr_gym.metrics import best_single, curve_summary, pareto_frontier, threshold_curve
from mmr_gym.oracle import per_query_oracle_curve
from mmr_gym.policy import Policy

DEFAULT_BUDGET_RATIOS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)
# Relative to the budget: spend is summed in float64 from float32 costs, so an episode exactly at its
# budget may differ from it by rounding; anything beyond this is a broken invariant, not rounding.
BUDGET_CHECK_TOLERANCE = 1e-6
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
    (:func:`unrecorded_overspend`; 0 when the invariant holds); ``budget_violations`` the number of
    episodes where it exceeds :data:`BUDGET_CHECK_TOLERANCE` (must be 0). Threshold-protocol
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
    # Issue 18 (routing collapse): model name -> share of this point's spend (all seeds and streams
    # pooled) that went to that model; sums to 1 when anything was spent. Empty: not recorded.
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
    protocol: str = "budgeted stream"
    extra: dict[str, Any] = field(default_factory=dict)
    regret_std: float = float("nan")
    overrun_rate_std: float = float("nan")
    regret_per_seed: list[float] = field(default_factory=list)
    overrun_rate_per_seed: list[float] = field(default_factory=list)
    budget_violations: int = 0
    # Issue 18 (routing collapse): model name -> mean cost per query of that model on the evaluated
    # queries (the table's cost unit); the report's dearest model is its largest. Empty: not recorded.
    model_mean_cost: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["points"] = [asdict(p) for p in self.points]
        return json_safe(record)


def run_stream(
    env: MMRRoutingEnv, policy: Policy, query_ids: Sequence[str], budget_ratio: float | None
) -> dict:
    """One episode over ``query_ids``; returns the environment's ``episode_metrics``.

    The returned dict also holds ``final_call_cost``, the realized cost of the call that ended the
    episode, so that :func:`unrecorded_overspend` can check that an overrun came from that call.
    """
    options: dict[str, Any] = {"query_ids": list(query_ids)}
    if budget_ratio is not None:
        options["budget_ratio"] = budget_ratio
    obs, info = env.reset(options=options)
    policy.begin_episode(env)
    while True:
        action = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        policy.observe(action, reward, info)
        if terminated or truncated:
            return {**info["episode_metrics"], "final_call_cost": float(info["cost"])}


def unrecorded_overspend(metrics: Mapping[str, Any]) -> float:
    """Spend beyond what the budget and the recorded final-call overrun allow, as a fraction of the budget.

    The environment's invariant: ``spend - budget <= overrun``, and, when the dict has
    ``final_call_cost`` (as :func:`run_stream` returns it), the spend before the final call was
    within the budget, so the overrun came from that call alone. Returns the larger of the two
    excesses divided by the budget, 0 when both hold; 0 without a budget (nothing to exceed).

    Args:
        metrics: an episode's ``episode_metrics`` (``spend``, ``budget``, ``overrun``, in the
            table's cost unit), optionally with ``final_call_cost``.
    """
    budget = metrics["budget"]
    if budget is None or not math.isfinite(budget):
        return 0.0
    spend = float(metrics["spend"])
    excess = spend - budget - float(metrics["overrun"])
    final_call_cost = metrics.get("final_call_cost")
    if final_call_cost is not None:
        excess = max(excess, spend - float(final_call_cost) - budget)
    if excess <= 0.0:
        return 0.0
    return excess / budget if budget > 0 else math.inf


def violates_budget(metrics: Mapping[str, Any], tolerance: float = BUDGET_CHECK_TOLERANCE) -> bool:
    """Whether an episode broke the budget invariant (:func:`unrecorded_overspend` above ``tolerance``)."""
    return unrecorded_overspend(metrics) > tolerance


def _overrun_fraction(metrics: Mapping[str, Any]) -> float:
    """The recorded overrun as a fraction of the budget (0 without a budget)."""
    budget = metrics["budget"]
    if budget is None or not math.isfinite(budget) or budget <= 0:
        return 0.0
    return float(metrics["overrun"]) / budget


def evaluation_rows(env: MMRRoutingEnv, max_queries: int | None = None) -> np.ndarray:
    """Table rows evaluated: the whole split, or a fixed random subset of ``max_queries`` of it."""
    rows = env.ctx.split_indices
    if max_queries is not None and max_queries < rows.size:
        # One subset for every seed, so the seeds differ only in order and the best single model
        # is measured on the very queries the policies answer.
        rows = np.sort(np.random.default_rng(0).choice(rows, max_queries, replace=False))
    return rows


def split_streams(env: MMRRoutingEnv, seed: int, max_queries: int | None = None) -> list[list[str]]:
    """The evaluated rows shuffled by ``seed`` and cut into streams of ``env.episode_length`` query ids."""
    rows = np.random.default_rng(seed).permutation(evaluation_rows(env, max_queries))
    ids = env.ctx.table.query_ids[rows].tolist()
    length = env.episode_length
    return [ids[i : i + length] for i in range(0, len(ids), length)]


def evaluate_policy(
    policy: Policy | Callable[[], Policy],
    env: MMRRoutingEnv,
    *,
    budget_ratios: Sequence[float] = DEFAULT_BUDGET_RATIOS,
    seeds: Sequence[int] = (0, 1, 2),
    max_queries: int | None = None,
    progress: bool = True,
    on_point: Callable[[Policy, float, int], None] | None = None,
) -> PolicyResult:
    """Evaluate ``policy`` on ``env``'s split over ``budget_ratios`` x ``seeds``.

    Args:
        policy: a Policy, or a factory called once per (budget, seed) so learners start afresh.
        env: an unwrapped :class:`MMRRoutingEnv`, normally on the test split (``split="test"``).
        budget_ratios: budgets as multiples of ``episode_length * c_ref`` (see the environment).
        seeds: one shuffle of the split per seed.
        max_queries: evaluate a fixed random subset of this many queries of the split (quick runs).
        progress: show a progress bar.
        on_point: called as ``on_point(policy, budget_ratio, seed)`` once that policy has answered
            the streams of that (budget, seed), e.g. to save an online learner as it then stands.
    """
    env = env.unwrapped
    make = policy if callable(policy) and not isinstance(policy, Policy) else (lambda: policy)
    agent = None
    n_budgets, n_seeds = len(budget_ratios), len(seeds)
    cost = np.zeros((n_budgets, n_seeds))
    accuracy = np.zeros((n_budgets, n_seeds))
    regret = np.zeros((n_budgets, n_seeds))
    oracle = np.zeros((n_budgets, n_seeds))
    overruns = np.zeros((n_budgets, n_seeds))
    unanswered = np.zeros((n_budgets, n_seeds))
    max_overrun = np.zeros((n_budgets, n_seeds))
    overspend = np.zeros((n_budgets, n_seeds))
    violations = np.zeros((n_budgets, n_seeds), dtype=np.int64)
    episodes = 0
    bar = tqdm(total=n_budgets * n_seeds, desc="evaluate", disable=not progress, leave=False)
    for s, seed in enumerate(seeds):
        streams = split_streams(env, seed, max_queries)
        episodes = len(streams)
        n_queries = sum(len(s_) for s_ in streams)
        for b, ratio in enumerate(budget_ratios):
            agent = make()
            bar.set_description(f"evaluate {agent.name}")
            results = [run_stream(env, agent, ids, ratio) for ids in streams]
            lengths = np.array([r["length"] for r in results], dtype=np.float64)
            cost[b, s] = sum(r["spend"] for r in results) / n_queries
            accuracy[b, s] = float(np.dot([r["accuracy"] for r in results], lengths) / n_queries)
            regret[b, s] = float(np.mean([r["regret"] for r in results]))
            oracle[b, s] = float(np.dot([r["oracle_accuracy"] for r in results], lengths) / n_queries)
            overruns[b, s] = float(np.mean([r["overrun"] > 0 for r in results]))
            unanswered[b, s] = sum(r["unanswered"] for r in results) / n_queries
            max_overrun[b, s] = max(_overrun_fraction(r) for r in results)
            overspend[b, s] = max(unrecorded_overspend(r) for r in results)
            violations[b, s] = sum(violates_budget(r) for r in results)
            if on_point is not None:
                on_point(agent, float(ratio), seed)
            bar.update()
    bar.close()

    test = env.ctx.table.subset(evaluation_rows(env, max_queries))
    index, best_acc, best_cost = best_single(test.correct, test.cost)
    mean_points = np.stack([cost.mean(axis=1), accuracy.mean(axis=1)], axis=1)
    summary = curve_summary(mean_points[:, 0], mean_points[:, 1], best_acc, best_cost)
    per_seed = [curve_summary(cost[:, s], accuracy[:, s], best_acc, best_cost) for s in range(n_seeds)]
    points = [
        BudgetPoint(
            budget_ratio=float(ratio),
            cost=float(cost[b].mean()),
            accuracy=float(accuracy[b].mean()),
            cost_std=float(cost[b].std()),
            accuracy_std=float(accuracy[b].std()),
            regret=float(regret[b].mean()),
            regret_std=float(regret[b].std()),
            oracle_accuracy=float(oracle[b].mean()),
            overrun_rate=float(overruns[b].mean()),
            unanswered_rate=float(unanswered[b].mean()),
            overrun_rate_std=_nanstd(overruns[b].tolist()),
            max_overrun=float(max_overrun[b].max()),
            unrecorded_overspend=float(overspend[b].max()),
            budget_violations=int(violations[b].sum()),
        )
        for b, ratio in enumerate(budget_ratios)
    ]
    # Per seed: the mean over budgets, so that the mean of these is the policy's regret (overrun rate).
    regret_per_seed = regret.mean(axis=0).tolist()
    overrun_per_seed = overruns.mean(axis=0).tolist()
    _warn_on_violations(agent.name, points)
    return PolicyResult(
        name=agent.name,
        points=points,
        frontier=pareto_frontier(mean_points).tolist(),
        nAUC=summary["nAUC"],
        Ps=summary["Ps"],
        QNC=summary["QNC"],
        nAUC_std=_nanstd([m["nAUC"] for m in per_seed]),
        Ps_std=float(np.std([m["Ps"] for m in per_seed])),
        QNC_per_seed=[m["QNC"] for m in per_seed],
        regret=float(regret.mean()),
        overrun_rate=float(overruns.mean()),
        best_single=_best_single_record(env, index, best_acc, best_cost),
        cost_unit=env.cost_unit,
        privileged=agent.privileged,
        extra={"seeds": list(seeds), "episodes_per_seed": episodes, "episode_length": env.episode_length},
        regret_std=_nanstd(regret_per_seed),
        overrun_rate_std=_nanstd(overrun_per_seed),
        regret_per_seed=regret_per_seed,
        overrun_rate_per_seed=overrun_per_seed,
        budget_violations=int(violations.sum()),
    )


def threshold_result(
    name: str,
    env: MMRRoutingEnv,
    pred_perf: np.ndarray | None = None,
    pred_cost: np.ndarray | None = None,
    *,
    max_queries: int | None = None,
    max_thresholds: int = 200,
    privileged: bool = False,
) -> PolicyResult:
    """Score per-query predictions with MMR-Bench's threshold protocol (numbers comparable to Table 2).

    ``pred_perf`` and ``pred_cost`` are ``[n, K]`` predictions for the evaluated rows
    (:func:`evaluation_rows`, in that order). For each cap on predicted cost, every query goes to
    the model with the highest predicted performance among those predicted under the cap. Each
    query is routed alone: no budget over a stream, so the points have no budget ratio, regret or
    overrun (NaN). Without predictions this is the per-query oracle (true outcomes as predictions,
    ties to the cheaper model).
    """
    env = env.unwrapped
    rows = evaluation_rows(env, max_queries)
    test = env.ctx.table.subset(rows)
    if pred_perf is None and pred_cost is None:
        curve = per_query_oracle_curve(test.correct, test.cost, max_thresholds=max_thresholds)
    else:
        curve = threshold_curve(pred_perf, pred_cost, test.correct, test.cost, max_thresholds=max_thresholds)
    index, best_acc, best_cost = best_single(test.correct, test.cost)
    summary = curve_summary(curve[:, 0], curve[:, 1], best_acc, best_cost)
    nan = float("nan")
    points = [
        BudgetPoint(
            budget_ratio=nan,
            cost=float(c),
            accuracy=float(a),
            cost_std=0.0,
            accuracy_std=0.0,
            regret=nan,
            regret_std=nan,
            oracle_accuracy=nan,
            overrun_rate=nan,
            unanswered_rate=0.0,
        )
        for c, a in curve
    ]
    return PolicyResult(
        name=name,
        points=points,
        frontier=pareto_frontier(curve).tolist(),
        nAUC=summary["nAUC"],
        Ps=summary["Ps"],
        QNC=summary["QNC"],
        nAUC_std=0.0,
        Ps_std=0.0,
        QNC_per_seed=[summary["QNC"]],
        regret=nan,
        overrun_rate=nan,
        best_single=_best_single_record(env, index, best_acc, best_cost),
        cost_unit=env.cost_unit,
        privileged=privileged,
        protocol="per-query threshold (MMR-Bench)",
    )


def per_query_oracle_result(
    env: MMRRoutingEnv, *, max_queries: int | None = None, max_thresholds: int = 200
) -> PolicyResult:
    """MMR-Bench's per-query oracle (cost-aware: cheapest among the best) under the threshold protocol."""
    return threshold_result(
        "PerQueryOracle", env, max_queries=max_queries, max_thresholds=max_thresholds, privileged=True
    )


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
    if first.protocol != "budgeted stream":
        return replace(
            first,
            nAUC=_nanmean([r.nAUC for r in results]),
            Ps=_nanmean([r.Ps for r in results]),
            QNC=_nanmean([r.QNC for r in results]),
            nAUC_std=_nanstd([r.nAUC for r in results]),
            Ps_std=_nanstd([r.Ps for r in results]),
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
            oracle_accuracy=_nanmean([r.points[b].oracle_accuracy for r in results]),
            overrun_rate=_nanmean([r.points[b].overrun_rate for r in results]),
            unanswered_rate=_nanmean([r.points[b].unanswered_rate for r in results]),
            overrun_rate_std=_nanstd(overruns[:, b].tolist()),
            max_overrun=_nanmax([r.points[b].max_overrun for r in results]),
            unrecorded_overspend=_nanmax([r.points[b].unrecorded_overspend for r in results]),
            budget_violations=sum(r.points[b].budget_violations for r in results),
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
        nAUC_std=_nanstd([r.nAUC for r in results]),
        Ps_std=_nanstd([r.Ps for r in results]),
        QNC_per_seed=[r.QNC for r in results],
        regret=_nanmean(regret_per_seed),
        overrun_rate=_nanmean(overrun_per_seed),
        extra={**first.extra, "seeds": seeds, "seeds_fitted": len(results)},
        regret_std=_nanstd(regret_per_seed),
        overrun_rate_std=_nanstd(overrun_per_seed),
        regret_per_seed=regret_per_seed,
        overrun_rate_per_seed=overrun_per_seed,
        budget_violations=sum(p.budget_violations for p in points),
    )


def _warn_on_violations(name: str, points: Sequence[BudgetPoint]) -> None:
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


def _nanmax(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(max(finite)) if finite else float("nan")


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _best_single_record(env: MMRRoutingEnv, index: int, accuracy: float, cost: float) -> dict[str, Any]:
    return {"model": env.model_names[index], "accuracy": float(accuracy), "mean_cost": float(cost)}


def _nanstd(values: Sequence[float]) -> float:
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
    if isinstance(value, np.integer):
        return int(value)
    return value
