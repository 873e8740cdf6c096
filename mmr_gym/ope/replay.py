"""Replay (Li, Chu, Langford and Wang, WSDM 2011): run the target online on the logged stream.

The target meets the logged decisions one after another, as queries of its own episodes, and
chooses a model for each. When its choice is the model the logger called, the decision is
*accepted*: the target gets the logged outcome, pays the logged cost from its own budget, learns
(``observe``) and moves on to its next query; otherwise the decision is skipped, as if that query
had never come, and the target's state does not move. Under a uniform logger each query is
accepted with the same probability ``1/K`` whatever the target chooses, so the accepted decisions
are distributed exactly as the target's own online run would meet them: replay is unbiased for
the *online* value of any policy, learning and budget-pacing ones included (a budgeted target
sees its own budget state, not the logger's).

A logger that is not uniform is handled by rejection: a matching decision logged with propensity
``mu`` is accepted with probability ``floor / mu``, where ``floor`` is the smallest probability
the logger gave any model it could call, so every choice is again accepted with probability
``floor``. It costs data (``floor`` of the log is used) and needs every model the target may
choose to have had a probability of at least ``floor``.

The target's episodes follow its deployment environment (``env``: budget ratio, episode length,
cost weight; by default the log's): budget ``ratio * episode_length * c_ref``, the environment's
budget rule (:mod:`mmr_gym.budget`: affordability on the logged cost estimates, overrun ends the
episode, nothing affordable ends it and the queries left count as wrong). Accuracy and cost per
query are over the target's whole episodes (unanswered queries wrong and free); without a budget,
over its accepted decisions.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mmr_gym.budget import affordable, budget_features, overran
from mmr_gym.ope.estimators import SupportWarning, Terms
from mmr_gym.ope.log import DecisionLog
from mmr_gym.ope.targets import check_env_matches, check_needs_no_env, decision_obs, fallback_action


def replay_terms(
    log: DecisionLog, policy: Any, *, env: Any = None, seed: int = 0, bootstrap_unit: str = "episode"
) -> Terms:
    """Replay ``policy`` on ``log``; the accepted outcomes as :class:`~mmr_gym.ope.estimators.Terms`.

    Units of the bootstrap: with a budget and ``bootstrap_unit="episode"``, the target's complete
    episodes (its budget ties their decisions together); otherwise each accepted decision (and,
    with a budget, each unanswered query of a complete episode). See :func:`mmr_gym.ope.estimate`.
    """
    if not hasattr(policy, "act"):
        raise TypeError(f"replay needs a policy that acts online (act/observe), got {type(policy).__name__}")
    check_env_matches(log, env, check_length=False)
    length, ratio, cost_weight = _deployment(log, env)
    c_ref = log.c_ref
    total = float("inf") if ratio is None else ratio * length * c_ref
    estimates = log.observations["model_costs"].astype(np.float64) * c_ref
    floor = _acceptance_floor(log)
    rng = np.random.default_rng(seed)

    episodes: list[tuple[list[int], bool]] = []  # (accepted rows, complete?)
    rows: list[int] = []
    spend, t, started, decided, unsupported = 0.0, 0, False, 0, 0
    i, n = 0, len(log)
    while i < n:
        if not started:
            rows, spend, t, started = [], 0.0, 0, True
            _begin(policy, env, ratio, len(episodes))
        mask = affordable(estimates[i], max(total - spend, 0.0))
        if not mask.any():  # nothing fits what is left: the episode ends, its other queries unanswered
            if t == 0:
                raise ValueError(
                    f"{log.source}, row {i}: no model's cost estimate fits a whole budget of {total:.6g} "
                    f"{log.cost_unit}: the target's budget ratio {ratio} is too small for this log"
                )
            episodes.append((rows, True))
            started = False
            continue
        obs = decision_obs(log, i)
        obs["budget"] = budget_features(spend, total, length - t, length, c_ref)
        action = policy.act(obs, {"action_mask": mask.astype(np.int8)})
        if not isinstance(action, (int, np.integer)) or not 0 <= action < mask.size:
            raise ValueError(
                f"replay, row {i}: act returned {action!r}, expected a model index in [0, {mask.size})"
            )
        action = fallback_action(int(action), mask, obs["model_costs"])
        decided += 1
        logger_probs = log.behaviour_probs[i] if log.behaviour_probs is not None else log.action_mask[i]
        unsupported += not logger_probs[action]
        row, i = i, i + 1
        if action != log.action[row]:
            continue
        if floor < log.propensity[row] and rng.random() >= floor / log.propensity[row]:
            continue
        rows.append(row)
        spend += float(log.cost[row])
        t += 1
        correct, cost = float(log.correct[row]), float(log.cost[row])
        reward = correct - cost_weight * cost / c_ref
        policy.observe(action, reward, _step_info(log, row, correct, cost, total - spend, cost_weight))
        if t == length or overran(spend, total):
            episodes.append((rows, True))
            started = False
    if started:
        episodes.append((rows, False))
    if decided and unsupported:
        warnings.warn(
            f"{log.source}: in {unsupported / decided:.1%} of the replayed decisions the target chose a model "
            "the logger could not call there: replay never accepts those, so it is biased towards the "
            "target's other choices",
            SupportWarning,
            stacklevel=3,
        )
    return _terms(log, episodes, length, ratio is not None and bootstrap_unit == "episode", ratio is not None)


def _deployment(log: DecisionLog, env: Any) -> tuple[int, float | None, float]:
    """(episode length, budget ratio or None, cost weight) of the target's own runs."""
    if env is not None:
        unwrapped = env.unwrapped
        length, ratio, weight = unwrapped.episode_length, unwrapped.budget_ratio, unwrapped.cost_weight
    else:
        if "episode_length" not in log.meta:
            raise ValueError(
                f"{log.source}: replay needs env=... or meta['episode_length'] for the target's episodes"
            )
        length, ratio = int(log.meta["episode_length"]), log.meta.get("budget_ratio")
        weight = float(log.meta.get("cost_weight", 0.0))
    if isinstance(ratio, (list, tuple)):
        raise ValueError(
            f"replay needs one budget ratio (or None) for the target, got the range {ratio!r}: "
            "give env=gym.make(..., budget_ratio=r)"
        )
    return int(length), None if ratio is None else float(ratio), float(weight)


