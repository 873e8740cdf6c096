"""The MMR-Bench cost-accuracy metrics: Pareto frontier, nAUC, Ps and QNC.

Definitions follow the reference implementation (``Hunter-Wrynn/MMR-Bench``,
``src/mmrbench/eval.py``). A curve is a set of points ``(cost, accuracy)``: ``cost`` is a mean
cost per query in the outcome table's cost unit, ``accuracy`` a mean correctness in [0, 1].

Outcome arrays everywhere: ``correct`` float ``[n, K]`` in [0, 1] (query x model) and ``cost``
float ``[n, K]`` >= 0 in one consistent unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

#: Accuracies closer than this count as equal when a curve is checked against the best single
#: model's accuracy (QNC, "reaches the best single model"). The same 0/1 outcomes averaged in
#: another order (per episode, per seed, over streams) differ by float rounding, e.g. 20/21 as
#: 0.9523809523809523 or 0.9523809523809522; a real difference on n queries is at least 1/n,
#: far above this for any table that fits in memory.
ACCURACY_TOLERANCE = 1e-9


def reaches_accuracy(accuracy: ArrayLike, target: float) -> np.ndarray | bool:
    """Whether ``accuracy`` (a value or an array) is at least ``target`` up to float rounding
    (:data:`ACCURACY_TOLERANCE`). Returns a bool for a scalar, a bool array otherwise."""
    result = np.asarray(accuracy, dtype=np.float64) >= float(target) - ACCURACY_TOLERANCE
    return bool(result) if result.ndim == 0 else result


def check_outcomes(correct: ArrayLike, cost: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate an outcome table and return it as float64 arrays.

    Args:
        correct: ``[n, K]`` correctness in [0, 1] (n >= 1 queries, K >= 1 models).
        cost: ``[n, K]`` cost per call, >= 0, in one consistent unit.

    Returns:
        ``(correct, cost)`` as float64 ``[n, K]`` arrays.

    Raises:
        ValueError: wrong shapes, non-finite values, correctness outside [0, 1] or negative cost.
    """
    correct = np.asarray(correct, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if correct.ndim != 2 or correct.shape[0] == 0 or correct.shape[1] == 0:
        raise ValueError(f"correct must be a non-empty [queries, models] array, got shape {correct.shape}")
    if cost.shape != correct.shape:
        raise ValueError(f"cost must have the shape of correct {correct.shape}, got {cost.shape}")
    if not np.isfinite(correct).all() or ((correct < 0) | (correct > 1)).any():
        raise ValueError("correct must be finite and within [0, 1]")
    if not np.isfinite(cost).all() or (cost < 0).any():
        raise ValueError("cost must be finite and >= 0")
    return correct, cost


def cost_thresholds(values: ArrayLike, max_thresholds: int = 200) -> np.ndarray:
    """The default cost caps of a threshold sweep: the sorted unique ``values``.

    When there are more than ``max_thresholds`` unique values, they are subsampled at evenly spaced
    quantile ranks; the minimum and the maximum are always kept.

    Args:
        values: costs (any shape, in the table's cost unit), finite.
        max_thresholds: the largest number of caps returned, >= 2.

    Returns:
        float64 ``[t]``, strictly increasing, ``t <= max_thresholds``.
    """
    if max_thresholds < 2:
        raise ValueError(f"max_thresholds must be >= 2, got {max_thresholds}")
    unique = np.unique(np.asarray(values, dtype=np.float64))
    if not np.isfinite(unique).all():
        raise ValueError("cost values for thresholds must be finite")
    if unique.size <= max_thresholds:
        return unique
    ranks = np.round(np.linspace(0, unique.size - 1, max_thresholds)).astype(np.int64)
    return unique[np.unique(ranks)]


def sweep_thresholds(
    thresholds: ArrayLike | None, default_from: np.ndarray, max_thresholds: int
) -> np.ndarray:
    """The caps of a sweep: ``thresholds`` as given (1-D, finite), or :func:`cost_thresholds` of ``default_from``."""
    if thresholds is None:
        return cost_thresholds(default_from, max_thresholds)
    caps = np.asarray(thresholds, dtype=np.float64)
    if caps.ndim != 1 or caps.size == 0 or not np.isfinite(caps).all():
        raise ValueError("thresholds must be a non-empty 1-D array of finite costs")
    return caps


def pareto_frontier(points: ArrayLike) -> np.ndarray:
    """The Pareto frontier of a cost-accuracy curve, as MMR-Bench keeps it.

    Points are sorted by (cost ascending, accuracy descending); a point is kept only if its accuracy
    is strictly greater than that of every kept cheaper point. Along the result both cost and
    accuracy are strictly increasing.

    Args:
        points: ``[n, 2]`` rows ``(mean cost per query, accuracy)``; ``n`` may be 0.

    Returns:
        float64 ``[m, 2]`` sorted by cost, ``m <= n``.

    Raises:
        ValueError: wrong shape or a non-finite (NaN or infinite) coordinate.
    """
    pts = _as_points(points, "points")
    order = np.lexsort((-pts[:, 1], pts[:, 0]))
    pts = pts[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(pts[:, 1])[:-1]))
    return pts[pts[:, 1] > best_before]


