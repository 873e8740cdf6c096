"""RL that can adapt: recent statistics (exact weighted means), the router-feature wrapper (checkers,
what it shows under a stale price cut, memory across episodes), the policy seeing what training saw,
and a short training run that evaluates along a scenario's timeline."""

from __future__ import annotations

import numpy as np
import pytest
from _tables import make_table
from gymnasium.utils.env_checker import check_env

from agents.rl import SB3Policy
from agents.rl.adaptive import RecentStatistics, RouterFeaturePolicy, RouterFeatures, train_router_agent
from agents.supervised import fit_router
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy
from mmr_gym.scenarios import PriceChange, Regression, Scenario
from mmr_gym.scenarios.analysis import event_effects


@pytest.fixture(scope="module")
def table():
    return make_table(n=600, k=4, seed=5)


@pytest.fixture(scope="module")
def router(table):
    return fit_router("linear", MMRRoutingEnv(table, split="train"))


WORSE = Scenario("worse", (Regression("model2", at=60, replacement="model0", probability=0.8),))


@pytest.fixture(scope="module")
def model(table, router):
    """A short training run (a smoke test of training: not a trained agent)."""
    kwargs = {"dataset": table, "episode_length": 20}
    return train_router_agent(kwargs, router, total_timesteps=256, seed=0, n_envs=2, worlds=[None, WORSE])


def test_recent_statistics_are_weighted_means_of_the_calls():
    rng = np.random.default_rng(0)
    k, memory, n = 3, 8.0, 60
    stats = RecentStatistics(k, memory=memory)
    g = 1.0 - 1.0 / memory
    calls = []
    for _ in range(n):
        model = int(rng.integers(k))
        call = (model, float(rng.random() < 0.5), rng.random(), rng.random() * 2, 0.1 + rng.random())
        calls.append(call)
        stats.update(*call)
    models = np.array([c[0] for c in calls])
    for m in range(k):
        mine = [c for c in calls if c[0] == m]
        weights = g ** np.arange(len(mine))[::-1]  # the newest call weighs 1
        surprise = np.array([c[1] - c[2] for c in mine])
        ratio = np.log(np.array([c[3] / c[4] for c in mine]))
        np.testing.assert_allclose(stats.surprise[m], weights @ surprise / weights.sum(), rtol=1e-10)
        np.testing.assert_allclose(stats.log_ratio[m], weights @ ratio / weights.sum(), rtol=1e-10)
        share = (1 - g) * (g ** np.arange(n)[::-1] @ (models == m))
        np.testing.assert_allclose(stats.share[m], share, rtol=1e-10)
    assert stats.features().shape == (3 * k,)
    stats.reset()
    assert not stats.features().any()


def test_the_wrapper_passes_the_checker_under_a_scenario(table, router):
    scenario = Scenario("cut", (PriceChange("model3", at=60, factor=0.1, lag=None),))
    env = RouterFeatures(MMRRoutingEnv(table, split="train", scenario=scenario, episode_length=20), router)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(env.action_masks(), env.unwrapped.action_masks())


def test_the_wrapper_shows_a_stale_price_cut_and_remembers_it_across_episodes_until_a_seeded_reset(
    table, router
):
    k = table.n_models

    def lane(scenario):
        """Two episodes calling model3 on every query, without a budget; the next observation."""
        env = RouterFeatures(
            MMRRoutingEnv(table, split="train", scenario=scenario, episode_length=20, budget_ratio=None),
            router,
        )
        obs, _ = env.reset(seed=0)
        assert not obs["recent"].any()  # a new deployment: nothing seen yet
        for _ in range(2):
            done = False
            while not done:
                obs, _, done, _, info = env.step(3)
            obs, _ = env.reset()  # no seed: the timeline and the memory continue
        return env, obs

    _, unchanged = lane(Scenario("none", ()))
    env, obs = lane(Scenario("cut", (PriceChange("model3", at=0, factor=0.1, lag=None),)))
    ratio, share = obs["recent"][k : 2 * k], obs["recent"][2 * k :]
    # The same calls of the same queries: realized a tenth of what they were, shown the same.
    assert ratio[3] - unchanged["recent"][k + 3] == pytest.approx(np.log(0.1), abs=1e-5)
    np.testing.assert_array_equal(ratio[:3], 0.0)  # never called
    assert share[3] > 0.5 and not share[:3].any()
    # The router's predictions of the query shown, and the log of its cost predictions.
    perf, cost = router.predict(obs["query"][None])
    np.testing.assert_allclose(obs["router_perf"], np.clip(perf[0], 0, 1), rtol=1e-5)
    expected = np.log(np.maximum(cost[0] / env.unwrapped.c_ref, 1e-3))
    np.testing.assert_allclose(obs["router_log_cost"], expected, rtol=1e-4, atol=1e-5)
    obs, _ = env.reset(seed=1)
    assert not obs["recent"].any()  # a seeded reset restarts the timeline: a new deployment


def test_the_policy_sees_what_the_wrapper_showed_in_training(table, router, model):
    """Acting, the policy builds the same features from the raw observation as the wrapper did."""
    raw = MMRRoutingEnv(table, split="train", scenario=WORSE, episode_length=25)
    wrapped = RouterFeatures(MMRRoutingEnv(table, split="train", scenario=WORSE, episode_length=25), router)
    policy, network = RouterFeaturePolicy(model, router), SB3Policy(model)
    rng = np.random.default_rng(3)
    for episode in range(3):
        seed = 7 if episode == 0 else None
        obs, info = raw.reset(seed=seed)
        shown, _ = wrapped.reset(seed=seed)
        policy.begin_episode(raw)
        done = False
        while not done:
            mine = policy._memory.add(obs)
            assert set(mine) == set(shown)
            for key in shown:
                np.testing.assert_array_equal(mine[key], shown[key], err_msg=key)
            # It acts as the network does on the wrapper's observation, one lane or a batch of them.
            mask = np.asarray(info["action_mask"], dtype=bool)
            expected = int(np.argmax(np.where(mask, network.scores(shown), -np.inf)))
            assert policy.act(obs, info) == expected
            batch = {key: value[None] for key, value in obs.items()}
            assert policy.act_batch(batch, {"action_mask": mask[None]}, np.ones(1, bool))[0] == expected
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, _, done, _, info = raw.step(action)
            shown, _, _, _, _ = wrapped.step(action)
            policy.observe(action, 0.0, info)
    assert policy._memory.stats.weight.sum() > 0


def test_a_trained_agent_acts_along_a_scenario_and_repeats(table, router, model):
    test = MMRRoutingEnv(table, split="test", episode_length=20)

    def run():
        return evaluate_policy(
            lambda: RouterFeaturePolicy(model, router),
            test,
            scenario=WORSE,
            budget_ratios=(0.3,),
            seeds=(0,),
            progress=False,
        )

    first, again = run(), run()
    assert first.name == "RL-MaskablePPO+Linear"
    assert first.timeline == again.timeline
    (effect,) = event_effects(first)
    assert np.isfinite(effect["regret_after"]) and np.isfinite(effect["regret_before"])
