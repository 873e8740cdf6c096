"""The Policy protocol: what every router (baseline, supervised, bandit, RL) offers the evaluator.

The environment library defines the interface; the implementations live in ``agents/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mmr_gym.env import MMRRoutingEnv


class Policy:
    """A routing policy acting in :class:`~mmr_gym.env.MMRRoutingEnv`.

    The evaluator calls, per episode: ``begin_episode(env)`` once, then for every step
    ``act(obs, info)`` and, after the environment answered, ``observe(action, reward, info)``
    (``info`` is the step's info: the chosen model's outcome, and every model's with
    ``feedback="full"``). Override what you need; the defaults do nothing.
    """

    name: str = "policy"
    #: True if the policy reads outcomes it could not know (oracles). Reported as such.
    privileged: bool = False

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        """Called after ``env.reset``; ``env`` is the unwrapped environment (model names, ``c_ref``...)."""

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """The model index to call for the current query; ``info["action_mask"]`` lists the affordable ones."""
        raise NotImplementedError

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        """Feedback after a step (bandit learners update here)."""


def affordable_indices(info: dict[str, Any]) -> np.ndarray:
    """Indices of the affordable models in a step's or reset's ``info``."""
    return np.flatnonzero(info["action_mask"])
