"""The logging policies that state their propensities (agents/stochastic.py): their distributions,
that they act by them, and what they pass on to the router or learner they wrap."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table
from scipy import stats

import mmr_gym  # noqa: F401  (registers the environments)
from agents.bandits import LinearTSBandit, make_bandit
from agents.baselines import BestSinglePolicy
from agents.stochastic import EpsilonGreedyPolicy, SoftmaxPolicy, ThompsonSamplingPolicy, UniformPolicy
from agents.supervised import fit_router
from mmr_gym.policy import Policy


@pytest.fixture(scope="module")
def env():
    return gym.make(
        "MMRRouting-v0",
        dataset=make_table(n=300, k=4, seed=4),
        split="test",
        episode_length=10,
        budget_ratio=0.15,
    )


def _contexts(env, n=40, seed=0):
    """(obs, info) of ``n`` decisions met by a uniform policy, some with masked models."""
    out, rng = [], np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    while len(out) < n:
        out.append((obs, info))
        obs, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        if terminated:
            obs, info = env.reset()
    assert any(not i["action_mask"].all() for _, i in out)
    return out


def test_uniform_spreads_over_the_affordable_models(env):
    policy = UniformPolicy()
    for obs, info in _contexts(env):
        mask = info["action_mask"].astype(bool)
        np.testing.assert_allclose(policy.action_probabilities(obs, info), mask / mask.sum())


def test_epsilon_greedy_is_the_routers_choice_plus_uniform_exploration(env):
    class Recorder(Policy):
        """Always asks for model 3 (the dearest: often masked); records what it is told."""

        def __init__(self):
            self.calls = []

        def begin_episode(self, env):
            self.calls.append("begin")

        def act(self, obs, info):
            return 3

        def observe(self, action, reward, info):
            self.calls.append(("observe", action))

    base = Recorder()
    policy = EpsilonGreedyPolicy(base, epsilon=0.3)
    policy.begin_episode(env.unwrapped)
    for obs, info in _contexts(env):
        mask = info["action_mask"].astype(bool)
        greedy = 3 if mask[3] else int(np.argmin(np.where(mask, obs["model_costs"], np.inf)))
        expected = 0.3 * mask / mask.sum()
        expected[greedy] += 0.7
        np.testing.assert_allclose(policy.action_probabilities(obs, info), expected)
    policy.observe(2, 1.0, {"model_index": 2})
    assert base.calls == ["begin", ("observe", 2)]
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedyPolicy(base, epsilon=1.5)


def test_softmax_is_the_closed_form_over_the_affordable_models(env):
    router = fit_router("linear", env.unwrapped)
    policy = SoftmaxPolicy(router, temperature=0.05, price=0.2)
    policy.begin_episode(env.unwrapped)
    for obs, info in _contexts(env):
        mask = info["action_mask"].astype(bool)
        perf = router.predict(obs["query"][None, :])[0][0]
        weights = np.where(mask, np.exp((perf - 0.2 * obs["model_costs"]) / 0.05), 0.0)
        np.testing.assert_allclose(policy.action_probabilities(obs, info), weights / weights.sum(), rtol=1e-6)


def test_policies_act_by_the_distribution_they_state(env):
    obs, info = next((o, i) for o, i in _contexts(env) if i["action_mask"].sum() >= 3)
    router = fit_router("linear", env.unwrapped)
    for policy in (
        UniformPolicy(seed=1),
        SoftmaxPolicy(router, temperature=0.2, seed=1),
        EpsilonGreedyPolicy(BestSinglePolicy(), 0.5, seed=1),
    ):
        policy.begin_episode(env.unwrapped)
        probs = policy.action_probabilities(obs, info)
        counts = np.bincount([policy.act(obs, info) for _ in range(3000)], minlength=probs.size)
        support = probs > 0
        assert counts[~support].sum() == 0
        assert stats.chisquare(counts[support], 3000 * probs[support]).pvalue > 1e-3, policy.name


def test_thompson_sampling_estimates_the_chance_each_draw_wins():
    # Two models, a known posterior: model 0 wins when N(m0, s0^2) > N(m1, s1^2).
    learner = LinearTSBandit(2, 1, v=1.0, ridge=1.0)
    learner.warm_start(np.array([[0.0], [1.0]]), np.array([[0.6, 0.5], [0.6, 0.5]]), np.zeros((2, 2)))
    policy = ThompsonSamplingPolicy(learner, n_draws=20000, learn=False, seed=0)
    obs = {"query": np.array([0.5], dtype=np.float32), "model_costs": np.zeros(2, dtype=np.float32)}
    info = {"action_mask": np.array([1, 1], dtype=np.int8)}
    z = np.array([0.5, 1.0])
    mean, width = learner.stats.means(z[None, :])[0][0], learner.stats.widths(z)
    exact = stats.norm.cdf((mean[0] - mean[1]) / np.hypot(*width))
    probs = policy.action_probabilities(obs, info)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[0] == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 20000))
    info_masked = {"action_mask": np.array([0, 1], dtype=np.int8)}
    np.testing.assert_array_equal(policy.action_probabilities(obs, info_masked), [0.0, 1.0])


def test_thompson_sampling_learns_only_when_asked_and_a_frozen_one_sees_later_changes(env):
    u = env.unwrapped
    contexts = _contexts(env)
    learning = ThompsonSamplingPolicy(make_bandit("lin-ts", u), seed=0)
    before = learning.learner.stats.A_inv.copy()
    obs, info = contexts[0]
    learning.action_probabilities(obs, info)
    learning.observe(1, 1.0, {"model_index": 1, "correct": 1.0, "cost": 0.5})
    assert not np.array_equal(learning.learner.stats.A_inv, before)

    learner = make_bandit("lin-ts", u, warm_start=True)
    frozen = ThompsonSamplingPolicy(learner, n_draws=4000, learn=False, seed=0)
    frozen.begin_episode(u)
    first = frozen.action_probabilities(obs, info)
    kept = learner.stats.A_inv.copy()
    frozen.observe(1, 1.0, {"model_index": 1, "correct": 1.0, "cost": 0.5})
    np.testing.assert_array_equal(learner.stats.A_inv, kept)
    # The learner changed elsewhere: a new episode reads the new posterior, not a stale one.
    for _ in range(200):
        learner.update(obs["query"], 0, 1.0, 0.0)
    again = ThompsonSamplingPolicy(learner, n_draws=4000, learn=False, seed=0)
    again.begin_episode(u)
    assert again.action_probabilities(obs, info)[0] > first[0]
