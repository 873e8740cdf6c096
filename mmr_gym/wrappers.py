"""Wrappers for training libraries that expect another shape of the same environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ActionMaskObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The action mask inside the observation: ``{"observations": obs, "action_mask": mask}``.

    For libraries that mask actions only through the observation, such as Ray RLlib (its
    ``ActionMaskingTorchRLModule`` reads exactly these two keys; see :mod:`agents.rllib`). The
    mask is ``info["action_mask"]`` of the same call, as float32 0/1 in a ``Box(0, 1, (K,))``.
    The observation itself is unchanged: wrap ``MMRRoutingFlat-v0`` for a flat ``Box``. Infos are
    passed through, ``action_mask`` included.

    Args:
        env: an environment whose infos hold ``action_mask`` (``MMRRouting-v0`` and its variants).
        observation_key, mask_key: the two keys of the observation.
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
