"""The budget rule, in one place: how big a budget is, what is affordable, what is charged, what the
agent sees of it, and the invariant every episode keeps.

- An episode's budget is ``ratio * length * c_ref`` (:func:`budget_total`); ``ratio`` is checked by
  :func:`check_budget_ratio` against the smallest ratio at which a stream can start
  (:func:`min_budget_ratio`).
- A model is affordable when its cost *estimate* fits the budget left (:func:`affordable`).
- Spend is charged at the realized cost; a call that overshoots is charged and recorded as the
  overrun (:func:`overran`), and the episode ends.
- The agent sees three budget features (:data:`BUDGET_FEATURE_NAMES`, :func:`budget_features`).
- Every finished episode keeps the invariant ``spend - budget <= overrun`` with the overrun from
  the final call alone (:func:`unrecorded_overspend`), which evaluation checks.

The functions work on scalars and on arrays (the vectorized environment broadcasts them);
:class:`Budget` is the scalar twin the single environment steps with, equal bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmr_gym.checks import check_float

#: The budget features of the observation, in order (see :func:`budget_features`).
BUDGET_FEATURE_NAMES = ("budget_fraction", "steps_fraction", "spend_per_query")
BUDGET_FEATURES = len(BUDGET_FEATURE_NAMES)
#: How a ``(low, high)`` budget ratio range is drawn per episode (see :func:`draw_budget_ratios`).
BUDGET_SAMPLINGS = ("uniform", "log-uniform")
# Per-query affordable spend is shown relative to c_ref and clipped here: beyond ten reference
# calls per query every model is affordable on every MMR-Bench-like table, so larger values add nothing.
SPEND_PER_QUERY_CLIP = 10.0
# Relative slack for float32 costs summed in float64: a model whose estimate equals the remaining
# budget up to rounding is affordable.
_TOLERANCE = 1e-9
_SLACK = 1.0 + _TOLERANCE
#: Relative to the budget: spend is summed in float64 from float32 costs, so an episode exactly at
#: its budget may differ from it by rounding; beyond this it is a broken invariant, not rounding.
BUDGET_CHECK_TOLERANCE = 1e-6


def budget_total(
    ratio: np.ndarray | float | None, length: np.ndarray | int, c_ref: float
) -> np.ndarray | float:
    """An episode's budget in the table's cost unit: ``ratio * length * c_ref``, in this order.

    ``ratio`` None (or NaN in an array) means no budget: ``inf``. Returns a float for scalar
    arguments, else a float64 array.
    """
    if ratio is None:
        return math.inf
    if np.ndim(ratio) == 0 and np.ndim(length) == 0:
        return math.inf if math.isnan(ratio) else float(ratio) * int(length) * c_ref
    ratios = np.asarray(ratio, dtype=np.float64)
    return np.where(np.isnan(ratios), np.inf, ratios * length * c_ref)


def min_budget_ratio(cheapest_estimates: np.ndarray, length: int, c_ref: float) -> float:
    """Smallest budget ratio at which each of these queries has a model that fits a whole budget.

    ``cheapest_estimates``: per query, the lowest cost estimate of any model. Below this ratio one
    of them could face an all-masked first step, which no agent can act on.
    """
    return float(np.max(cheapest_estimates) / (length * c_ref))


def check_budget_ratio(
    ratio: Any, *, minimum: float, length: int, c_ref: float, name: str = "budget_ratio"
) -> float | tuple[float, float] | None:
    """Validate a budget ratio (a real number, a ``(low, high)`` pair, or None); return it normalised.

    Refused: strings and booleans (``"0.5"`` and ``True`` are not ratios: ``TypeError``), non-finite or
    non-positive values, ranges with ``low > high``, ratios below ``minimum`` (some query's
    cheapest model would not fit the whole budget: :func:`min_budget_ratio`) and ratios so large
    that the budget ``ratio * length * c_ref`` overflows (use None for no budget).
    """
    if ratio is None:
        return None
    if isinstance(ratio, (tuple, list)):
        if len(ratio) != 2:
            raise ValueError(f"{name} range must be (low, high), got {ratio!r}")
        low, high = (check_float(name, r) for r in ratio)
        if not (0 < low <= high):
            raise ValueError(f"{name} range must satisfy 0 < low <= high, got {ratio!r}")
        for value in (low, high):
            _check_ratio_bounds(value, minimum, length, c_ref, name)
        return (low, high)
    value = check_float(name, ratio)
    if value <= 0:
        raise ValueError(f"{name} must be > 0 (or None for no budget), got {ratio!r}")
    _check_ratio_bounds(value, minimum, length, c_ref, name)
    return value


def _round_up(value: float, digits: int = 6) -> float:
    """``value`` rounded up to ``digits`` significant digits (a bound that still holds when printed)."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale) / scale


