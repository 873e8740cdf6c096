"""The environment contract of DESIGN.md, on small synthetic tables."""

from __future__ import annotations

import dataclasses
import pickle

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table

import mmr_gym  # noqa: F401  (registers the ids)
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.oracle import budgeted_oracle
from mmr_gym.table import RoutingTable


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return make_table(n=300, k=4, seed=1)


def rollout(env, seed, policy="random", steps=None):
    """Run one episode; return the list of (obs, reward, terminated, truncated, info)."""
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, False, False, info)]
    rng = np.random.default_rng(seed)
    done = False
    while not done:
        mask = info["action_mask"]
        action = int(rng.choice(np.flatnonzero(mask))) if policy == "random" else policy
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs, reward, terminated, truncated, info))
        done = terminated or truncated
        if steps is not None and len(out) > steps:
            break
    return out


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b)


# ---------------------------------------------------------------------------- spaces and API
def test_observation_matches_space_and_types(table):
    env = MMRRoutingEnv(table, episode_length=20)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs) == {"query", "budget", "model_costs"}
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (4,)
    obs, reward, terminated, truncated, info = env.step(0)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert env.observation_space.contains(obs)
    for key in ("model", "correct", "cost", "query_id", "dataset", "rewards", "budget_remaining"):
        assert key in info, key


def test_flat_observation_is_the_dict_concatenated(table):
    dict_env = MMRRoutingEnv(table, episode_length=10)
    flat_env = MMRRoutingEnv(table, episode_length=10, observation="flat")
    d, _ = dict_env.reset(seed=3)
    f, _ = flat_env.reset(seed=3)
    assert isinstance(flat_env.observation_space, gym.spaces.Box)
    np.testing.assert_array_equal(f, np.concatenate([d["query"], d["budget"], d["model_costs"]]))
    assert flat_env.observation_space.contains(f)


def test_action_mask_is_a_fresh_array(table):
    env = MMRRoutingEnv(table, episode_length=10)
    _, info = env.reset(seed=0)
    first = info["action_mask"]
    first[:] = 0
    assert env.action_masks().any()
    _, _, _, _, info2 = env.step(int(np.flatnonzero(env.action_masks())[0]))
    assert info2["action_mask"] is not first


def test_step_after_end_raises(table):
    env = MMRRoutingEnv(table, episode_length=2, budget_ratio=None)
    env.reset(seed=0)
    env.step(0)
    _, _, terminated, _, _ = env.step(0)
    assert terminated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


# ---------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("budget_ratio", [0.3, (0.05, 1.0), None])
def test_same_seed_same_trajectory(table, budget_ratio):
    a = rollout(MMRRoutingEnv(table, episode_length=30, budget_ratio=budget_ratio, feedback="full"), seed=7)
    b = rollout(MMRRoutingEnv(table, episode_length=30, budget_ratio=budget_ratio, feedback="full"), seed=7)
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b, strict=True):
        for x, y in zip(step_a, step_b, strict=True):
            assert_same(x, y)


def test_different_seeds_give_different_streams(table):
    env = MMRRoutingEnv(table, episode_length=30)
    env.reset(seed=1)
    s1 = env.episode_query_indices
    env.reset(seed=2)
    assert not np.array_equal(s1, env.episode_query_indices)


def test_stream_is_without_replacement_and_from_the_split(table):
    env = MMRRoutingEnv(table, split="test", episode_length=200)
    env.reset(seed=0)
    stream = env.episode_query_indices
    assert len(set(stream.tolist())) == 200
    assert set(stream.tolist()) <= set(env.ctx.split_indices.tolist())
    assert not set(stream.tolist()) & set(env.ctx.train_indices.tolist())


def test_replay_a_given_stream(table):
    env = MMRRoutingEnv(table, split="all", episode_length=5, budget_ratio=None)
    ids = ["q10", "q3", "q77"]
    env.reset(seed=0, options={"query_ids": ids})
    seen = [env.step(0)[4]["query_id"] for _ in ids]
    assert seen == ids
    with pytest.raises(ValueError, match="q9999"):
        env.reset(options={"query_ids": ["q9999"]})


