"""Wrappers for libraries that expect another shape of the same environment (trainers, recorders)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmr_gym.records import METRIC_FLOAT_KEYS, METRIC_INT_KEYS, METRIC_STR_KEYS


class ActionMaskObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The action mask inside the observation: ``{"observations": obs, "action_mask": mask}``.

    For libraries that mask actions only through the observation, such as Ray RLlib (its
    ``ActionMaskingTorchRLModule`` reads exactly these two keys; see :mod:`agents.rllib`). The
    mask is ``info["action_mask"]`` of the same call, as float32 0/1 in a ``Box(0, 1, (K,))``.
    The observation itself is unchanged: wrap ``MMRRoutingFlat-v0`` for a flat ``Box``. Infos are
    passed through, ``action_mask`` included.

    Args:
        env: an environment whose infos hold ``action_mask`` (``MMRRouting-v0`` and its variants).
        observation_key: the observation's key for the wrapped observation.
        mask_key: the observation's key for the action mask.
    """

    def __init__(self, env: gym.Env, observation_key: str = "observations", mask_key: str = "action_mask"):
        # Recorded, as Gymnasium's own wrappers record theirs: env.spec can then remake the stack.
        gym.utils.RecordConstructorArgs.__init__(self, observation_key=observation_key, mask_key=mask_key)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise ValueError(f"ActionMaskObservation needs a Discrete action space, got {env.action_space}")
        if observation_key == mask_key:
            raise ValueError(f"observation_key and mask_key must differ, both are {mask_key!r}")
        self.observation_key, self.mask_key = observation_key, mask_key
        n = int(env.action_space.n)
        self.observation_space = spaces.Dict(
            {
                observation_key: env.observation_space,
                mask_key: spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32),
            }
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._with_mask(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_mask(obs, info), reward, terminated, truncated, info

    def _with_mask(self, obs: Any, info: dict[str, Any]) -> dict[str, Any]:
        return {self.observation_key: obs, self.mask_key: info["action_mask"].astype(np.float32)}


class PaddedInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Every info with the same keys, types and shapes, from ``reset`` to the episode's last step.

    ``MMRRouting-v0``'s reset info holds only ``action_mask``; a step's info adds what the call
    did, and ``episode_metrics`` comes with the last step only. Recorders that stack the infos of
    an episode need one structure throughout: Minari's ``DataCollector(env, record_infos=True)``
    fails on the first step without this wrapper. Here every info holds every key a step's info
    can hold. A value that does not exist (yet) holds a fill: 0 for floats and float arrays (as
    ``SyncVectorEnv`` fills a key that a sub-environment did not report; no cost and no correct
    answer, so sums over an episode's infos stay right), ``""`` for strings, False for flags and
    -1 for ints, so ``model_index == -1`` marks the reset's info and ``episode_metrics["length"]
    == -1`` a step that did not end the episode. At reset, ``budget_remaining`` is the episode's
    budget. Without a budget, ``budget`` and ``budget_ratio`` are ``inf`` instead of None, as
    ``budget_remaining`` already is. The real values are passed on unchanged. (NaN fills would
    break equality: ``check_env``'s determinism check compares infos with ``==``.)

    Args:
        env: ``MMRRouting-v0`` or ``MMRRoutingFlat-v0``, possibly wrapped.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        try:
            feedback = env.get_wrapper_attr("feedback")
        except AttributeError:
            raise ValueError(
                f"PaddedInfo wraps an MMRRouting environment (one with `feedback`), got {env}"
            ) from None
        self._fills: dict[str, Any] = {
            "model": "",
            "model_index": -1,
            "action_replaced": False,
            "correct": 0.0,
            "cost": 0.0,
            "query_id": "",
            "dataset": "",
            "rewards": None,  # a fresh dict per info (check_env: no object shared between infos)
            "budget_remaining": 0.0,  # set at reset
        }
        self._outcomes = int(env.action_space.n) if feedback == "full" else None
        self._no_episode: dict[str, Any] = {
            **dict.fromkeys(METRIC_FLOAT_KEYS, 0.0),
            **dict.fromkeys(METRIC_INT_KEYS, -1),
            **dict.fromkeys(METRIC_STR_KEYS, ""),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        budget = self.env.get_wrapper_attr("budget")
        self._fills["budget_remaining"] = float("inf") if budget is None else float(budget)
        return obs, self._padded(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._padded(info)

    def _padded(self, info: dict[str, Any]) -> dict[str, Any]:
        padded = {"action_mask": info["action_mask"], **self._fills, **info}
        if "rewards" not in info:
            padded["rewards"] = {"correct": 0.0, "cost_penalty": 0.0}
        if self._outcomes is not None and "outcomes" not in info:
            # Fresh arrays, as the environment's are: callers may write into them.
            zeros = np.zeros(self._outcomes, dtype=np.float32)
            padded["outcomes"] = {"correct": zeros, "cost": zeros.copy()}
        metrics = info.get("episode_metrics")
        if metrics is None:
            padded["episode_metrics"] = dict(self._no_episode)
        else:
            padded["episode_metrics"] = {
                key: (float("inf") if value is None and key in METRIC_FLOAT_KEYS else value)
                for key, value in metrics.items()
            }
        return padded