def _check_ratio_bounds(ratio: float, minimum: float, length: int, c_ref: float, name: str) -> None:
    if ratio < minimum:
        # Below this ratio some query's cheapest model would not fit the whole budget, leaving an
        # all-zero action mask at reset, which no agent can act on.
        raise ValueError(
            f"{name} {ratio:g} is too small: the cheapest model of some query would not fit the "
            f"whole budget; use {name} >= {_round_up(minimum):g} for this table and episode length"
        )
    if not math.isfinite(budget_total(ratio, length, c_ref)):
        raise ValueError(
            f"{name} {ratio:g} makes the budget ratio * length * c_ref overflow; use None for no budget"
        )


def draw_budget_ratios(
    rng: np.random.Generator, ratio_range: tuple[float, float], sampling: str, size: int | None = None
) -> float | np.ndarray:
    """Episode budget ratios drawn from ``ratio_range = (low, high)``; ``size=None``: one float.

    ``"uniform"``: uniform on ``[low, high]``. ``"log-uniform"``: uniform in log space, so each
    decade of the range gets the same share of episodes (on 0.02-1.5, 37% of the draws fall below
    0.1 against 5% for uniform draws): budget-conditioned agents then see enough tight budgets,
    where pacing matters most. Both use one ``rng.uniform`` call.
    """
    low, high = ratio_range
    if sampling == "uniform":
        return rng.uniform(low, high, size)
    draws = np.exp(rng.uniform(math.log(low), math.log(high), size))
    return np.clip(draws, low, high)  # exp(log(x)) may round just outside the range


def affordable_limit(remaining: np.ndarray | float) -> np.ndarray:
    """The largest cost estimate that still fits ``remaining >= 0`` (float64, same shape; ``inf``: no budget).

    ``remaining * (1 + tolerance)``: one multiplication, the same bits as :meth:`Budget.affordable`.
    """
    return np.multiply(remaining, _SLACK, dtype=np.float64)


def affordable(estimates: np.ndarray, remaining: np.ndarray | float) -> np.ndarray:
    """Boolean mask of the models whose cost estimate fits the remaining budget (``inf``: no budget)."""
    return estimates <= affordable_limit(remaining)[..., None]


def overrun_slack(total: np.ndarray | float) -> np.ndarray:
    """How far spend may exceed ``total`` by float rounding before it counts as an overrun (``inf``: no budget)."""
    return _TOLERANCE * np.asarray(total, dtype=np.float64)


def overran(spend: np.ndarray | float, total: np.ndarray | float) -> np.ndarray:
    """Where :attr:`Budget.overrun` is positive: spend beyond ``total`` by more than the slack.

    Without a budget (``total = inf``) nothing overran: ``-inf > inf`` is False.
    """
    return np.subtract(spend, total) > overrun_slack(total)


def overrun_floor(total: np.ndarray | float) -> np.ndarray:
    """The lowest balance ``total - spend`` that is not an overrun: ``-overrun_slack(total)``.

    ``balance < overrun_floor(total)`` is exactly :func:`overran` (float subtraction is
    antisymmetric and negation exact), for environments that keep the floor per episode and
    compute the balance anyway. Without a budget the floor is ``-inf``.
    """
    return -overrun_slack(total)


def fraction_denominator(total: np.ndarray | float) -> np.ndarray:
    """``total`` where there is a budget and 1 where there is none (``total = inf``).

    The remaining budget fraction is ``min(remaining / denominator, 1)``: without a budget that is
    ``min(inf / 1, 1) = 1``, with no NaN to guard against.
    """
    total = np.asarray(total, dtype=np.float64)
    return np.where(np.isfinite(total), total, 1.0)


def spend_per_query_denominator(remaining_steps: np.ndarray | int, c_ref: float) -> np.ndarray:
    """``max(remaining_steps, 1) * c_ref``: what the remaining budget is divided by for the third feature."""
    return np.maximum(remaining_steps, 1) * c_ref


def fill_budget_features(
    out: np.ndarray,
    remaining: np.ndarray,
    fraction_denominator: np.ndarray,
    steps_fraction: np.ndarray | None,
    per_query_denominator: np.ndarray,
    all_budgeted: bool = False,
) -> np.ndarray:
    """Write :func:`budget_features` into ``out`` (float32 ``(..., 3)``, may be a view into a larger array).

    The inputs are the pieces an environment can keep between steps: ``fraction_denominator``
    (:func:`fraction_denominator`, once per episode), ``steps_fraction`` (``remaining_steps /
    length`` in float64, or already rounded to float32; None: the caller wrote it into
    ``out[..., 1]``) and ``per_query_denominator`` (:func:`spend_per_query_denominator`), both
    from tables indexed by the remaining steps. Each value is computed in float64 and rounded to
    float32 once, as :meth:`Budget.features` does. ``all_budgeted``: every entry has a finite
    budget, so ``remaining <= total`` and the fraction needs no cap at 1 (the same bits, one
    operation fewer). Returns ``out``.
    """
    # One float64 scratch, then one casting assignment per column. Column by column on purpose:
    # numpy runs [n, 2]-shaped broadcasts with an inner loop of 2, several times slower.
    scratch = np.divide(remaining, fraction_denominator, out=np.empty(out.shape[:-1]))
    if not all_budgeted:  # without a budget: inf / 1, capped to 1
        np.minimum(scratch, 1.0, out=scratch)
    out[..., 0] = scratch
    if steps_fraction is not None:
        out[..., 1] = steps_fraction
    np.divide(remaining, per_query_denominator, out=scratch)
    np.minimum(scratch, SPEND_PER_QUERY_CLIP, out=scratch)  # remaining >= 0: clipping is a minimum
    out[..., 2] = scratch
    return out


