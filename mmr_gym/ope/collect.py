"""collect_log: run a logging policy that states its propensities, and keep what production would keep."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from mmr_gym.checks import check_int
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.ope.log import DecisionLog, environment_meta
from mmr_gym.ope.targets import StochasticPolicy, checked_probabilities


def collect_log(
    env: gym.Env,
    behaviour: StochasticPolicy,
    n_queries: int,
    seed: int = 0,
    *,
    progress: bool = False,
) -> DecisionLog:
    """Log ``n_queries`` decisions of ``behaviour`` in ``env``, with their propensities.

    Episodes follow one another (the first reset is seeded with ``seed``, the next ones continue
    the environment's generator); the last one is cut when ``n_queries`` decisions are logged. At
    every step the logged action is drawn, with a generator seeded by ``seed``, from exactly the
    distribution ``behaviour.action_probabilities(obs, info)`` states, and its probability is the
    logged propensity: the propensities are exact by construction. ``behaviour.act`` is not used;
    ``begin_episode`` and ``observe`` are called as the evaluator calls them, so a logging policy
    may learn as it logs (its propensities are those of the moment it acted).

    Args:
        env: ``MMRRouting-v0`` (the ``Dict`` observation), wrapped or not, any ``feedback``.
        behaviour: the logging policy (see :mod:`agents.stochastic`: uniform, epsilon-greedy around
            any router, softmax over predicted scores, Thompson sampling).
        n_queries: number of decisions to log (>= 1).
        seed: seeds the first reset and the action draws; the same seed, environment and fresh
            behaviour give the same log.
        progress: show a progress bar.

    Returns:
        A :class:`DecisionLog` whose ``meta`` records the environment's configuration, the
        behaviour's name, the seed and the table's source.
    """
    n_queries = check_int("n_queries", n_queries, low=1)
    seed = check_int("seed", seed, low=0)
    if not isinstance(getattr(env, "unwrapped", None), MMRRoutingEnv):
        raise TypeError(
            f"collect_log needs one MMRRouting-v0 environment (gym.make's, wrapped or not), got {type(env).__name__}"
        )
    if not isinstance(behaviour, StochasticPolicy):
        raise TypeError(
            f"behaviour {type(behaviour).__name__} does not state its propensities (no action_probabilities); "
            "wrap a deterministic router, e.g. agents.stochastic.EpsilonGreedyPolicy(router, epsilon=0.1)"
        )
    n = int(n_queries)
    unwrapped = env.unwrapped
    ctx = unwrapped.ctx
    k = ctx.n_models
    rng = np.random.default_rng(seed)

    obs, info = env.reset(seed=seed)
    if not isinstance(obs, dict) or "query" not in obs or "model_costs" not in obs:
        raise ValueError(
            "collect_log needs the Dict observation (MMRRouting-v0, keys 'query', 'budget', 'model_costs'), "
            f"got {type(obs).__name__}"
        )
    observations = {key: np.empty((n, *np.shape(value)), dtype=np.float32) for key, value in obs.items()}
    columns = {
        name: np.empty(n, dtype=dtype)
        for name, dtype in (
            ("episode", np.int64),
            ("step", np.int64),
            ("budget_remaining", np.float64),
            ("budget_total", np.float64),
            ("action", np.int64),
            ("propensity", np.float64),
            ("correct", np.float64),
            ("cost", np.float64),
        )
    }
    query_ids, datasets = [], []
    masks = np.empty((n, k), dtype=bool)
    probs_all = np.empty((n, k))

    episode, step = 0, 0
    behaviour.begin_episode(unwrapped)
    total = _budget_total(unwrapped)
    remaining = total
    for row in tqdm(
        range(n), desc=f"logging {getattr(behaviour, 'name', 'behaviour')}", disable=not progress
    ):
        mask = np.asarray(info["action_mask"], dtype=bool)
        where = f"collect_log, episode {episode}, step {step}"
        probs = checked_probabilities(behaviour.action_probabilities(obs, info), mask, where)
        # Inverse-CDF draw: one uniform per step, the same generator calls on every platform.
        action = min(int(np.searchsorted(np.cumsum(probs), rng.random(), side="right")), k - 1)
        while probs[action] == 0.0:  # rounding at the top of the CDF: step back to a model it can call
            action -= 1
        for key, value in obs.items():
            observations[key][row] = value
        masks[row] = mask
        probs_all[row] = probs
        next_obs, reward, terminated, truncated, step_info = env.step(action)
        if int(step_info["model_index"]) != action:
            raise RuntimeError(
                f"{where}: the environment called model {step_info['model_index']}, not {action}"
            )
        values = (
            episode,
            step,
            remaining,
            total,
            action,
            probs[action],
            step_info["correct"],
            step_info["cost"],
        )
        for name, value in zip(columns, values, strict=True):
            columns[name][row] = value
        query_ids.append(step_info["query_id"])
        datasets.append(step_info["dataset"])
        behaviour.observe(action, reward, step_info)
        remaining = float(step_info["budget_remaining"])
        if terminated or truncated:
            if row + 1 < n:
                obs, info = env.reset()
                episode, step = episode + 1, 0
                behaviour.begin_episode(unwrapped)
                total = remaining = _budget_total(unwrapped)
        else:
            obs, info, step = next_obs, step_info, step + 1

    table = ctx.table
    meta = {
        **environment_meta(unwrapped),
        "behaviour": str(getattr(behaviour, "name", type(behaviour).__name__)),
        "seed": int(seed),
        "table": str(table.source),
        "collected_by": "mmr_gym.ope.collect_log",
    }
    return DecisionLog(
        **columns,
        query_id=np.asarray(query_ids, dtype=str),
        dataset=np.asarray(datasets, dtype=str),
        observations=observations,
        action_mask=masks,
        behaviour_probs=probs_all,
        meta=meta,
        source=f"collect_log({meta['behaviour']}, seed={seed})",
    )


def _budget_total(env: Any) -> float:
    budget = env.budget
    return float("inf") if budget is None else float(budget)
