"""Hand-made decision logs for the off-policy evaluation tests (truths known exactly)."""

from __future__ import annotations

import numpy as np

from mmr_gym.ope import DecisionLog


def hand_log(
    context,
    action,
    propensity,
    correct,
    cost,
    k: int,
    *,
    episode=None,
    behaviour_probs=None,
    mask=None,
    model_costs=None,
    budget_total=np.inf,
    meta=None,
) -> DecisionLog:
    """A log of decisions on contexts ``0, 1, ...`` (one-hot query features), one episode per decision
    unless ``episode`` is given; ``model_costs`` default to a fixed ladder (relative to c_ref = 1)."""
    context = np.asarray(context)
    n = context.size
    episode = np.arange(n) if episode is None else np.asarray(episode)
    step = np.zeros(n, dtype=np.int64)
    for e in np.unique(episode):
        rows = np.flatnonzero(episode == e)
        step[rows] = np.arange(rows.size)
    query = np.eye(int(context.max()) + 1, dtype=np.float32)[context]
    costs = np.tile(np.linspace(0.1, 1.0, k), (n, 1)) if model_costs is None else np.asarray(model_costs)
    return DecisionLog(
        episode=episode,
        step=step,
        query_id=[f"x{c}" for c in context],
        dataset=["hand"] * n,
        observations={"query": query, "budget": np.ones((n, 3)), "model_costs": costs},
        action_mask=np.ones((n, k), dtype=bool) if mask is None else mask,
        budget_remaining=np.full(n, budget_total),
        budget_total=np.full(n, budget_total),
        action=action,
        propensity=propensity,
        correct=correct,
        cost=cost,
        behaviour_probs=behaviour_probs,
        meta={
            "model_names": [f"m{j}" for j in range(k)],
            "c_ref": 1.0,
            "cost_unit": "units",
            "episode_length": 2,
            **(meta or {}),
        },
        source="hand-made",
    )


# A logger, a target and outcomes on two contexts and three models, and a log in which every
# (context, model) pair appears exactly as often as the logger calls it: on this log, any estimator
# that is unbiased returns the truth exactly (its average over all logs is this log's value).
LOGGER = np.array([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
TARGET = np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
CORRECT = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.4]])
COST = np.array([[3.0, 1.0, 2.0], [2.5, 0.5, 1.5]])
TRUE_ACCURACY = 0.5 * (0.2 * 0.9 + 0.5 * 0.2 + 0.3 * 0.6) + 0.5 * 0.4  # contexts equally likely: 0.43
TRUE_COST = 0.5 * (0.2 * 3.0 + 0.5 * 1.0 + 0.3 * 2.0) + 0.5 * 1.5  # 1.6


def exact_log() -> tuple[DecisionLog, np.ndarray]:
    """The expectation-shaped log (8 decisions) and the target's probabilities on it."""
    context = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    action = np.array([0, 0, 1, 2, 0, 1, 2, 2])
    log = hand_log(
        context,
        action,
        LOGGER[context, action],
        CORRECT[context, action],
        COST[context, action],
        3,
        behaviour_probs=LOGGER[context],
    )
    return log, TARGET[context]
