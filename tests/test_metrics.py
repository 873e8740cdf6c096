import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmr_gym.metrics import (
    best_single,
    cost_thresholds,
    curve_summary,
    normalized_auc,
    pareto_frontier,
    peak_score,
    quality_neutral_cost,
    reaches_accuracy,
    single_model_points,
    threshold_curve,
)
from mmr_gym.oracle import per_query_oracle_accuracy, per_query_oracle_curve

# Coordinates on a grid of 1/8 so that sums and comparisons are exact in float64.
grid = st.integers(0, 16).map(lambda v: v / 8)
curves = arrays(np.float64, st.tuples(st.integers(1, 12), st.just(2)), elements=grid)


@st.composite
def outcome_tables(draw, max_n=8, max_k=4):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    correct = draw(arrays(np.float64, (n, k), elements=st.sampled_from([0.0, 1.0])))
    cost = draw(arrays(np.float64, (n, k), elements=grid))
    return correct, cost


# A small curve: the frontier is (1, .5), (2, .75), (4, 1); (2, .5) loses to the dearer-equal
# (2, .75), (3, .625) and (5, 1) are dominated, and (1, .5) appears twice.
HAND_POINTS = [(3, 0.625), (2, 0.5), (1, 0.5), (4, 1.0), (2, 0.75), (5, 1.0), (1, 0.5)]
HAND_FRONTIER = [(1, 0.5), (2, 0.75), (4, 1.0)]


def test_pareto_frontier_hand_example():
    np.testing.assert_array_equal(pareto_frontier(HAND_POINTS), HAND_FRONTIER)


def test_pareto_frontier_rejects_nan_and_bad_shape():
    with pytest.raises(ValueError, match="NaN"):
        pareto_frontier([(1.0, 0.5), (np.nan, 0.7)])
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        pareto_frontier([1.0, 2.0, 3.0])


def test_pareto_frontier_of_nothing_is_empty():
    assert pareto_frontier(np.empty((0, 2))).shape == (0, 2)


def test_normalized_auc_hand_example():
    # Trapezoids: (2-1)*(.5+.75)/2 = .625 and (4-2)*(.75+1)/2 = 1.75; area 2.375 over range 3.
    assert normalized_auc(HAND_FRONTIER) == pytest.approx(2.375 / 3)


def test_normalized_auc_is_nan_for_a_single_point_or_zero_range():
    assert math.isnan(normalized_auc([(1.0, 0.8)]))
    assert math.isnan(normalized_auc([(1.0, 0.5), (1.0, 0.8)]))
    assert math.isnan(normalized_auc(np.empty((0, 2))))


def test_peak_score_hand_example():
    assert peak_score(HAND_FRONTIER) == 1.0
    assert math.isnan(peak_score(np.empty((0, 2))))


def test_quality_neutral_cost_hand_example():
    # Best single: accuracy .75 at mean cost 4. First frontier point with accuracy >= .75 costs 2.
    assert quality_neutral_cost(HAND_FRONTIER, 0.75, 4.0) == 0.5
    # Matching exactly counts (>=): accuracy .5 is reached at cost 1.
    assert quality_neutral_cost(HAND_FRONTIER, 0.5, 4.0) == 0.25
    assert quality_neutral_cost(HAND_FRONTIER, 1.01, 4.0) == math.inf
    assert quality_neutral_cost(HAND_FRONTIER, 0.75, 0.0) == math.inf


def test_curve_summary_hand_example():
    points = np.asarray(HAND_POINTS)
    summary = curve_summary(points[:, 0], points[:, 1], 0.75, 4.0)
    assert summary == {"nAUC": pytest.approx(2.375 / 3), "Ps": 1.0, "QNC": 0.5}
    assert all(type(v) is float for v in summary.values())


@given(curves)
def test_frontier_is_strictly_increasing_in_cost_and_accuracy(points):
    frontier = pareto_frontier(points)
    assert frontier.shape[0] >= 1
    assert (np.diff(frontier[:, 0]) > 0).all()
    assert (np.diff(frontier[:, 1]) > 0).all()


@given(curves)
def test_every_point_is_dominated_or_equalled_by_a_frontier_point(points):
    frontier = pareto_frontier(points)
    for cost, acc in points:
        assert ((frontier[:, 0] <= cost) & (frontier[:, 1] >= acc)).any()


@given(curves)
def test_nauc_lies_between_the_frontier_accuracies(points):
    frontier = pareto_frontier(points)
    nauc = normalized_auc(frontier)
    if frontier.shape[0] < 2:
        assert math.isnan(nauc)
    else:
        assert frontier[0, 1] - 1e-12 <= nauc <= frontier[-1, 1] + 1e-12


@given(curves)
def test_peak_score_is_the_best_accuracy_of_all_points(points):
    assert peak_score(pareto_frontier(points)) == points[:, 1].max()


@given(curves, st.data())
def test_qnc_at_most_one_when_a_point_dominates_the_best_single(points, data):
    cost, acc = points[data.draw(st.integers(0, len(points) - 1))]
    best_cost = cost + data.draw(grid)
    best_acc = acc - data.draw(grid) / 4
    qnc = quality_neutral_cost(pareto_frontier(points), best_acc, best_cost)
    if best_cost > 0:
        assert qnc <= 1.0
    else:
        assert qnc == math.inf


