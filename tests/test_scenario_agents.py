"""The scenario agents (agents/scenario_agents.py) that train.py --scenario and bench_scenarios.py share."""

from __future__ import annotations

import pytest
from _tables import make_table

import train
from agents.scenario_agents import SCENARIO_AGENTS, Deployment, models_at_start
from agents.supervised import fit_router
from benchmarks import bench_scenarios
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.policy import Policy


@pytest.fixture(scope="module")
def envs():
    table = make_table(n=400, k=4, seed=7)
    kwargs = {"dataset": table, "episode_length": 20, "budget_ratio": 0.5}
    train_env = MMRRoutingEnv(**kwargs, split="train")
    test_env = MMRRoutingEnv(**kwargs, split="test", scenario="new-model")
    return train_env, test_env


def test_models_at_start_leave_out_the_model_that_arrives_later(envs):
    _, test_env = envs
    world = test_env.config.world(test_env.ctx)
    known = models_at_start(test_env.model_names, world)
    arriving = sorted(set(test_env.model_names) - set(known))
    assert len(arriving) == 1 and world.available[:, test_env.model_names.index(arriving[0])].any()
    assert known == [m for m in test_env.model_names if m not in arriving]  # in the table's order
    assert models_at_start(test_env.model_names, None) == list(test_env.model_names)


def test_each_agent_makes_a_fresh_policy_per_lane_and_the_static_one_never_calls_the_newcomer(envs):
    train_env, test_env = envs
    router = fit_router("linear-mf", train_env)
    known = models_at_start(test_env.model_names, test_env.config.world(test_env.ctx))
    deployment = Deployment(train_env, router, known, seed=0)
    for name, (what, build) in SCENARIO_AGENTS.items():
        make = build(deployment)
        first, second = make(), make()
        assert isinstance(first, Policy) and first is not second and what, name
    static = SCENARIO_AGENTS["static"][1](deployment)()
    world = test_env.config.world(test_env.ctx)
    static.begin_episode(test_env)
    obs, info = test_env.reset(seed=1, options={"time": int(world.breaks[-1])})  # the newcomer is here
    assert world.available[1].all()
    called, done = [], False
    while not done:
        action = static.act(obs, info)
        obs, _, done, _, info = test_env.step(action)
        called.append(test_env.model_names[int(info["model_index"])])
    assert set(called) <= set(known) and len(called) > 1


def test_train_and_the_benchmark_offer_the_same_agents():
    # One registry: the benchmark's builders are the shared ones, and train.py describes its
    # scenario agents with the shared descriptions.
    assert {n: b for n, b in bench_scenarios.AGENTS.items()} == {
        n: b for n, (_, b) in SCENARIO_AGENTS.items()
    }
    assert train.AGENTS["static-linear-mf"].summary == SCENARIO_AGENTS["static"][0]
    for name in ("adaptive-pacing", "linucb-discounted", "lin-ts-window"):
        assert train.AGENTS[name].summary == SCENARIO_AGENTS[name][0]
    assert "rl-router" in train.AGENTS
