"""RL that can adapt: a fitted router's predictions and recent statistics in the observation.

A budget-conditioned RL agent that sees only the query features must learn per-query prediction,
pacing and adaptation at once, from 0/1 rewards; it does not (every RL agent of the default run
ends behind the paced supervised router). Here the agent is given what a supervised router knows
and what the deployment has shown lately, and learns on top of them:

- ``router_perf`` (``[K]``): the router's predicted probability that each model answers the query;
- ``router_log_cost`` (``[K]``): the log of its predicted cost / ``c_ref`` (floored at
  :data:`~agents.rl.features.LOG_FLOOR`);
- ``recent`` (``[3K]``): per model, over its recent calls (:class:`RecentStatistics`): the share of
  them answered correctly *minus* the router's prediction for them (how far the router is off
  now: a silent regression shows here), the log of realized / shown cost (a stale price table
  shows here), and the share of recent calls that went to it.

Recent statistics are memories of the deployment: they persist across episodes (an episode is a
budget window on the scenario's timeline) and start over at a seeded reset (the timeline restarts).

:class:`RouterFeatures` is the Gymnasium wrapper SB3 trains on (sb3-contrib ``MaskablePPO`` reads
the wrapped environment's ``action_masks``); :func:`train_router_agent` trains one on the training
split, each training environment in a world drawn from the presets (or none) built for the
training split, so that the agent meets changes during training; :class:`RouterFeaturePolicy` is
the trained agent as a :class:`~mmr_gym.policy.Policy` (one memory per lane).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.adaptive import BasePredictions
from agents.rl.features import LOG_FLOOR, VecLogFeatures
from agents.rl.hyperparams import ALGOS, HYPERPARAMS, N_ENVS
from agents.rl.policy import SB3Policy
from agents.rl.threads import torch_threads as set_torch_threads
from mmr_gym.policy import Policy, obs_row

__all__ = ["RecentStatistics", "RouterFeaturePolicy", "RouterFeatures", "train_router_agent"]

RATIO_CLIP = 5.0  # |log realized/shown cost| beyond this (a factor of ~150) tells nothing more


class RecentStatistics:
    """Per model, exponentially weighted over its last ``memory`` calls: correctness minus the
    router's prediction, log realized/shown cost; and each model's share of the recent calls.

    Args:
        n_models: ``K``.
        memory: the number of calls (of a model; of all models for the shares) over which the
            statistics are weighted (weight ``1 - 1/memory`` per newer call).
    """

    def __init__(self, n_models: int, memory: float = 50.0) -> None:
        if memory < 1:
            raise ValueError(f"memory must be >= 1 call, got {memory}")
        self.n_models, self.gamma = int(n_models), 1.0 - 1.0 / float(memory)
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new deployment)."""
        k = self.n_models
        self.weight, self.surprise, self.log_ratio = np.zeros(k), np.zeros(k), np.zeros(k)
        self.share = np.zeros(k)

    def update(self, model: int, correct: float, predicted: float, realized: float, shown: float) -> None:
        """One call of ``model``: its correctness, the router's ``predicted`` probability of it, its
        ``realized`` and ``shown`` cost (the same unit; a call shown as free teaches no ratio)."""
        g = self.gamma
        self.weight[model] = g * self.weight[model] + 1.0
        step = 1.0 / self.weight[model]  # the weighted mean's update
        self.surprise[model] += step * ((correct - predicted) - self.surprise[model])
        if shown > 0 and realized >= 0 and np.isfinite(realized / shown):
            ratio = float(np.clip(np.log(max(realized, 1e-12) / shown), -RATIO_CLIP, RATIO_CLIP))
            self.log_ratio[model] += step * (ratio - self.log_ratio[model])
        self.share *= g
        self.share[model] += 1.0 - g

    def features(self) -> np.ndarray:
        """float32 ``[3K]``: surprise, log cost ratio, share of calls."""
        return np.concatenate([self.surprise, self.log_ratio, self.share]).astype(np.float32)


