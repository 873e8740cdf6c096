"""Bandit learners: exact ridge statistics, bandit feedback only, learning, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from _tables import make_table

from agents import ridge as ridge_module
from agents.bandits import BANDITS, LinUCBBandit, RidgeStatistics, make_bandit, paced_bandit
from agents.baselines import RandomPolicy
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy, run_stream, split_streams

# The neural learner retrains often and briefly here so that the tests exercise retraining quickly.
FAST = {"neural-ucb": {"train_every": 25, "train_steps": 5, "batch_size": 32}}


@pytest.fixture(scope="module")
def table():
    return make_table(n=700, k=4, seed=7)


def env_of(table, **kwargs) -> MMRRoutingEnv:
    return MMRRoutingEnv(table, split="test", episode_length=40, **kwargs)


def test_sherman_morrison_inverse_equals_the_inverse_of_the_design_matrix():
    rng = np.random.default_rng(0)
    k, d, ridge = 3, 5, 2.0
    stats = RidgeStatistics(k, d, ridge)
    A = np.tile(ridge * np.eye(d + 1), (k, 1, 1))
    b = np.zeros((k, d + 1))
    for _ in range(200):
        z = RidgeStatistics.augment(rng.normal(size=d))
        model, correct, cost = int(rng.integers(k)), float(rng.random() < 0.5), float(rng.random())
        stats.update(z, model, correct, cost)
        A[model] += np.outer(z, z)
        b[model] += correct * z
    np.testing.assert_allclose(stats.A_inv, np.linalg.inv(A), atol=1e-10)
    np.testing.assert_allclose(stats.theta_perf, np.linalg.solve(A, b[..., None])[..., 0], atol=1e-10)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("ask_widths_first", [False, True], ids=["recompute-u", "reuse-u"])
def test_low_rank_and_dense_forms_both_equal_the_inverse(ask_widths_first, warm, monkeypatch):
    # Low rank from p = 2 on (64 by default), so p = 9 exercises it: a model keeps the low-rank form
    # for its first 9 observations (on top of I / ridge, or of the shared warm-start inverse), then
    # turns dense.
    monkeypatch.setattr(ridge_module, "_LOW_RANK_MIN_DIM", 2)
    rng = np.random.default_rng(3)
    k, d, ridge = 3, 8, 0.5
    stats = RidgeStatistics(k, d, ridge)
    A = np.tile(ridge * np.eye(d + 1), (k, 1, 1))
    b = np.zeros((k, d + 1))
    if warm:  # full information on 20 queries: every model's design matrix is the same
        Z = RidgeStatistics.augment(rng.normal(size=(20, d)))
        correct = (rng.random((20, k)) < 0.5).astype(float)
        stats.fit(Z, correct, rng.random((20, k)))
        assert not stats.dense.any() and not stats.shared_is_identity
        A += Z.T @ Z
        b += correct.T @ Z
    for step in range(60):
        z = RidgeStatistics.augment(rng.normal(size=d))
        model = step % k if step < 12 else int(rng.integers(k))
        if ask_widths_first:  # what a learner does: widths of z, then the update of the called model
            expected = np.sqrt(np.einsum("i,kij,j->k", z, np.linalg.inv(A), z))
            np.testing.assert_allclose(stats.widths(z), expected, rtol=1e-9)
            if step % 5 == 0:  # asked about another query in between: its vectors must not be used
                stats.widths(RidgeStatistics.augment(rng.normal(size=d)))
        correct = float(rng.random() < 0.5)
        stats.update(z, model, correct, float(rng.random()))
        A[model] += np.outer(z, z)
        b[model] += correct * z
        if step == 8:  # every model has 3 observations: all still low rank
            assert not stats.dense.any() and stats.n_factors.tolist() == [3, 3, 3]
        np.testing.assert_allclose(stats.A_inv, np.linalg.inv(A), atol=1e-10)
        np.testing.assert_allclose(stats.theta_perf, np.linalg.solve(A, b[..., None])[..., 0], atol=1e-10)
    assert stats.dense.all()
    rows = RidgeStatistics.augment(rng.normal(size=(5, d)))
    batch = stats.widths(rows)
    np.testing.assert_allclose(batch[2], stats.widths(rows[2]), rtol=1e-12)


def test_narrow_features_start_dense_and_wide_ones_low_rank():
    assert RidgeStatistics(3, 62).dense.all()
    wide = RidgeStatistics(3, 63)
    assert not wide.dense.any() and wide.factors.shape == (3, 64, 64)


@pytest.mark.parametrize("low_rank", [False, True])
def test_the_same_query_twice_on_one_model_is_not_updated_with_stale_vectors(low_rank, monkeypatch):
    monkeypatch.setattr(ridge_module, "_LOW_RANK_MIN_DIM", 2 if low_rank else 64)
    stats = RidgeStatistics(2, 3, ridge=1.0)
    z = RidgeStatistics.augment(np.array([1.0, -2.0, 0.5]))
    stats.widths(z)
    stats.update(z, 0, 1.0, 0.2)
    stats.update(z, 0, 0.0, 0.3)
    np.testing.assert_allclose(stats.A_inv[0], np.linalg.inv(np.eye(4) + 2 * np.outer(z, z)), atol=1e-12)


def test_a_state_saved_in_dense_form_only_still_loads():
    stats = RidgeStatistics(2, 3)
    old = {
        "A_inv": np.stack([np.eye(4) * 0.5, np.eye(4)]),
        **{name: np.zeros((2, 4)) for name in ("b_perf", "b_cost", "theta_perf", "theta_cost")},
    }
    stats.load_state_dict(old)
    np.testing.assert_array_equal(stats.A_inv, old["A_inv"])
    assert stats.dense.all()


def test_batch_fit_equals_one_update_per_observation():
    rng = np.random.default_rng(1)
    Z = RidgeStatistics.augment(rng.normal(size=(60, 4)))
    models = rng.integers(0, 3, size=60)
    correct, cost = rng.random(60), rng.random(60)
    sequential, batch = RidgeStatistics(3, 4), RidgeStatistics(3, 4)
    for z, m, c, p in zip(Z, models, correct, cost, strict=True):
        sequential.update(z, int(m), c, p)
    batch.fit(Z, correct, cost, models=models)
    for name in ("A_inv", "b_perf", "b_cost", "theta_perf", "theta_cost"):
        np.testing.assert_allclose(getattr(batch, name), getattr(sequential, name), atol=1e-10)


def test_full_information_warm_start_equals_updating_every_model_on_every_query(table):
    env = env_of(table)
    rows = env.ctx.train_indices
    X, correct, cost = env.ctx.query_obs[rows], env.ctx.table.correct[rows], env.ctx.table.cost[rows]
    warm = make_bandit("linucb", env, warm_start=True)
    stepwise = LinUCBBandit(env.ctx.n_models, X.shape[1])
    for x, c, p in zip(X, correct, cost, strict=True):
        for model in range(env.ctx.n_models):
            stepwise.update(x, model, float(c[model]), float(p[model]))
    for a, b in zip(warm.predict(X[:20]), stepwise.predict(X[:20]), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)


def actions_over_streams(env, policy, n_streams=3, ratio=0.3):
    actions = []
    for ids in split_streams(env, seed=0)[:n_streams]:
        obs, info = env.reset(options={"query_ids": ids, "budget_ratio": ratio})
        policy.begin_episode(env)
        done = False
        while not done:
            action = policy.act(obs, info)
            obs, reward, done, _, info = env.step(action)
            policy.observe(action, reward, FeedbackGuard(info))
            actions.append(action)
    return actions


class FeedbackGuard(dict):
    """A step's info that fails the test if anyone reads the unchosen models' outcomes."""

    def __getitem__(self, key):
        assert key != "outcomes", "a bandit learner read info['outcomes']"
        return super().__getitem__(key)

    def get(self, key, default=None):
        assert key != "outcomes", "a bandit learner read info['outcomes']"
        return super().get(key, default)


@pytest.mark.parametrize("name", list(BANDITS))
def test_bandits_never_read_unchosen_outcomes(table, name):
    # Same seeds, same stream: with full feedback the info holds every model's outcome, with bandit
    # feedback only the chosen one's. A learner that used more would decide differently.
    decisions = {}
    for feedback in ("bandit", "full"):
        env = env_of(table, feedback=feedback)
        decisions[feedback] = actions_over_streams(env, paced_bandit(name, env, seed=3, **FAST.get(name, {})))
    assert decisions["bandit"] == decisions["full"]
    assert len(set(decisions["bandit"])) > 1  # it explored


@pytest.mark.parametrize("name", list(BANDITS))
def test_bandits_are_deterministic_under_a_seed(table, name):
    env = env_of(table)
    first = actions_over_streams(env, paced_bandit(name, env, seed=5, **FAST.get(name, {})))
    second = actions_over_streams(env, paced_bandit(name, env, seed=5, **FAST.get(name, {})))
    assert first == second


@pytest.mark.parametrize("name", list(BANDITS))
def test_bandits_predict_shapes_and_learn_across_episodes(table, name):
    env = env_of(table)
    policy = paced_bandit(name, env, **FAST.get(name, {}))
    learner = policy.scorer
    X = env.ctx.query_obs[:7]
    before = learner.predict(X)
    assert before[0].shape == before[1].shape == (7, env.ctx.n_models)
    for ids in split_streams(env, seed=0)[:4]:
        run_stream(env, policy, ids, 0.5)
    after = learner.predict(X)
    assert not np.allclose(before[0], after[0])
    assert np.isfinite(after[0]).all() and np.isfinite(after[1]).all()


def test_a_paced_bandit_learns_to_beat_random(table):
    # Model 3 is right 80% of the time, model 0 30%; with an ample budget a learner must find the
    # strong models within a few hundred queries. Margin: random averages ~0.55 here.
    env = env_of(table)
    kwargs = {"budget_ratios": (2.0,), "seeds": (0,), "progress": False}
    bandit = evaluate_policy(lambda: paced_bandit("linucb", env), env, **kwargs)
    random = evaluate_policy(RandomPolicy, env, **kwargs)
    assert bandit.points[0].accuracy > random.points[0].accuracy + 0.08


def test_unknown_bandit_raises(table):
    with pytest.raises(ValueError, match="unknown bandit"):
        make_bandit("ucb1", env_of(table))


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "message"),
    [
        ("linucb", {"alpha": "abc"}, TypeError, r"alpha must be a number, got 'abc' \(str\)"),
        ("linucb", {"dim": 2.5}, TypeError, r"dim must be an integer, got 2\.5"),
        ("lin-ts", {"v": -1.0}, ValueError, r"v must be a finite number >= 0"),
        ("epsilon-greedy", {"epsilon": 1.5}, ValueError, r"epsilon must be a finite number >= 0 and <= 1"),
        ("epsilon-greedy", {"ridge": 0}, ValueError, r"ridge must be a finite number > 0"),
        ("neural-ucb", {"hidden": "64"}, TypeError, r"hidden must be an integer, got '64' \(str\)"),
        ("neural-ucb", {"n_models": True}, TypeError, r"n_models must be an integer, got True \(bool\)"),
        ("neural-ucb", {"cost_scale": float("inf")}, ValueError, r"cost_scale must be a finite number > 0"),
    ],
)
def test_learner_arguments_are_checked_when_constructed(name, kwargs, error, message):
    arguments = {"n_models": 3, "dim": 4, **kwargs}
    with pytest.raises(error, match=message):
        BANDITS[name](arguments.pop("n_models"), arguments.pop("dim"), **arguments)