@given(curves)
def test_qnc_is_infinite_when_no_point_reaches_the_best_accuracy(points):
    assert quality_neutral_cost(pareto_frontier(points), points[:, 1].max() + 0.01, 1.0) == math.inf


def test_single_model_points_and_best_single():
    correct = [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    cost = [[4, 1, 2], [2, 1, 2], [3, 1, 2]]
    # Accuracies 2/3, 2/3, 2/3; mean costs 3, 1, 2: the tie goes to the cheapest, model 1.
    np.testing.assert_allclose(single_model_points(correct, cost), [[3, 2 / 3], [1, 2 / 3], [2, 2 / 3]])
    assert best_single(correct, cost) == (1, pytest.approx(2 / 3), 1.0)
    assert best_single([[0, 1], [1, 1]], [[1, 9], [1, 9]]) == (1, 1.0, 9.0)


def test_outcome_validation():
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        single_model_points([[1.5]], [[1.0]])
    with pytest.raises(ValueError, match=">= 0"):
        single_model_points([[1.0]], [[-1.0]])
    with pytest.raises(ValueError, match="shape"):
        single_model_points([[1.0, 0.0]], [[1.0]])


# Two queries, three models. Predicted costs per query: q0 (3, 1, 2), q1 (2, 4, 1).
PRED_PERF = [[0.9, 0.5, 0.2], [0.3, 0.8, 0.6]]
PRED_COST = [[3.0, 1.0, 2.0], [2.0, 4.0, 1.0]]
CORRECT = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
COST = [[5.0, 1.0, 2.0], [2.0, 6.0, 1.0]]


def test_threshold_curve_hand_example():
    # Caps 1, 2, 3, 4 (the unique predicted costs). Choices (q0, q1) and true (cost, correct):
    #   C=1: m1 (1, 0), m2 (1, 0) -> (1.0, 0.0)     C=2: m1 beats m2 on q0, m2 beats m0 on q1 -> (1.0, 0.0)
    #   C=3: m0 (5, 1), m2 (1, 0) -> (3.0, 0.5)     C=4: m0 (5, 1), m1 (6, 1) -> (5.5, 1.0)
    points = threshold_curve(PRED_PERF, PRED_COST, CORRECT, COST)
    np.testing.assert_array_equal(points, [[1.0, 0.0], [1.0, 0.0], [3.0, 0.5], [5.5, 1.0]])
    np.testing.assert_array_equal(
        threshold_curve(PRED_PERF, PRED_COST, CORRECT, COST, max_thresholds=2), [[1.0, 0.0], [5.5, 1.0]]
    )


def test_threshold_curve_falls_back_to_the_cheapest_predicted_model():
    # Under cap 0.5 no prediction fits: q0 -> m1, q1 -> m2 (their cheapest predictions), i.e.
    # (1.0, 0.0); the reference's argmax over all -inf would call m0 for both: (3.5, 0.5).
    np.testing.assert_array_equal(
        threshold_curve(PRED_PERF, PRED_COST, CORRECT, COST, thresholds=[0.5]), [[1.0, 0.0]]
    )


def test_cost_thresholds_subsample_keeps_the_ends():
    values = np.arange(1000, dtype=np.float64)[::-1] / 7
    caps = cost_thresholds(values, max_thresholds=10)
    assert caps.size == 10
    assert caps[0] == 0.0
    assert caps[-1] == 999 / 7
    assert (np.diff(caps) > 0).all()
    np.testing.assert_array_equal(cost_thresholds([3.0, 1.0, 3.0, 2.0]), [1.0, 2.0, 3.0])


@settings(max_examples=60)
@given(outcome_tables())
def test_perfect_predictions_reach_the_per_query_oracle(table):
    correct, cost = table
    points = threshold_curve(correct, cost, correct, cost)
    oracle = per_query_oracle_curve(correct, cost)
    # Same caps (the unique true costs), same candidate sets, same best correctness per query:
    # identical accuracies; the oracle's cheapest-among-best tie-break never costs more.
    np.testing.assert_array_equal(points[:, 1], oracle[:, 1])
    assert (oracle[:, 0] <= points[:, 0] + 1e-12).all()
    # The last cap is the largest cost, so every model is a candidate there.
    assert points[-1, 1] == per_query_oracle_accuracy(correct)


def test_qnc_reaches_the_best_single_model_up_to_float_rounding():
    """Issue 18: BestSingle's own curve scored QNC inf because its accuracy, averaged in another
    order, came out one rounding step below the best single model's (0.9523809523809522 vs 20/21)."""
    best_acc, best_cost = 20 / 21, 2.0
    assert best_acc == 0.9523809523809523
    own_curve = [[0.5, 0.6], [2.0, 0.9523809523809522]]
    assert quality_neutral_cost(pareto_frontier(own_curve), best_acc, best_cost) == 1.0
    assert curve_summary([0.5, 2.0], [0.6, 0.9523809523809522], best_acc, best_cost)["QNC"] == 1.0
    # A real shortfall (one query of 21 fewer, or even one of a billion) is still a miss.
    assert quality_neutral_cost([[2.0, 19 / 21]], best_acc, best_cost) == math.inf
    assert quality_neutral_cost([[2.0, best_acc - 1e-8]], best_acc, best_cost) == math.inf
    assert reaches_accuracy(0.9523809523809522, best_acc) is True
    assert reaches_accuracy([0.95, 0.9523809523809522, 1.0], best_acc).tolist() == [False, True, True]
