"""Checks of what a learner is fed: a bad value would be learnt silently (a NaN poisons every later
estimate, a negative index updates another model) or fail deep inside a numpy or torch product."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from mmr_gym.checks import check_float

__all__ = ["check_feedback", "check_width", "checked_labels"]


def check_feedback(n_models: int, action: Any, correct: Any, cost: Any) -> None:
    """One call's feedback, checked before it is learnt: a NaN would poison every later estimate and
    a negative index would update another model (numpy counts it from the end)."""
    if isinstance(action, bool) or not isinstance(action, numbers.Integral) or not 0 <= action < n_models:
        raise ValueError(f"action must be a model index in [0, {n_models}), got {action!r}")
    check_float("correct", correct, low=0.0, high=1.0)
    check_float("cost", cost, low=0.0)


def check_width(dim: int, x: Any) -> None:
    """Query features of the learner's width (numpy would fail inside a product, naming no argument)."""
    width = np.shape(x)[-1] if np.ndim(x) else None
    if width != dim:
        raise ValueError(
            f"query features must have {dim} dimensions (the learner's dim), got shape {np.shape(x)}"
        )


def checked_labels(n_models: int, X: Any, correct: Any, cost: Any) -> tuple[np.ndarray, np.ndarray]:
    """Full-information labels ``[n, K]`` for a warm start: one row per query of ``X``, finite."""
    correct, cost = np.asarray(correct, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    shape = (len(X), n_models)
    for name, values, high in (("correct", correct, 1.0), ("cost", cost, np.inf)):
        if values.shape != shape:
            raise ValueError(
                f"warm_start: {name} must have shape {shape} (queries, models), got {values.shape}"
            )
        bad = np.argwhere(~np.isfinite(values) | (values < 0) | (values > high))
        if bad.size:
            row, model = bad[0].tolist()
            raise ValueError(
                f"warm_start: {name}[{row}, {model}] = {float(values[row, model])!r} is not a finite number in range"
            )
    return correct, cost