# ---------------------------------------------------------------------------- budget rule
@pytest.mark.parametrize("cost_observed", [False, True])
@pytest.mark.parametrize("ratio", [0.02, 0.1, 0.5])
def test_spend_never_exceeds_budget_but_by_a_recorded_final_overrun(table, ratio, cost_observed):
    env = MMRRoutingEnv(table, episode_length=50, budget_ratio=ratio, cost_observed=cost_observed)
    for seed in range(15):
        steps = rollout(env, seed)
        spend = 0.0
        for i, (_, _, terminated, _, info) in enumerate(steps[1:], start=1):
            spend += info["cost"]
            if not terminated:
                assert spend <= env.budget * (1 + 1e-9), (seed, i)
        final = steps[-1][4]["episode_metrics"]
        assert final["spend"] == pytest.approx(spend)
        assert final["overrun"] == pytest.approx(max(spend - env.budget, 0.0), abs=1e-9)
        if cost_observed:
            assert final["overrun"] == 0.0  # with true costs in the mask nothing can overshoot


def test_overrun_is_possible_with_estimates_and_ends_the_episode():
    # "big" costs 1 on even rows and 5 on odd rows: its estimate (training mean) is about 3, so a
    # budget of 1.2 * c_ref admits it, and on an odd row the realized cost overshoots.
    n = 40
    cost = np.full((n, 2), 0.01, dtype=np.float32)
    cost[:, 0] = np.where(np.arange(n) % 2, 5.0, 1.0)
    correct = np.zeros((n, 2), dtype=np.float32)
    correct[:, 0] = 1.0
    t = RoutingTable(
        correct=correct,
        cost=cost,
        query_ids=[f"q{i}" for i in range(n)],
        datasets=["d"] * n,
        model_names=("big", "small"),
        meta={"cost_unit": "u"},
    )
    env = MMRRoutingEnv(t, split="all", episode_length=3, budget_ratio=0.4)
    env.reset(seed=0, options={"query_ids": ["q25", "q26", "q27"]})
    assert env.ctx.cost_estimate[25, 0] <= env.budget < 5.0
    assert env.action_masks()[0]
    _, _, terminated, _, info = env.step(0)
    assert terminated
    assert info["episode_metrics"]["overrun"] == pytest.approx(5.0 - env.budget)
    assert info["episode_metrics"]["unanswered"] == 2


def test_episode_ends_when_nothing_is_affordable(table):
    env = MMRRoutingEnv(table, episode_length=50, budget_ratio=0.02, cost_observed=True)
    ends_early = 0
    for seed in range(10):
        steps = rollout(env, seed, policy=3)  # always the dearest model: the budget runs out fast
        metrics = steps[-1][4]["episode_metrics"]
        assert metrics["answered"] + metrics["unanswered"] == 50
        ends_early += metrics["unanswered"] > 0
        assert metrics["accuracy"] == pytest.approx(sum(s[4]["correct"] for s in steps[1:]) / 50)
    assert ends_early == 10


def test_masked_action_falls_back_to_cheapest_affordable(table):
    env = MMRRoutingEnv(table, episode_length=50, budget_ratio=0.02, cost_observed=True)
    env.reset(seed=0)
    replaced = 0
    for _ in range(50):
        mask = env.action_masks()
        if not mask[3]:
            estimates = np.where(
                mask, env.ctx.cost_estimate[env.episode_query_indices[env._episode.t]], np.inf
            )
            _, _, terminated, _, info = env.step(3)
            assert info["action_replaced"] and info["model_index"] == int(np.argmin(estimates))
            replaced += 1
        else:
            _, _, terminated, _, info = env.step(3)
            assert not info["action_replaced"]
        if terminated:
            break
    assert replaced > 0


def test_masked_action_raises_in_error_mode(table):
    env = MMRRoutingEnv(
        table, episode_length=50, budget_ratio=0.02, cost_observed=True, invalid_action="error"
    )
    env.reset(seed=0)
    with pytest.raises(ValueError, match="masked"):
        for _ in range(50):
            env.step(3)


