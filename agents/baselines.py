"""Baseline policies: random, cheapest, best single model, and the hindsight oracle.

Cheapest and BestSingle hold no state, so one of them acts for every row of a vector env at once
(:meth:`~mmr_gym.policy.Policy.act_batch`); Random (one generator per lane) and Oracle (one plan per
episode) keep a copy per lane (the defaults).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmr_gym.env import MMRRoutingEnv
from mmr_gym.oracle import budgeted_oracle
from mmr_gym.policy import Policy, affordable_indices


class _Stateless(Policy):
    """A policy whose action depends on the current observation and mask alone: one instance acts
    for every lane (no copies)."""

    info_keys = ()
    episodic = True

    def reset_lanes(self, n: int, make: Any = None) -> None:
        self._lanes = None

    def begin_episodes(self, env: Any, rows: np.ndarray) -> None:
        self.begin_episode(env)


class RandomPolicy(Policy):
    """Uniform over the affordable models (seeded)."""

    name = "Random"
    info_keys = ()

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(self.rng.choice(affordable_indices(info)))


class CheapestPolicy(_Stateless):
    """The affordable model with the lowest cost estimate for the query."""

    name = "Cheapest"

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        self.layout = env.layout

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(self.act_batch(obs, info, np.ones((), dtype=bool)))

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        costs = self.layout.decode(obs).model_costs
        return np.argmin(np.where(np.asarray(info["action_mask"], dtype=bool), costs, np.inf), axis=-1)


class BestSinglePolicy(_Stateless):
    """The most accurate model on the training split; when it is unaffordable, the most accurate
    affordable one (ties to the cheaper)."""

    name = "BestSingle"

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        if getattr(self, "_ctx", None) is not env.ctx:
            self._ctx = env.ctx
            train = env.ctx.table.subset(env.ctx.train_indices)
            accuracy = train.model_accuracy()
            # Preference order: accuracy descending, then mean cost ascending.
            self._order = np.lexsort((train.model_mean_cost(), -accuracy))

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        mask = info["action_mask"]
        for model in self._order:
            if mask[model]:
                return int(model)
        raise RuntimeError("no affordable model: the environment should have ended the episode")

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        # The first affordable model in preference order (rows with none get the first: idle rows).
        preferred = np.asarray(info["action_mask"], dtype=bool)[:, self._order]
        return self._order[preferred.argmax(axis=1)]


class OraclePolicy(Policy):
    """Privileged: knows every outcome of the episode's stream and follows the budgeted hindsight plan.

    Under a budget it plans with :func:`mmr_gym.oracle.budgeted_oracle` under the environment's own
    rule (a model is called for every query, ``allow_skip=False``); if even the cheapest calls do
    not fit, it plans with skipping and calls the cheapest model on skipped queries while the budget
    lasts. Without a budget it takes, per query, the best reward (correctness minus the cost penalty),
    cheapest on ties. The plan uses true costs; the environment's mask uses estimates, so a planned
    call can be masked, and then the environment's fallback applies.
    """

    name = "Oracle"
    privileged = True
    info_keys = ()
    episodic = True  # a plan per episode

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        rows = env.episode_query_indices
        correct = env.ctx.table.correct[rows].astype(np.float64)
        cost = env.ctx.table.cost[rows].astype(np.float64)
        self._t = 0
        if env.budget is None:
            value = correct - env.cost_weight * cost / env.c_ref
            best = value >= value.max(axis=1, keepdims=True) - 1e-12
            self._plan = np.argmin(np.where(best, cost, np.inf), axis=1)
            return
        try:
            plan = budgeted_oracle(correct, cost, env.budget, allow_skip=False).choice
        except ValueError:
            plan = budgeted_oracle(correct, cost, env.budget, allow_skip=True).choice
            plan = np.where(plan < 0, np.argmin(cost, axis=1), plan)
        self._plan = plan

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        action = int(self._plan[self._t])
        self._t += 1
        return action


BASELINES: dict[str, type[Policy]] = {
    "random": RandomPolicy,
    "cheapest": CheapestPolicy,
    "best-single": BestSinglePolicy,
    "oracle": OraclePolicy,
}
