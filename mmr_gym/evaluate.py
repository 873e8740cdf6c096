"""Run any policy over a budget sweep and seeds on the test split; results as plain data.

For each budget ratio and seed, the test split is shuffled by the seed and cut into consecutive
streams of ``episode_length`` queries (the last one shorter), so every test query is answered
exactly once per seed. Each budget ratio gives one point: (mean cost per query, accuracy), both
over all test queries, unanswered ones counted wrong. From the points of the seed-mean curve come
the Pareto frontier, nAUC, Ps and QNC (MMR-Bench's definitions, :mod:`mmr_gym.metrics`), with the
spread of each metric over seeds, the regret to the budgeted hindsight oracle and the overrun rate.

Each (budget, seed) is a *lane*: a fresh policy answering that seed's streams one after another.
By default the lanes run side by side as the rows of one
:class:`~mmr_gym.vector.MMRRoutingVectorEnv` (the policy acts for all of them at once through
:meth:`~mmr_gym.policy.Policy.act_batch`); ``vectorized=False`` runs them one after another on the
single environment. Both give the same episodes, hence the same figures.

Every episode is also checked against the environment's budget invariant
(:func:`mmr_gym.budget.unrecorded_overspend`): spend may exceed the budget only by the recorded
overrun of the call that ended the episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from mmr_gym.budget import overrun_fraction, unrecorded_overspend, violates_budget
from mmr_gym.checks import check_float, check_int, check_int_sequence
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.metrics import best_single, curve_summary, pareto_frontier, spend_shares, threshold_curve
from mmr_gym.oracle import per_query_oracle_curve
from mmr_gym.policy import Policy
from mmr_gym.progress import progress as progress_bar
from mmr_gym.records import METRIC_KEYS
from mmr_gym.results import (
    THRESHOLD_PROTOCOL,
    BudgetPoint,
    PolicyResult,
    json_safe,
    merge_seed_results,
    nanstd,
    warn_on_violations,
)
from mmr_gym.scenarios import drifting_world
from mmr_gym.streams import drift_order
from mmr_gym.vector import MMRRoutingVectorEnv

__all__ = [
    "DEFAULT_BUDGET_RATIOS",
    "BudgetPoint",
    "PolicyResult",
    "evaluate_policy",
    "evaluation_rows",
    "json_safe",
    "merge_seed_results",
    "per_query_oracle_result",
    "run_stream",
    "split_streams",
    "threshold_result",
]

DEFAULT_BUDGET_RATIOS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)
# A lane's episodes: each one's metrics (episode_metrics plus final_call_cost), in stream order.
Episodes = dict[tuple[int, int], list[dict[str, Any]]]


def run_stream(
    env: MMRRoutingEnv,
    policy: Policy,
    query_ids: Sequence[str],
    budget_ratio: float | None,
    time: int | None = None,
) -> dict:
    """One episode over ``query_ids``; returns the environment's ``episode_metrics``.

    ``time``: where on the timeline the episode starts (:mod:`mmr_gym.scenarios`); None continues
    the environment's timeline after its last episode.

    The returned dict also holds ``final_call_cost``, the realized cost of the call that ended the
    episode, so that :func:`mmr_gym.budget.unrecorded_overspend` can check that an overrun came
    from that call, and ``spend_by_model``: the episode's spend on each model (a list of ``K`` floats).
    """
    options: dict[str, Any] = {"query_ids": list(query_ids)}
    if budget_ratio is not None:
        options["budget_ratio"] = budget_ratio
    if time is not None:
        options["time"] = time
    obs, info = env.reset(options=options)
    policy.begin_episode(env)
    spend = np.zeros(env.ctx.n_models)
    while True:
        action = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        policy.observe(action, reward, info)
        spend[info["model_index"]] += info["cost"]
        if terminated or truncated:
            return {
                **info["episode_metrics"],
                "final_call_cost": float(info["cost"]),
                "spend_by_model": spend.tolist(),
            }


def evaluation_rows(env: MMRRoutingEnv, max_queries: int | None = None) -> np.ndarray:
    """Table rows evaluated: the whole split, or a fixed random subset of ``max_queries`` of it."""
    rows = env.ctx.split_indices
    if max_queries is not None and max_queries < rows.size:
        # One subset for every seed, so the seeds differ only in order and the best single model
        # is measured on the very queries the policies answer.
        rows = np.sort(np.random.default_rng(0).choice(rows, max_queries, replace=False))
    return rows


def split_streams(env: MMRRoutingEnv, seed: int, max_queries: int | None = None) -> list[list[str]]:
    """The evaluated rows shuffled by ``seed`` and cut into streams of ``env.episode_length`` query ids.

    Under a scenario with traffic drift the order follows the drift instead
    (:func:`mmr_gym.streams.drift_order`): the mix of datasets along the streams moves as the
    scenario says, each query still answered once.
    """
    rows = np.random.default_rng(seed).permutation(evaluation_rows(env, max_queries))
    world = drifting_world(env.config.world(env.ctx))
    if world is not None:
        slots = drift_order(world, env.ctx.lookups.slot_of_row.take(rows), seed)
        rows = env.ctx.lookups.table_rows.take(slots)
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
    vectorized: bool = True,
    scenario: str | Any | None = None,
) -> PolicyResult:
    """Evaluate ``policy`` on ``env``'s split over ``budget_ratios`` x ``seeds``.

    Args:
        policy: a Policy, or a factory. Every (budget, seed) gets a fresh policy: with a factory,
            a call of it for each; with a Policy, a copy of it as it stands (a policy that acts
            for all lanes itself, through :meth:`~mmr_gym.policy.Policy.reset_lanes`, is not
            copied).
        env: an unwrapped :class:`MMRRoutingEnv`, normally on the test split (``split="test"``).
        budget_ratios: budgets as multiples of ``episode_length * c_ref`` (see the environment).
        seeds: one shuffle of the split per seed.
        max_queries: evaluate a fixed random subset of this many queries of the split (quick runs).
        progress: show a progress bar.
        on_point: called as ``on_point(policy, budget_ratio, seed)`` once that policy has answered
            the streams of that (budget, seed), e.g. to save an online learner as it then stands.
        vectorized: run the (budget, seed) lanes side by side on the native vector env (default),
            or one after another on ``env`` itself (the same episodes, slower).
        scenario: run the streams in this world instead of ``env``'s own scenario (a preset name or
            a :class:`~mmr_gym.scenarios.Scenario`). Each lane's timeline starts at 0 and runs
            through its streams in order; the result then holds a record per episode
            (``PolicyResult.timeline``: where it started, its accuracy, the oracle's, its spend),
            from which :mod:`mmr_gym.scenarios.analysis` measures each event's effect.
    """
    env = getattr(env, "unwrapped", env)
    if not isinstance(env, MMRRoutingEnv):
        raise TypeError(
            f"env must be an MMRRoutingEnv (gym.make's, wrapped or not), got {type(env).__name__}"
        )
    if not (isinstance(policy, Policy) or callable(policy)):
        raise TypeError(f"policy must be a Policy or a factory of one, got {type(policy).__name__}")
    budget_ratios, seeds = _checked_points(budget_ratios, seeds)
    if max_queries is not None:
        max_queries = check_int("max_queries", max_queries, low=1)
    if on_point is not None and not callable(on_point):
        raise TypeError(f"on_point must be callable or None, got {type(on_point).__name__}")
    if scenario is not None:
        env = MMRRoutingEnv(**{**env.config.kwargs(), "scenario": scenario, "render_mode": None})
    make = policy if callable(policy) and not isinstance(policy, Policy) else None
    agent = make() if make is not None else policy
    streams = {seed: split_streams(env, seed, max_queries) for seed in seeds}
    lanes = [(b, s) for s in range(len(seeds)) for b in range(len(budget_ratios))]
    # Counted in queries (each stream's, answered or left unanswered), which cost alike; episodes
    # of side-by-side rows would all end at once.
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    bar = progress_bar(
        total=sum(len(ids) for _, s in lanes for ids in streams[seeds[s]]),
        desc=f"evaluate {agent.name} ({seed_text}; {len(budget_ratios)} budgets)",
        unit="queries",
        enabled=progress,
    )
    run = _run_lanes if vectorized else _run_lanes_one_by_one
    episodes = run(agent, make, env, lanes, budget_ratios, seeds, streams, on_point, bar)
    bar.close()
    result = _summarize(agent, env, episodes, budget_ratios, seeds, max_queries)
    if env.config.scenario is not None:
        result.scenario = _scenario_record(env)
        result.timeline = [
            {"budget_ratio": float(budget_ratios[b]), "seed": seeds[s], **_episode_record(r)}
            for (b, s), records in episodes.items()
            for r in records
        ]
    return result


def _checked_points(budget_ratios: Any, seeds: Any) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The evaluation grid, checked: non-empty, numbers, no repeats (a repeated point would be
    counted twice in every mean over the grid)."""
    if isinstance(budget_ratios, str | bytes) or not isinstance(budget_ratios, Sequence | np.ndarray):
        raise TypeError(f"budget_ratios must be a sequence of numbers, got {budget_ratios!r}")
    ratios = tuple(
        check_float(f"budget_ratios[{i}]", r, low=0.0, low_open=True) for i, r in enumerate(budget_ratios)
    )
    seeds = check_int_sequence("seeds", list(seeds) if isinstance(seeds, np.ndarray) else seeds, low=0)
    for name, values in (("budget_ratios", ratios), ("seeds", seeds)):
        if not values:
            raise ValueError(f"{name} must not be empty")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} repeats a value: {list(values)}")
    return ratios, seeds


