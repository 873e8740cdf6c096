"""agents/rl.py: every algorithm trains, logs routing figures, saves/loads, and evaluates under masks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.logger import Logger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import mmr_gym  # noqa: F401
from agents.rl import (
    ALGOS,
    LOG_FLOOR,
    RoutingMetricsCallback,
    SB3Policy,
    add_log_features,
    load_agent,
    log_feature_space,
    make_vec_env,
    train_agent,
    validation_split,
)
from agents.rl.training import _infer_algo
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy

SMALL = {"episode_length": 20}
# Tiny settings so each algorithm trains in about a second; DQN must start learning within them.
TINY = {
    "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "maskable-ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 64, "buffer_size": 2_000, "target_update_interval": 100},
}
STEPS = 384
ROUTING_TAGS = {
    "routing/accuracy",
    "routing/spend_over_budget",
    "routing/overrun_rate",
    "routing/regret",
    "routing/unanswered_rate",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny trained model per algorithm, saved under its own log directory."""
    models = {}
    for algo in ALGOS:
        log_dir = tmp_path_factory.mktemp(algo)
        model = train_agent(
            algo,
            SMALL,
            total_timesteps=STEPS,
            seed=0,
            log_dir=log_dir,
            n_envs=2,
            hyperparams=TINY[algo],
            eval_freq=128,
            n_eval_episodes=2,
        )
        models[algo] = (model, log_dir)
    return models


def _observations(n: int, seed: int = 0, **kwargs) -> list[tuple[dict, dict]]:
    env = MMRRoutingEnv(**{**SMALL, "budget_ratio": (0.02, 1.5), **kwargs})
    obs, info = env.reset(seed=seed)
    out = []
    rng = np.random.default_rng(seed)
    while len(out) < n:
        out.append((obs, info))
        obs, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        if terminated:
            obs, info = env.reset()
    return out


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_each_algorithm_trains_and_writes_its_files(trained, algo):
    model, log_dir = trained[algo]
    assert isinstance(model, ALGOS[algo])
    assert model.observation_space == log_feature_space(gym.make("MMRRouting-v0", **SMALL).observation_space)
    for name in ("model.zip", "best_model.zip", "evaluations.npz", "agent.json"):
        assert (log_dir / name).exists(), name
    assert list((log_dir / "tb").glob("*/events.out.tfevents.*"))


@pytest.mark.parametrize("algo", ["maskable-ppo", "dqn"])
def test_tensorboard_event_file_holds_the_routing_figures(trained, algo):
    _, log_dir = trained[algo]
    (run,) = (log_dir / "tb").iterdir()
    events = EventAccumulator(str(run)).Reload()
    tags = set(events.Tags()["scalars"])
    assert tags >= ROUTING_TAGS, ROUTING_TAGS - tags
    assert "eval/mean_reward" in tags  # the evaluation callback logs beside them
    accuracy = [e.value for e in events.Scalars("routing/accuracy")]
    assert accuracy and all(0.0 <= a <= 1.0 for a in accuracy)


def test_routing_callback_averages_episode_metrics_between_dumps(trained):
    model, _ = trained["ppo"]
    model.set_logger(Logger(folder=None, output_formats=[]))
    callback = RoutingMetricsCallback()
    callback.init_callback(model)
    base = {"length": 100, "unanswered": 0, "oracle_accuracy": 0.9, "budget_ratio": 0.5, "c_ref": 1.0}
    episodes = [
        {**base, "accuracy": 0.6, "spend": 40.0, "budget": 50.0, "overrun": 0.0, "regret": 0.3},
        {
            **base,
            "accuracy": 0.8,
            "spend": 55.0,
            "budget": 50.0,
            "overrun": 5.0,
            "regret": 0.1,
            "unanswered": 10,
        },
    ]
    callback.update_locals({"infos": [{"episode_metrics": episodes[0]}, {"action_mask": np.ones(10)}]})
    callback.on_step()
    callback.update_locals({"infos": [{}, {"episode_metrics": episodes[1]}]})
    callback.on_step()
    logged = model.logger.name_to_value
    assert logged["routing/accuracy"] == pytest.approx(0.7)
    assert logged["routing/spend_over_budget"] == pytest.approx((0.8 + 1.1) / 2)
    assert logged["routing/overrun_rate"] == pytest.approx(0.5)
    assert logged["routing/overrun_over_budget"] == pytest.approx(0.05)
    assert logged["routing/regret"] == pytest.approx(0.2)
    assert logged["routing/unanswered_rate"] == pytest.approx(0.05)
    assert logged["routing/episodes"] == 2


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_policy_acts_as_sb3_predict_one_by_one_and_batched(trained, algo):
    model, _ = trained[algo]
    policy = SB3Policy(model)
    masked = algo == "maskable-ppo"
    assert policy.log_features  # trained with them by default; the policy adds them itself
    observations = _observations(300)
    for obs, info in observations:
        mask = info["action_mask"].astype(bool)
        model_obs = add_log_features(obs)
        expected, _ = model.predict(
            model_obs, deterministic=True, **({"action_masks": mask} if masked else {})
        )
        assert policy.act(obs, info) == int(expected)
    batch = {key: np.stack([obs[key] for obs, _ in observations]) for key in observations[0][0]}
    masks = np.stack([info["action_mask"] for _, info in observations])
    actions = policy.act_batch(batch, {"action_mask": masks}, np.ones(len(observations), dtype=bool))
    assert actions.tolist() == [policy.act(obs, info) for obs, info in observations]


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_save_load_round_trip_gives_identical_actions(trained, algo, tmp_path):
    model, log_dir = trained[algo]
    # Through the run record (agent.json) and, for a bare file, by inferring the class.
    bare = tmp_path / "bare.zip"
    model.save(bare)
    assert _infer_algo(bare) == algo
    observations = _observations(200, seed=1)
    before = [SB3Policy(model).act(obs, info) for obs, info in observations]
    for path in (log_dir / "model.zip", bare):
        loaded = load_agent(path)
        assert type(loaded) is ALGOS[algo]
        assert [SB3Policy(loaded).act(obs, info) for obs, info in observations] == before


