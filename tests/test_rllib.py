"""agents.rllib: PPO through Ray RLlib. The training tests run where ``pip install 'mmr-gym[rllib]'``
installed ray; the environment RLlib samples from is tested everywhere."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table

from agents.rl import log_feature_space
from agents.rllib import (
    RLlibPolicy,
    evaluate,
    main,
    make_env,
    network_input,
    ppo_config,
    train,
    training_env_config,
)


@pytest.fixture
def ray():
    return pytest.importorskip("ray", reason="Ray RLlib is optional: pip install 'mmr-gym[rllib]'")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("rllib") / "table"
    make_table(n=200, k=4, seed=4).save(path)
    return str(path)


def test_training_config_keeps_off_the_test_split():
    with pytest.raises(ValueError, match="test"):
        training_env_config({"split": "test"})
    with pytest.raises(ValueError, match="observation"):
        training_env_config({"observation": "dict"})
    assert training_env_config({"episode_length": 5})["split"] == "train"


def test_main_without_ray_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(SystemExit):
        main(["--iterations", "1"])
    assert "pip install 'mmr-gym[rllib]'" in capsys.readouterr().err


def test_the_training_env_shows_what_the_policy_computes(dataset):
    """RLlibPolicy feeds the network what the env runners fed it in training, step for step."""
    env_kwargs = {"dataset": dataset, "episode_length": 10, "budget_ratio": 0.2}
    wrapped = make_env(env_kwargs)
    plain = gym.make("MMRRouting-v0", **env_kwargs)
    space = log_feature_space(plain.observation_space)
    obs, info = wrapped.reset(seed=1)
    plain_obs, _ = plain.reset(seed=1)
    for _ in range(10):
        assert wrapped.observation_space.contains(obs)
        np.testing.assert_array_equal(obs["observations"], network_input(plain_obs, space))
        np.testing.assert_array_equal(obs["action_mask"], info["action_mask"].astype(np.float32))
        action = int(np.flatnonzero(info["action_mask"])[0])
        obs, _, terminated, _, info = wrapped.step(action)
        plain_obs, *_ = plain.step(action)
        if terminated:
            break
    n = plain.observation_space["query"].shape[0] + 3 + 2 * plain.unwrapped.ctx.n_models + 1
    assert obs["observations"].shape == (n,)  # query, budget, costs, and the two log features


def test_ppo_trains_and_its_policy_calls_only_affordable_models(ray, dataset):
    env_kwargs = {"dataset": dataset, "episode_length": 10}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        config = ppo_config(
            env_kwargs, envs_per_runner=2, train_batch_size=200, minibatch_size=100, num_epochs=1
        )
        algo, history = train(config, iterations=2, progress=False)
        module = algo.get_module()
        assert [row["iteration"] for row in history] == [1, 2]
        assert history[-1]["env_steps"] >= 400 and np.isfinite(history[-1]["episode_return_mean"])
        env = gym.make("MMRRouting-v0", split="test", budget_ratio=0.1, **env_kwargs)
        policy = RLlibPolicy(module, env.observation_space)
        obs, info = env.reset(seed=0)
        for _ in range(10):
            action = policy.act(obs, info)
            assert info["action_mask"][action] == 1
            obs, _, terminated, _, info = env.step(action)
            assert not info["action_replaced"]
            if terminated:
                break
        result = evaluate(module, env_kwargs, budget_ratios=(0.1, 0.5), seeds=[0], progress=False)
        assert result.name == "RLlib-PPO" and len(result.points) == 2
        algo.stop()
    finally:
        ray.shutdown()


def test_main_writes_history_and_results(ray, dataset, tmp_path):
    out = tmp_path / "out"
    args = ["--iterations", "1", "--train-batch-size", "200", "--envs-per-runner", "2", "--dataset", dataset]
    args += ["--episode-length", "10"]
    assert main([*args, "--max-queries", "40", "--out", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and history[0]["env_steps"] >= 200
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["results"]] == ["RLlib-PPO"]
    assert (out / "pareto.png").stat().st_size > 0
