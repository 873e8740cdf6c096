"""Replay: the target's own episodes and budget on a hand-made log, rejection for non-uniform
loggers, learning from accepted decisions only, and the online value of a budgeted target."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from _ope_logs import hand_log
from _tables import make_table

import mmr_gym  # noqa: F401  (registers the environments)
from agents.baselines import BestSinglePolicy
from agents.stochastic import UniformPolicy
from benchmarks.bench_ope import online_truth
from mmr_gym.ope import SmallSampleWarning, SupportWarning, collect_log, estimate
from mmr_gym.policy import Policy


class PreferExpensive(Policy):
    """Model 1 while it is affordable, else model 0; records what it saw and learned."""

    def __init__(self) -> None:
        self.budgets: list[np.ndarray] = []
        self.observed: list[tuple[int, float, float]] = []

    def act(self, obs, info):
        self.budgets.append(obs["budget"].copy())
        return 1 if info["action_mask"][1] else 0

    def observe(self, action, reward, info):
        self.observed.append((action, info["correct"], info["cost"]))


def _uniform_log(actions, correct, cost, budget_ratio):
    n = len(actions)
    return hand_log(
        context=np.zeros(n, dtype=int),
        action=actions,
        propensity=np.full(n, 0.5),
        correct=correct,
        cost=cost,
        k=2,
        episode=np.zeros(n, dtype=int),
        behaviour_probs=np.full((n, 2), 0.5),
        model_costs=np.tile([0.2, 1.0], (n, 1)),  # c_ref = 1: the cost estimates themselves
        meta={"episode_length": 2, "budget_ratio": budget_ratio},
    )


def test_replay_runs_the_targets_own_episodes_and_budget():
    # Budget 0.6 x 2 queries x c_ref 1 = 1.2: a call of model 1 (estimate 1.0) leaves too little for
    # another, enough for model 0 (estimate 0.2). Accepted: rows 1, 3 (episode A), 4, 5 (episode B),
    # 6 (episode C, cut by the log's end). Rows 0 and 2: the target chose another model.
    log = _uniform_log(
        actions=[0, 1, 1, 0, 1, 0, 1],
        correct=[1, 1, 1, 1, 0, 0, 1],
        cost=[0.2, 0.95, 1.0, 0.3, 0.9, 0.1, 1.0],
        budget_ratio=0.6,
    )
    policy = PreferExpensive()
    with pytest.warns(SmallSampleWarning):
        result = estimate(log, policy, "replay")
    assert result.estimand == "online" and result.bootstrap_unit == "episode" and result.n_units == 2
    assert result.accuracy == pytest.approx((2 + 0) / 4) and result.cost == pytest.approx((1.25 + 1.0) / 4)
    assert result.n_used == 4
    # It learned from the accepted calls only, with the logged outcomes (the cut episode's too) ...
    assert policy.observed == [(1, 1.0, 0.95), (0, 1.0, 0.3), (1, 0.0, 0.9), (0, 0.0, 0.1), (1, 1.0, 1.0)]
    # ... and saw its own budget: full at its first query, 0.25 of 1.2 left at the second.
    np.testing.assert_allclose(policy.budgets[0], [1.0, 1.0, 0.6], rtol=1e-6)
    np.testing.assert_allclose(policy.budgets[2], [0.25 / 1.2, 0.5, 0.25], rtol=1e-6)


def test_an_episode_ends_when_nothing_is_affordable_and_its_other_queries_are_wrong():
    # The first call costs 1.05 (estimate 1.0): 0.15 is left, below model 0's estimate 0.2.
    log = _uniform_log(actions=[1, 0, 0], correct=[1, 1, 1], cost=[1.05, 0.2, 0.2], budget_ratio=0.6)
    with pytest.raises(ValueError, match=r"1 episode\(s\) to resample"):
        estimate(log, PreferExpensive(), "replay")
    with pytest.warns(SmallSampleWarning):
        result = estimate(log, PreferExpensive(), "replay", bootstrap_unit="decision")
    assert result.accuracy == pytest.approx(0.5) and result.cost == pytest.approx(1.05 / 2)
    assert result.n_units == 2  # one accepted call and one unanswered query


def test_replay_refuses_logs_too_small_or_without_a_match():
    log = _uniform_log(actions=[0, 0, 0], correct=[1, 1, 1], cost=[0.2, 0.2, 0.2], budget_ratio=0.6)
    with pytest.raises(ValueError, match="completed no episode"):
        estimate(log, PreferExpensive(), "replay")
    unbudgeted = _uniform_log(actions=[0, 0, 0], correct=[1, 1, 1], cost=[0.2, 0.2, 0.2], budget_ratio=None)
    with pytest.raises(ValueError, match="accepted no decision"):
        estimate(unbudgeted, PreferExpensive(), "replay")
    ranged = _uniform_log(actions=[1, 1], correct=[1, 1], cost=[1, 1], budget_ratio=[0.5, 1.0])
    with pytest.raises(ValueError, match="one budget ratio"):
        estimate(ranged, PreferExpensive(), "replay")


def test_rejection_makes_a_skewed_logger_fair():
    # Context 0: model 0 right, logged with probability 0.9; context 1: model 0 wrong, probability
    # 0.1. A target always calling model 0 is right half the time; plain matching would say 0.9.
    rng = np.random.default_rng(0)
    n = 6000
    context = rng.integers(0, 2, n)
    p0 = np.where(context == 0, 0.9, 0.1)
    action = (rng.random(n) >= p0).astype(int)
    propensity = np.where(action == 0, p0, 1 - p0)
    log = hand_log(
        context,
        action,
        propensity,
        correct=np.where(action == 0, context == 0, 0.5).astype(float),
        cost=np.ones(n),
        k=2,
        behaviour_probs=np.stack([p0, 1 - p0], axis=1),
        meta={"budget_ratio": None},
    )

    class Model0(Policy):
        def act(self, obs, info):
            return 0

    result = estimate(log, Model0(), "replay", bootstrap_unit="decision")
    assert result.accuracy == pytest.approx(0.5, abs=0.06)  # about 600 accepted: 3 standard errors
    assert result.n_used == pytest.approx(0.1 * n, rel=0.15)  # every choice accepted with chance 0.1


def test_a_target_outside_the_loggers_support_is_reported():
    log = _uniform_log(actions=[0] * 6, correct=[1] * 6, cost=[0.2] * 6, budget_ratio=None)
    mask = np.tile([True, False], (6, 1))
    fields = {
        name: getattr(log, name)
        for name in (
            "episode",
            "step",
            "query_id",
            "dataset",
            "observations",
            "budget_remaining",
            "budget_total",
            "action",
            "correct",
            "cost",
        )
    }
    narrow = type(log)(
        **fields, action_mask=mask, propensity=np.ones(6), behaviour_probs=mask * 1.0, meta=log.meta
    )
    with (
        pytest.warns(SupportWarning, match="could not call there"),
        pytest.raises(ValueError, match="accepted no"),
    ):
        estimate(narrow, PreferExpensive(), "replay")


def test_replay_estimates_the_online_value_of_a_budgeted_target():
    """BestSingle under a budget: replay on uniform logs finds its online accuracy (from the table)."""
    table = make_table(n=400, k=4, seed=9)
    common = dict(dataset=table, split="test", episode_length=10)
    logging_env = gym.make("MMRRouting-v0", budget_ratio=None, **common)
    target_env = gym.make("MMRRouting-v0", budget_ratio=0.3, **common)
    truth = online_truth(BestSinglePolicy, target_env, seeds=range(20))
    estimates, covered = [], 0
    for seed in range(8):
        log = collect_log(logging_env, UniformPolicy(seed=seed), 2000, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallSampleWarning)
            result = estimate(log, BestSinglePolicy(), "replay", env=target_env, n_resamples=1000, seed=seed)
        assert result.bootstrap_unit == "episode" and result.n_units >= 40
        estimates.append(result.accuracy)
        covered += result.accuracy_ci[0] <= truth["accuracy"] <= result.accuracy_ci[1]
    error = np.mean(estimates) - truth["accuracy"]
    assert abs(error) < 3 * np.std(estimates) / np.sqrt(len(estimates)) + 3 * truth["accuracy_se"]
    assert covered >= 6