def feature_spaces(n_models: int) -> dict[str, spaces.Box]:
    """The spaces of the added features."""
    k = n_models
    log_low = float(np.log(LOG_FLOOR))
    return {
        "router_perf": spaces.Box(0.0, 1.0, shape=(k,), dtype=np.float32),
        "router_log_cost": spaces.Box(log_low, 10.0, shape=(k,), dtype=np.float32),
        "recent": spaces.Box(
            np.concatenate([-np.ones(k), -RATIO_CLIP * np.ones(k), np.zeros(k)]).astype(np.float32),
            np.concatenate([np.ones(k), RATIO_CLIP * np.ones(k), np.ones(k)]).astype(np.float32),
            dtype=np.float32,
        ),
    }


class _Memory:
    """What both the wrapper and the policy keep: the router's predictions on the context, the
    statistics, and the current query's predictions (for the update after the call)."""

    def __init__(self, router: Any, known: Sequence[bool] | None, memory: float) -> None:
        self.router, self.known, self.memory = router, known, memory
        self.ctx: Any = None

    def start(self, env: Any) -> None:
        """A new deployment on ``env`` (the unwrapped environment)."""
        if env.ctx is not self.ctx:
            self.ctx, self.c_ref = env.ctx, float(env.c_ref)
            known = np.ones(env.ctx.n_models, bool) if self.known is None else np.asarray(self.known, bool)
            self.base = BasePredictions(self.router, env.ctx, known)
        self.stats = RecentStatistics(env.ctx.n_models, self.memory)

    def add(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``obs`` plus the features; remembers the query's predictions and shown costs."""
        perf, cost = self.base.predict(np.asarray(obs["query"])[None])
        self.perf, self.shown = np.clip(perf[0], 0.0, 1.0), np.asarray(obs["model_costs"], np.float64)
        log_cost = np.log(np.maximum(cost[0] / self.c_ref, LOG_FLOOR))
        return {
            **obs,
            "router_perf": self.perf.astype(np.float32),
            "router_log_cost": np.minimum(log_cost, 10.0).astype(np.float32),
            "recent": self.stats.features(),
        }

    def learn(self, info: Mapping[str, Any]) -> None:
        """The call just made (``info``: a step's, with ``model_index``, ``correct`` and ``cost``)."""
        k = int(info["model_index"])
        realized = float(info["cost"]) / self.c_ref
        self.stats.update(k, float(info["correct"]), float(self.perf[k]), realized, float(self.shown[k]))


class RouterFeatures(gym.Wrapper):
    """Adds ``router_perf``, ``router_log_cost`` and ``recent`` (see the module docstring) to a
    ``Dict``-observation :class:`~mmr_gym.env.MMRRoutingEnv`.

    Args:
        env: the environment (``observation="dict"``), possibly wrapped.
        router: a fitted router (``predict(X) -> (perf, cost)``, cost in the table's unit).
        known: the models the router knew (others get the most accurate known model's predictions);
            None: all.
        memory: calls over which the recent statistics are weighted.
    """

    def __init__(
        self, env: gym.Env, router: Any, known: Sequence[bool] | None = None, memory: float = 50.0
    ) -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Dict):
            raise ValueError("RouterFeatures needs observation='dict'")
        self._memory = _Memory(router, known, memory)
        k = env.unwrapped.ctx.n_models
        self.observation_space = spaces.Dict({**env.observation_space.spaces, **feature_spaces(k)})
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None or not self._started or (options or {}).get("time") is not None:
            self._memory.start(self.env.unwrapped)  # the timeline (re)starts: a new deployment
            self._started = True
        return self._memory.add(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._memory.learn(info)
        return self._memory.add(obs), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """The wrapped environment's affordable models (MaskablePPO)."""
        return self.env.unwrapped.action_masks()


class RouterFeaturePolicy(Policy):
    """A model trained on :class:`RouterFeatures` as a :class:`~mmr_gym.policy.Policy`.

    Each lane is one deployment with its own memory (the evaluator builds one policy per lane from
    its factory; the SB3 model is shared, not copied). Acts deterministically among the affordable
    models.

    Args:
        model: the trained SB3 model (MaskablePPO).
        router: the router it was trained with.
        known: as :class:`RouterFeatures`.
        memory: as :class:`RouterFeatures` (the value it was trained with).
        name: the reported name.
    """

    info_keys = ("model_index", "correct", "cost")

    def __init__(
        self,
        model: BaseAlgorithm,
        router: Any,
        known: Sequence[bool] | None = None,
        memory: float = 50.0,
        name: str | None = None,
    ) -> None:
        self.scorer = SB3Policy(model)
        self.name = name or f"RL-{self.scorer.name[3:]}+{getattr(router, 'name', type(router).__name__)}"
        self._memory = _Memory(router, known, memory)
        self._started = False

    def begin_episode(self, env: Any) -> None:
        if not self._started or self._memory.ctx is not env.ctx:
            self._memory.start(env)  # a lane's first episode starts its deployment
            self._started = True

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        scores = self.scorer.scores(self._memory.add(obs))
        return int(np.argmax(np.where(np.asarray(info["action_mask"], dtype=bool), scores, -np.inf)))

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        self._memory.learn(info)

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        """Each active lane's features from its own memory, then one pass of the network over them."""
        mask = np.asarray(info["action_mask"], dtype=bool)
        actions = mask.argmax(axis=1)
        rows = np.flatnonzero(active)
        if rows.size:
            shown = [self.lane(i)._memory.add(obs_row(obs, i)) for i in rows.tolist()]
            batch = {key: np.stack([o[key] for o in shown]) for key in shown[0]}
            scores = np.where(mask[rows], self.scorer.scores(batch), -np.inf)
            actions[rows] = np.argmax(scores, axis=1)
        return actions


def train_router_agent(
    env_kwargs: Mapping[str, Any],
    router: Any,
    total_timesteps: int = 100_000,
    seed: int = 0,
    *,
    worlds: Sequence[Any] | None = None,
    n_envs: int | None = None,
    memory: float = 50.0,
    budget_sampling: str = "log-uniform",
    hyperparams: Mapping[str, Any] | None = None,
    torch_threads: int | None = 1,
) -> BaseAlgorithm:
    """Train MaskablePPO on :class:`RouterFeatures` (with log features) and return it.

    Args:
        env_kwargs: :class:`~mmr_gym.env.MMRRoutingEnv` kwargs; completed by
            :func:`~agents.rl.envs.training_env_kwargs` (the training split, a budget range; a
            ``scenario`` in them is replaced by ``worlds``).
        router: a router fitted on the same split.
        total_timesteps: environment steps over all training environments.
        seed: seeds the model and the environments (environment ``i`` gets ``seed + i``).
        worlds: the scenario of each training environment, cycled (a preset name, built for the
            training split; a :class:`~mmr_gym.scenarios.Scenario`; or None for a world without
            events). Default: every preset
            and one world without events.
        n_envs: training environments (default: MaskablePPO's, at least one per world).
        memory: calls over which the recent statistics are weighted.
        budget_sampling: how the budget ratio range is drawn per episode (``"log-uniform"``, as
            :func:`~agents.rl.train_agent` does: more tight budgets; or ``"uniform"``).
        hyperparams: overrides of MaskablePPO's :data:`~agents.rl.hyperparams.HYPERPARAMS`.
        torch_threads: torch CPU threads while training.
    """
    from agents.rl.envs import ENV_ID, training_env_kwargs
    from mmr_gym.scenarios import available

    kwargs = {**training_env_kwargs(env_kwargs), "budget_sampling": budget_sampling}
    kwargs.pop("scenario", None)
    worlds = [None, *available()] if worlds is None else list(worlds)
    n = max(N_ENVS["maskable-ppo"], len(worlds)) if n_envs is None else int(n_envs)

    def make(i: int):
        def build() -> gym.Env:
            world = worlds[i % len(worlds)]
            env = gym.make(
                ENV_ID, disable_env_checker=True, **kwargs, **({"scenario": world} if world else {})
            )
            return Monitor(RouterFeatures(env, router, memory=memory))

        return build

    with set_torch_threads(torch_threads):
        vec = VecLogFeatures(DummyVecEnv([make(i) for i in range(n)]))
        vec.seed(seed)
        params = {**HYPERPARAMS["maskable-ppo"], **(hyperparams or {})}
        model = ALGOS["maskable-ppo"]("MultiInputPolicy", vec, seed=seed, device="cpu", verbose=0, **params)
        model.learn(total_timesteps=total_timesteps)
        vec.close()
    return model
