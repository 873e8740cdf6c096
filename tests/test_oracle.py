import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import OptimizeResult
from scipy.optimize import milp as highs_milp

import mmr_gym.oracle as oracle_module
from mmr_gym.oracle import (
    SKIP,
    budgeted_oracle,
    per_query_oracle_accuracy,
    per_query_oracle_curve,
)

# Costs, scores and budgets on grids of 1/4 so that every sum is exact in float64.
costs = st.integers(0, 12).map(lambda v: v / 4)
binary = st.sampled_from([0.0, 1.0])
graded = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])


@st.composite
def instances(draw, scores, allow_skip):
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, 3))
    correct = draw(arrays(np.float64, (n, k), elements=scores))
    cost = draw(arrays(np.float64, (n, k), elements=costs))
    floor = 0.0 if allow_skip else cost.min(axis=1).sum()
    budget = floor + draw(st.integers(0, 4 * 12 * n)) / 4
    return correct, cost, budget


def brute_force(correct, cost, budget, allow_skip):
    """The best total correctness by enumerating every choice of model (or skip) per query."""
    n, k = correct.shape
    options = list(range(k)) + ([SKIP] if allow_skip else [])
    choices = np.array(list(itertools.product(options, repeat=n)))
    answered = choices != SKIP
    picked = np.where(answered, choices, 0)
    rows = np.arange(n)
    score = np.where(answered, correct[rows, picked], 0.0).sum(axis=1)
    spend = np.where(answered, cost[rows, picked], 0.0).sum(axis=1)
    return score[spend <= budget].max()


def check_solution(sol, correct, cost, budget, allow_skip):
    """The reported numbers agree with the choices, and the choices obey the rules."""
    n = correct.shape[0]
    answered = sol.choice != SKIP
    rows = np.arange(n)[answered]
    assert sol.choice.dtype == np.int64 and sol.choice.shape == (n,)
    assert allow_skip or answered.all()
    assert sol.spend == pytest.approx(cost[rows, sol.choice[answered]].sum(), abs=1e-12)
    assert sol.total_correct == pytest.approx(correct[rows, sol.choice[answered]].sum(), abs=1e-12)
    assert sol.spend <= budget
    assert sol.budget == budget
    assert sol.accuracy == pytest.approx(sol.total_correct / n)


@pytest.mark.parametrize("allow_skip", [True, False])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_sort_matches_brute_force_on_binary(allow_skip, data):
    correct, cost, budget = data.draw(instances(binary, allow_skip))
    sol = budgeted_oracle(correct, cost, budget, allow_skip=allow_skip)
    assert sol.method == "sort"
    check_solution(sol, correct, cost, budget, allow_skip)
    assert sol.total_correct == brute_force(correct, cost, budget, allow_skip)


@pytest.mark.parametrize("allow_skip", [True, False])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_milp_matches_brute_force_on_graded(allow_skip, data):
    correct, cost, budget = data.draw(instances(graded, allow_skip))
    correct[0, 0] = 0.5  # at least one graded score, so the MILP path runs
    sol = budgeted_oracle(correct, cost, budget, allow_skip=allow_skip)
    assert sol.method == "milp"
    check_solution(sol, correct, cost, budget, allow_skip)
    assert sol.total_correct == pytest.approx(brute_force(correct, cost, budget, allow_skip), abs=1e-6)