def budget_features(
    spend: np.ndarray | float,
    total: np.ndarray | float,
    remaining_steps: np.ndarray | int,
    length: np.ndarray | int,
    c_ref: float,
) -> np.ndarray:
    """``[remaining budget fraction, remaining steps fraction, spend per remaining query / c_ref]``.

    ``total = inf`` means no budget: the features are then ``[1, steps fraction, clip]``.
    Returns float32 of shape ``(..., 3)``.
    """
    total = np.asarray(total, dtype=np.float64)
    remaining = np.maximum(total - spend, 0.0)  # >= 0, inf without a budget
    shape = np.broadcast(remaining, np.asarray(remaining_steps), np.asarray(length)).shape
    return fill_budget_features(
        np.empty((*shape, BUDGET_FEATURES), dtype=np.float32),
        remaining,
        fraction_denominator(total),
        np.true_divide(remaining_steps, length),
        spend_per_query_denominator(remaining_steps, c_ref),
    )


class Budget:
    """One episode's budget: ``ratio * length * c_ref`` in the table's cost unit, or none.

    Spend is charged at the realized cost. An API call cannot be undone, so a call whose
    realized cost exceeds what was left is still charged and the excess recorded as ``overrun``.
    """

    def __init__(self, ratio: float | None, length: int, c_ref: float) -> None:
        self.ratio = ratio
        self.length = length
        self.c_ref = c_ref
        self.total: float | None = None if ratio is None else budget_total(ratio, length, c_ref)
        self.spend = 0.0

    @staticmethod
    def feature_high() -> np.ndarray:
        return np.array([1.0, 1.0, SPEND_PER_QUERY_CLIP], dtype=np.float32)

    @property
    def remaining(self) -> float:
        """Budget left (``inf`` without a budget); never negative."""
        return np.inf if self.total is None else max(self.total - self.spend, 0.0)

    @property
    def overrun(self) -> float:
        """Spend beyond the budget (0 unless the last call overshot)."""
        if self.total is None:
            return 0.0
        excess = self.spend - self.total
        return excess if excess > _TOLERANCE * self.total else 0.0

    def affordable(self, estimates: np.ndarray) -> np.ndarray:
        # The scalar form of affordable(): a Python float threshold costs no extra numpy call.
        return np.less_equal(estimates, self.remaining * _SLACK)

    def charge(self, cost: float) -> None:
        self.spend += cost

    def features(self, remaining_steps: int) -> np.ndarray:
        """The scalar form of :func:`budget_features` (Python floats are float64: the same bits)."""
        if self.total is None:
            fraction, per_query = 1.0, SPEND_PER_QUERY_CLIP
        else:
            remaining = max(self.total - self.spend, 0.0)
            fraction = min(remaining / self.total, 1.0)
            per_query = min(remaining / (max(remaining_steps, 1) * self.c_ref), SPEND_PER_QUERY_CLIP)
        return np.array((fraction, remaining_steps / self.length, per_query), dtype=np.float32)


def unrecorded_overspend(metrics: Mapping[str, Any]) -> float:
    """Spend beyond what the budget and the recorded final-call overrun allow, as a fraction of the budget.

    The environment's invariant: ``spend - budget <= overrun``, and, when the dict has
    ``final_call_cost`` (the realized cost of the call that ended the episode, as the evaluator
    records it), the spend before the final call was within the budget, so the overrun came from
    that call alone. Returns the larger of the two excesses divided by the budget, 0 when both
    hold; 0 without a budget (nothing to exceed).

    Args:
        metrics: an episode's ``episode_metrics`` (``spend``, ``budget``, ``overrun``, in the
            table's cost unit), optionally with ``final_call_cost``.
    """
    budget = metrics["budget"]
    if budget is None or not math.isfinite(budget):
        return 0.0
    spend = float(metrics["spend"])
    excess = spend - budget - float(metrics["overrun"])
    final_call_cost = metrics.get("final_call_cost")
    if final_call_cost is not None:
        excess = max(excess, spend - float(final_call_cost) - budget)
    if excess <= 0.0:
        return 0.0
    return excess / budget if budget > 0 else math.inf


def violates_budget(metrics: Mapping[str, Any], tolerance: float = BUDGET_CHECK_TOLERANCE) -> bool:
    """Whether an episode broke the budget invariant (:func:`unrecorded_overspend` above ``tolerance``)."""
    return unrecorded_overspend(metrics) > tolerance


def overrun_fraction(metrics: Mapping[str, Any]) -> float:
    """An episode's recorded overrun as a fraction of its budget (0 without a budget)."""
    budget = metrics["budget"]
    if budget is None or not math.isfinite(budget) or budget <= 0:
        return 0.0
    return float(metrics["overrun"]) / budget
