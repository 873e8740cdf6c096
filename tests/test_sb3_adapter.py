"""SB3VecEnvAdapter: the native vectorized environment behaves as SB3's DummyVecEnv of single envs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tables import make_table
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor
from stable_baselines3.common.vec_env.util import obs_space_info

from mmr_gym.env import MMRRoutingEnv
from mmr_gym.sb3 import SB3VecEnvAdapter
from mmr_gym.table import RoutingTable
from mmr_gym.vector import MMRRoutingVectorEnv

N = 4


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return make_table(n=300, k=4, seed=1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tiny networks: threads only add overhead (and noise when tests run in parallel).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same(a, b, where=""):
    """Equal values of equal types (Python scalars stay Python scalars, arrays keep their dtype)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, sorted(set(a) ^ set(b)))
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), (where, type(b))
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (where, a.dtype, b.dtype, a.shape, b.shape)
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert type(a) is type(b) and (a == b or (a != a and b != b)), (where, a, b)


def pair(table, num_envs=N, **kwargs):
    reference = DummyVecEnv([lambda: MMRRoutingEnv(table, **kwargs) for _ in range(num_envs)])
    adapter = SB3VecEnvAdapter(
        MMRRoutingVectorEnv(table, num_envs=num_envs, stream_sampling="per-env", **kwargs)
    )
    return reference, adapter


# ---------------------------------------------------------------------------- DummyVecEnv parity
@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_ratio": 0.3, "feedback": "full"},
        {"budget_ratio": (0.05, 1.0), "observation": "flat"},
        {"budget_ratio": None, "cost_weight": 0.5, "observation": "flat", "feedback": "full"},
        {"budget_ratio": 0.05},
    ],
    ids=["float-dict-full", "range-flat", "none-flat-full", "tight-dict"],
)
def test_matches_dummy_vec_env_of_single_envs(table, kwargs):
    reference, adapter = pair(table, episode_length=12, **kwargs)
    assert reference.seed(3) == adapter.seed(3)
    assert_same(reference.reset(), adapter.reset(), "reset")
    assert_same(reference.reset_infos, adapter.reset_infos, "reset_infos")
    rng = np.random.default_rng(0)
    dones = 0
    for t in range(80):
        masks = get_action_masks(reference)
        assert_same(masks, get_action_masks(adapter), f"{t}/masks")
        actions = (rng.random(masks.shape) * masks).argmax(axis=1)
        if t % 5 == 0:
            actions = rng.integers(0, masks.shape[1], N)  # masked actions fall back alike
        for x, y, name in zip(
            reference.step(actions), adapter.step(actions), ("obs", "reward", "done", "infos"), strict=True
        ):
            assert_same(x, y, f"{t}/{name}")
        assert_same(reference.reset_infos, adapter.reset_infos, f"{t}/reset_infos")
        dones += int(reference.buf_dones.sum())
    assert dones >= 2 * N


def test_obs_layout_matches_dummy_vec_env(table):
    for observation in ("dict", "flat"):
        reference, adapter = pair(table, episode_length=5, observation=observation)
        assert obs_space_info(adapter.observation_space) == obs_space_info(reference.observation_space)
        assert adapter.action_space == reference.action_space
        obs = adapter.reset()
        keys, shapes, dtypes = obs_space_info(adapter.observation_space)
        for key in keys:
            value = obs if key is None else obs[key]
            assert value.shape == (N, *shapes[key]) and value.dtype == dtypes[key]


def test_info_keys_restrict_the_per_env_infos(table):
    reference, adapter = pair(table, episode_length=3, budget_ratio=None)
    adapter = SB3VecEnvAdapter(adapter.venv, info_keys=("episode_metrics",))
    reference.seed(0)
    adapter.seed(0)
    reference.reset()
    adapter.reset()
    actions = np.zeros(N, dtype=np.int64)
    for _ in range(3):
        _, _, done, ref_infos = reference.step(actions)
        _, _, _, infos = adapter.step(actions)
    assert done.all()
    for ref_info, info in zip(ref_infos, infos, strict=True):
        assert set(info) == {"episode_metrics", "terminal_observation", "TimeLimit.truncated"}
        assert_same(ref_info["episode_metrics"], info["episode_metrics"])


def test_batched_stream_sampling_through_the_adapter(table):
    """stream_sampling="batched" is a choice of the wrapped env; VecEnv.seed(s) seeds its one generator."""

    def rollout(seed):
        adapter = SB3VecEnvAdapter(
            MMRRoutingVectorEnv(
                table, num_envs=N, episode_length=4, stream_sampling="batched", budget_ratio=0.3
            )
        )
        adapter.seed(seed)  # [seed, seed + 1, ...]: SyncVectorEnv's convention, accepted as seed
        out = [adapter.reset()]
        for _ in range(10):
            obs, reward, done, infos = adapter.step(adapter.action_masks().argmax(axis=1))
            out.append((obs, reward, done, [info.get("terminal_observation") for info in infos]))
        return out

    first = rollout(3)
    assert_same(first, rollout(3))
    assert not np.array_equal(first[0]["query"], rollout(4)[0]["query"])
    assert sum(int(done.sum()) for _, _, done, _ in first[1:]) >= N
    for _, _, done, terminal in first[1:]:
        assert [t is not None for t in terminal] == done.tolist()