def normalized_auc(frontier: ArrayLike) -> float:
    """nAUC: trapezoid area under the frontier divided by its cost range (an accuracy in [0, 1]).

    Args:
        frontier: ``[m, 2]`` rows ``(mean cost per query, accuracy)``, e.g. from :func:`pareto_frontier`.

    Returns:
        The area (x = cost, y = accuracy) over ``max cost - min cost``. NaN when the frontier has
        fewer than 2 points or a zero cost range, as in the reference code. (The paper's Table 2
        lists 1.0 for the best single model, a convention the reference code does not implement.)
    """
    pts = _as_points(frontier, "frontier")
    if pts.shape[0] < 2:
        return math.nan
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    span = pts[-1, 0] - pts[0, 0]
    if span <= 0:
        return math.nan
    return float(np.trapezoid(pts[:, 1], pts[:, 0]) / span)


def peak_score(frontier: ArrayLike) -> float:
    """Ps: the highest accuracy on the frontier (in [0, 1]); NaN for an empty frontier."""
    pts = _as_points(frontier, "frontier")
    return float(pts[:, 1].max()) if pts.shape[0] else math.nan


def quality_neutral_cost(frontier: ArrayLike, best_single_accuracy: float, best_single_cost: float) -> float:
    """QNC: the cost at which the frontier first matches the best single model, relative to its cost.

    Args:
        frontier: ``[m, 2]`` rows ``(mean cost per query, accuracy)``.
        best_single_accuracy: the best single model's accuracy in [0, 1].
        best_single_cost: the best single model's mean cost per query (same unit), >= 0.

    Returns:
        The cost of the cheapest frontier point with accuracy >= ``best_single_accuracy`` (up to
        float rounding, :func:`reaches_accuracy`), divided by ``best_single_cost`` (a ratio; < 1
        means the best model's accuracy for less money). ``inf`` when no point reaches that accuracy
        or when ``best_single_cost`` is 0.
    """
    pts = _as_points(frontier, "frontier")
    if not math.isfinite(best_single_accuracy):
        raise ValueError(f"best_single_accuracy must be finite, got {best_single_accuracy}")
    if not (math.isfinite(best_single_cost) and best_single_cost >= 0):
        raise ValueError(f"best_single_cost must be finite and >= 0, got {best_single_cost}")
    reached = pts[reaches_accuracy(pts[:, 1], best_single_accuracy)]
    if reached.shape[0] == 0 or best_single_cost == 0:
        return math.inf
    return float(reached[:, 0].min() / best_single_cost)


def curve_summary(
    costs: ArrayLike, accuracies: ArrayLike, best_single_accuracy: float, best_single_cost: float
) -> dict[str, float]:
    """nAUC, Ps and QNC of a curve, computed on its Pareto frontier.

    Args:
        costs: ``[n]`` mean cost per query of each curve point (the table's cost unit).
        accuracies: ``[n]`` accuracy of each curve point, in [0, 1].
        best_single_accuracy: the best single model's accuracy (see :func:`best_single`).
        best_single_cost: the best single model's mean cost per query, same unit as ``costs``.

    Returns:
        ``{"nAUC": float, "Ps": float, "QNC": float}`` (plain Python floats; see each metric for
        when it is NaN or infinite).
    """
    costs = np.asarray(costs, dtype=np.float64)
    accuracies = np.asarray(accuracies, dtype=np.float64)
    if costs.ndim != 1 or costs.shape != accuracies.shape:
        raise ValueError(
            f"costs and accuracies must be 1-D of one length, got {costs.shape} and {accuracies.shape}"
        )
    frontier = pareto_frontier(np.column_stack((costs, accuracies)))
    return {
        "nAUC": normalized_auc(frontier),
        "Ps": peak_score(frontier),
        "QNC": quality_neutral_cost(frontier, best_single_accuracy, best_single_cost),
    }