@pytest.mark.parametrize("scores", [binary, graded], ids=["binary", "graded"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_more_budget_never_less_correct(scores, data):
    correct, cost, budget = data.draw(instances(scores, allow_skip=True))
    more = budget + data.draw(costs)
    assert (
        budgeted_oracle(correct, cost, more).total_correct
        >= budgeted_oracle(correct, cost, budget).total_correct - 1e-9
    )


def test_zero_budget_with_skip_answers_nothing():
    correct = np.array([[1.0, 0.5], [0.0, 1.0]])
    cost = np.array([[1.0, 0.5], [2.0, 0.25]])
    for scores in (correct, (correct > 0).astype(float)):
        sol = budgeted_oracle(scores, cost, 0.0)
        assert sol.total_correct == 0.0
        assert sol.spend == 0.0
        np.testing.assert_array_equal(sol.choice, [SKIP, SKIP])


def test_binary_hand_example():
    # Cheapest correct prices: q0 = 2 (m1), q1 = 1 (m0), q2 = none, q3 = 3 (m2).
    correct = np.array([[0, 1, 1], [1, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=float)
    cost = np.array([[1, 2, 5], [1, 4, 9], [1, 1, 1], [1, 2, 3]], dtype=float)
    sol = budgeted_oracle(correct, cost, 3.5)
    np.testing.assert_array_equal(sol.choice, [1, 0, SKIP, SKIP])  # 1 + 2 fits, + 3 does not
    assert (sol.total_correct, sol.spend, sol.accuracy) == (2.0, 3.0, 0.5)
    # Without skipping all four pay 1 first (4); upgrades cost q1 0, q0 1, q3 2: 5.5 buys q1, q0.
    sol = budgeted_oracle(correct, cost, 5.5, allow_skip=False)
    np.testing.assert_array_equal(sol.choice, [1, 0, 0, 0])
    assert (sol.total_correct, sol.spend) == (2.0, 5.0)


GRADED_CORRECT = np.array([[0.5, 1.0], [0.25, 0.75]])
GRADED_COST = np.array([[1.0, 3.0], [1.0, 2.0]])


def test_graded_hand_example():
    # q0 options: (cost 1, .5), (3, 1); q1: (1, .25), (2, .75). Budget 4: the pairs that fit
    # are (1,1)=.75, (1,2)=1.25, (3,1)=1.25; with skip also (3, skip)=1 and (skip, 2)=.75.
    # Tie at 1.25: both spend within budget; the sum is what is unique.
    sol = budgeted_oracle(GRADED_CORRECT, GRADED_COST, 4.0)
    assert sol.method == "milp"
    assert sol.total_correct == pytest.approx(1.25)
    # Budget 3.5 leaves (1,2)=1.25 as the only best choice.
    sol = budgeted_oracle(GRADED_CORRECT, GRADED_COST, 3.5, allow_skip=False)
    np.testing.assert_array_equal(sol.choice, [0, 1])
    assert sol.spend == 3.0


def _overshooting(times, budget_caps):
    """A stand-in for milp whose first ``times`` answers call every option (over any budget)."""

    def fake(c, **kwargs):
        budget_caps.append(float(kwargs["constraints"][1].ub[0]))
        result = highs_milp(c, **kwargs)
        if len(budget_caps) <= times:
            return OptimizeResult(status=0, x=np.ones_like(result.x), message="fake")
        return result

    return fake


def test_milp_overshoot_is_solved_again_under_a_lower_budget(monkeypatch):
    caps = []
    monkeypatch.setattr(oracle_module, "milp", _overshooting(1, caps))
    sol = budgeted_oracle(GRADED_CORRECT, GRADED_COST, 3.5)
    assert caps == [3.5, pytest.approx(3.5 - 3.5e-7, abs=1e-12)]
    np.testing.assert_array_equal(sol.choice, [0, 1])
    assert (sol.total_correct, sol.spend) == (1.25, 3.0)


def test_milp_failures_raise(monkeypatch):
    monkeypatch.setattr(oracle_module, "milp", _overshooting(2, []))
    with pytest.raises(RuntimeError, match="over the budget"):
        budgeted_oracle(GRADED_CORRECT, GRADED_COST, 3.5)
    monkeypatch.setattr(
        oracle_module,
        "milp",
        lambda c, **kwargs: OptimizeResult(status=1, x=None, message="Time limit reached"),
    )
    with pytest.raises(RuntimeError, match="Time limit reached"):
        budgeted_oracle(GRADED_CORRECT, GRADED_COST, 3.5)


def test_no_skip_budget_below_the_cheapest_calls_is_an_error():
    with pytest.raises(ValueError, match="cannot cover the cheapest call"):
        budgeted_oracle([[1.0, 0.0], [1.0, 1.0]], [[1.0, 2.0], [1.0, 2.0]], 1.5, allow_skip=False)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="budget"):
        budgeted_oracle([[1.0]], [[1.0]], -1.0)
    with pytest.raises(ValueError, match="budget"):
        budgeted_oracle([[1.0]], [[1.0]], float("nan"))
    with pytest.raises(ValueError, match="shape"):
        budgeted_oracle([[1.0, 0.0]], [[1.0]], 1.0)
    with pytest.raises(ValueError, match="finite"):
        budgeted_oracle([[1.0]], [[np.inf]], 1.0)


def test_solution_is_frozen():
    sol = budgeted_oracle([[1.0]], [[1.0]], 1.0)
    with pytest.raises(ValueError):
        sol.choice[0] = 0
    with pytest.raises(AttributeError):
        sol.spend = 0.0


def test_per_query_oracle_prefers_the_cheapest_correct_model():
    # Models 1 and 2 are both correct; model 2 is cheaper. The reference's argmax by index
    # would call model 1 (cost 3); the cost-aware oracle calls model 2 (cost 2).
    correct = [[0.0, 1.0, 1.0]]
    cost = [[1.0, 3.0, 2.0]]
    np.testing.assert_array_equal(per_query_oracle_curve(correct, cost), [[1.0, 0.0], [2.0, 1.0], [2.0, 1.0]])
    # Under cap 0.5 nothing fits: the cheapest model (cost 1, wrong).
    np.testing.assert_array_equal(per_query_oracle_curve(correct, cost, thresholds=[0.5]), [[1.0, 0.0]])


def test_per_query_oracle_accuracy_hand_example():
    assert per_query_oracle_accuracy([[0.0, 1.0], [0.0, 0.0], [0.25, 0.5]]) == 0.5


@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 4)), elements=binary), st.data())
def test_per_query_oracle_curve_ends_at_the_uncapped_oracle(correct, data):
    cost = data.draw(arrays(np.float64, correct.shape, elements=costs))
    curve = per_query_oracle_curve(correct, cost)
    assert curve[-1, 1] == per_query_oracle_accuracy(correct)
    assert (np.diff(curve[:, 1]) >= 0).all()  # a higher cap never lowers the oracle's accuracy