def test_maskable_policy_never_chooses_a_masked_model_under_evaluate_policy(trained):
    model, _ = trained["maskable-ppo"]
    # invalid_action="error": a masked choice would raise instead of silently falling back.
    env = MMRRoutingEnv(**SMALL, split="test", invalid_action="error")
    result = evaluate_policy(
        SB3Policy(model), env, budget_ratios=(0.01, 0.05, 0.5), seeds=(0,), max_queries=300, progress=False
    )
    assert result.name == "RL-MaskablePPO" and len(result.points) == 3


def test_unmasked_policies_rely_on_the_environment_fallback(trained):
    model, _ = trained["ppo"]
    env = MMRRoutingEnv(**SMALL, split="test", budget_ratio=0.01)
    policy = SB3Policy(model)
    assert policy.use_masks is False
    replaced = 0
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        terminated = False
        while not terminated:
            action = policy.act(obs, info)
            masked = not info["action_mask"][action]
            obs, _, terminated, _, info = env.step(action)
            assert info["action_replaced"] == masked
            if masked:
                replaced += 1
                assert info["model_index"] != action
    # At 1% of the reference spend a barely trained agent often asks for unaffordable models.
    assert replaced > 0


def test_budget_conditioned_observation_follows_the_episode_ratio():
    env = MMRRoutingEnv(**SMALL, budget_ratio=(0.02, 1.5))
    # At reset the third budget feature is spend per query / c_ref = the episode's budget ratio.
    ratios = []
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        assert obs["budget"][2] == pytest.approx(env.budget / (SMALL["episode_length"] * env.c_ref), rel=1e-5)
        ratios.append(float(obs["budget"][2]))
    assert len(set(ratios)) == 20 and min(ratios) >= 0.02 and max(ratios) <= 1.5
    low, _ = env.reset(seed=0, options={"budget_ratio": 0.05})
    high, _ = env.reset(seed=0, options={"budget_ratio": 1.0})
    np.testing.assert_array_equal(low["query"], high["query"])  # same stream, only the budget differs
    assert high["budget"][2] == pytest.approx(20 * low["budget"][2])


@pytest.mark.parametrize("backend", ["dummy", "native"])
def test_training_envs_draw_budgets_log_uniformly_and_reproducibly(backend):
    def reset_ratios(seed: int) -> np.ndarray:
        vec = make_vec_env(
            {**SMALL, "budget_ratio": (0.02, 1.5)}, 8, seed, backend=backend, budget_sampling="log-uniform"
        )
        return vec.reset()["budget"][:, 2]

    first = reset_ratios(0)
    np.testing.assert_array_equal(first, reset_ratios(0))
    assert len(set(first.tolist())) == 8 and ((first >= 0.02) & (first <= 1.5)).all()
    vec = make_vec_env(
        {**SMALL, "budget_ratio": (0.02, 1.5)}, 400, 0, backend=backend, budget_sampling="log-uniform"
    )
    draws = vec.reset()["budget"][:, 2]
    # Log-uniform on [0.02, 1.5]: P(ratio < 0.1) = log(5)/log(75) = 0.37 (uniform would give 0.05).
    assert 0.3 < np.mean(draws < 0.1) < 0.45


def test_validation_split_holds_out_training_queries_only():
    fit, val = validation_split(SMALL, fraction=0.25, seed=0)
    fit_env, val_env = MMRRoutingEnv(**fit), MMRRoutingEnv(**val)
    full = MMRRoutingEnv(**SMALL, split="train")
    ids = lambda env: set(env.ctx.table.query_ids[env.ctx.split_indices].tolist())  # noqa: E731
    test_ids = ids(MMRRoutingEnv(**SMALL, split="test"))
    assert ids(fit_env).isdisjoint(ids(val_env))
    assert ids(fit_env) | ids(val_env) == ids(full)
    assert ids(val_env).isdisjoint(test_ids)
    assert abs(len(ids(val_env)) - 0.25 * len(ids(full))) <= 1


def test_training_on_the_test_split_is_refused():
    with pytest.raises(ValueError, match="split='test'"):
        train_agent("ppo", {**SMALL, "split": "test"}, total_timesteps=64)


def test_log_features_extend_the_observation_batched_or_not():
    vec = make_vec_env({**SMALL, "budget_ratio": (0.02, 1.5)}, 3, 0, log_features=True)
    batch = vec.reset()
    assert vec.observation_space.contains({k: v[0] for k, v in batch.items()})
    np.testing.assert_allclose(batch["log_budget"][:, 0], np.log(batch["budget"][:, 2]), rtol=1e-6)
    np.testing.assert_allclose(batch["log_model_costs"], np.log(np.maximum(batch["model_costs"], LOG_FLOOR)))
    single = add_log_features({k: v[1] for k, v in batch.items() if not k.startswith("log_")})
    for key in single:
        np.testing.assert_array_equal(single[key], batch[key][1])
    # Episode ends: the terminal observation SB3 keeps in the info has the same keys.
    for _ in range(SMALL["episode_length"]):
        _, _, dones, infos = vec.step(np.zeros(3, dtype=np.int64))
    assert dones.all() and all("log_budget" in info["terminal_observation"] for info in infos)