def threshold_curve(
    pred_perf: ArrayLike,
    pred_cost: ArrayLike,
    correct: ArrayLike,
    cost: ArrayLike,
    thresholds: ArrayLike | None = None,
    max_thresholds: int = 200,
) -> np.ndarray:
    """The paper's per-query threshold protocol for a router that predicts performance and cost.

    For each cap C every query goes to the model with the highest predicted performance among the
    models whose predicted cost is <= C (ties: the lowest model index, as the reference's argmax).
    When no model's predicted cost is <= C, the query goes to the model with the lowest predicted
    cost (ties: highest predicted performance, then lowest index). The reference code instead takes
    an argmax over all ``-inf`` and so calls model 0; we treat that as a bug.

    Args:
        pred_perf: ``[n, K]`` predicted performance (any finite scale; only its order per query matters).
        pred_cost: ``[n, K]`` predicted cost, finite, in the table's cost unit.
        correct: ``[n, K]`` true correctness in [0, 1].
        cost: ``[n, K]`` true cost, >= 0.
        thresholds: the caps C (1-D, in the cost unit), used in the given order; by default the
            sorted unique predicted costs, subsampled by :func:`cost_thresholds`.
        max_thresholds: the largest number of default caps.

    Returns:
        float64 ``[t, 2]``: per cap, ``(mean true cost per query, mean true correctness)``.
    """
    correct, cost = check_outcomes(correct, cost)
    pred_perf = np.asarray(pred_perf, dtype=np.float64)
    pred_cost = np.asarray(pred_cost, dtype=np.float64)
    for name, pred in (("pred_perf", pred_perf), ("pred_cost", pred_cost)):
        if pred.shape != correct.shape:
            raise ValueError(f"{name} must have the shape of correct {correct.shape}, got {pred.shape}")
        if not np.isfinite(pred).all():
            raise ValueError(f"{name} must be finite")
    caps = sweep_thresholds(thresholds, pred_cost, max_thresholds)

    rows = np.arange(correct.shape[0])
    # Raising each query's cap to its cheapest prediction makes the fallback the same argmax.
    cheapest = pred_cost.min(axis=1, keepdims=True)
    points = np.empty((caps.size, 2))
    for i, cap in enumerate(caps):
        allowed = pred_cost <= np.maximum(cap, cheapest)
        choice = np.where(allowed, pred_perf, -np.inf).argmax(axis=1)
        points[i] = cost[rows, choice].mean(), correct[rows, choice].mean()
    return points


def single_model_points(correct: ArrayLike, cost: ArrayLike) -> np.ndarray:
    """Each model's point when it answers every query.

    Returns:
        float64 ``[K, 2]``: per model, ``(mean cost per query, accuracy)``.
    """
    correct, cost = check_outcomes(correct, cost)
    return np.column_stack((cost.mean(axis=0), correct.mean(axis=0)))


def best_single(correct: ArrayLike, cost: ArrayLike) -> tuple[int, float, float]:
    """The best single model: the most accurate, ties broken by lower mean cost, then lower index.

    Returns:
        ``(model index, accuracy in [0, 1], mean cost per query in the table's cost unit)``.
    """
    points = single_model_points(correct, cost)
    index = int(np.lexsort((points[:, 0], -points[:, 1]))[0])
    return index, float(points[index, 1]), float(points[index, 0])


def _as_points(points: ArrayLike, name: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        return pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must be an [n, 2] array of (cost, accuracy), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"{name} must not contain NaN or infinite values")
    return pts


def spend_shares(model_names: Sequence[str], spend: ArrayLike) -> dict[str, float]:
    """Each model's share of the total spend: ``{model: spend_m / sum(spend)}`` (empty if nothing was spent).

    Args:
        model_names: the ``K`` model names, in the order of ``spend``.
        spend: ``[K]`` total spend per model (any cost unit; >= 0), e.g. summed over every call of
            a budget point's streams and seeds.
    """
    values = np.asarray(spend, dtype=np.float64)
    if values.shape != (len(model_names),):
        raise ValueError(
            f"spend must have one entry per model ({len(model_names)}), got shape {values.shape}"
        )
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("spend must be finite and >= 0")
    total = float(values.sum())
    if total <= 0:
        return {}
    return {str(m): float(v / total) for m, v in zip(model_names, values, strict=True)}


def pool_spend_shares(shares: Sequence[Mapping[str, float]], spends: Sequence[float]) -> dict[str, float]:
    """The spend shares of several runs pooled into one, each run weighted by its total spend.

    Args:
        shares: per run, ``{model: share}`` as :func:`spend_shares` gives (empty: nothing spent).
        spends: per run, its total spend (or mean spend per query when every run answers the same
            number of queries), in one cost unit.
    """
    if len(shares) != len(spends):
        raise ValueError(f"{len(shares)} share records but {len(spends)} spends")
    pooled: dict[str, float] = {}
    total = 0.0
    for record, spend in zip(shares, spends, strict=True):
        if not record or not spend > 0:
            continue
        total += float(spend)
        for model, share in record.items():
            pooled[model] = pooled.get(model, 0.0) + float(share) * float(spend)
    return {m: v / total for m, v in pooled.items()} if total > 0 else {}