def test_no_budget_reward_is_cost_penalised(table):
    env = MMRRoutingEnv(table, episode_length=10, budget_ratio=None, cost_weight=0.5)
    env.reset(seed=0)
    assert env.action_masks().all()
    _, reward, _, _, info = env.step(2)
    assert reward == pytest.approx(info["correct"] - 0.5 * info["cost"] / env.c_ref)
    assert info["rewards"]["cost_penalty"] == pytest.approx(-0.5 * info["cost"] / env.c_ref)


def test_budget_range_is_drawn_per_episode_and_visible(table):
    env = MMRRoutingEnv(table, episode_length=20, budget_ratio=(0.1, 2.0))
    ratios = set()
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        ratio = env.budget / (20 * env.c_ref)
        assert 0.1 <= ratio <= 2.0
        assert obs["budget"][2] == pytest.approx(ratio, rel=1e-5)  # spend per query / c_ref at start
        ratios.add(round(ratio, 6))
    assert len(ratios) == 5


def test_log_uniform_budget_sampling_spreads_the_draws_over_decades(table):
    def ratios(sampling: str) -> np.ndarray:
        env = MMRRoutingEnv(table, episode_length=20, budget_ratio=(0.02, 2.0), budget_sampling=sampling)
        out = []
        for seed in range(400):
            env.reset(seed=seed)
            out.append(env.budget / (20 * env.c_ref))
        return np.array(out)

    log_uniform, uniform = ratios("log-uniform"), ratios("uniform")
    assert log_uniform.min() >= 0.02 and log_uniform.max() <= 2.0
    # log-uniform: each decade gets half of [0.02, 2]; uniform: P(< 0.2) = 0.18 / 1.98 = 0.09.
    assert 0.43 < np.mean(log_uniform < 0.2) < 0.57
    assert np.mean(uniform < 0.2) < 0.15
    np.testing.assert_array_equal(log_uniform, ratios("log-uniform"))  # seeded


def test_c_ref_is_the_best_single_models_training_mean_cost(table):
    env = MMRRoutingEnv(table, episode_length=20)
    train = table.subset(env.ctx.train_indices)
    best = int(np.argmax(train.model_accuracy()))
    assert env.c_ref == pytest.approx(float(train.cost[:, best].mean()))


# ---------------------------------------------------------------------------- episode metrics
def test_episode_metrics_carry_the_hindsight_oracle(table):
    env = MMRRoutingEnv(table, episode_length=40, budget_ratio=0.2)
    steps = rollout(env, seed=4)
    metrics = steps[-1][4]["episode_metrics"]
    rows = env.episode_query_indices
    oracle = budgeted_oracle(table.correct[rows], table.cost[rows], env.budget, allow_skip=True)
    assert metrics["oracle_accuracy"] == pytest.approx(oracle.accuracy)
    assert metrics["regret"] == pytest.approx(oracle.accuracy - metrics["accuracy"])
    # The oracle may skip queries, so it bounds every policy; only a final overrun could beat it.
    assert metrics["regret"] >= -1.0 / 40 - 1e-12


def test_episode_metrics_work_with_recordepisodestatistics(table):
    env = gym.wrappers.RecordEpisodeStatistics(MMRRoutingEnv(table, episode_length=5, budget_ratio=None))
    steps = rollout(env, seed=0)
    info = steps[-1][4]
    assert "episode" in info and "episode_metrics" in info


# ---------------------------------------------------------------------------- information
def test_bandit_feedback_reveals_only_the_chosen_model(table):
    env = MMRRoutingEnv(table, episode_length=5)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert "outcomes" not in info
    full = MMRRoutingEnv(table, episode_length=5, feedback="full")
    full.reset(seed=0)
    _, _, _, _, info = full.step(0)
    q = int(full.episode_query_indices[0])
    np.testing.assert_array_equal(info["outcomes"]["correct"], table.correct[q])
    np.testing.assert_array_equal(info["outcomes"]["cost"], table.cost[q])


