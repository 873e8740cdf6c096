"""Target policies as distributions over models, on the contexts a log recorded.

The per-decision estimators (DM, IPS, SNIPS, DR) need, for every logged decision, the probability
with which the *target* would have called each model in that decision's context. Two kinds of
target give it:

- a :class:`StochasticPolicy`: it states its distribution, ``action_probabilities(obs, info)``;
- a plain :class:`~mmr_gym.policy.Policy` (BestSingle, Cheapest, a paced router...): deterministic
  given the context, so its distribution is the one-hot of ``act(obs, info)``. A masked choice
  becomes the cheapest affordable model, as the environment's fallback would call.

The context is the logged one, *budget state included*: ``obs`` holds the logged observation
(``query``, ``budget``, ``model_costs``) and ``info["action_mask"]`` the logged mask. A target whose
choice depends on the budget (budget pacing) is therefore judged on the budget states the logger
went through, not on those it would have reached by its own spending; and ``observe`` is never
called, so whatever the target would learn from its own feedback (a dual price, a bandit's
posterior) stays as it was. See :mod:`mmr_gym.ope` for what that means, and replay for the online value.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmr_gym.ope.log import DecisionLog
from mmr_gym.policy import Policy

# Distributions from float arithmetic may miss 1 (or put dust on masked models) by rounding.
PROBABILITY_TOLERANCE = 1e-6


@runtime_checkable
class StochasticPolicy(Protocol):
    """A policy that states its propensities: ``action_probabilities(obs, info) -> float [K]``.

    The probabilities are over all ``K`` models, zero on the masked ones (``info["action_mask"]``),
    and sum to 1. :func:`~mmr_gym.ope.collect_log` draws the logged action from exactly this
    distribution and records its probability, so the propensity is exact by construction. The
    other methods are those of :class:`~mmr_gym.policy.Policy` (``begin_episode``, ``observe``).
    """

    def action_probabilities(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray: ...


def checked_probabilities(probs: Any, mask: np.ndarray, where: str) -> np.ndarray:
    """``probs`` as float64 ``[K]`` summing to 1 exactly, or a ValueError naming ``where``.

    Checks: the shape, finite values >= 0, a sum of 1 (within rounding) and no probability on a
    masked model. The result is renormalised so that sampling with it is exact.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != mask.shape:
        raise ValueError(f"{where}: action_probabilities returned shape {p.shape}, expected {mask.shape}")
    if not (np.isfinite(p).all() and (p >= 0).all()):
        raise ValueError(f"{where}: action_probabilities returned {p.tolist()}: not finite values >= 0")
    total = p.sum()
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise ValueError(f"{where}: action_probabilities sum to {total!r}, not 1")
    masked = p[~mask].sum()
    if masked > PROBABILITY_TOLERANCE:
        raise ValueError(
            f"{where}: action_probabilities put {masked:.3g} on masked (unaffordable) models "
            f"{np.flatnonzero(~mask & (p > 0)).tolist()}; a policy must choose among info['action_mask']"
        )
    p = np.where(mask, p, 0.0)
    return p / p.sum()


def fallback_action(action: int, mask: np.ndarray, model_costs: np.ndarray) -> int:
    """The model the environment calls for ``action``: itself if affordable, else the cheapest affordable one."""
    if mask[action]:
        return action
    return int(np.argmin(np.where(mask, model_costs, np.inf)))


def policy_distribution(policy: Any, obs: dict[str, np.ndarray], mask: np.ndarray, where: str) -> np.ndarray:
    """One decision's distribution: stated by a :class:`StochasticPolicy`, one-hot for any other policy."""
    info = {"action_mask": mask.astype(np.int8)}
    if hasattr(policy, "action_probabilities"):  # a StochasticPolicy (isinstance is slow on protocols)
        return checked_probabilities(policy.action_probabilities(obs, info), mask, where)
    action = policy.act(obs, info)
    if not isinstance(action, (int, np.integer)) or not 0 <= action < mask.size:
        raise ValueError(f"{where}: act returned {action!r}, expected a model index in [0, {mask.size})")
    p = np.zeros(mask.size)
    p[fallback_action(int(action), mask, obs["model_costs"])] = 1.0
    return p


def decision_obs(log: DecisionLog, row: int) -> dict[str, np.ndarray]:
    """The observation the logger saw at ``row``, as a dict of fresh arrays (by the log's keys)."""
    return {key: value[row].copy() for key, value in log.observations.items()}