# ---------------------------------------------------------------------------- VecEnv API
def test_vec_env_api(table):
    reference, adapter = pair(table, episode_length=6)
    adapter.seed(0)
    adapter.reset()
    assert adapter.render_mode is None
    assert adapter.get_attr("episode_length") == reference.get_attr("episode_length") == [6] * N
    assert adapter.get_attr("c_ref", indices=[1, 2]) == [adapter.venv.c_ref] * 2
    assert adapter.get_attr("budget", indices=2) == [adapter.venv.budget[2]]
    assert adapter.has_attr("action_masks") and not adapter.has_attr("no_such_attribute")
    assert is_masking_supported(adapter)
    masks = adapter.env_method("action_masks", indices=[0, 3])
    assert len(masks) == 2 and masks[0].dtype == bool
    np.testing.assert_array_equal(np.stack(masks), adapter.action_masks()[[0, 3]])
    assert adapter.env_method("render") == [None] * N
    # An argument of the environment would be shown by get_attr and ignored by the episodes.
    for name, value in (("cost_weight", 0.5), ("episode_length", 7), ("budget_ratio", "abc")):
        with pytest.raises(AttributeError, match="fixed at construction"):
            adapter.set_attr(name, value)
    with pytest.raises(AttributeError, match="no attribute 'budgte_ratio'"):
        adapter.set_attr("budgte_ratio", 0.3)
    adapter.set_attr("metadata", {**adapter.venv.metadata, "note": 1})
    assert adapter.get_attr("metadata")[0]["note"] == 1
    with pytest.raises(ValueError, match="only for all"):
        adapter.set_attr("metadata", {}, indices=[0])
    with pytest.raises(IndexError, match=r"indices \[7\] out of range"):
        adapter.get_attr("budget", indices=[7])
    assert adapter.env_is_wrapped(VecMonitor) == [False] * N
    adapter.set_options({"budget_ratio": 0.7})
    adapter.reset()
    np.testing.assert_allclose(adapter.venv.budget, 0.7 * 6 * adapter.venv.c_ref)
    adapter.set_options([{"budget_ratio": 0.7}, {}, {}, {}])
    with pytest.raises(ValueError, match="same options"):
        adapter.reset()
    adapter.close()
    # The adapter builds SB3's same-step reset from the native env's next-step one.
    for mode in ("SameStep", "Disabled"):
        with pytest.raises(ValueError, match="autoreset_mode NEXT_STEP"):
            SB3VecEnvAdapter(MMRRoutingVectorEnv(table, num_envs=2, episode_length=6, autoreset_mode=mode))


def test_seed_none_draws_different_streams(table):
    _, adapter = pair(table, episode_length=20)
    adapter.seed()
    first = adapter.reset()["query"].copy()
    adapter.seed()
    assert not np.array_equal(first, adapter.reset()["query"])


# ---------------------------------------------------------------------------- training on the adapter
@pytest.mark.parametrize(("observation", "policy"), [("dict", "MultiInputPolicy"), ("flat", "MlpPolicy")])
def test_ppo_trains_on_the_adapter(table, observation, policy):
    env = VecMonitor(
        SB3VecEnvAdapter(MMRRoutingVectorEnv(table, num_envs=8, episode_length=10, observation=observation))
    )
    model = PPO(policy, env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    assert len(model.ep_info_buffer) > 0  # VecMonitor saw whole episodes
    assert all(info["l"] <= 10 for info in model.ep_info_buffer)


def test_maskable_ppo_trains_on_the_adapter(table):
    env = SB3VecEnvAdapter(MMRRoutingVectorEnv(table, num_envs=8, episode_length=10, budget_ratio=0.05))
    env.seed(0)
    model = MaskablePPO(
        "MultiInputPolicy", VecMonitor(env), n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    # Masked predictions never pick an unaffordable model, so nothing falls back.
    obs = env.reset()
    for _ in range(30):
        masks = env.action_masks()
        actions, _ = model.predict(obs, action_masks=masks, deterministic=False)
        assert masks[np.arange(env.num_envs), actions].all()
        obs, _, _, infos = env.step(actions)
        assert not any(info["action_replaced"] for info in infos)


def test_vec_monitor_reports_episodes(table):
    env = VecMonitor(
        SB3VecEnvAdapter(MMRRoutingVectorEnv(table, num_envs=N, episode_length=5, budget_ratio=None))
    )
    env.seed(0)
    env.reset()
    episodes = []
    for _ in range(10):
        _, reward, done, infos = env.step(np.zeros(N, dtype=np.int64))
        assert reward.dtype == np.float32
        episodes += [info for info, d in zip(infos, done, strict=True) if d]
    assert len(episodes) == 2 * N
    for info in episodes:
        assert info["episode"]["l"] == 5
        assert info["episode"]["r"] == pytest.approx(5 * info["episode_metrics"]["accuracy"], abs=1e-5)
        assert "terminal_observation" in info
