"""The evaluator, the baseline policies and the report, on a small synthetic table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _tables import make_table

from agents.baselines import BestSinglePolicy, CheapestPolicy, OraclePolicy, RandomPolicy
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy, per_query_oracle_result, run_stream, split_streams
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
