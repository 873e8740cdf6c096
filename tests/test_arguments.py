"""Bad arguments, options and actions get a clear error that names them (both environments), and
copies of a running vector env continue exactly: the reliability probe's environment findings."""

from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest
from _tables import make_table

from mmr_gym.env import MMRRoutingEnv
from mmr_gym.vector import MMRRoutingVectorEnv


@pytest.fixture(scope="module")
def table():
    return make_table(n=1000, k=4, seed=1)  # 200 training queries: episodes of 100 fit


ENVS = [MMRRoutingEnv, lambda *a, **k: MMRRoutingVectorEnv(*a, num_envs=2, **k)]


@pytest.mark.parametrize("make", ENVS, ids=["single", "vector"])
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"budget_ratio": "abc"}, TypeError, r"budget_ratio must be a number, got 'abc' \(str\)"),
        ({"budget_ratio": "0.5"}, TypeError, r"budget_ratio must be a number, got '0.5' \(str\)"),
        ({"budget_ratio": True}, TypeError, r"budget_ratio must be a number, got True \(bool\)"),
        ({"budget_ratio": (0.1, "x")}, TypeError, r"budget_ratio must be a number, got 'x'"),
        ({"budget_ratio": 1e308}, ValueError, r"overflow; use None for no budget"),
        ({"budget_ratio": float("nan")}, ValueError, r"budget_ratio must be a finite number"),
        ({"cost_weight": "abc"}, TypeError, r"cost_weight must be a number, got 'abc'"),
        ({"cost_weight": True}, TypeError, r"cost_weight must be a number"),
        ({"obs_dim": 2.5}, TypeError, r"obs_dim must be an integer, got 2.5"),
        ({"obs_dim": True}, TypeError, r"obs_dim must be an integer"),
        ({"episode_length": 10.0}, TypeError, r"episode_length must be an integer"),
        ({"cost_observed": "yes"}, TypeError, r"cost_observed must be True or False"),
        ({"split_seed": 1.5}, TypeError, r"split_seed must be an integer"),
        ({"train_fraction": "0.2"}, TypeError, r"train_fraction must be a number"),
        ({"train_fraction": 1.0}, ValueError, r"train_fraction must be a finite number > 0 and < 1"),
        ({"modality": 3}, ValueError, r"unknown modality 3"),
    ],
)
def test_wrong_arguments_are_refused_by_name(table, make, kwargs, error, message):
    with pytest.raises(error, match=message):
        make(table, **kwargs)


@pytest.mark.parametrize("make", ENVS, ids=["single", "vector"])
def test_numpy_numbers_are_accepted_as_arguments(table, make):
    env = make(table, budget_ratio=np.float32(0.5), episode_length=np.int64(10), obs_dim=np.int32(3))
    assert env.budget_ratio == pytest.approx(0.5) and env.episode_length == 10


@pytest.mark.parametrize(
    "action", [True, 1.0, "1", np.array([[1]]), np.array([1, 2]), np.uint64(2**64 - 1), -1, 4, None]
)
def test_bad_actions_are_refused_and_change_nothing(table, action):
    env = MMRRoutingEnv(table, episode_length=5)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 4\)"):
        env.step(action)
    if isinstance(action, np.uint64):  # reported as itself, not wrapped around to -1
        with pytest.raises(ValueError, match=str(2**64 - 1)):
            env.step(action)
    _, _, _, _, info = env.step(np.int8(1))  # the episode is where it was
    assert info["model_index"] == 1 or info["action_replaced"]


