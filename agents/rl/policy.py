"""A trained SB3 model as a routing policy (one instance acts for every lane of a batched evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.rl.features import add_log_features
from agents.rl.hyperparams import DISPLAY_NAMES, algo_name
from mmr_gym.policy import Policy


class SB3Policy(Policy):
    """A trained SB3 model as a :class:`~mmr_gym.policy.Policy` for :func:`mmr_gym.evaluate.evaluate_policy`.

    Acts deterministically (the most probable model; DQN: the highest Q-value). MaskablePPO
    chooses among the affordable models only (``info["action_mask"]``); the other algorithms
    choose among all, and a masked choice is replaced by the environment's fallback.

    It holds no state between steps, so one instance acts for every lane of a batched evaluation:
    :meth:`act_batch` runs the network once over all rows of the vector env (torch on the CPU),
    which is why no faster copy of the network is needed.

    Models trained with log features (:func:`add_log_features`, the default) get them added here,
    so the policy takes the environment's own observations.
    """

    info_keys = ()  # it reads the observation and the action mask only
    episodic = True

    def __init__(self, model: BaseAlgorithm, name: str | None = None) -> None:
        self.model = model
        self.algo = algo_name(model)
        self.name = name or f"RL-{DISPLAY_NAMES[self.algo]}"
        self.use_masks = self.algo == "maskable-ppo"
        space = model.observation_space
        self.log_features = isinstance(space, spaces.Dict) and "log_budget" in space.spaces

    def scores(self, obs: Any) -> np.ndarray:
        """The network's action scores for an observation (``[K]``) or a batch (``[n, K]``): logits
        (policy gradient) or Q-values (DQN)."""
        policy = self.model.policy
        with torch.no_grad():
            tensor, vectorized = policy.obs_to_tensor(add_log_features(obs) if self.log_features else obs)
            if isinstance(self.model, DQN):
                scores = policy.q_net(tensor)
            else:
                features = policy.extract_features(tensor, policy.pi_features_extractor)
                scores = policy.action_net(policy.mlp_extractor.forward_actor(features))
        scores = scores.numpy()
        return scores if vectorized else scores[0]

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(self.act_batch(obs, info, np.ones((), dtype=bool)))

    # ------------------------------------------------------------------ batched
    def reset_lanes(self, n: int, make: Any = None) -> None:
        self._lanes = None  # stateless: this one instance acts for every lane

    def begin_episodes(self, env: Any, rows: np.ndarray) -> None:
        pass

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        scores = self.scores(obs)
        if self.use_masks:
            scores = np.where(np.asarray(info["action_mask"], dtype=bool), scores, -np.inf)
        return np.argmax(scores, axis=-1)
