"""The evaluator, the baseline policies and the report, on a small synthetic table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _results import hand_result
from _tables import make_table

from agents.bandits import paced_bandit
from agents.baselines import BestSinglePolicy, CheapestPolicy, OraclePolicy, RandomPolicy
from agents.pacing import PacedPolicy
from agents.supervised import fit_router
from mmr_gym import evaluate as evaluate_module
from mmr_gym.budget import unrecorded_overspend, violates_budget
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import (
    evaluate_policy,
    merge_seed_results,
    per_query_oracle_result,
    run_stream,
    split_streams,
)
from mmr_gym.metrics import best_single, curve_summary
from mmr_gym.report import markdown_table, write_report

BUDGETS = (0.05, 0.2, 0.5, 3.0)


@pytest.fixture(scope="module")
def env() -> MMRRoutingEnv:
    return MMRRoutingEnv(make_table(n=400, k=4, seed=2), split="test", episode_length=25)


@pytest.fixture(scope="module")
def results(env):
    policies = [RandomPolicy, CheapestPolicy, BestSinglePolicy, OraclePolicy]
    return {
        p.name: evaluate_policy(p, env, budget_ratios=BUDGETS, seeds=(0, 1), progress=False) for p in policies
    }


def test_streams_cover_the_test_split_once_per_seed(env):
    streams = split_streams(env, seed=0)
    ids = [q for s in streams for q in s]
    assert sorted(ids) == sorted(env.ctx.table.query_ids[env.ctx.split_indices].tolist())
    assert all(len(s) == 25 for s in streams[:-1])
    assert split_streams(env, seed=0) == streams != split_streams(env, seed=1)


def test_result_summary_is_the_metrics_of_its_points(results, env):
    test = env.ctx.table.subset(env.ctx.split_indices)
    _, acc, cost = best_single(test.correct, test.cost)
    for r in results.values():
        assert len(r.points) == len(BUDGETS)
        summary = curve_summary([p.cost for p in r.points], [p.accuracy for p in r.points], acc, cost)
        for key in ("nAUC", "Ps", "QNC"):
            got, want = getattr(r, key), summary[key]
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
        assert 0.0 <= r.overrun_rate <= 1.0


def test_best_single_with_ample_budget_is_the_best_training_model(results, env):
    point = results["BestSingle"].points[-1]  # budget 3 x c_ref per query: never constrained
    train = env.ctx.table.subset(env.ctx.train_indices)
    model = int(np.lexsort((train.model_mean_cost(), -train.model_accuracy()))[0])
    rows = env.ctx.split_indices
    assert point.accuracy == pytest.approx(float(env.ctx.table.correct[rows, model].mean()))
    assert point.cost == pytest.approx(float(env.ctx.table.cost[rows, model].mean()), rel=1e-6)
    assert point.unanswered_rate == 0.0


def test_policies_rank_as_they_must(results):
    for b in range(len(BUDGETS)):
        oracle = results["Oracle"].points[b]
        for name in ("Random", "Cheapest", "BestSingle"):
            assert oracle.accuracy >= results[name].points[b].accuracy - 1e-9, (name, b)
        assert results["Cheapest"].points[b].cost <= results["Random"].points[b].cost + 1e-9
        # The must-answer oracle plan is bounded by the skip-allowed oracle used for regret.
        assert oracle.accuracy <= oracle.oracle_accuracy + 1e-9
    assert results["Oracle"].privileged and not results["Random"].privileged


def test_regret_is_oracle_minus_policy_accuracy(env):
    ids = split_streams(env, seed=3)[0]
    metrics = run_stream(env, RandomPolicy(seed=0), ids, 0.3)
    assert metrics["regret"] == pytest.approx(metrics["oracle_accuracy"] - metrics["accuracy"])
    assert metrics["length"] == len(ids)


def test_evaluation_is_deterministic(env):
    a = evaluate_policy(RandomPolicy, env, budget_ratios=(0.1, 0.5), seeds=(4,), progress=False)
    b = evaluate_policy(RandomPolicy, env, budget_ratios=(0.1, 0.5), seeds=(4,), progress=False)
    assert a.to_dict() == b.to_dict()


def _paced_router(env):
    train = MMRRoutingEnv(env.ctx.table, split="train", episode_length=25)
    router = fit_router("linear-mf", train)
    return lambda: PacedPolicy(router)


@pytest.mark.parametrize(
    "make",
    [
        lambda env: RandomPolicy,
        lambda env: CheapestPolicy,
        lambda env: BestSinglePolicy,
        lambda env: OraclePolicy,
        _paced_router,
        lambda env: lambda: paced_bandit("linucb", MMRRoutingEnv(env.ctx.table, episode_length=25), seed=3),
        lambda env: (
            lambda: PacedPolicy(
                fit_router("linear", MMRRoutingEnv(env.ctx.table, episode_length=25)), reserve=0.0
            )
        ),
    ],
    ids=[
        "random",
        "cheapest",
        "best-single",
        "oracle",
        "paced-linear-mf",
        "paced-linucb",
        "paced-no-reserve",
    ],
)
@pytest.mark.parametrize("feedback", ["bandit", "full"])
def test_batched_evaluation_equals_one_by_one_bit_for_bit(env, make, feedback):
    # The lanes run side by side on the vector env, or in turn on the single env: the same
    # episodes, so the same figures (to the last bit), unbudgeted and tight budgets included.
    target = MMRRoutingEnv(env.ctx.table, split="test", episode_length=25, feedback=feedback)
    factory = make(target)
    kwargs = {"budget_ratios": (0.02, 0.3, 2.0), "seeds": (0, 7), "progress": False, "max_queries": 230}
    batched = evaluate_policy(factory, target, **kwargs)
    one_by_one = evaluate_policy(factory, target, vectorized=False, **kwargs)
    assert batched.to_dict() == one_by_one.to_dict()


def test_a_subclass_with_its_own_act_is_not_run_by_its_parents_batched_rule(env):
    # PacedPolicy acts for all rows in arrays; a subclass that answers a query its own way must be
    # evaluated by its own act, row by row, and (it may carry state across episodes) in turn.
    class LastAffordable(PacedPolicy):
        def act(self, obs, info):
            return int(np.flatnonzero(info["action_mask"])[-1])

    target = MMRRoutingEnv(env.ctx.table, split="test", episode_length=25)
    router = fit_router("linear-mf", MMRRoutingEnv(env.ctx.table, split="train", episode_length=25))
    assert LastAffordable(router).episodic is False and PacedPolicy(router).episodic is True
    kwargs = {"budget_ratios": (0.05, 0.5), "seeds": (0,), "progress": False, "max_queries": 230}
    batched = evaluate_policy(LastAffordable(router), target, **kwargs)
    one_by_one = evaluate_policy(LastAffordable(router), target, vectorized=False, **kwargs)
    assert batched.to_dict() == one_by_one.to_dict()
    assert batched.nAUC != evaluate_policy(PacedPolicy(router), target, **kwargs).nAUC


@pytest.mark.parametrize("vectorized", [True, False])
def test_on_point_hands_over_each_policy_after_its_streams(env, vectorized):
    built, points = [], []

    class Counting(RandomPolicy):
        def begin_episode(self, env):
            self.episodes = getattr(self, "episodes", 0) + 1

    def make():
        built.append(Counting(seed=len(built)))
        return built[-1]

    def on_point(policy, ratio, seed):
        # Called after that policy answered its streams (and, run one by one, before the next is built).
        points.append((policy, ratio, seed, len(built), policy.episodes))

    streams = len(split_streams(env, 4, max_queries=200))
    evaluate_policy(
        make,
        env,
        budget_ratios=(0.1, 0.5),
        seeds=(4, 5),
        max_queries=200,
        progress=False,
        on_point=on_point,
        vectorized=vectorized,
    )
    lanes = [(0.1, 4), (0.5, 4), (0.1, 5), (0.5, 5)]
    assert sorted((r, s) for _, r, s, *_ in points) == sorted(lanes)
    assert all(episodes == streams for *_, episodes in points)
    # Each lane's own policy, once, built in lane order (the first built also names the result).
    assert len(built) == 4
    assert {(r, s): built.index(p) for p, r, s, *_ in points} == {lane: i for i, lane in enumerate(lanes)}
    if not vectorized:
        assert [(r, s) for _, r, s, *_ in points] == lanes
        assert [n for _, _, _, n, _ in points] == [1, 2, 3, 4]


def test_row_plan_splits_an_episodic_policys_lanes_into_runs_of_episodes(monkeypatch):
    assert evaluate_module._row_plan([3, 2], episodic=False) == [(0, 0, 3), (1, 0, 2)]
    monkeypatch.setattr(evaluate_module, "MAX_ROWS", 4)
    assert evaluate_module._row_plan([3, 2], episodic=True) == [(0, 0, 2), (0, 2, 3), (1, 0, 1), (1, 1, 2)]
    monkeypatch.setattr(evaluate_module, "MAX_ROWS", 1)  # fewer rows than lanes: one per lane
    assert evaluate_module._row_plan([3, 2], episodic=True) == [(0, 0, 3), (1, 0, 2)]


@pytest.mark.parametrize("max_rows", [1, 9, 1024])
def test_an_episodic_policy_split_over_rows_gives_the_one_by_one_figures(env, monkeypatch, max_rows):
    # Rows run runs of a lane's episodes (from one per lane to one per row): the same episodes in
    # the same order, each lane's on_point once, after its last episode.
    monkeypatch.setattr(evaluate_module, "MAX_ROWS", max_rows)
    target = MMRRoutingEnv(env.ctx.table, split="test", episode_length=25)
    router = fit_router("linear-mf", MMRRoutingEnv(env.ctx.table, split="train", episode_length=25))
    points = []
    kwargs = {"budget_ratios": (0.05, 0.5), "seeds": (0, 3), "progress": False, "max_queries": 230}
    batched = evaluate_policy(
        PacedPolicy(router), target, on_point=lambda p, r, s: points.append((r, s)), **kwargs
    )
    one_by_one = evaluate_policy(PacedPolicy(router), target, vectorized=False, **kwargs)
    assert batched.to_dict() == one_by_one.to_dict()
    assert sorted(points) == sorted((r, s) for r in (0.05, 0.5) for s in (0, 3))


def test_per_query_oracle_result_reaches_the_oracle_accuracy(env):
    r = per_query_oracle_result(env)
    test = env.ctx.table.subset(env.ctx.split_indices)
    assert r.Ps == pytest.approx(float(test.correct.max(axis=1).mean()))
    assert r.protocol.startswith("per-query")


def test_report_files(results, tmp_path):
    ordered = list(results.values())
    files = write_report(ordered, tmp_path, title="t", context={"seeds": [0, 1]})
    payload = json.loads(files["json"].read_text())
    records = payload["results"]
    assert [r["name"] for r in records] == [r.name for r in ordered]
    for record in records:
        for key in ("name", "nAUC", "Ps", "QNC", "regret", "overrun_rate", "points"):
            assert key in record
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = files["markdown"].read_text()
    assert "| Oracle (privileged) |" in markdown and markdown_table(ordered) in markdown
    assert files["csv"].read_text().splitlines()[0].startswith("name,nAUC")


def test_threshold_result_with_true_outcomes_as_predictions_matches_the_oracle(env):
    from mmr_gym.evaluate import evaluation_rows, threshold_result

    rows = evaluation_rows(env)
    table = env.ctx.table
    perfect = threshold_result("perfect", env, table.correct[rows], table.cost[rows])
    oracle = per_query_oracle_result(env)
    assert perfect.Ps == pytest.approx(oracle.Ps)
    assert perfect.protocol == oracle.protocol == "per-query threshold (MMR-Bench)"
    # A router that predicts the same for every model routes everything to model 0 (first argmax).
    flat = threshold_result("flat", env, np.zeros((rows.size, 4)), np.zeros((rows.size, 4)))
    assert flat.Ps == pytest.approx(float(table.correct[rows, 0].mean()))


# ------------------------------------------------------------------- spread of regret and overrun rate
def test_regret_and_overrun_spread_is_the_std_of_the_per_seed_values(results, env):
    random = results["Random"]
    alone = [
        evaluate_policy(RandomPolicy, env, budget_ratios=BUDGETS, seeds=(s,), progress=False) for s in (0, 1)
    ]
    assert random.regret_per_seed == pytest.approx([r.regret for r in alone])
    assert random.overrun_rate_per_seed == pytest.approx([r.overrun_rate for r in alone])
    assert random.regret == pytest.approx(np.mean(random.regret_per_seed))
    assert random.regret_std == pytest.approx(np.std([r.regret for r in alone]))
    assert random.overrun_rate_std == pytest.approx(np.std([r.overrun_rate for r in alone]))
    assert random.regret_std > 0  # two shuffles of a random policy do differ
    for b, point in enumerate(random.points):
        rates = [r.points[b].overrun_rate for r in alone]
        assert point.overrun_rate_std == pytest.approx(np.std(rates), abs=1e-12)
    # A single seed has no spread.
    assert alone[0].regret_std == alone[0].overrun_rate_std == 0.0


def test_merge_seed_results_gives_the_spreads_from_known_per_seed_values():
    # Per seed, regret and overrun rate are the means over the budgets: 0.2 and 0.4; 0.25 and 0.5.
    seed0 = hand_result("P", [0.3, 0.4, 0.5], regrets=[0.1, 0.2, 0.3], overrun_rates=[0.0, 0.25, 0.5])
    seed1 = hand_result("P", [0.3, 0.4, 0.5], regrets=[0.3, 0.4, 0.5], overrun_rates=[0.5, 0.5, 0.5], seed=1)
    merged = merge_seed_results([seed0, seed1])
    assert merged.regret_per_seed == pytest.approx([0.2, 0.4])
    assert (merged.regret, merged.regret_std) == pytest.approx((0.3, 0.1))
    assert merged.overrun_rate_per_seed == pytest.approx([0.25, 0.5])
    assert (merged.overrun_rate, merged.overrun_rate_std) == pytest.approx((0.375, 0.125))
    assert [p.overrun_rate_std for p in merged.points] == pytest.approx([0.25, 0.125, 0.0])
    # A result that already covers two seeds counts as two seeds, not as one mean.
    seed2 = hand_result("P", [0.3, 0.4, 0.5], regrets=[0.6] * 3, overrun_rates=[0.0] * 3, seed=2)
    again = merge_seed_results([merged, seed2])
    assert again.regret_per_seed == pytest.approx([0.2, 0.4, 0.6])
    assert (again.regret, again.regret_std) == pytest.approx((0.4, np.std([0.2, 0.4, 0.6])))
    assert again.extra["seeds"] == [0, 1, 2]


def test_merging_per_seed_evaluations_gives_the_spreads_of_evaluating_them_together(results, env):
    together = results["BestSingle"]
    merged = merge_seed_results(
        [
            evaluate_policy(BestSinglePolicy, env, budget_ratios=BUDGETS, seeds=(s,), progress=False)
            for s in (0, 1)
        ]
    )
    for key in ("regret", "regret_std", "overrun_rate", "overrun_rate_std", "budget_violations"):
        assert getattr(merged, key) == pytest.approx(getattr(together, key)), key
    assert merged.regret_per_seed == pytest.approx(together.regret_per_seed)
    for p, q in zip(together.points, merged.points, strict=True):
        keys = ("overrun_rate_std", "max_overrun", "unrecorded_overspend", "budget_violations")
        assert [getattr(p, k) for k in keys] == pytest.approx([getattr(q, k) for k in keys])


# ------------------------------------------------------------------- the budget invariant
def test_unrecorded_overspend_holds_for_a_final_call_overrun_and_fails_otherwise():
    within = {"spend": 9.0, "budget": 10.0, "overrun": 0.0, "final_call_cost": 1.0}
    final_overrun = {"spend": 12.0, "budget": 10.0, "overrun": 2.0, "final_call_cost": 3.0}
    rounding = {"spend": 10.0 * (1 + 1e-9), "budget": 10.0, "overrun": 0.0}
    unrecorded = {"spend": 12.0, "budget": 10.0, "overrun": 0.0}
    # The overrun is recorded, but the budget was already spent before the final call.
    early = {"spend": 12.0, "budget": 10.0, "overrun": 2.0, "final_call_cost": 0.5}
    no_budget = {"spend": 50.0, "budget": None, "overrun": 0.0}
    for metrics in (within, final_overrun, rounding, no_budget):
        assert not violates_budget(metrics), metrics
    assert unrecorded_overspend(within) == unrecorded_overspend(final_overrun) == 0.0
    assert violates_budget(unrecorded) and unrecorded_overspend(unrecorded) == pytest.approx(0.2)
    assert violates_budget(early) and unrecorded_overspend(early) == pytest.approx(0.15)


def test_evaluation_records_overruns_and_no_violation_in_real_episodes(results, env):
    for r in results.values():
        assert r.budget_violations == 0, r.name
        for p in r.points:
            assert p.budget_violations == 0 and p.unrecorded_overspend == 0.0, (r.name, p.budget_ratio)
            assert (p.max_overrun > 0) == (p.overrun_rate > 0), (r.name, p.budget_ratio)
    assert max(p.max_overrun for p in results["Random"].points) > 0  # the check saw real overruns
    metrics = run_stream(env, RandomPolicy(seed=0), split_streams(env, seed=0)[0], 0.05)
    assert metrics["final_call_cost"] > 0
    assert metrics["spend"] - metrics["final_call_cost"] <= metrics["budget"] * (1 + 1e-9)


def test_evaluation_counts_and_warns_about_a_violating_episode(env, monkeypatch, tmp_path):
    real_run_stream = evaluate_module.run_stream
    calls = []

    def leaky(*args, **kwargs):
        metrics = real_run_stream(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # one episode spends 30% of its budget beyond it, unrecorded
            metrics = {**metrics, "spend": metrics["budget"] * 1.3, "overrun": 0.0}
        return metrics

    monkeypatch.setattr(evaluate_module, "run_stream", leaky)
    with pytest.warns(RuntimeWarning, match="1 episodes spent beyond their budget"):
        r = evaluate_policy(
            CheapestPolicy, env, budget_ratios=(0.2, 0.5), seeds=(0,), progress=False, vectorized=False
        )
    assert r.budget_violations == 1
    assert [p.budget_violations for p in r.points] == [1, 0]
    assert r.points[0].unrecorded_overspend == pytest.approx(0.3)
    markdown = write_report([r], tmp_path)["markdown"].read_text()
    assert any(line.startswith("VIOLATION: Cheapest: 1 episodes") for line in markdown.splitlines())


def test_spend_by_model_is_each_models_share_of_the_spend(env):
    ample = evaluate_policy(BestSinglePolicy, env, budget_ratios=(5.0, 0.05), seeds=(0, 1), progress=False)
    train = env.ctx.table.subset(env.ctx.train_indices)
    favourite = env.model_names[int(np.lexsort((train.model_mean_cost(), -train.model_accuracy()))[0])]
    assert ample.points[0].spend_by_model[favourite] == pytest.approx(1.0)
    for point in ample.points:
        assert sum(point.spend_by_model.values()) == pytest.approx(1.0)
    assert ample.points[1].spend_by_model[favourite] < 1.0  # a tight budget forces other models
    # Recomputed from the episodes themselves.
    streams = split_streams(env, 0)
    spend = sum(np.array(run_stream(env, BestSinglePolicy(), ids, 0.05)["spend_by_model"]) for ids in streams)
    one_seed = evaluate_policy(BestSinglePolicy, env, budget_ratios=(0.05,), seeds=(0,), progress=False)
    shares = dict(zip(env.model_names, (spend / spend.sum()).tolist(), strict=True))
    assert one_seed.points[0].spend_by_model == pytest.approx(shares)
    mean_cost = env.ctx.table.subset(env.ctx.split_indices).model_mean_cost().tolist()
    assert ample.model_mean_cost == pytest.approx(dict(zip(env.model_names, mean_cost, strict=True)))


def _row_by_row(info: dict, i: int) -> dict:
    """Sub-environment ``i``'s part of a batched info converted row by row: the reference for ``info_rows``.

    A key is kept where its ``_key`` mask holds for ``i``; numbers become Python scalars, as the
    single environment's are (arrays such as ``action_mask`` stay arrays).
    """
    row: dict = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        reported = info.get("_" + key)
        if reported is not None and not reported[i]:
            continue
        if isinstance(value, dict):
            row[key] = _row_by_row(value, i)
        elif isinstance(value, np.ndarray) and value.ndim > 1:
            row[key] = value[i]
        else:
            item = value[i]
            row[key] = item.item() if isinstance(item, np.generic) else item
    return row


@pytest.mark.parametrize("budget_ratio", [0.3, None])
@pytest.mark.parametrize("autoreset_mode", ["next", "same"])
def test_info_rows_are_each_rows_info_as_the_single_env_gives_it(budget_ratio, autoreset_mode):
    # The per-row infos the default batch methods hand to act and observe: every key of a full
    # info (nested rewards and outcomes, episode metrics with None budgets, same-step final infos),
    # column by column, equal to row-by-row conversion, with the same Python types and key order.
    import gymnasium as gym

    from mmr_gym.policy import info_rows
    from mmr_gym.vector import MMRRoutingVectorEnv

    mode = (
        gym.vector.AutoresetMode.NEXT_STEP if autoreset_mode == "next" else gym.vector.AutoresetMode.SAME_STEP
    )
    env = MMRRoutingVectorEnv(
        make_table(n=120, k=3, seed=4),
        num_envs=6,
        episode_length=4,
        budget_ratio=budget_ratio,
        feedback="full",
        autoreset_mode=mode,
    )
    _, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(12):
        for rows in ([0, 1, 2, 3, 4, 5], [1, 4], []):
            expected = [_row_by_row(info, i) for i in rows]
            got = info_rows(info, rows)
            assert [list(r) for r in got] == [list(r) for r in expected]
            for a, b in zip(got, expected, strict=True):
                for key in a:
                    assert type(a[key]) is type(b[key]), key
                    if isinstance(a[key], np.ndarray):
                        np.testing.assert_array_equal(a[key], b[key])
                    elif isinstance(a[key], dict):
                        assert repr(a[key]) == repr(b[key])
                    else:
                        assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key
            compared += len(rows)
        mask = info["action_mask"].astype(bool)
        _, _, _, _, info = env.step((rng.random(mask.shape) * mask).argmax(axis=1))
    assert compared > 0
