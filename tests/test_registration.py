"""Every registered id: Gymnasium's and SB3's checkers, spec round trip, pickling, a MaskablePPO smoke run."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mmr_gym
from mmr_gym.registration import ENV_IDS, register_envs

SMALL = {"episode_length": 20}


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_gymnasium_checker_passes_without_warnings(env_id):
    env = gym.make(env_id, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)  # also makes and renders one env per render mode
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_sb3_checker_passes_without_warnings(env_id):
    env = gym.make(env_id, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env.unwrapped, warn=True)
    assert [str(w.message) for w in caught] == []


def test_registration_is_idempotent():
    before = {k: gym.registry[k] for k in ENV_IDS}
    register_envs()
    import importlib

    importlib.reload(mmr_gym)
    assert all(gym.registry[k] is before[k] for k in ENV_IDS)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_spec_round_trip_and_pickle(env_id):
    env = gym.make(env_id, **SMALL)
    again = gym.make(env.spec)
    a, _ = env.reset(seed=3)
    b, _ = again.reset(seed=3)
    c, _ = pickle.loads(pickle.dumps(env)).reset(seed=3)
    for x in (b, c):
        if isinstance(a, dict):
            for key in a:
                np.testing.assert_array_equal(a[key], x[key])
        else:
            np.testing.assert_array_equal(a, x)


def test_default_make_uses_the_bundled_simulated_table():
    env = gym.make("MMRRouting-v0").unwrapped
    table = env.ctx.table
    assert table.meta.get("cost_source") == "simulated"
    assert table.n_models == 10 and len(table.dataset_names) == 7
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["action_mask"].any()


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_action_masks_through_gym_make(env_id):
    """Gymnasium 1.x wrappers forward no attributes (``gym.make(...).action_masks`` raises
    AttributeError): the documented ways are ``get_wrapper_attr``, which searches the whole wrapper
    stack (also under wrappers of the user's own), and ``unwrapped``."""
    env = gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, episode_length=20, budget_ratio=0.05))
    _, info = env.reset(seed=0)
    masked = 0
    for _ in range(20):
        through_wrappers = env.get_wrapper_attr("action_masks")()
        assert through_wrappers.dtype == bool
        np.testing.assert_array_equal(through_wrappers, info["action_mask"].astype(bool))
        np.testing.assert_array_equal(env.unwrapped.action_masks(), through_wrappers)
        masked += int(not through_wrappers.all())
        _, _, terminated, _, info = env.step(int(np.flatnonzero(through_wrappers)[-1]))
        if terminated:
            break
    assert masked > 0, "the budget never masked a model: the test compared only all-True masks"


def test_maskable_ppo_smoke_run():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = gym.make("MMRRouting-v0", episode_length=20, budget_ratio=(0.05, 1.0))
    model = MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, verbose=0)
    model.learn(total_timesteps=256)
    vec = model.get_env()
    obs = vec.reset()
    for _ in range(30):
        masks = get_action_masks(vec)
        action, _ = model.predict(obs, action_masks=masks, deterministic=True)
        assert masks[0, action[0]], "MaskablePPO chose a masked model"
        obs, _, _, _ = vec.step(action)


@pytest.mark.parametrize(
    ("env_id", "policy"), [("MMRRouting-v0", "MultiInputPolicy"), ("MMRRoutingFlat-v0", "MlpPolicy")]
)
def test_ppo_trains_on_both_observation_forms(env_id, policy):
    from stable_baselines3 import PPO

    env = gym.make(env_id, episode_length=20)
    model = PPO(policy, env, n_steps=64, batch_size=32, n_epochs=1, seed=0, verbose=0)
    model.learn(total_timesteps=128)
    action, _ = model.predict(env.reset(seed=0)[0])
    assert env.action_space.contains(int(action))
