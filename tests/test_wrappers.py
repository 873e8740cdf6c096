"""ActionMaskObservation: the action mask inside the observation (RLlib's masking convention)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table
from gymnasium.utils.env_checker import check_env

from mmr_gym.wrappers import ActionMaskObservation


@pytest.fixture(scope="module")
def table():
    return make_table(n=120, k=4, seed=3)


def test_the_observation_carries_the_infos_mask(table):
    env = ActionMaskObservation(
        gym.make("MMRRoutingFlat-v0", dataset=table, episode_length=8, budget_ratio=0.15)
    )
    plain = gym.make("MMRRoutingFlat-v0", dataset=table, episode_length=8, budget_ratio=0.15)
    obs, info = env.reset(seed=2)
    plain_obs, _ = plain.reset(seed=2)
    assert set(obs) == {"observations", "action_mask"}
    saw_masked = False
    for _ in range(8):
        assert env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs["observations"], plain_obs)
        np.testing.assert_array_equal(obs["action_mask"], info["action_mask"].astype(np.float32))
        assert obs["action_mask"].dtype == np.float32
        saw_masked |= not obs["action_mask"].all()
        action = int(np.flatnonzero(obs["action_mask"])[-1])
        obs, _, terminated, _, info = env.step(action)
        plain_obs, *_ = plain.step(action)
        if terminated:
            break
    assert saw_masked  # the budget is tight enough that the mask mattered


def test_checkers_pass_and_bad_arguments_are_named(table):
    env = ActionMaskObservation(gym.make("MMRRoutingFlat-v0", dataset=table, episode_length=8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    # check_env always says a wrapped environment is wrapped; nothing else may be reported.
    assert [str(w.message) for w in caught if "has a wrapper applied" not in str(w.message)] == []
    with pytest.raises(ValueError, match="must differ"):
        ActionMaskObservation(env.env, "mask", "mask")
    with pytest.raises(ValueError, match="Discrete"):
        ActionMaskObservation(_box_action_env())


def _box_action_env() -> gym.Env:
    class BoxActions(gym.Env):
        action_space = gym.spaces.Box(-1.0, 1.0, (1,))
        observation_space = gym.spaces.Box(-1.0, 1.0, (1,))

    return BoxActions()
