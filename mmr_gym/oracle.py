"""Oracles that know every model's outcome: the per-query oracle and the budgeted hindsight oracle.

The per-query oracle is MMR-Bench's reference oracle (each query alone under a per-query cost
cap). The budgeted hindsight oracle is the best allocation of one total budget over a stream of
queries, solved exactly; its accuracy is the upper bound that regret is measured against.

The environments use the oracle through :func:`stream_oracle_accuracy` (one stream) and
:func:`greedy_accuracy` (many 0/1 streams at once, the same greedy rule and the same bits), with
each query's price :func:`cheapest_correct_cost` precomputed per table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from mmr_gym.metrics import check_outcomes, sweep_thresholds

SKIP = -1
"""``OracleSolution.choice`` value of a query that is not answered (no model called, scored 0)."""

_HIGHS_FEASIBILITY_TOL = 1e-7
# greedy_accuracy: from this many streams on, column-wise prefix sums are faster than row-wise ones.
_MANY_STREAMS = 256


@dataclass(frozen=True)
class OracleSolution:
    """The hindsight oracle's allocation of one budget over a stream of queries.

    Attributes:
        choice: int64 ``[n]``, the model index called for each query, ``SKIP`` (-1) if unanswered.
        total_correct: sum of the chosen models' correctness (unanswered queries score 0).
        spend: total cost of the chosen calls, in the table's cost unit; <= ``budget``.
        budget: the total budget, in the table's cost unit.
        method: ``"sort"`` (0/1 correctness, greedy by cost) or ``"milp"`` (graded scores, HiGHS).
    """

    choice: np.ndarray
    total_correct: float
    spend: float
    budget: float
    method: str

    @property
    def accuracy(self) -> float:
        """``total_correct / n``: the mean correctness over all ``n`` queries of the stream, in [0, 1]."""
        return self.total_correct / self.choice.size


def per_query_oracle_accuracy(correct: ArrayLike) -> float:
    """The uncapped per-query oracle's accuracy: the mean over queries of the best model's correctness.

    Args:
        correct: ``[n, K]`` correctness in [0, 1].
    """
    correct, _ = check_outcomes(correct, np.zeros(np.shape(correct)))
    return float(correct.max(axis=1).mean())


def cheapest_correct_cost(correct: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """float64 ``[n]``: per query, the cost of its cheapest fully correct model (``inf``: none).

    The price at which the 0/1 hindsight oracle answers the query (:func:`budgeted_oracle`'s
    greedy rule); ``cost`` is cast to float64 as :func:`~mmr_gym.metrics.check_outcomes` does.
    """
    return np.where(correct == 1.0, cost.astype(np.float64), np.inf).min(axis=1)


def greedy_accuracy(prices: np.ndarray, total: np.ndarray, length: int) -> np.ndarray:
    """The 0/1 hindsight oracle's accuracy on many streams at once (row ``i`` of ``prices`` is one).

    :func:`budgeted_oracle`'s greedy rule with skipping: answer the queries whose cheapest correct
    model (``prices``, float64 ``[m, length]``, from :func:`cheapest_correct_cost`) is cheapest
    first while the running sum fits the budget ``total[i]``; the same cumulative sums, so the
    same bits. Returns float64 ``[m]``.
    """
    # The prices are float32 costs (or inf): sorting them as float32 gives the same order, faster.
    ordered = np.sort(prices.astype(np.float32), axis=1)
    if ordered.shape[0] < _MANY_STREAMS:
        spent = ordered.astype(np.float64)
        np.cumsum(spent, axis=1, out=spent)
        return np.count_nonzero(spent <= total[:, None], axis=1) / length
    # numpy's cumsum along rows runs one short inner loop per row; for many streams, add the
    # columns of the transposed prices one by one instead (the same sums in the same order).
    spent = np.array(ordered.T, dtype=np.float64, order="C")
    for j in range(1, spent.shape[0]):
        spent[j] += spent[j - 1]
    # count_nonzero along columns runs one short loop per column; adding the rows as bytes does not.
    return np.add.reduce((spent <= total).view(np.uint8), axis=0, dtype=np.intp) / length


def stream_oracle_accuracy(correct: ArrayLike, cost: ArrayLike, budget: float | None) -> float:
    """The hindsight oracle's accuracy on one stream: the regret's reference in ``episode_metrics``.

    Under a budget: :func:`budgeted_oracle` with skipping (queries may go unanswered); without
    one (``budget`` None or ``inf``): the per-query oracle.
    """
    if budget is None or not math.isfinite(budget):
        return per_query_oracle_accuracy(correct)
    return budgeted_oracle(correct, cost, budget, allow_skip=True).accuracy


def stream_oracle_accuracies(
    ctx: Any,
    streams: list[np.ndarray],
    totals: np.ndarray,
    full_length: int | None = None,
    *,
    world: Any = None,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """The hindsight oracle's accuracy on each stream (slots of ``ctx``'s split) under its budget ``totals``.

    ``ctx`` is a :class:`~mmr_gym.context.RoutingContext` (its per-split lookups hold each query's
    price, best correctness and whether its scores are 0/1). Under a scenario's ``world`` the
    oracle faces the world as it is at each query (stream ``j`` starts at time ``starts[j]``):
    :meth:`~mmr_gym.scenarios.World.effective_outcomes`, stream by stream.

    Streams of ``full_length`` queries with 0/1 correctness are solved together by the oracle's
    greedy rule (:func:`mmr_gym.oracle.greedy_accuracy`: the same float64 operations as
    :func:`mmr_gym.oracle.budgeted_oracle`, so the same bits); unbudgeted ones are the per-query
    oracle; the rest (graded scores, other lengths) call :func:`mmr_gym.oracle.stream_oracle_accuracy`
    one by one.
    """
    lookups = ctx.lookups
    oracle = np.full(len(streams), np.nan)
    todo = np.ones(len(streams), dtype=bool)
    table = ctx.table
    if world is not None:
        for j, slots in enumerate(streams):
            rows = lookups.table_rows.take(slots)
            times = starts[j] + np.arange(slots.size)
            correct, cost = world.effective_outcomes(table.correct[rows], table.cost[rows], slots, times)
            oracle[j] = stream_oracle_accuracy(correct, cost, float(totals[j]))
        return oracle
    if full_length is not None:
        full = np.array([s.size == full_length for s in streams], dtype=bool)
        if np.count_nonzero(full):
            index = np.flatnonzero(full)
            slots = np.stack([streams[j] for j in index.tolist()])
            budgeted = np.isfinite(totals[index])
            binary = (
                np.ones(index.size, dtype=bool)
                if lookups.all_binary
                else lookups.binary.take(slots).all(axis=1)
            )
            greedy, unbudgeted = binary & budgeted, ~budgeted
            if np.count_nonzero(greedy):
                prices = lookups.cheapest_correct_cost.take(slots[greedy])
                oracle[index[greedy]] = greedy_accuracy(prices, totals[index[greedy]], full_length)
            if np.count_nonzero(unbudgeted):
                oracle[index[unbudgeted]] = lookups.best_correct.take(slots[unbudgeted]).mean(axis=1)
            todo[index[greedy | unbudgeted]] = False
    for j in np.flatnonzero(todo).tolist():
        rows = lookups.table_rows.take(streams[j])
        total = float(totals[j])
        oracle[j] = stream_oracle_accuracy(table.correct[rows], table.cost[rows], total)
    return oracle


def per_query_oracle_curve(
    correct: ArrayLike,
    cost: ArrayLike,
    thresholds: ArrayLike | None = None,
    max_thresholds: int = 200,
) -> np.ndarray:
    """The MMR-Bench reference oracle's cost-accuracy curve, made cost-aware.

    For each cap C every query takes, among the models whose true cost is <= C, the cheapest of
    those with the highest correctness (for 0/1: the cheapest correct model under the cap if any,
    else the cheapest model under the cap). If no model is under the cap, the query takes its
    cheapest model (ties: highest correctness). Remaining ties go to the lowest model index. The
    reference code breaks every tie by model index, so it may pay for a dearer correct model.

    Args:
        correct: ``[n, K]`` correctness in [0, 1].
        cost: ``[n, K]`` cost per call, >= 0, in the table's cost unit.
        thresholds: the caps C (1-D, in the cost unit), used in the given order; by default the
            sorted unique true costs, subsampled by :func:`mmr_gym.metrics.cost_thresholds`.
        max_thresholds: the largest number of default caps.

    Returns:
        float64 ``[t, 2]``: per cap, ``(mean cost per query, mean correctness)``.
    """
    correct, cost = check_outcomes(correct, cost)
    caps = sweep_thresholds(thresholds, cost, max_thresholds)

    rows = np.arange(correct.shape[0])
    cheapest = cost.min(axis=1, keepdims=True)
    points = np.empty((caps.size, 2))
    for i, cap in enumerate(caps):
        allowed = cost <= np.maximum(cap, cheapest)
        score = np.where(allowed, correct, -np.inf)
        best = allowed & (score == score.max(axis=1, keepdims=True))
        choice = np.where(best, cost, np.inf).argmin(axis=1)
        points[i] = cost[rows, choice].mean(), correct[rows, choice].mean()
    return points


def budgeted_oracle(
    correct: ArrayLike,
    cost: ArrayLike,
    budget: float,
    *,
    allow_skip: bool = True,
    time_limit: float = 60.0,
) -> OracleSolution:
    """The best hindsight allocation of one total budget over a stream of queries (exact).

    Maximises the sum of correctness of the chosen calls subject to total cost <= ``budget``.

    Rules:
        - ``allow_skip=True`` (the upper bound used for regret): any query may be left unanswered
          at cost 0 and score 0.
        - ``allow_skip=False`` (the environment's rule): a model is called for every query.
          If the cheapest model of every query does not fit in the budget together, there is no
          feasible allocation and a ValueError is raised.

    For 0/1 correctness the greedy solution by cost is optimal (``method="sort"``; an answered
    query gets its cheapest correct model). Graded scores make it a multiple-choice knapsack, solved
    by ``scipy.optimize.milp`` (HiGHS with a zero relative gap, ``method="milp"``); the optimal
    total is unique, the allocation returned among equal optima is not specified.

    Args:
        correct: ``[n, K]`` correctness in [0, 1].
        cost: ``[n, K]`` cost per call, >= 0, in the table's cost unit.
        budget: total budget for the stream, finite and >= 0, same unit.
        allow_skip: whether queries may be left unanswered.
        time_limit: HiGHS time limit in seconds (graded scores only).

    Raises:
        ValueError: invalid inputs, or ``allow_skip=False`` with a budget below the sum of the
            cheapest costs.
        RuntimeError: HiGHS did not prove optimality (e.g. the time limit was hit).
    """
    correct, cost = check_outcomes(correct, cost)
    budget = float(budget)
    if not (math.isfinite(budget) and budget >= 0):
        raise ValueError(f"budget must be finite and >= 0, got {budget}")
    if not allow_skip:
        floor = float(cost.min(axis=1).sum())
        if floor > budget:
            raise ValueError(
                f"budget {budget} cannot cover the cheapest call for every query (needs {floor}); "
                "use allow_skip=True to let the oracle leave queries unanswered"
            )
    if np.isin(correct, (0.0, 1.0)).all():
        choice, spend = _greedy(correct, cost, budget, allow_skip)
        method = "sort"
    else:
        choice, spend = _knapsack(correct, cost, budget, allow_skip, time_limit)
        method = "milp"
    choice.setflags(write=False)
    answered = choice != SKIP
    total = float(correct[answered.nonzero()[0], choice[answered]].sum())
    return OracleSolution(choice=choice, total_correct=total, spend=spend, budget=budget, method=method)


def _cheapest_correct(correct: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the cheapest correct model (ties: lowest index) and its cost (inf if none)."""
    masked = np.where(correct == 1.0, cost, np.inf)
    model = masked.argmin(axis=1)
    return model, masked[np.arange(correct.shape[0]), model]


def _greedy(
    correct: np.ndarray, cost: np.ndarray, budget: float, allow_skip: bool
) -> tuple[np.ndarray, float]:
    # Optimal for 0/1: only correct calls score (1 each), so the best k answered queries cost at
    # least the sum of the k smallest "cheapest correct" prices, which the ascending prefix attains.
    # Without skipping every query pays its cheapest call and the same argument holds for upgrades.
    model, price = _cheapest_correct(correct, cost)
    if allow_skip:
        choice = np.full(correct.shape[0], SKIP, dtype=np.int64)
        base = 0.0
    else:
        choice = cost.argmin(axis=1).astype(np.int64)
        base = float(cost.min(axis=1).sum())
        price = price - cost.min(axis=1)
    order = np.argsort(price, kind="stable")
    spent = base + np.cumsum(price[order])
    taken = order[spent <= budget]
    choice[taken] = model[taken]
    return choice, float(spent[taken.size - 1]) if taken.size else base


def _knapsack(
    correct: np.ndarray, cost: np.ndarray, budget: float, allow_skip: bool, time_limit: float
) -> tuple[np.ndarray, float]:
    n = correct.shape[0]
    # Per query keep only options on its own (cost, score) frontier; skipping is the free option
    # with score 0, so with skipping a call must score above 0 to be worth anything.
    order = np.lexsort((-correct, cost), axis=1)
    score = np.take_along_axis(correct, order, axis=1)
    floor = 0.0 if allow_skip else -np.inf
    best_before = np.concatenate(
        (np.full((n, 1), floor), np.maximum.accumulate(score, axis=1)[:, :-1]), axis=1
    )
    query, slot = np.nonzero(score > best_before)
    model = order[query, slot]

    choice = np.full(n, SKIP, dtype=np.int64)
    if query.size == 0:
        return choice, 0.0
    price = cost[query, model]
    n_vars = query.size
    one_per_query = sparse.csr_array((np.ones(n_vars), (query, np.arange(n_vars))), shape=(n, n_vars))
    per_query = LinearConstraint(one_per_query, 0.0 if allow_skip else 1.0, 1.0)
    # HiGHS accepts the budget row up to its feasibility tolerance (1e-7). Its answer is optimal
    # when it truly fits; if it overshoots, solve once more with the budget lowered by that margin.
    for margin in (0.0, _HIGHS_FEASIBILITY_TOL * max(1.0, budget)):
        result = milp(
            -correct[query, model],
            constraints=[per_query, LinearConstraint(price.reshape(1, -1), -np.inf, budget - margin)],
            integrality=np.ones(n_vars),
            bounds=Bounds(0.0, 1.0),
            options={"time_limit": time_limit, "mip_rel_gap": 0.0},
        )
        if result.status != 0:
            raise RuntimeError(f"HiGHS did not solve the budgeted oracle to optimality: {result.message}")
        picked = result.x > 0.5
        spend = float(price[picked].sum())
        if spend <= budget:
            break
    else:
        raise RuntimeError(f"HiGHS returned an allocation that spends {spend}, over the budget {budget}")
    choice[query[picked]] = model[picked]
    return choice, spend