def test_bad_vector_actions_are_refused_by_value(table):
    env = MMRRoutingVectorEnv(table, num_envs=2, episode_length=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=str(2**64 - 1)):
        env.step(np.array([1, 2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match="dtype bool"):
        env.step(np.array([True, False]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.array([[1, 2]]))


def test_step_before_reset_says_so(table):
    with pytest.raises(RuntimeError, match="before reset"):
        MMRRoutingEnv(table).step(0)
    with pytest.raises(RuntimeError, match="before reset"):
        MMRRoutingVectorEnv(table, num_envs=2).step(np.zeros(2, dtype=np.int64))
    env = MMRRoutingEnv(table, episode_length=1)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(0)


@pytest.mark.parametrize("make", ENVS, ids=["single", "vector"])
def test_query_ids_given_as_one_string_are_refused(table, make):
    env = make(table)
    env.reset(seed=0)
    query = str(table.query_ids[env.ctx.split_indices[0]])
    with pytest.raises(ValueError, match="sequence of query ids, got the single string"):
        env.reset(options={"query_ids": query})


@pytest.mark.parametrize("make", ENVS, ids=["single", "vector"])
def test_a_replayed_stream_no_budget_can_start_is_refused(table, make):
    # The configured ratio is valid for episodes of 100 queries; a replayed stream of one query
    # gets a hundredth of that budget, in which not even its cheapest model fits. Before, the
    # first mask was all zeros and the fallback called model 0 (the dearest) anyway.
    env = make(table, episode_length=100)
    minimum = env.ctx.min_budget_ratio(100)
    env = make(table, episode_length=100, budget_ratio=minimum * 1.01)
    slots = np.argsort(env.ctx.lookups.cheapest_estimate)[::-1]  # the query dearest to start
    query = str(table.query_ids[env.ctx.split_indices[slots[0]]])
    with pytest.raises(ValueError, match="too small"):
        env.reset(seed=0, options={"query_ids": [query]})
    with pytest.raises(ValueError, match="too small"):
        env.reset(seed=0, options={"query_ids": [query], "budget_ratio": minimum})
    # Enough budget for that one query: it starts, with an affordable model.
    _, info = env.reset(seed=0, options={"query_ids": [query], "budget_ratio": 100 * minimum * 1.01})
    assert np.asarray(info["action_mask"]).any()


@pytest.mark.parametrize("copier", [copy.deepcopy, lambda env: pickle.loads(pickle.dumps(env))])
@pytest.mark.parametrize("sampling", ["batched", "per-env"])
def test_vector_env_copies_continue_exactly_mid_run(table, copier, sampling):
    env = MMRRoutingVectorEnv(
        table, num_envs=3, episode_length=6, budget_ratio=(0.05, 0.8), stream_sampling=sampling
    )
    env.reset(seed=11)
    rng = np.random.default_rng(0)
    for _ in range(8):  # several episodes have ended and restarted
        env.step(rng.integers(0, 4, 3))
    twin = copier(env)
    for _ in range(40):
        actions = rng.integers(0, 4, 3)
        a, b = env.step(actions), twin.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            if isinstance(x, dict):
                for key in x:
                    np.testing.assert_array_equal(x[key], y[key])
            else:
                np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(env.budget_remaining, twin.budget_remaining)
        assert a[4].keys() == b[4].keys()
        for key in ("model_index", "cost", "budget_remaining", "_episode_metrics"):
            if key in a[4]:
                np.testing.assert_array_equal(a[4][key], b[4][key])


def test_a_table_saved_again_into_the_same_directory_is_read_again(tmp_path):
    # The environments cache loaded tables; the key is the directory's content, not its mtime
    # (two saves within one second kept the first table before).
    directory = tmp_path / "table"
    make_table(n=400, k=4, seed=1).save(directory)
    first = MMRRoutingEnv(str(directory), split="test", episode_length=5)
    stamp = directory.stat().st_mtime_ns
    second_table = make_table(n=400, k=4, seed=2)
    second_table.save(directory)
    os.utime(directory, ns=(stamp, stamp))  # as a coarse clock, or a copy that keeps times, leaves it
    second = MMRRoutingEnv(str(directory), split="test", episode_length=5)
    assert second.ctx.table.fingerprint() == second_table.fingerprint() != first.ctx.table.fingerprint()
    again = MMRRoutingEnv(str(directory), split="test", episode_length=5)
    assert again.ctx is second.ctx  # unchanged content: the cached context


def test_an_episode_longer_than_the_training_split_says_why_and_what_to_pass():
    """A small CSV meets the paper's 20% training split: the error says so and names the ways out."""
    small = make_table(n=100, k=3, seed=2)  # 20 training queries
    MMRRoutingEnv(small, split="test", episode_length=50)  # the test split has 80
    with pytest.raises(ValueError) as raised:
        MMRRoutingEnv(small, split="train", episode_length=50)
    message = str(raised.value)
    assert (
        "episode_length must be an integer in [1, 20] (the 'train' split has 20 queries), got 50" in message
    )
    assert "train_fraction=0.2 of the 100 queries" in message and "MMR-Bench trains on 20%" in message
    assert "a shorter episode_length, a larger train_fraction, or split='all'" in message
    MMRRoutingEnv(small, split="train", episode_length=50, train_fraction=0.5)  # the way out works
