"""Log-scaled budget and cost features for the SB3 agents (costs and budgets span three decades)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from mmr_gym.observation import BUDGET_COLUMNS

# Costs and budgets span three decades (a 3B model costs ~0.003 c_ref per call, GPT-5 ~1; budgets run
# from 0.02 to 1.5 c_ref per query). On the observation's linear scale the network can hardly tell the
# cheap models, or the tight budgets, apart; their logarithms spread them out. Floor of the log:
LOG_FLOOR = 1e-3


def add_log_features(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The observation plus ``log_budget`` (log of the spend per remaining query / ``c_ref``) and
    ``log_model_costs`` (log of each model's cost estimate / ``c_ref``), floored at :data:`LOG_FLOOR`.

    Works on one observation or a batch (the last axis holds the features).
    """
    out = dict(obs)
    spend_per_query = obs["budget"][..., BUDGET_COLUMNS["spend_per_query"], None]
    out["log_budget"] = np.log(np.maximum(spend_per_query, LOG_FLOOR)).astype(np.float32)
    out["log_model_costs"] = np.log(np.maximum(obs["model_costs"], LOG_FLOOR)).astype(np.float32)
    return out


def log_feature_space(space: spaces.Dict) -> spaces.Dict:
    """The observation space of :func:`add_log_features` (finite bounds, as the environment's)."""
    low = math.log(LOG_FLOOR)
    budget_high = max(float(space["budget"].high[BUDGET_COLUMNS["spend_per_query"]]), LOG_FLOOR)
    costs_high = np.log(np.maximum(space["model_costs"].high, LOG_FLOOR)).astype(np.float32)
    return spaces.Dict(
        {
            **space.spaces,
            "log_budget": spaces.Box(low, math.log(budget_high), shape=(1,), dtype=np.float32),
            "log_model_costs": spaces.Box(np.float32(low), costs_high, dtype=np.float32),
        }
    )


class VecLogFeatures(VecEnvWrapper):
    """Adds :func:`add_log_features` to a ``VecEnv``'s observations (also the terminal ones)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv, observation_space=log_feature_space(venv.observation_space))

    def reset(self) -> dict[str, np.ndarray]:
        return add_log_features(self.venv.reset())

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = add_log_features(info["terminal_observation"])
        return add_log_features(obs), rewards, dones, infos
