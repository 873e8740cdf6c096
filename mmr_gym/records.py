"""What an episode reports: the step info, the episode metrics, the ANSI line and the frame state.

Both environments report through these functions, so their infos have the same keys, in the same
order, with the same values (the single environment's as Python scalars, the vector environment's
batched as ``SyncVectorEnv`` would batch them).

Step info (:data:`INFO_KEYS`, after ``action_mask``, which every info has):

- ``model`` (name) and ``model_index`` of the model called, ``action_replaced`` (the agent asked
  for a masked model and the fallback called another);
- ``correct`` and ``cost`` of the call (table's cost unit), ``query_id`` and ``dataset`` of the
  query just answered, ``rewards`` (its components: ``correct``, ``cost_penalty``),
  ``budget_remaining`` (never negative; ``inf`` without a budget);
- ``outcomes`` with ``feedback="full"``: every model's ``correct`` and ``cost`` for that query;
- ``episode_metrics`` at the end of an episode (:data:`METRIC_KEYS`, :func:`episode_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmr_gym.render import FrameState, cost_label

#: The keys of a step's info (``action_mask`` aside, which is always there), in their order.
INFO_KEYS = (
    "model",
    "model_index",
    "action_replaced",
    "correct",
    "cost",
    "query_id",
    "dataset",
    "rewards",
    "budget_remaining",
    "outcomes",
    "episode_metrics",
)
#: The keys of ``info["episode_metrics"]``, in their order.
METRIC_KEYS = (
    "accuracy",  # mean correctness over all the episode's queries, unanswered ones counted wrong
    "answered",
    "unanswered",
    "length",
    "spend",  # table's cost unit
    "budget",  # None without a budget
    "budget_ratio",  # None without a budget
    "overrun",  # spend beyond the budget, from the final call (0 if none)
    "oracle_accuracy",  # the hindsight oracle's, under the same budget (mmr_gym.oracle)
    "regret",  # oracle_accuracy - accuracy
    "c_ref",
    "cost_unit",
)


def step_info(
    action_mask: np.ndarray,
    model: str,
    model_index: int,
    action_replaced: bool,
    correct: float,
    cost: float,
    query_id: str,
    dataset: str,
    cost_penalty: float,
    budget_remaining: float,
) -> dict[str, Any]:
    """One step's info (the single environment's; the vector environment batches the same keys in
    :meth:`~mmr_gym.episodes.EpisodeBatch.step_info`)."""
    return {
        "action_mask": action_mask,
        "model": model,
        "model_index": model_index,
        "action_replaced": action_replaced,
        "correct": correct,
        "cost": cost,
        "query_id": query_id,
        "dataset": dataset,
        "rewards": {"correct": correct, "cost_penalty": cost_penalty},
        "budget_remaining": budget_remaining,
    }


def episode_metrics(
    correct_sum: np.ndarray,
    length: np.ndarray,
    steps_left: np.ndarray,
    spend: np.ndarray,
    total: np.ndarray,
    ratio: np.ndarray,
    overrun_floor: np.ndarray,
    oracle_accuracy: np.ndarray,
    c_ref: float,
    cost_unit: str,
) -> dict[str, Any]:
    """The metrics of ``m`` finished episodes, as arrays of shape ``[m]`` keyed by :data:`METRIC_KEYS`.

    Inputs are the episodes' state (float64 ``[m]``; ``total`` ``inf`` and ``ratio`` NaN mean no
    budget, ``overrun_floor`` from :func:`mmr_gym.budget.overrun_floor`). ``budget`` and
    ``budget_ratio`` stay float64 with ``inf``/NaN for no budget (:func:`metrics_row` and the vector
    env turn them into None); ``c_ref`` and ``cost_unit`` are scalars.
    """
    accuracy = correct_sum / length
    balance = total - spend
    overrun = np.zeros(balance.shape)
    np.negative(balance, out=overrun, where=balance < overrun_floor)  # spend - total, bit for bit
    return {
        "accuracy": accuracy,
        "answered": length - steps_left,
        "unanswered": steps_left,
        "length": length,
        "spend": spend,
        "budget": total,
        "budget_ratio": ratio,
        "overrun": overrun,
        "oracle_accuracy": oracle_accuracy,
        "regret": oracle_accuracy - accuracy,
        "c_ref": c_ref,
        "cost_unit": cost_unit,
    }


def metrics_row(metrics: dict[str, Any], i: int = 0) -> dict[str, Any]:
    """Episode ``i`` of :func:`episode_metrics` as Python scalars (None for an absent budget)."""
    total = float(metrics["budget"][i])
    budgeted = np.isfinite(total)
    return {
        "accuracy": float(metrics["accuracy"][i]),
        "answered": int(metrics["answered"][i]),
        "unanswered": int(metrics["unanswered"][i]),
        "length": int(metrics["length"][i]),
        "spend": float(metrics["spend"][i]),
        "budget": total if budgeted else None,
        "budget_ratio": float(metrics["budget_ratio"][i]) if budgeted else None,
        "overrun": float(metrics["overrun"][i]),
        "oracle_accuracy": float(metrics["oracle_accuracy"][i]),
        "regret": float(metrics["regret"][i]),
        "c_ref": float(metrics["c_ref"]),
        "cost_unit": metrics["cost_unit"],
    }


def ansi_line(
    answered: int, length: int, spend: float, total: float | None, correct_sum: float, unit: str
) -> str:
    """``render_mode="ansi"``: one line on where an episode stands (``total`` None: no budget)."""
    head = f"query {min(answered + 1, length)}/{length}"
    if total is not None:
        head += f", spent {spend:.4g} of {total:.4g} {unit}"
    return f"{head}, correct so far {correct_sum:g}"


def frame_state(
    model_names: Sequence[str],
    estimates: np.ndarray,
    mask: np.ndarray,
    cost_observed: bool,
    cost_unit: str,
    answered: int,
    length: int,
    correct_sum: float,
    spend: float,
    total: float | None,
    last_call: tuple[int, float, float, int] | None,
    ended: bool,
) -> FrameState:
    """What one ``render_mode="rgb_array"`` frame shows (:class:`~mmr_gym.render.FrameState`).

    ``last_call`` is ``(model called, correct, cost, model asked for)`` of the last step, None at
    the start of an episode.
    """
    last = replaced = None
    if last_call is not None:
        model, correct, cost, asked = last_call
        last = (model_names[model], float(correct), float(cost))
        replaced = None if asked == model else model_names[asked]
    return FrameState(
        model_names=model_names,
        estimates=estimates,
        mask=mask,
        cost_label=cost_label(cost_observed),
        cost_unit=cost_unit,
        answered=answered,
        length=length,
        correct_sum=correct_sum,
        spend=spend,
        total=total,
        remaining=None if total is None else max(total - spend, 0.0),
        last_call=last,
        ended=ended,
        replaced=replaced,
    )