def start_episode(policy: Any, env: Any, log: DecisionLog, row: int) -> None:
    """Call ``policy.begin_episode`` for the logged episode starting at ``row``, on ``env`` reset to its budget.

    ``env`` stands for the deployment the target is judged in: the same table, models and episode
    length as the log. It is reset (seeded by the episode number) with the logged episode's budget,
    so that what ``begin_episode`` reads (``env.budget``, ``env.ctx``, ``env.c_ref``) agrees with
    the logged budget state. Without ``env`` nothing is called, and a policy that needs its
    ``begin_episode`` (it overrides :meth:`Policy.begin_episode`) is refused with a ValueError.
    """
    if env is None:
        check_needs_no_env(policy)
        return
    if not hasattr(policy, "begin_episode"):
        return
    unwrapped = env.unwrapped
    total = float(log.budget_total[row])
    options: dict[str, Any] = {}
    if np.isfinite(total):
        options["budget_ratio"] = total / (unwrapped.episode_length * unwrapped.c_ref)
    elif unwrapped.budget_ratio is not None:
        raise ValueError(
            f"{log.source}: episode {log.episode[row]} was logged without a budget, but env has "
            f"budget_ratio={unwrapped.budget_ratio!r}: give an environment configured as the log was"
        )
    env.reset(seed=int(log.episode[row]), options=options or None)
    policy.begin_episode(unwrapped)


def check_needs_no_env(policy: Any) -> None:
    """Raise a ValueError if ``policy`` overrides ``begin_episode`` (it reads the environment there)."""
    begin = getattr(type(policy), "begin_episode", None)
    if begin is not None and begin is not Policy.begin_episode:
        raise ValueError(
            f"{type(policy).__name__} prepares each episode in begin_episode(env): pass env=... "
            "(the environment it would be deployed in: same table, split and models as the log)"
        )


def check_env_matches(log: DecisionLog, env: Any, check_length: bool = True) -> None:
    """Raise a ValueError unless ``env`` has the log's models, ``c_ref`` and (when recorded and
    ``check_length``) episode length."""
    if env is None:
        return
    unwrapped = env.unwrapped
    if tuple(unwrapped.model_names) != log.model_names:
        raise ValueError(
            f"{log.source}: the log's models {list(log.model_names)} are not env's {list(unwrapped.model_names)}"
        )
    if not np.isclose(unwrapped.c_ref, log.c_ref, rtol=1e-6, atol=0.0):
        raise ValueError(
            f"{log.source}: the log's c_ref {log.c_ref!r} differs from env's {unwrapped.c_ref!r}: "
            "its model_costs are relative to another reference cost (another table or split?)"
        )
    length = log.meta.get("episode_length")
    if check_length and length is not None and int(length) != unwrapped.episode_length:
        raise ValueError(
            f"{log.source}: the log's episodes are {length} queries long, env's {unwrapped.episode_length}: "
            "the budget features would disagree"
        )


def target_probabilities(log: DecisionLog, target: Any, env: Any = None) -> np.ndarray:
    """The target's distribution over the models at every logged decision: float64 ``[n, K]``.

    Args:
        log: the logged decisions.
        target: a :class:`StochasticPolicy`, a :class:`~mmr_gym.policy.Policy` (one-hot of its
            ``act``), or an array ``[n, K]`` of probabilities already computed (checked, returned).
        env: the environment the target would be deployed in (same table, split, models and
            episode length as the log; wrapped or not), for ``begin_episode``; it is reset at each
            logged episode's first decision with that episode's budget (see :func:`start_episode`).
            None: ``begin_episode`` is not called.

    The target sees each logged context in log order, episode by episode; ``observe`` is never
    called. Pass a policy in the state you want judged (a fresh one, usually): a policy that
    already ran keeps what it learned.
    """
    n, k = len(log), log.n_models
    mask = log.action_mask
    if isinstance(target, list | tuple):  # probabilities given as nested lists
        target = np.asarray(target, dtype=np.float64)
    if not isinstance(target, np.ndarray) and not (
        hasattr(target, "action_probabilities") or hasattr(target, "act")
    ):
        raise TypeError(
            f"target must be a policy (with act or action_probabilities) or probabilities [{n}, {k}], "
            f"got {type(target).__name__}"
        )
    if isinstance(target, np.ndarray):
        probs = np.asarray(target, dtype=np.float64)
        if probs.shape != (n, k):
            raise ValueError(f"target probabilities must have shape ({n}, {k}), got {probs.shape}")
        bad = ~(np.isfinite(probs).all(axis=1) & (probs >= 0).all(axis=1))
        bad |= np.abs(probs.sum(axis=1) - 1.0) > PROBABILITY_TOLERANCE
        bad |= (probs * ~mask).sum(axis=1) > PROBABILITY_TOLERANCE
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"target probabilities, row {row}: {probs[row].tolist()} is not a distribution over "
                f"the affordable models {np.flatnonzero(mask[row]).tolist()}"
            )
        return probs
    check_env_matches(log, env)
    out = np.empty((n, k))
    previous_episode = None
    for row in range(n):
        episode = log.episode[row]
        if episode != previous_episode:
            start_episode(target, env, log, row)
            previous_episode = episode
        where = f"{log.source}, row {row} (episode {episode}, step {log.step[row]})"
        out[row] = policy_distribution(target, decision_obs(log, row), mask[row], where)
    return out
