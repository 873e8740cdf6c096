"""Adaptive agents: statistics that forget (exactly a weighted refit), the cost-ratio tracker, the
adaptive pacing under scenarios, determinism, and recovery after a regression."""

from __future__ import annotations

import numpy as np
import pytest
from _tables import make_table

from agents.adaptive import ADAPTIVE_BANDITS, adaptive_bandit, make_adaptive_bandit
from agents.adaptive_pacing import AdaptivePacedPolicy, CostRatioTracker
from agents.bandits import LinUCBBandit
from agents.forgetting import ForgettingRidge
from agents.pacing import PacedPolicy
from agents.ridge import RidgeStatistics
from agents.supervised import fit_router
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy, split_streams
from mmr_gym.scenarios import NO_EVENTS, Outage, PriceChange, Regression, Scenario, compile_world
from mmr_gym.scenarios.analysis import event_effects


def weighted_ridge(Z, y, weights, precision, prior):
    """The anchored ridge solution recomputed from scratch: (P + Z^T W Z)^-1 (P prior + Z^T W y)."""
    A = np.diag(precision) + (Z * weights[:, None]).T @ Z
    return A, np.linalg.solve(A, precision * prior + (weights * y) @ Z)


def random_stream(rng, n, k, d):
    Z = RidgeStatistics.augment(rng.normal(size=(n, d)))
    return Z, rng.integers(0, k, size=n), (rng.random(n) < 0.6).astype(float), rng.random(n)


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_discounting_equals_a_ridge_fit_weighted_by_gamma_to_the_age(gamma):
    rng = np.random.default_rng(0)
    k, d, n = 3, 4, 120
    stats = ForgettingRidge(
        k, d, forgetting="discount", gamma=gamma, slope_precision=5.0, level_precision=0.5
    )
    prior_perf, prior_cost = rng.normal(size=(k, d + 1)), rng.normal(size=(k, d + 1))
    stats.set_prior(prior_perf, prior_cost)
    Z, models, correct, cost = random_stream(rng, n, k, d)
    for z, m, c, p in zip(Z, models, correct, cost, strict=True):
        stats.update(z, int(m), c, p)
    for m in range(k):
        mine = models == m
        age = np.arange(mine.sum())[::-1]  # observations of the same model after each one
        A, theta = weighted_ridge(Z[mine], correct[mine], gamma**age, stats.precision, prior_perf[m])
        _, theta_cost = weighted_ridge(Z[mine], cost[mine], gamma**age, stats.precision, prior_cost[m])
        np.testing.assert_allclose(stats.design[m], A, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(stats.A_inv[m], np.linalg.inv(A), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(stats.theta_perf[m], theta, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(stats.theta_cost[m], theta_cost, rtol=1e-8, atol=1e-10)
    rows = RidgeStatistics.augment(rng.normal(size=(6, d)))
    expected = np.sqrt(np.einsum("ni,kij,nj->nk", rows, stats.A_inv, rows))
    np.testing.assert_allclose(stats.widths(rows), expected)
    np.testing.assert_allclose(stats.widths(rows[0]), expected[0])


def test_a_sliding_window_equals_refitting_on_the_window():
    rng = np.random.default_rng(1)
    k, d, n, window = 3, 4, 150, 7  # ~50 updates per model: the window wraps and is recomputed often
    stats = ForgettingRidge(
        k, d, forgetting="window", window=window, slope_precision=2.0, level_precision=0.1
    )
    prior = rng.normal(size=(k, d + 1))
    stats.set_prior(prior, np.zeros((k, d + 1)))
    Z, models, correct, cost = random_stream(rng, n, k, d)
    for step, (z, m, c, p) in enumerate(zip(Z, models, correct, cost, strict=True)):
        stats.update(z, int(m), c, p)
        if step % 10 == 9 or step == n - 1:
            for model in range(k):
                seen = np.flatnonzero(models[: step + 1] == model)[-window:]  # the last `window` of it
                A, theta = weighted_ridge(
                    Z[seen], correct[seen], np.ones(seen.size), stats.precision, prior[model]
                )
                _, theta_cost = weighted_ridge(Z[seen], cost[seen], np.ones(seen.size), stats.precision, 0.0)
                np.testing.assert_allclose(stats.design[model], A, rtol=1e-10, atol=1e-10)
                np.testing.assert_allclose(stats.theta_perf[model], theta, rtol=1e-8, atol=1e-10)
                np.testing.assert_allclose(stats.theta_cost[model], theta_cost, rtol=1e-8, atol=1e-10)


def test_forgetting_moves_the_level_toward_recent_outcomes_and_keeps_the_prior_shape():
    # A model predicted to score 0.8 starts scoring 0.2 (graded): after a few memories' worth of
    # calls its level is near 0.2 (the prior still weighs 5 against ~50 recent calls: 0.25), and
    # its slopes stay near the prior's.
    rng = np.random.default_rng(2)
    d = 3
    stats = ForgettingRidge(1, d, gamma=0.98, slope_precision=1000.0, level_precision=5.0)
    prior = np.array([[0.1, -0.05, 0.0, 0.8]])
    stats.set_prior(prior, np.zeros((1, d + 1)))
    for _ in range(400):
        x = rng.normal(size=d)
        stats.update(RidgeStatistics.augment(x), 0, 0.2, 0.0)
    assert 0.2 < stats.theta_perf[0, -1] < 0.3  # from 0.8: most of the way
    np.testing.assert_allclose(stats.theta_perf[0, :-1], prior[0, :-1], atol=0.03)


def test_forgetting_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown forgetting 'fade'"):
        ForgettingRidge(2, 3, forgetting="fade")
    with pytest.raises(ValueError, match="gamma must be a finite number > 0 and <= 1"):
        ForgettingRidge(2, 3, gamma=1.5)
    with pytest.raises(TypeError, match="window must be an integer"):
        ForgettingRidge(2, 3, window=2.5)
    with pytest.raises(ValueError, match="set_prior: theta_perf must have shape"):
        ForgettingRidge(2, 3).set_prior(np.zeros((2, 3)), np.zeros((2, 4)))


# ------------------------------------------------------------------ the cost-ratio tracker
def test_the_cost_ratio_is_the_discounted_sums_with_the_prior():
    rng = np.random.default_rng(3)
    typical = np.array([0.5, 2.0])
    tracker = CostRatioTracker(typical, memory=4.0, prior_calls=2.0)
    np.testing.assert_array_equal(tracker.ratios, [1.0, 1.0])
    calls = [(int(rng.integers(2)), rng.random(), rng.random() + 0.1) for _ in range(30)]
    for model, realized, shown in calls:
        tracker.update(model, realized, shown)
    gamma = 0.75
    for m in range(2):
        mine = [(r, s) for model, r, s in calls if model == m]
        weights = gamma ** np.arange(len(mine))[::-1]
        prior = gamma ** len(mine) * 2.0 * typical[m]  # two pseudo-calls at ratio 1, forgotten alike
        realized = weights @ [r for r, _ in mine] + prior
        shown = weights @ [s for _, s in mine] + prior
        assert tracker.ratios[m] == pytest.approx(realized / shown, rel=1e-12)


def test_the_tracker_learns_a_price_cut_and_starts_over_when_told():
    tracker = CostRatioTracker([1.0, 1.0], memory=10.0)
    for _ in range(100):
        tracker.update(0, 0.1, 1.0)  # shown at the old price, charged a tenth
    assert tracker.ratios[0] == pytest.approx(0.1, rel=1e-3) and tracker.ratios[1] == 1.0
    tracker.update(1, 5.0, 0.0)  # shown as free (unavailable, no price): nothing learned
    assert tracker.ratios[1] == 1.0
    tracker.forget(0)
    assert tracker.ratios[0] == 1.0
    with pytest.raises(ValueError, match="typical_cost must be"):
        CostRatioTracker([[1.0]])


# ------------------------------------------------------------------ policies under scenarios
@pytest.fixture(scope="module")
def table():
    return make_table(n=1500, k=4, seed=11)


@pytest.fixture(scope="module")
def envs(table):
    kwargs = {"episode_length": 50}
    return MMRRoutingEnv(table, split="train", **kwargs), MMRRoutingEnv(table, split="test", **kwargs)


@pytest.fixture(scope="module")
def router(envs):
    return fit_router("linear", envs[0])


def run_lane(env, policy, scenario, ratio=0.5, streams=10, seed=0, feedback="bandit"):
    """One lane along the timeline of ``scenario``: each step's (time, action, info, policy view)."""
    env = MMRRoutingEnv(**{**env.config.kwargs(), "scenario": scenario, "feedback": feedback})
    steps, start = [], 0  # an episode starts where the previous stream would have ended
    for j, ids in enumerate(split_streams(env, seed)[:streams]):
        options = {"query_ids": ids, "budget_ratio": ratio, **({"time": 0} if j == 0 else {})}
        obs, info = env.reset(options=options)
        policy.begin_episode(env)
        done, time = False, start
        while not done:
            action = policy.act(obs, info)
            seen = getattr(policy, "_available", None)
            obs, reward, done, _, info = env.step(action)
            policy.observe(action, reward, FeedbackGuard(info))
            steps.append((time, action, info, None if seen is None else seen.copy()))
            time += 1
        start += len(ids)
    return steps


class FeedbackGuard(dict):
    """A step's info that fails the test if a policy reads the unchosen models' outcomes."""

    def __getitem__(self, key):
        assert key != "outcomes", "an adaptive policy read info['outcomes']"
        return super().__getitem__(key)

    def get(self, key, default=None):
        assert key != "outcomes", "an adaptive policy read info['outcomes']"
        return super().get(key, default)


def test_adaptive_pacing_learns_a_stale_price_cut_and_uses_the_cheaper_model(envs, router):
    train, test = envs
    dearest = "model3"
    cut = Scenario("cut", (PriceChange(dearest, at=100, factor=0.1, lag=None),))
    adaptive = AdaptivePacedPolicy(router)
    steps = run_lane(test, adaptive, cut)
    static_steps = run_lane(test, PacedPolicy(router), cut)
    assert adaptive._tracker.ratios[3] == pytest.approx(0.1, abs=0.02)
    np.testing.assert_allclose(adaptive._tracker.ratios[:3], 1.0, atol=0.15)  # the others did not change

    def share_after(lane):
        return np.mean([action == 3 for time, action, _, _ in lane if time >= 200])

    assert share_after(steps) > share_after(static_steps) + 0.1
    # The price table is never updated: what the observation shows of the model stays as it was.
    assert adaptive._known_scale[3] == pytest.approx(1.0)


def test_an_announced_price_starts_the_ratio_over(envs, router):
    _, test = envs
    announced = Scenario("announced", (PriceChange("model3", at=100, factor=0.1, lag=100),))
    policy = AdaptivePacedPolicy(router)
    run_lane(test, policy, announced)
    # Shown at a tenth from t=200 on: the known scale follows, and the ratio is back near 1 (not 0.1 x 0.1).
    assert policy._known_scale[3] == pytest.approx(0.1, rel=1e-3)
    assert policy._tracker.ratios[3] == pytest.approx(1.0, abs=0.15)


def test_adaptive_pacing_sees_availability_as_it_stands_and_replans(envs, router):
    _, test = envs
    outage = Scenario("down", (Outage("model1", start=60, end=160), Outage("model0", start=100, end=160)))
    world = compile_world(outage, test.ctx)
    policy = AdaptivePacedPolicy(router)
    curves = []
    original = policy._spend_curve

    def recording():
        curve = original()
        curves.append((policy._available.copy() if policy._available is not None else None, curve))
        return curve

    policy._spend_curve = recording
    steps = run_lane(test, policy, outage, ratio=1.0)
    for time, action, _, seen in steps:
        np.testing.assert_array_equal(seen, world.available[world.segment(time)], err_msg=f"t={time}")
        assert world.available[world.segment(time), action]
    # Replanned when a model went down or came back, over the models that can be called.
    sets = [tuple(a) for a, _ in curves if a is not None]
    assert (True, False, True, True) in sets and (False, False, True, True) in sets
    down = next(c for a, c in curves if a is not None and tuple(a) == (False, False, True, True))
    up = next(c for a, c in curves if a is not None and tuple(a) == (True, True, True, True))
    assert down[-1] > up[-1]  # at the highest price the cheapest callable model costs more


def test_a_residual_learner_starts_from_the_router_and_an_unknown_model_from_the_best_known(envs, router):
    train, _ = envs
    known = ["model0", "model1", "model2"]  # model3 arrives later
    learner = make_adaptive_bandit("linucb-discounted", train, models=known, base=router)
    X = train.ctx.query_obs[:25]
    perf, cost = learner.predict(X)
    router_perf, router_cost = router.predict(X)
    accuracy = train.ctx.table.correct[train.ctx.train_indices].mean(axis=0)
    best = int(np.argmax(accuracy[:3]))
    np.testing.assert_allclose(perf[:, :3], router_perf[:, :3])
    np.testing.assert_allclose(perf[:, 3], router_perf[:, best])
    np.testing.assert_allclose(cost[:, 3], router_cost[:, best])
    # A query that is no row of the table is predicted by the router itself.
    odd = X[:2] + np.float32(0.123)
    np.testing.assert_allclose(learner.predict(odd)[0][:, :3], router.predict(odd)[0][:, :3])


def test_a_ridge_warm_start_is_the_prior_and_an_unknown_model_gets_the_best_known_one(envs):
    train, _ = envs
    ctx = train.ctx
    rows = ctx.train_indices
    learner = make_adaptive_bandit("lin-ts-window", train, models=["model0", "model2"], ridge=3.0)
    Z = RidgeStatistics.augment(ctx.query_obs[rows])
    theta = np.linalg.solve(3.0 * np.eye(Z.shape[1]) + Z.T @ Z, Z.T @ ctx.table.correct[rows]).T
    np.testing.assert_allclose(learner.stats.theta_perf[[0, 2]], theta[[0, 2]], atol=1e-10)
    best = 2 if ctx.table.correct[rows, 2].mean() >= ctx.table.correct[rows, 0].mean() else 0
    np.testing.assert_allclose(learner.stats.theta_perf[[1, 3]], theta[[best, best]], atol=1e-10)
    with pytest.raises(ValueError, match="models must be model names"):
        make_adaptive_bandit("lin-ts-window", train, models=["model9"])
    with pytest.raises(ValueError, match="unknown adaptive bandit 'linucb'"):
        make_adaptive_bandit("linucb", train)


@pytest.mark.parametrize("name", list(ADAPTIVE_BANDITS))
def test_adaptive_bandits_read_only_bandit_feedback_and_repeat_under_a_seed(envs, router, name):
    train, test = envs
    scenario = Scenario("r", (Regression("model2", at=80, replacement="model0", probability=1.0),))

    def actions(feedback):
        policy = adaptive_bandit(name, train, base=router, seed=3, pacing={"reserve": 1.0})
        return [a for _, a, _, _ in run_lane(test, policy, scenario, streams=5, feedback=feedback)]

    bandit = actions("bandit")
    assert bandit == actions("full")  # with every outcome in the info, the same decisions
    assert bandit == actions("bandit")
    assert len(set(bandit)) > 1


def test_evaluation_of_an_adaptive_policy_repeats_exactly(envs, router):
    train, test = envs
    scenario = Scenario("r", (Regression("model2", at=300, replacement="model0"),))

    def run():
        result = evaluate_policy(
            lambda: adaptive_bandit("lin-ts-discounted", train, base=router, seed=1),
            test,
            scenario=scenario,
            budget_ratios=(0.3,),
            seeds=(0,),
            progress=False,
        )
        return result.timeline

    assert run() == run()


def test_a_forgetting_bandit_recovers_after_a_regression_where_the_static_router_does_not(envs, router):
    # The workhorse (model2: skilled, a fifth of the reference's price) answers as the weakest model
    # from t=300 on. The static paced router keeps calling it; the forgetting learner sees its
    # outcomes fall and moves its calls elsewhere.
    train, test = envs
    scenario = Scenario("regression", (Regression("model2", at=300, replacement="model0"),))
    kwargs = {"budget_ratios": (0.3, 0.6), "seeds": (0, 1), "progress": False}
    effects = {}
    for label, make in (
        ("static", lambda: PacedPolicy(router)),
        ("adaptive", lambda: adaptive_bandit("linucb-discounted", train, base=router, gamma=0.98)),
    ):
        result = evaluate_policy(make, test, scenario=scenario, **kwargs)
        baseline = evaluate_policy(make, test, scenario=NO_EVENTS, **kwargs)
        (effects[label],) = event_effects(result, baseline=baseline)
    assert effects["static"]["excess_regret"] > 0.05  # the event has teeth here
    assert effects["adaptive"]["excess_regret"] < effects["static"]["excess_regret"] / 2
    for static, adaptive in zip(
        effects["static"]["regret_after_per_seed"], effects["adaptive"]["regret_after_per_seed"], strict=True
    ):
        assert adaptive < static - 0.03


@pytest.mark.parametrize("kind", ["adaptive-pacing", "lin-ts-discounted"])
def test_batched_evaluation_of_an_adaptive_policy_equals_one_by_one(envs, router, kind):
    # What an adaptive policy learns carries over between episodes: the evaluator must not run a
    # lane's episodes side by side (AdaptivePacedPolicy once inherited PacedPolicy's episodic flag).
    train, test = envs
    scenario = Scenario("cut", (PriceChange("model1", at=100, factor=0.1, lag=None),))
    if kind == "adaptive-pacing":
        make = lambda: AdaptivePacedPolicy(router)  # noqa: E731
    else:
        make = lambda: adaptive_bandit(kind, train, base=router, seed=1)  # noqa: E731
    assert make().episodic is False
    kwargs = {"scenario": scenario, "budget_ratios": (0.1, 0.5), "seeds": (0, 2), "progress": False}
    batched = evaluate_policy(make, test, **kwargs)
    assert batched.to_dict() == evaluate_policy(make, test, vectorized=False, **kwargs).to_dict()


def test_when_no_model_fits_the_reserve_the_fallback_keeps_to_the_models_it_may_call(envs, router):
    # A reserve no model can meet sends every step but the last (no query left to reserve for) to the
    # fallback: the cheapest callable model among those the policy may call (models=), never the
    # cheaper model it was told not to use (model0, affordable on the steps checked). Both paced
    # policies follow the same rule.
    env = MMRRoutingEnv(**envs[1].config.kwargs())
    known = ["model1", "model2", "model3"]
    for policy in (
        PacedPolicy(router, models=known, reserve=50.0),
        AdaptivePacedPolicy(router, models=known, reserve=50.0),
    ):
        obs, info = env.reset(seed=0, options={"budget_ratio": 0.05})
        policy.begin_episode(env)
        done, steps, time = False, 0, 0
        while not done:
            mask = info["action_mask"].astype(bool)
            action = policy.act(obs, info)
            if time < env.episode_length - 1 and mask[0] and mask[1:].any():
                steps += 1
                assert action == 1 + int(np.argmin(np.where(mask[1:], obs["model_costs"][1:], np.inf)))
            obs, reward, done, _, info = env.step(action)
            policy.observe(action, reward, info)
            time += 1
        assert steps > 10, policy.name


@pytest.mark.parametrize("name", sorted(ADAPTIVE_BANDITS))
def test_a_forgetting_learner_builds_only_the_statistics_it_keeps(name, monkeypatch):
    built = []
    monkeypatch.setattr(RidgeStatistics, "__init__", lambda self, *args, **kwargs: built.append(args))
    cls, preset = ADAPTIVE_BANDITS[name]
    learner = cls(3, 5, **preset)
    assert isinstance(learner.stats, ForgettingRidge) and learner.stats.design.shape == (3, 6, 6)
    assert built == []
    assert learner.name == ("D-" if preset["forgetting"] == "discount" else "SW-") + cls.name
    LinUCBBandit(3, 5)  # the hook's default: the plain learner's ridge statistics
    assert built == [(3, 5, 10.0)]
