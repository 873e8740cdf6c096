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
from typing import Any, NamedTuple

import numpy as np

from mmr_gym.arrays import read_only
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
    "time",  # where the episode started on the timeline (queries since the timeline started)
)
#: The integer and string keys of ``episode_metrics``; the others are floats (``budget`` and
#: ``budget_ratio`` None without a budget).
METRIC_INT_KEYS = ("answered", "unanswered", "length", "time")
METRIC_STR_KEYS = ("cost_unit",)
METRIC_FLOAT_KEYS = tuple(k for k in METRIC_KEYS if k not in METRIC_INT_KEYS + METRIC_STR_KEYS)


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


class StepResult(NamedTuple):
    """What :meth:`EpisodeBatch.step` did, for the infos (arrays over all sub-environments).

    ``stepping`` is None when every sub-environment stepped, else the bool mask of those that did
    (the others were reset instead: their entries hold the fills 0 and ``nothing``).
    """

    slots: np.ndarray  # slots of the queries just answered
    requested: np.ndarray
    chosen: np.ndarray
    replaced: bool  # some action was replaced by the fallback
    correct: np.ndarray
    cost: np.ndarray
    cost_penalty: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    remaining: np.ndarray  # budget left (inf: no budget); the info's budget_remaining
    stepping: np.ndarray | None
    times: np.ndarray | None = None  # under a scenario: the time of each call


def batched_step_info(
    result: StepResult,
    keys: frozenset[str],
    everyone: np.ndarray,
    no_replacement: np.ndarray,
    model_names: np.ndarray,
    ctx: Any,
    feedback: str,
    world: Any = None,
) -> dict[str, Any]:
    """The step info's keys among ``keys`` (:data:`~mmr_gym.records.INFO_KEYS`), batched as
    ``SyncVectorEnv`` batches single environments' infos: episodes that did not step hold the
    fills (0, or None for strings) and False in the ``_key`` masks. ``everyone`` and
    ``no_replacement`` are shared read-only all-True and all-False masks, ``model_names`` the
    models' names then None, ``ctx`` the :class:`~mmr_gym.context.RoutingContext`.
    ``result.remaining`` becomes ``budget_remaining``: do not write to it."""
    lookups = ctx.lookups
    stepping = result.stepping
    done = None if stepping is None else ~stepping
    mask = everyone if stepping is None else read_only(stepping)
    chosen, slots = result.chosen, result.slots
    info: dict[str, Any] = {}
    if "model" in keys:
        names = chosen if done is None else np.where(done, model_names.size - 1, chosen)
        info["model"] = model_names.take(names)
    if "model_index" in keys:
        # chosen may be the caller's own array: never hand it back (np.where made a fresh one)
        info["model_index"] = chosen if result.replaced or done is not None else chosen.copy()
    if "action_replaced" in keys:
        if not result.replaced:
            info["action_replaced"] = no_replacement
        else:
            replaced = chosen != result.requested
            info["action_replaced"] = replaced if done is None else replaced & mask
    if "correct" in keys:
        info["correct"] = result.correct
    if "cost" in keys:
        info["cost"] = result.cost
    if "query_id" in keys or "dataset" in keys:
        info_slots = slots if done is None else np.where(done, lookups.no_query, slots)
        if "query_id" in keys:
            info["query_id"] = lookups.query_ids.take(info_slots)
        if "dataset" in keys:
            info["dataset"] = lookups.datasets.take(info_slots)
    if "rewards" in keys:
        info["rewards"] = {
            "correct": result.correct.copy(),
            "_correct": mask,
            "cost_penalty": result.cost_penalty,
            "_cost_penalty": mask,
        }
    if "budget_remaining" in keys:
        remaining = result.remaining
        info["budget_remaining"] = remaining if done is None else np.where(done, 0.0, remaining)
    if "outcomes" in keys and feedback == "full":
        table, rows = ctx.table, lookups.table_rows.take(slots)
        outcome_correct = table.correct.take(rows, axis=0)
        outcome_cost = table.cost.take(rows, axis=0)
        if world is not None:  # every model's outcome in the world of the call's time
            effective = world.effective_outcomes(outcome_correct, outcome_cost, slots, result.times)
            outcome_correct, outcome_cost = (v.astype(np.float32) for v in effective)
        if done is not None:
            outcome_correct[done] = 0.0
            outcome_cost[done] = 0.0
        info["outcomes"] = {
            "correct": outcome_correct,
            "_correct": mask,
            "cost": outcome_cost,
            "_cost": mask,
        }
    for key in list(info):
        info["_" + key] = mask
    return info


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
    time: np.ndarray,
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
        "time": time,
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
        "time": int(metrics["time"][i]),
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