def _acceptance_floor(log: DecisionLog) -> float:
    """The smallest probability the logger gave a model it could call (its logged propensities if
    the whole distributions are not in the log)."""
    if log.behaviour_probs is not None:
        probs = log.behaviour_probs
        return float(probs[probs > 0].min())
    return float(log.propensity.min())


def _begin(policy: Any, env: Any, ratio: float | None, episode: int) -> None:
    if env is None:
        check_needs_no_env(policy)
        return
    if not hasattr(policy, "begin_episode"):
        return
    env.reset(seed=episode, options=None if ratio is None else {"budget_ratio": ratio})
    policy.begin_episode(env.unwrapped)


def _step_info(
    log: DecisionLog, row: int, correct: float, cost: float, remaining: float, cost_weight: float
) -> dict[str, Any]:
    """What the environment's step info says of an accepted call (not the next query's mask: not known yet)."""
    action = int(log.action[row])
    return {
        "model": log.model_names[action],
        "model_index": action,
        "action_replaced": False,
        "correct": correct,
        "cost": cost,
        "query_id": str(log.query_id[row]),
        "dataset": str(log.dataset[row]),
        "rewards": {"correct": correct, "cost_penalty": -cost_weight * cost / log.c_ref},
        "budget_remaining": max(remaining, 0.0),
    }


def _terms(
    log: DecisionLog, episodes: list[tuple[list[int], bool]], length: int, by_episode: bool, budgeted: bool
) -> Terms:
    if budgeted:
        complete = [rows for rows, done in episodes if done]
        if not complete:
            accepted = sum(len(rows) for rows, _ in episodes)
            raise ValueError(
                f"{log.source}: replay completed no episode of the target ({accepted} decisions accepted, "
                f"{length} per episode): log more decisions (about {length} x K under a uniform logger)"
            )
    else:
        complete = [rows for rows, _ in episodes]  # without a budget every accepted decision counts
    accepted = [row for rows in complete for row in rows]
    if not accepted:
        raise ValueError(
            f"{log.source}: replay accepted no decision: the target never chose the model the logger called"
        )
    correct, cost = log.correct, log.cost
    if by_episode:
        correct_num = np.array([correct[rows].sum() for rows in complete])
        cost_num = np.array([cost[rows].sum() for rows in complete])
        denominator = np.full(len(complete), float(length))
        unit_ids = np.arange(len(complete))
    else:
        unanswered = sum(length - len(rows) for rows in complete) if budgeted else 0
        correct_num = np.concatenate([correct[accepted], np.zeros(unanswered)])
        cost_num = np.concatenate([cost[accepted], np.zeros(unanswered)])
        denominator = np.ones(correct_num.size)
        unit_ids = np.arange(correct_num.size)
    return Terms(
        unit="episode" if by_episode else "decision",
        unit_ids=unit_ids,
        correct_num=correct_num,
        cost_num=cost_num,
        denominator=denominator,
        ess=float(len(accepted)),
        n_used=len(accepted),
        estimand="online",
    )