@pytest.mark.parametrize("cost_observed", [False, True])
def test_nothing_of_the_current_outcome_leaks_before_the_action(table, cost_observed):
    """Permute the outcomes of the queries in a stream: what the agent sees before acting is unchanged."""
    env = MMRRoutingEnv(table, split="test", episode_length=20, cost_observed=cost_observed)
    env.reset(seed=5)
    rows = env.episode_query_indices
    rng = np.random.default_rng(0)
    correct = table.correct.copy()
    cost = table.cost.copy()
    for q in rows:
        perm = rng.permutation(table.n_models)
        correct[q] = correct[q, perm]
        if not cost_observed:  # observed costs are visible by design; permute only what is hidden
            cost[q] = cost[q, perm]
    permuted = dataclasses.replace(table, correct=correct, cost=cost)  # validated again
    env_b = MMRRoutingEnv(permuted, split="test", episode_length=20, cost_observed=cost_observed)
    obs_a, info_a = env.reset(seed=5)
    obs_b, info_b = env_b.reset(seed=5)
    for _ in range(20):
        assert_same(obs_a, obs_b)
        assert_same(info_a["action_mask"], info_b["action_mask"])
        # Step both with the cheapest model under the *estimates*, so the budgets may diverge only
        # by realized costs, which the next observation is allowed to reflect.
        action = int(np.argmin(obs_a["model_costs"]))
        obs_a, _, term_a, _, info_a = env.step(action)
        obs_b, _, term_b, _, info_b = env_b.step(action)
        obs_a["budget"] = obs_b["budget"]  # realized spend of the past call, legitimately visible
        if term_a or term_b:
            break


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_the_current_query_outcome_never_moves_what_the_agent_sees_before_acting(table, split):
    """On every split: rewrite the current query's outcomes (every model but the reference one,
    whose training costs define c_ref, the environment's unit) and the observation and mask before
    the action are the same, bit for bit. In-sample cost means would fail this on "train"/"all"."""
    kwargs = {"split": split, "episode_length": 12, "budget_ratio": 0.4}
    env = MMRRoutingEnv(table, **kwargs)
    # A stream that alternates training and other queries where the split holds both.
    in_train = np.isin(env.ctx.split_indices, env.ctx.train_indices)
    parts = [env.ctx.split_indices[in_train][:6], env.ctx.split_indices[~in_train][:6]]
    rows = np.concatenate([p for p in parts if p.size])
    rows = rows[np.argsort(np.arange(rows.size) % 6, kind="stable")][:12]
    options = {"query_ids": table.query_ids[rows].tolist()}
    obs, info = env.reset(seed=3, options=options)
    reference = env.ctx.reference_model
    others = np.array([m for m in range(table.n_models) if m != reference])
    actions = []
    for q in rows.tolist():
        correct, cost = table.correct.copy(), table.cost.copy()
        correct[q, others] = correct[q, others[::-1]]
        cost[q, others] = cost[q, others[::-1]] * 7.0  # realized costs of q, not visible before the call
        rewritten = MMRRoutingEnv(dataclasses.replace(table, correct=correct, cost=cost), **kwargs)
        assert rewritten.ctx.reference_model == reference and rewritten.c_ref == env.c_ref
        obs_b, info_b = rewritten.reset(seed=3, options=options)
        for action in actions:
            obs_b, _, _, _, info_b = rewritten.step(action)
        assert_same(obs, obs_b)
        assert_same(info["action_mask"], info_b["action_mask"])
        actions.append(int(np.argmin(np.where(info["action_mask"], obs["model_costs"], np.inf))))
        obs, _, terminated, _, info = env.step(actions[-1])
        if terminated:
            break
    assert len(actions) > 3  # the test looked at several steps


# ---------------------------------------------------------------------------- modality and projection
def test_text_modality_zeroes_the_image_channel(table):
    mm = MMRRoutingEnv(table, episode_length=10)
    text = MMRRoutingEnv(table, episode_length=10, modality="text")
    image = MMRRoutingEnv(table, episode_length=10, modality="image")
    o_mm, _ = mm.reset(seed=0)
    o_text, _ = text.reset(seed=0)
    o_image, _ = image.reset(seed=0)
    d_text = table.features["text"].shape[1]
    np.testing.assert_array_equal(o_text["query"][:d_text], o_mm["query"][:d_text])
    assert not o_text["query"][d_text:].any()
    assert not o_image["query"][:d_text].any()
    np.testing.assert_array_equal(o_image["query"][d_text:], o_mm["query"][d_text:])


