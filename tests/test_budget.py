"""The budget rule: array and scalar forms agree bit for bit; budget ratio draws."""

from __future__ import annotations

import numpy as np
import pytest

from mmr_gym.budget import Budget, affordable, budget_features, draw_budget_ratios


@pytest.mark.parametrize("ratio", [0.3, None])
def test_array_features_equal_the_scalar_ones_bit_for_bit(ratio):
    rng = np.random.default_rng(0)
    length, c_ref = 17, 0.37
    budget = Budget(ratio, length, c_ref)
    spends, steps, expected = [], [], []
    for remaining_steps in range(length, -1, -1):
        expected.append(budget.features(remaining_steps))
        spends.append(budget.spend)
        steps.append(remaining_steps)
        budget.charge(float(rng.exponential(0.5 * c_ref)))
    total = np.inf if budget.total is None else budget.total
    features = budget_features(np.array(spends), total, np.array(steps), length, c_ref)
    np.testing.assert_array_equal(features.view(np.uint32), np.array(expected).view(np.uint32))
    single = budget_features(spends[3], total, steps[3], length, c_ref)
    np.testing.assert_array_equal(single, expected[3])
    if ratio is not None:
        assert (features[:, 0] <= 1).all() and features[-1, 1] == 0 and features[0, 2] == np.float32(ratio)


def test_affordable_agrees_with_the_scalar_rule():
    budget = Budget(0.5, 10, 1.0)
    budget.charge(4.0)  # 1.0 left
    estimates = np.array([0.5, 1.0, 1.0 + 1e-12, 1.0 + 1e-6, np.inf])
    np.testing.assert_array_equal(budget.affordable(estimates), [True, True, True, False, False])
    np.testing.assert_array_equal(
        affordable(estimates[None, :], np.array([1.0]))[0], budget.affordable(estimates)
    )
    assert affordable(estimates[None, :], np.array([np.inf]))[0, :4].all()  # no budget: every finite cost


@pytest.mark.parametrize("sampling", ["uniform", "log-uniform"])
def test_budget_ratio_draws_stay_in_range_and_follow_their_law(sampling):
    low, high = 0.01, 1.0
    draws = draw_budget_ratios(np.random.default_rng(1), (low, high), sampling, 20_000)
    assert draws.min() >= low and draws.max() <= high
    below = np.mean(draws < 0.1)  # log-uniform: half of the two decades; uniform: 0.09 / 0.99
    assert below == pytest.approx(0.5 if sampling == "log-uniform" else 0.0909, abs=0.02)
    one = draw_budget_ratios(np.random.default_rng(1), (low, high), sampling)
    assert float(one) == draws[0]  # one draw is the first of many: the same generator calls
    assert draw_budget_ratios(np.random.default_rng(2), (0.4, 0.4), sampling) == pytest.approx(0.4)