def _scenario_record(env: MMRRoutingEnv) -> dict[str, Any]:
    record = env.config.world(env.ctx).scenario.to_dict()
    record["split_queries"] = int(env.ctx.split_indices.size)
    return record


def _episode_record(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a timeline keeps of an episode (see :attr:`PolicyResult.timeline`)."""
    keys = ("time", "length", "answered", "accuracy", "oracle_accuracy", "spend", "budget", "overrun")
    return {key: metrics[key] for key in keys}


#: A batched evaluation of an episodic policy runs at most this many rows side by side.
MAX_ROWS = 1024


def _run_lanes(
    agent: Policy,
    make: Callable[[], Policy] | None,
    env: MMRRoutingEnv,
    lanes: list[tuple[int, int]],
    budget_ratios: Sequence[float],
    seeds: Sequence[int],
    streams: dict[int, list[list[str]]],
    on_point: Callable[[Policy, float, int], None] | None,
    bar: Any,
) -> Episodes:
    """The lanes on the rows of one vector env (autoreset disabled: each finished row is reset with
    its next stream). Each row runs consecutive episodes of one lane: all of them, or, for an
    :attr:`~mmr_gym.policy.Policy.episodic` policy, a share (down to one episode per row), so that
    the episodes run side by side. A row whose episodes are done idles on its last stream again."""
    lane_streams = [streams[seeds[s]] for _, s in lanes]
    plan = _row_plan([len(x) for x in lane_streams], agent.episodic)
    n = len(plan)
    # The infos hold what the evaluator reads (the episodes' metrics, the final call's cost) and
    # what the policy says it reads.
    keys = None if agent.info_keys is None else ("episode_metrics", "cost", "model_index", *agent.info_keys)
    venv = MMRRoutingVectorEnv(
        num_envs=n,
        autoreset_mode=AutoresetMode.DISABLED,
        stream_sampling="per-env",
        info_keys=keys,
        **{**env.config.kwargs(), "render_mode": None},
    )
    row_streams = [lane_streams[lane][first:stop] for lane, first, stop in plan]
    ratios = [float(budget_ratios[lanes[lane][0]]) for lane, _, _ in plan]
    # Each lane's timeline starts at 0 and runs through its streams: a row starts where its first
    # episode stands on it.
    times = [sum(len(x) for x in lane_streams[lane][:first]) for lane, first, _ in plan]
    records: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    rows_left = np.bincount([lane for lane, _, _ in plan], minlength=len(lanes))
    spend = np.zeros((n, env.ctx.n_models))  # each row's spend per model in its current episode
    position = np.zeros(n, dtype=np.int64)  # each row's current stream
    rows = np.arange(n)
    active = np.ones(n, dtype=bool)
    agent.reset_lanes(n, make)
    obs, info = venv.reset(
        options={"streams": [x[0] for x in row_streams], "budget_ratios": ratios, "times": times}
    )
    agent.begin_episodes(venv, rows)
    while True:
        actions = agent.act_batch(obs, info, active)
        obs, rewards, terminated, _, info = venv.step(actions)
        agent.observe_batch(actions, rewards, info, active)
        bar.update(int(np.count_nonzero(active)))  # a query answered by every active row
        spend[rows, info["model_index"]] += info["cost"]  # one call per row: no repeated index
        if not np.count_nonzero(terminated):
            continue
        ended = np.flatnonzero(terminated)
        metrics = info["episode_metrics"]
        for i in ended[active[ended]].tolist():
            # The row's metrics as the single env gives them (Python scalars; None for no budget).
            record = {key: _scalar(metrics[key][i]) for key in METRIC_KEYS}
            record["final_call_cost"] = float(info["cost"][i])
            records[i].append({**record, "spend_by_model": spend[i].tolist()})
            bar.update(int(record["unanswered"]))  # the queries its early end left
            position[i] += 1
            if position[i] == len(row_streams[i]):
                active[i] = False
                lane = plan[i][0]
                rows_left[lane] -= 1
                if on_point is not None and rows_left[lane] == 0:
                    b, s = lanes[lane]
                    on_point(agent.lane(i), float(budget_ratios[b]), seeds[s])
        if not np.count_nonzero(active):
            break
        next_streams = [row_streams[i][min(position[i], len(row_streams[i]) - 1)] for i in ended.tolist()]
        obs, reset_info = venv.reset(
            options={
                "reset_mask": terminated,
                "streams": next_streams,
                "budget_ratios": [ratios[i] for i in ended.tolist()],
            }
        )
        info = _after_reset(info, reset_info, terminated)
        spend[terminated] = 0.0
        started = ended[active[ended]]
        if started.size:
            agent.begin_episodes(venv, started)
    episodes: Episodes = {lane: [] for lane in lanes}
    for (lane, _, _), row_records in zip(
        plan, records, strict=True
    ):  # rows in order of their lane's episodes
        episodes[lanes[lane]].extend(row_records)
    return episodes


def _row_plan(n_episodes: list[int], episodic: bool) -> list[tuple[int, int, int]]:
    """Which episodes each row runs: ``(lane, first, stop)``, rows in lane order, then episode order.
    One row per lane; for an episodic policy, each lane's episodes split into up to
    ``MAX_ROWS / lanes`` runs of consecutive episodes."""
    pieces = max(1, MAX_ROWS // len(n_episodes)) if episodic else 1
    plan = []
    for lane, count in enumerate(n_episodes):
        size = max(1, -(-count // pieces))  # ceil: as few, and as even, runs as the cap allows
        plan += [(lane, first, min(first + size, count)) for first in range(0, count, size)]
    return plan


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _after_reset(info: dict[str, Any], reset_info: dict[str, Any], reset: np.ndarray) -> dict[str, Any]:
    """What the policy acts on after a partial reset: each row's last info, the reset rows' from
    the reset (their action masks; their step keys marked as not reported)."""
    merged: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or key == "action_mask":
            continue
        merged[key] = value
        reported = info.get("_" + key)
        if reported is not None:
            merged["_" + key] = reported & ~reset
    mask = info["action_mask"].copy()
    mask[reset] = reset_info["action_mask"][reset]
    merged["action_mask"] = mask
    merged["_action_mask"] = info["_action_mask"]
    return merged


def _run_lanes_one_by_one(
    agent: Policy,
    make: Callable[[], Policy] | None,
    env: MMRRoutingEnv,
    lanes: list[tuple[int, int]],
    budget_ratios: Sequence[float],
    seeds: Sequence[int],
    streams: dict[int, list[list[str]]],
    on_point: Callable[[Policy, float, int], None] | None,
    bar: Any,
) -> Episodes:
    """Every lane in turn on the single environment, one episode at a time."""
    episodes: Episodes = {}
    for index, (b, s) in enumerate(lanes):
        lane = make() if make is not None and index > 0 else agent  # agent: the first lane's
        ratio = budget_ratios[b]
        results = []
        for j, ids in enumerate(streams[seeds[s]]):
            # Each lane's timeline starts at 0 and runs through its streams.
            results.append(run_stream(env, lane, ids, ratio, time=0 if j == 0 else None))
            bar.update(len(ids))
        episodes[(b, s)] = results
        if on_point is not None:
            on_point(lane, float(ratio), seeds[s])
    return episodes


def _summarize(
    agent: Policy,
    env: MMRRoutingEnv,
    episodes: Episodes,
    budget_ratios: Sequence[float],
    seeds: Sequence[int],
    max_queries: int | None,
) -> PolicyResult:
    """The sweep's points and metrics from each lane's episodes."""
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
    spend_by_model = np.zeros((n_budgets, env.ctx.n_models))  # over seeds and streams
    count = 0
    for (b, s), results in episodes.items():
        count = len(results)
        n_queries = sum(r["length"] for r in results)
        lengths = np.array([r["length"] for r in results], dtype=np.float64)
        cost[b, s] = sum(r["spend"] for r in results) / n_queries
        accuracy[b, s] = float(np.dot([r["accuracy"] for r in results], lengths) / n_queries)
        regret[b, s] = float(np.mean([r["regret"] for r in results]))
        oracle[b, s] = float(np.dot([r["oracle_accuracy"] for r in results], lengths) / n_queries)
        overruns[b, s] = float(np.mean([r["overrun"] > 0 for r in results]))
        unanswered[b, s] = sum(r["unanswered"] for r in results) / n_queries
        max_overrun[b, s] = max(overrun_fraction(r) for r in results)
        overspend[b, s] = max(unrecorded_overspend(r) for r in results)
        violations[b, s] = sum(violates_budget(r) for r in results)
        spend_by_model[b] += np.sum([r["spend_by_model"] for r in results], axis=0)

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
            overrun_rate_std=nanstd(overruns[b].tolist()),
            max_overrun=float(max_overrun[b].max()),
            unrecorded_overspend=float(overspend[b].max()),
            budget_violations=int(violations[b].sum()),
            spend_by_model=spend_shares(env.model_names, spend_by_model[b]),
        )
        for b, ratio in enumerate(budget_ratios)
    ]
    # Per seed: the mean over budgets, so that the mean of these is the policy's regret (overrun rate).
    regret_per_seed = regret.mean(axis=0).tolist()
    overrun_per_seed = overruns.mean(axis=0).tolist()
    warn_on_violations(agent.name, points)
    return PolicyResult(
        name=agent.name,
        points=points,
        frontier=pareto_frontier(mean_points).tolist(),
        nAUC=summary["nAUC"],
        Ps=summary["Ps"],
        QNC=summary["QNC"],
        nAUC_std=nanstd([m["nAUC"] for m in per_seed]),
        Ps_std=float(np.std([m["Ps"] for m in per_seed])),
        QNC_per_seed=[m["QNC"] for m in per_seed],
        regret=float(regret.mean()),
        overrun_rate=float(overruns.mean()),
        best_single=_best_single_record(env, index, best_acc, best_cost),
        cost_unit=env.cost_unit,
        privileged=agent.privileged,
        extra={"seeds": list(seeds), "episodes_per_seed": count, "episode_length": env.episode_length},
        regret_std=nanstd(regret_per_seed),
        overrun_rate_std=nanstd(overrun_per_seed),
        regret_per_seed=regret_per_seed,
        overrun_rate_per_seed=overrun_per_seed,
        budget_violations=int(violations.sum()),
        model_mean_cost=dict(zip(env.model_names, test.model_mean_cost().tolist(), strict=True)),
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
        protocol=THRESHOLD_PROTOCOL,
    )


def per_query_oracle_result(
    env: MMRRoutingEnv, *, max_queries: int | None = None, max_thresholds: int = 200
) -> PolicyResult:
    """MMR-Bench's per-query oracle (cost-aware: cheapest among the best) under the threshold protocol."""
    return threshold_result(
        "PerQueryOracle", env, max_queries=max_queries, max_thresholds=max_thresholds, privileged=True
    )


def _best_single_record(env: MMRRoutingEnv, index: int, accuracy: float, cost: float) -> dict[str, Any]:
    return {"model": env.model_names[index], "accuracy": float(accuracy), "mean_cost": float(cost)}