def test_obs_dim_projection_is_fitted_on_the_training_split_only(table):
    env = MMRRoutingEnv(table, episode_length=10, obs_dim=3)
    obs, _ = env.reset(seed=0)
    assert obs["query"].shape == (3,)
    # Changing test-split features must not change the training queries' projections.
    test_rows = np.setdiff1d(np.arange(table.n_queries), env.ctx.train_indices)
    features = {c: v.copy() for c, v in table.features.items()}
    for values in features.values():
        values[test_rows] *= 100.0
    other = RoutingTable(
        correct=table.correct,
        cost=table.cost,
        query_ids=table.query_ids,
        datasets=table.datasets,
        model_names=table.model_names,
        features=features,
        meta=dict(table.meta),
    )
    env_b = MMRRoutingEnv(other, episode_length=10, obs_dim=3)
    np.testing.assert_allclose(
        env.ctx.query_obs[env.ctx.train_indices],
        env_b.ctx.query_obs[env.ctx.train_indices],
        rtol=1e-5,
        atol=1e-5,
    )


def test_table_without_features_observes_the_dataset(table):
    bare = make_table(n=50, features=False)
    env = MMRRoutingEnv(bare, episode_length=5)
    obs, _ = env.reset(seed=0)
    assert obs["query"].shape == (2,) and obs["query"].sum() == 1.0
    with pytest.raises(ValueError, match="modality 'text'"):
        MMRRoutingEnv(bare, modality="text")


# ---------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_ratio": 0.0}, "budget_ratio must be > 0"),
        ({"budget_ratio": -1.0}, "budget_ratio must be > 0"),
        ({"budget_ratio": (0.5, 0.1)}, "low <= high"),
        ({"budget_ratio": 1e-9}, "too small"),
        ({"episode_length": 10_000}, r"episode_length must be an integer in \[1, 60\]"),
        ({"episode_length": 0}, "episode_length"),
        ({"modality": "audio"}, r"allowed: \['mm', 'text', 'image'\]"),
        ({"split": "validation"}, r"allowed: \['train', 'test', 'all'\]"),
        ({"feedback": "partial"}, "allowed"),
        ({"observation": "image"}, "allowed"),
        ({"split_mode": "sideways"}, r"allowed: \['in', 'out', 'ids'\]"),
        ({"split_mode": "out", "test_datasets": ["gamma"]}, "unknown test dataset"),
        ({"obs_dim": 100}, "obs_dim must be in"),
        ({"cost_weight": -1.0}, "cost_weight"),
        ({"budget_sampling": "beta"}, r"allowed: \['uniform', 'log-uniform'\]"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_allowed_values(table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MMRRoutingEnv(table, **{"episode_length": 20, **kwargs})


def test_unknown_dataset_name_lists_bundled_names():
    with pytest.raises(ValueError, match="mmr-sim-default"):
        gym.make("MMRRouting-v0", dataset="no-such-table")


def test_out_split_trains_on_other_datasets(table):
    env = MMRRoutingEnv(table, split="test", split_mode="out", test_datasets=["beta"], episode_length=10)
    assert set(table.datasets[env.ctx.split_indices]) == {"beta"}
    assert set(table.datasets[env.ctx.train_indices]) == {"alpha"}
    env.reset(seed=0)
    env.step(0)


def test_graded_scores_work(table):
    graded = make_table(n=120, graded=True)
    env = MMRRoutingEnv(graded, episode_length=15, budget_ratio=0.3)
    steps = rollout(env, seed=0)
    metrics = steps[-1][4]["episode_metrics"]
    assert 0.0 <= metrics["accuracy"] <= metrics["oracle_accuracy"] + 1.0 / 15


# ---------------------------------------------------------------------------- Python objects
def test_env_pickles_and_keeps_state(table):
    env = MMRRoutingEnv(table, episode_length=10)
    env.reset(seed=0)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    a = env.step(1)
    b = clone.step(1)
    for x, y in zip(a, b, strict=True):
        assert_same(x, y)


def test_render_ansi(table):
    env = MMRRoutingEnv(table, episode_length=10, render_mode="ansi")
    env.reset(seed=0)
    assert "query 1/10" in env.render()


def _trajectory_digest() -> str:
    """SHA-256 of a seeded rollout on the bundled table (observations, rewards, infos)."""
    import hashlib
    import json

    env = gym.make("MMRRouting-v0", episode_length=30, budget_ratio=(0.05, 1.0), feedback="full")
    digest = hashlib.sha256()
    for seed in (0, 1):
        for obs, reward, terminated, truncated, info in rollout(env, seed):
            for key in sorted(obs):
                digest.update(obs[key].tobytes())
            digest.update(json.dumps([reward, terminated, truncated], default=float).encode())
            digest.update(json.dumps(info, sort_keys=True, default=lambda a: np.asarray(a).tolist()).encode())
    return digest.hexdigest()


def test_same_seed_same_trajectory_across_processes():
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    code = "import test_env; print(test_env._trajectory_digest())"
    env_vars = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env_vars, cwd=here, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == _trajectory_digest()


def test_a_local_directory_named_like_a_table_does_not_shadow_it(tmp_path, monkeypatch):
    (tmp_path / "mmr-sim-default").mkdir()
    monkeypatch.chdir(tmp_path)
    env = gym.make("MMRRouting-v0", dataset="mmr-sim-default", episode_length=5).unwrapped
    assert env.ctx.table.meta.get("cost_source") == "simulated"


def test_dataset_kwargs_reach_the_loader(tmp_path):
    table = make_table(n=100)
    path = tmp_path / "table.csv"
    frame = table.to_frame().rename(columns={"query_id": "dataset_idx"})
    frame["question"] = [f"question {i}" for i in range(100)]
    frame.to_csv(path, index=False)
    env = MMRRoutingEnv(str(path), dataset_kwargs={"features": None}, episode_length=5)
    assert env.ctx.channels == ("dataset_onehot",)
    with pytest.raises(ValueError, match="dataset_kwargs"):
        MMRRoutingEnv(table, dataset_kwargs={"features": None})


def test_explicit_split_and_features_through_gym_make(table, tmp_path):
    ids = table.query_ids[::5].tolist()
    env = gym.make("MMRRouting-v0", dataset=table, train_ids=ids, split="test", episode_length=10)
    ctx = env.unwrapped.ctx
    assert sorted(table.query_ids[ctx.train_indices].tolist()) == sorted(ids)
    assert ctx.split_indices.size == table.n_queries - len(ids)
    with pytest.raises(ValueError, match="split_mode='out'"):
        MMRRoutingEnv(table, train_ids=ids, split_mode="out", test_datasets=["a"])
    with pytest.raises(TypeError, match="sequence of names"):
        MMRRoutingEnv(table, test_ids=ids[0])

    # A CSV of one's own gets the encoder asked for; TF-IDF is fitted on the training rows only.
    rng = np.random.default_rng(0)
    words = ["chart", "table", "sum", "angle", "price", "graph", "circle", "total"]
    lines = ["question,a_correct,a_cost,b_correct,b_cost"]
    for i in range(60):
        text = " ".join(rng.choice(words, 4))
        lines.append(f"{text} {i},{int(rng.random() < 0.4)},0.1,{int(rng.random() < 0.8)},1.0")
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = gym.make(
        "MMRRouting-v0", dataset=str(path), features=["tfidf"], episode_length=5, train_fraction=0.5
    )
    assert "text_tfidf" in env.unwrapped.ctx.table.features
    obs, _ = env.reset(seed=0)
    assert obs["query"].shape == env.observation_space["query"].shape and np.isfinite(obs["query"]).all()
    # A part of that context's table (as agents.rl.validation_split carves one) fits TF-IDF again,
    # on its own training rows.
    part = env.unwrapped.ctx.table.subset(env.unwrapped.ctx.train_indices)
    again = MMRRoutingEnv(part, episode_length=5, train_fraction=0.5, budget_ratio=None)
    refit = again.ctx.table.features["text_tfidf"]
    assert not np.array_equal(refit, part.features["text_tfidf"])
