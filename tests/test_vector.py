"""The native vectorized environment: step for step what N single environments do, loop-free."""

from __future__ import annotations

import copy
import itertools

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table
from scipy import stats

import mmr_gym  # noqa: F401  (registers the ids)
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.registration import ENV_IDS
from mmr_gym.streams import draw_distinct_rows
from mmr_gym.table import RoutingTable
from mmr_gym.vector import MMRRoutingVectorEnv

N = 4
K = 4
NEXT_STEP, SAME_STEP, DISABLED = (
    gym.vector.AutoresetMode.NEXT_STEP,
    gym.vector.AutoresetMode.SAME_STEP,
    gym.vector.AutoresetMode.DISABLED,
)


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return make_table(n=300, k=K, seed=1)


def assert_same(a, b, where=""):
    """Equal values, and equal types/dtypes/shapes: the batched infos must be SyncVectorEnv's exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert a.keys() == b.keys(), (where, sorted(set(a) ^ set(b)))
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), (where, type(b))
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (where, a.dtype, b.dtype, a.shape, b.shape)
        if a.dtype == object:  # strings, None, or (final_obs) whole observations
            for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
                assert_same(x, y, f"{where}[{i}]")
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


def random_actions(rng: np.random.Generator, mask: np.ndarray, p_masked: float = 0.0) -> np.ndarray:
    """An affordable model per sub-environment; with probability ``p_masked`` any model (maybe masked)."""
    keys = rng.random(mask.shape) * mask
    actions = keys.argmax(axis=1)
    wild = rng.random(mask.shape[0]) < p_masked
    actions[wild] = rng.integers(0, mask.shape[1], wild.sum())
    return actions


def run_both(
    table, steps, seed=0, p_masked=0.2, options=None, autoreset_mode=NEXT_STEP, num_envs=N, **kwargs
):
    """Step a SyncVectorEnv of single envs and the native env alike; assert equal; return the infos.

    With ``autoreset_mode=DISABLED`` the sub-environments that terminated are reset after each
    step with ``options={"reset_mask": ...}`` (what TorchRL does), and those infos are compared too.
    """
    reference = gym.vector.SyncVectorEnv(
        [lambda: MMRRoutingEnv(table, **kwargs) for _ in range(num_envs)], autoreset_mode=autoreset_mode
    )
    native = MMRRoutingVectorEnv(
        table, num_envs=num_envs, stream_sampling="per-env", autoreset_mode=autoreset_mode, **kwargs
    )
    ref_out = reference.reset(seed=seed, options=options)
    out = native.reset(seed=seed, options=options)
    for x, y, name in zip(ref_out, out, ("obs", "info"), strict=True):
        assert_same(x, y, f"reset/{name}")
    rng = np.random.default_rng(seed)
    infos = []
    for t in range(steps):
        actions = random_actions(rng, ref_out[-1]["action_mask"].astype(bool), p_masked)
        ref_out = reference.step(actions)
        out = native.step(actions)
        for x, y, name in zip(
            ref_out, out, ("obs", "reward", "terminated", "truncated", "info"), strict=True
        ):
            assert_same(x, y, f"step {t}/{name}")
        assert native.observation_space.contains(out[0])
        np.testing.assert_array_equal(native.action_masks(), out[4]["action_mask"].astype(bool))
        infos.append(out[4])
        if autoreset_mode == DISABLED and out[2].any():
            reset_mask = out[2].copy()
            ref_reset = reference.reset(options={"reset_mask": reset_mask.copy()})
            reset = native.reset(options={"reset_mask": reset_mask})
            for x, y, name in zip(ref_reset, reset, ("obs", "info"), strict=True):
                assert_same(x, y, f"reset after step {t}/{name}")
            ref_out = (ref_reset[0], *ref_out[1:4], {**ref_out[4], "action_mask": native.action_masks()})
    return infos


def episode_metrics(infos):
    """Every finished episode's metrics, as dicts (in ``final_info`` with same-step autoreset)."""
    found = []
    for info in infos:
        info = info.get("final_info", info)
        if "episode_metrics" in info:
            metrics = info["episode_metrics"]
            for i in np.flatnonzero(info["_episode_metrics"]):
                found.append({key: metrics[key][i] for key in metrics if not key.startswith("_")})
    return found


# ---------------------------------------------------------------------------- step-for-step equivalence
@pytest.mark.parametrize("observation", ["dict", "flat"])
@pytest.mark.parametrize("budget_ratio", [0.3, (0.05, 1.0), None])
def test_matches_single_envs_step_for_step(table, observation, budget_ratio):
    infos = run_both(
        table,
        steps=70,
        observation=observation,
        budget_ratio=budget_ratio,
        feedback="full",
        episode_length=12,
        cost_weight=0.25,
    )
    finished = episode_metrics(infos)
    assert len(finished) >= 2 * N  # several episodes each, hence auto-resets
    replaced = any(info["action_replaced"].any() for info in infos if "action_replaced" in info)
    assert replaced == (
        budget_ratio is not None
    )  # masked actions fell back (nothing is masked without budget)


@pytest.mark.parametrize("cost_observed", [False, True])
def test_matches_single_envs_when_budgets_run_out(table, cost_observed):
    infos = run_both(
        table,
        steps=120,
        seed=3,
        p_masked=0.5,
        budget_ratio=0.05,
        episode_length=25,
        cost_observed=cost_observed,
    )
    finished = episode_metrics(infos)
    assert any(m["unanswered"] > 0 for m in finished)  # ended because nothing was affordable
    if not cost_observed:
        assert any(m["overrun"] > 0 for m in finished)  # a realized cost overshot its estimate


def test_masks_of_many_envs_match_single_envs_however_many_rows_are_short(table):
    """The step finds the masks three ways: every episode affords every model (all True, and no
    action can be masked), a few episodes are short (only their rows compared), many are (every
    row). Each way matches the single environments, and each is taken in some step here."""
    n, ways = 64, set()
    for budget_ratio in (0.05, 0.3, 1.0):
        infos = run_both(
            table, steps=40, seed=5, p_masked=0.3, num_envs=n, budget_ratio=budget_ratio, episode_length=20
        )
        for info in infos:
            short = np.count_nonzero(~info["action_mask"].astype(bool).all(axis=1))
            ways.add("none" if short == 0 else "few" if short <= n // 8 else "many")
    assert ways == {"none", "few", "many"}


@pytest.mark.parametrize("budget_ratio", [None, 0.5])
def test_all_affordable_holds_only_while_every_mask_entry_is_true(table, budget_ratio):
    # The shortcut that skips judging the actions must never outlive a mask with a False entry
    # (without a budget only the ends of the streams make one).
    env = MMRRoutingVectorEnv(table, num_envs=64, budget_ratio=budget_ratio, episode_length=15)
    _, info = env.reset(seed=2)
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(100):
        episodes = env._episodes
        seen.add(episodes.all_affordable)
        assert not episodes.all_affordable or episodes.mask.all()
        _, _, _, _, info = env.step(random_actions(rng, info["action_mask"].astype(bool)))
    assert seen == {True, False}


def test_matches_single_envs_with_log_uniform_budgets(table):
    infos = run_both(
        table, steps=40, budget_ratio=(0.03, 1.2), budget_sampling="log-uniform", episode_length=7
    )
    ratios = [m["budget_ratio"] for m in episode_metrics(infos)]
    assert len(set(ratios)) == len(ratios) >= 2 * N and min(ratios) >= 0.03 and max(ratios) <= 1.2


def test_matches_single_envs_on_graded_scores():
    graded = make_table(n=150, k=3, graded=True, seed=2)
    infos = run_both(graded, steps=30, budget_ratio=0.3, episode_length=8)
    assert episode_metrics(infos)


def test_matches_single_envs_with_reset_options(table):
    # A replayed stream (shorter than episode_length) and a budget for the first episode only.
    ids = ["q10", "q3", "q77", "q150", "q42"]
    run_both(table, steps=25, options={"query_ids": ids, "budget_ratio": 0.4}, split="all", episode_length=8)
    run_both(table, steps=25, options={"budget_ratio": (0.2, 0.9)}, episode_length=8)
    # A budget for the first episodes only: budgeted and unbudgeted sub-environments side by side.
    infos = run_both(table, steps=25, options={"budget_ratio": 0.3}, budget_ratio=None, episode_length=5)
    assert {m["budget"] is None for m in episode_metrics(infos)} == {True, False}


@pytest.mark.parametrize("autoreset_mode", [SAME_STEP, DISABLED])
@pytest.mark.parametrize("observation", ["dict", "flat"])
def test_matches_single_envs_in_every_autoreset_mode(table, autoreset_mode, observation):
    kwargs = dict(observation=observation, feedback="full", cost_weight=0.25, p_masked=0.3)
    infos = run_both(table, steps=60, episode_length=9, autoreset_mode=autoreset_mode, **kwargs)
    assert len(episode_metrics(infos)) >= 2 * N  # several episodes each
    # Budgets that run out: episodes of different lengths, so some sub-environments step while
    # others reset, and unbudgeted episodes (budget None) beside budgeted ones.
    infos = run_both(
        table, steps=60, seed=3, episode_length=25, budget_ratio=0.05, autoreset_mode=autoreset_mode, **kwargs
    )
    assert any(m["unanswered"] > 0 for m in episode_metrics(infos))
    options = {"budget_ratio": 0.3}
    infos = run_both(
        table, steps=30, options=options, budget_ratio=None, episode_length=5, autoreset_mode=autoreset_mode
    )
    assert {m["budget"] is None for m in episode_metrics(infos)} == {True, False}
    if autoreset_mode == SAME_STEP:
        ended = [info for info in infos if "final_info" in info]
        assert ended and all("episode_metrics" not in info for info in infos)  # only in final_info


def test_reset_mask_in_next_step_mode_and_disabled_steps(table):
    # reset_mask works in every mode, as in SyncVectorEnv: here two sub-environments restart mid-episode.
    reference = gym.vector.SyncVectorEnv([lambda: MMRRoutingEnv(table, episode_length=6) for _ in range(N)])
    native = MMRRoutingVectorEnv(table, num_envs=N, stream_sampling="per-env", episode_length=6)
    for env in (reference, native):
        env.reset(seed=4)
        env.step(np.zeros(N, dtype=np.int64))
    reset_mask = np.array([True, False, True, False])
    seeds = [11, 12, 13, 14]  # only the sub-environments reset take theirs
    for x, y in zip(
        reference.reset(seed=seeds, options={"reset_mask": reset_mask.copy(), "budget_ratio": 0.9}),
        native.reset(seed=seeds, options={"reset_mask": reset_mask, "budget_ratio": 0.9}),
        strict=True,
    ):
        assert_same(x, y, "partial reset")
    for t in range(12):
        for x, y in zip(
            reference.step(np.ones(N, dtype=np.int64)), native.step(np.ones(N, dtype=np.int64)), strict=True
        ):
            assert_same(x, y, f"step {t}")
    # DISABLED: stepping a terminated sub-environment is an error that names it and changes nothing.
    env = MMRRoutingVectorEnv(table, num_envs=2, episode_length=2, autoreset_mode="Disabled")
    assert env.metadata["autoreset_mode"] == env.autoreset_mode == DISABLED
    env.reset(seed=0)
    env.step(np.zeros(2, dtype=np.int64))
    _, _, terminated, _, _ = env.step(np.zeros(2, dtype=np.int64))
    assert terminated.all()
    before = (env.budget_remaining, env.action_masks(), env.episode_query_indices)
    with pytest.raises(RuntimeError, match=r"sub-environments \[0, 1\] terminated.*reset_mask"):
        env.step(np.zeros(2, dtype=np.int64))
    after = (env.budget_remaining, env.action_masks(), env.episode_query_indices)
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x, y)
    env.reset(options={"reset_mask": np.array([False, True])})
    with pytest.raises(RuntimeError, match=r"sub-environments \[0\] terminated"):
        env.step(np.zeros(2, dtype=np.int64))


def test_torchrl_takes_the_native_env_with_autoreset_disabled(table):
    torchrl_gym = pytest.importorskip("torchrl.envs.libs.gym", reason="TorchRL is in the dev extra")
    from torchrl.envs.utils import check_env_specs

    venv = MMRRoutingVectorEnv(table, num_envs=N, episode_length=6, budget_ratio=0.2, autoreset_mode=DISABLED)
    env = torchrl_gym.GymWrapper(venv)
    check_env_specs(env)
    env.set_seed(0)
    rollout = env.rollout(60, break_when_any_done=False)  # random actions; masked ones fall back
    assert tuple(rollout.batch_size) == (N, 60)
    done = rollout["next", "done"].squeeze(-1).numpy()[:, :-1]
    budget, next_budget = rollout["budget"].numpy(), rollout["next", "budget"].numpy()
    # Budgets end episodes at different steps: TorchRL reset each finished sub-environment alone
    # (through reset_mask; stepping it unreset would raise) and the others went on.
    assert (done.any(axis=0) & ~done.all(axis=0)).any()
    np.testing.assert_array_equal(budget[:, 1:][~done], next_budget[:, :-1][~done])
    np.testing.assert_array_equal(budget[:, 1:][done][:, :2], 1.0)  # a fresh budget, all steps left
    # Every step answers one query of the episode the sub-environment is in: the remaining-steps
    # fraction falls by 1/6, also in the sub-environments that were not reset.
    steps_left = np.rint(budget[..., 1] * 6) - np.rint(next_budget[..., 1] * 6)
    np.testing.assert_array_equal(steps_left, 1.0)


def test_bad_reset_masks_and_modes_raise(table):
    env = MMRRoutingVectorEnv(table, num_envs=2, episode_length=4)
    with pytest.raises(RuntimeError, match="before a first reset"):
        env.reset(options={"reset_mask": np.array([True, False])})
    env.reset(seed=0)
    for mask, error, message in [
        ([True, False], TypeError, "numpy array"),
        (np.array([True]), ValueError, r"shape \(2,\)"),
        (np.array([1, 0]), TypeError, "dtype bool"),
        (np.array([False, False]), ValueError, "at least one"),
    ]:
        with pytest.raises(error, match=message):
            env.reset(options={"reset_mask": mask})
    with pytest.raises(ValueError, match="unknown autoreset_mode 'later'"):
        MMRRoutingVectorEnv(table, num_envs=2, autoreset_mode="later")


def test_replayed_stream_from_a_shuffled_split(table):
    # On the train split the split's positions (the lookups' slots) are not table rows.
    rows = MMRRoutingEnv(table, episode_length=6).ctx.split_indices
    assert not np.array_equal(rows, np.arange(rows.size))
    ids = table.query_ids[rows[[7, 0, 31, 12]]].tolist()
    run_both(
        table, steps=20, options={"query_ids": ids, "budget_ratio": 0.4}, episode_length=6, feedback="full"
    )
    env = MMRRoutingVectorEnv(table, num_envs=N, episode_length=6)
    env.reset(seed=0, options={"query_ids": ids})
    assert all(table.query_ids[s].tolist() == ids for s in env.episode_query_indices)


def test_replayed_stream_longer_than_episode_length(table):
    ids = [f"q{i}" for i in range(0, 60, 3)]
    run_both(table, steps=30, options={"query_ids": ids}, split="all", episode_length=5, budget_ratio=None)


def test_bandit_feedback_has_no_outcomes(table):
    env = MMRRoutingVectorEnv(table, num_envs=N, episode_length=5)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(N, dtype=np.int64))
    assert "outcomes" not in info and "model" in info


# ---------------------------------------------------------------------------- masked actions
def test_masked_action_raises_in_error_mode_before_any_change(table):
    kwargs = dict(episode_length=30, budget_ratio=0.02, cost_observed=True, invalid_action="error")
    env = MMRRoutingVectorEnv(table, num_envs=N, **kwargs)
    twin = MMRRoutingVectorEnv(table, num_envs=N, **kwargs)
    _, info = env.reset(seed=0)
    twin.reset(seed=0)
    for _ in range(30):
        mask = info["action_mask"].astype(bool)
        if not mask[:, K - 1].all():
            break
        _, _, _, _, info = env.step(np.full(N, K - 1))
        twin.step(np.full(N, K - 1))
    bad = int(np.flatnonzero(~mask[:, K - 1])[0])
    with pytest.raises(ValueError, match=f"sub-environment {bad}: action {K - 1} .* is masked"):
        env.step(np.full(N, K - 1))
    # Nothing moved: the next valid step is the twin's.
    cheapest = np.argmax(mask, axis=1)
    for x, y in zip(env.step(cheapest), twin.step(cheapest), strict=True):
        assert_same(x, y)


# ---------------------------------------------------------------------------- determinism and seeding
def test_same_seed_same_rollout_and_seed_lists(table):
    def rollout(seed):
        env = MMRRoutingVectorEnv(table, num_envs=N, episode_length=10, budget_ratio=(0.1, 1.0))
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(25):
            obs, reward, terminated, _, info = env.step(random_actions(rng, info["action_mask"].astype(bool)))
            out += [obs, reward, terminated]
        return out

    for x, y in zip(rollout(5), rollout(5), strict=True):
        assert_same(x, y)
    for x, y in zip(rollout(5), rollout([5, 6, 7, 8]), strict=True):
        assert_same(x, y)
    assert not np.array_equal(rollout(5)[0]["query"], rollout(6)[0]["query"])


def test_reset_without_seed_continues_each_generator(table):
    env = MMRRoutingVectorEnv(table, num_envs=N, episode_length=10, stream_sampling="per-env")
    singles = [MMRRoutingEnv(table, episode_length=10) for _ in range(N)]
    env.reset(seed=[10, None, 12, 13])
    assert env.np_random_seeds[0] == 10 and env.np_random_seeds[1] is not None
    for i in (0, 2):
        singles[i].reset(seed=env.np_random_seeds[i])
    obs, _ = env.reset()
    for i in (0, 2):
        single_obs, _ = singles[i].reset()
        np.testing.assert_array_equal(obs["query"][i], single_obs["query"])


def test_reset_finished_draws_what_the_next_step_would(table):
    a = MMRRoutingVectorEnv(table, num_envs=N, episode_length=3, budget_ratio=(0.2, 1.0))
    b = MMRRoutingVectorEnv(table, num_envs=N, episode_length=3, budget_ratio=(0.2, 1.0))
    a.reset(seed=1)
    b.reset(seed=1)
    actions = np.zeros(N, dtype=np.int64)
    for _ in range(3):
        a.step(actions)
        _, _, terminated, _, _ = b.step(actions)
    assert terminated.all()
    envs, first_obs, info = a.reset_finished()
    next_obs, reward, _, _, next_info = b.step(actions)
    np.testing.assert_array_equal(envs, np.arange(N))
    assert_same(first_obs, next_obs)
    assert_same(info["action_mask"], next_info["action_mask"])
    assert not reward.any()


# ---------------------------------------------------------------------------- shared table, fresh arrays
def test_context_arrays_are_shared_not_copied(table):
    single = MMRRoutingEnv(table, episode_length=10)
    vector = MMRRoutingVectorEnv(table, num_envs=64, episode_length=10)
    other = gym.make_vec("MMRRouting-v0", num_envs=8, dataset=table, episode_length=10)
    assert isinstance(other.unwrapped, MMRRoutingVectorEnv)
    for env in (vector, other.unwrapped):
        assert env.ctx is single.ctx
        for name in ("query_obs", "model_costs_obs", "cost_estimate", "split_indices"):
            assert np.shares_memory(getattr(env.ctx, name), getattr(single.ctx, name)), name
        assert np.shares_memory(env.ctx.table.correct, table.correct)
        assert np.shares_memory(env.ctx.table.cost, table.cost)


def test_returned_arrays_are_fresh(table):
    env = MMRRoutingVectorEnv(table, num_envs=N, episode_length=10, observation="flat")
    obs, info = env.reset(seed=0)
    obs[:] = -1.0
    info["action_mask"][:] = 0
    assert env.action_masks().any(axis=1).all()
    obs2, reward, terminated, _, info2 = env.step(np.argmax(env.action_masks(), axis=1))
    assert not np.shares_memory(obs, obs2) and env.observation_space.contains(obs2)
    terminated[:] = True
    reward[:] = 5.0
    _, _, terminated3, _, info3 = env.step(np.argmax(env.action_masks(), axis=1))
    assert "model" in info3 and info3["_model"].all()  # no sub-environment was reset
    assert not terminated3.any()
    with pytest.raises(ValueError):
        info3["_model"][0] = False  # masks are shared between keys, hence read-only


@pytest.mark.parametrize("keys", [("episode_metrics",), ("model", "rewards", "outcomes"), ()])
def test_info_keys_build_only_the_requested_keys(table, keys):
    kwargs = dict(num_envs=N, episode_length=4, budget_ratio=0.2, feedback="full")
    full = MMRRoutingVectorEnv(table, **kwargs)
    lean = MMRRoutingVectorEnv(table, info_keys=keys, **kwargs)
    assert lean.info_keys == tuple(
        k for k in ("model", "rewards", "outcomes", "episode_metrics") if k in keys
    )
    for x, y in zip(full.reset(seed=3), lean.reset(seed=3), strict=True):
        assert_same(x, y, "reset")
    rng = np.random.default_rng(3)
    ended = 0
    for t in range(14):
        actions = random_actions(rng, full.action_masks(), p_masked=0.3)
        *out, info = full.step(actions)
        *lean_out, lean_info = lean.step(actions)
        for x, y in zip(out, lean_out, strict=True):
            assert_same(x, y, f"step {t}")  # obs, rewards, flags: unchanged
        expected = {key: info[key] for key in ("action_mask", *keys) if key in info}
        expected.update({"_" + key: info["_" + key] for key in list(expected)})
        assert_same(expected, lean_info, f"step {t}/info")
        ended += "episode_metrics" in info
    assert ended >= 2  # the comparison covered episode ends and autoresets


def test_info_keys_are_checked(table):
    with pytest.raises(ValueError, match=r"unknown info_keys \['episode'\]; allowed: \['model'"):
        MMRRoutingVectorEnv(table, num_envs=2, info_keys=("episode", "model"))
    with pytest.raises(ValueError, match="sequence of key names"):
        MMRRoutingVectorEnv(table, num_envs=2, info_keys="episode_metrics")


# ---------------------------------------------------------------------------- registration and wrappers
@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_make_vec_uses_the_native_env(table, env_id):
    env = gym.make_vec(
        env_id, num_envs=3, vectorization_mode="vector_entry_point", dataset=table, episode_length=6
    )
    assert isinstance(env, MMRRoutingVectorEnv)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    single = gym.make(env_id, dataset=table, episode_length=6)
    assert env.single_observation_space == single.observation_space
    assert env.observation_space == gym.vector.utils.batch_space(single.observation_space, 3)
    assert env.action_space == gym.vector.utils.batch_space(single.action_space, 3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.action_space.seed(0)
    for _ in range(10):
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    env.close()


def test_gymnasium_vector_wrappers(table):
    env = MMRRoutingVectorEnv(table, num_envs=N, episode_length=5, budget_ratio=None)
    env = gym.wrappers.vector.DictInfoToList(gym.wrappers.vector.RecordEpisodeStatistics(env))
    env.reset(seed=0)
    episodes = []
    for _ in range(12):
        _, _, _, _, infos = env.step(np.zeros(N, dtype=np.int64))
        assert isinstance(infos, list) and len(infos) == N
        episodes += [info for info in infos if "episode" in info]
    assert len(episodes) == 2 * N
    assert all(info["episode"]["l"] == 5 and "episode_metrics" in info for info in episodes)


# ---------------------------------------------------------------------------- errors and rendering
def test_bad_calls_raise(table):
    env = MMRRoutingVectorEnv(table, num_envs=N, episode_length=5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(N, dtype=np.int64))
    env.reset(seed=0)
    for actions, message in [
        (np.zeros(N + 1, dtype=np.int64), "shape"),
        (np.array([0, 1, 2, K]), rf"\[{K}\]"),
        (np.array([0, -1, 0, 0]), r"\[-1\]"),
        (np.zeros(N), "dtype float64"),
    ]:
        with pytest.raises(ValueError, match=message):
            env.step(actions)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"budget": 1.0})
    with pytest.raises(ValueError, match="4 seeds"):
        env.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="num_envs"):
        MMRRoutingVectorEnv(table, num_envs=0)
    with pytest.raises(ValueError, match="budget_ratio must be > 0"):
        MMRRoutingVectorEnv(table, num_envs=2, episode_length=5, budget_ratio=-1.0)


def test_render_ansi(table):
    env = MMRRoutingVectorEnv(table, num_envs=2, episode_length=10, render_mode="ansi")
    env.reset(seed=0)
    single = MMRRoutingEnv(table, episode_length=10, render_mode="ansi")
    single.reset(seed=0)
    lines = env.render()
    assert len(lines) == 2 and lines[0] == single.render()


def test_matches_single_envs_on_the_bundled_table():
    try:
        MMRRoutingEnv(episode_length=40)
    except (FileNotFoundError, ValueError) as error:  # the bundled table is generated separately
        pytest.skip(f"bundled default table unavailable: {error}")
    reference = gym.vector.SyncVectorEnv([lambda: MMRRoutingEnv(episode_length=40) for _ in range(N)])
    native = gym.make_vec("MMRRouting-v0", num_envs=N, episode_length=40, stream_sampling="per-env")
    ref_out, out = reference.reset(seed=11), native.reset(seed=11)
    rng = np.random.default_rng(0)
    for _ in range(100):
        for x, y in zip(ref_out, out, strict=True):
            assert_same(x, y)
        actions = random_actions(rng, out[-1]["action_mask"].astype(bool), p_masked=0.1)
        ref_out, out = reference.step(actions), native.step(actions)


# ---------------------------------------------------------------------------- stream_sampling="batched"
def test_draw_distinct_rows_structure():
    for n, length, count in [(2074, 100, 64), (50, 12, 40), (40, 10, 1), (12, 5, 30), (9, 9, 4), (3, 1, 5)]:
        rows = draw_distinct_rows(np.random.default_rng(0), n, length, count)
        assert rows.shape == (count, length) and rows.dtype.kind == "i"
        assert rows.min() >= 0 and rows.max() < n
        ordered = np.sort(rows, axis=1)
        assert not (ordered[:, 1:] == ordered[:, :-1]).any(), (n, length)  # no repeats within a row
        again = draw_distinct_rows(np.random.default_rng(0), n, length, count)
        np.testing.assert_array_equal(rows, again)  # reproducible under a seed
        if length < n:
            other = draw_distinct_rows(np.random.default_rng(1), n, length, count)
            assert not np.array_equal(rows, other)
    assert draw_distinct_rows(np.random.default_rng(0), 10, 2, 0).shape == (0, 2)
    with pytest.raises(ValueError, match="length"):
        draw_distinct_rows(np.random.default_rng(0), 5, 6, 1)


@pytest.mark.parametrize(
    "n, length, count, rounds",
    [(8, 2, 6000, 1), (6, 3, 6000, 1), (5, 1, 2000, 1), (9, 2, 1, 3000)],
    ids=["rejection", "permutation", "single", "one-row-calls"],
)
def test_draw_distinct_rows_is_uniform_over_ordered_tuples(n, length, count, rounds):
    """Every ordered tuple of distinct values equally likely (chi-square; fails for a biased sampler)."""
    rng = np.random.default_rng(12345)
    rows = np.concatenate([draw_distinct_rows(rng, n, length, count) for _ in range(rounds)])
    code = (rows * n ** np.arange(length)).sum(axis=1)
    counts = np.bincount(code, minlength=n**length)
    possible = [sum(int(v) * n**j for j, v in enumerate(t)) for t in itertools.permutations(range(n), length)]
    assert counts.sum() == counts[possible].sum()  # only tuples of distinct values occur
    assert stats.chisquare(counts[possible]).pvalue > 1e-4


def test_draw_distinct_rows_positions_are_uniform_with_many_repeats():
    """Long rows of a small range (many redraw rounds): each position's value uniform, rows independent."""
    rng = np.random.default_rng(7)
    n, length = 40, 10  # 4 * length == n: the rejection regime with many repeats to redraw
    rows = np.concatenate([draw_distinct_rows(rng, n, length, 500) for _ in range(20)])
    for position in range(length):
        counts = np.bincount(rows[:, position], minlength=n)
        assert stats.chisquare(counts).pvalue > 1e-4, position
    # Consecutive rows are independent: (first value of row r, first value of row r + 1) uniform.
    pairs = np.bincount(rows[:-1, 0] // 10 * 4 + rows[1:, 0] // 10, minlength=16)
    assert stats.chisquare(pairs).pvalue > 1e-4


def streams_of_batched_env(table, seed, episodes, **kwargs):
    """Streams (table rows) of the episodes a batched vector env starts, in order of their start."""
    env = MMRRoutingVectorEnv(table, num_envs=N, stream_sampling="batched", budget_ratio=None, **kwargs)
    env.reset(seed=seed)
    streams = list(env.episode_query_indices)
    actions = np.zeros(N, dtype=np.int64)
    done = np.zeros(N, dtype=bool)
    while len(streams) < episodes:
        _, _, terminated, _, _ = env.step(actions)
        current = env.episode_query_indices
        streams += [current[i] for i in np.flatnonzero(done)]
        done = terminated
    return env, streams[:episodes]


def test_batched_streams_are_uniform_draws_without_replacement(table):
    env, streams = streams_of_batched_env(table, 3, 600, episode_length=10)
    split = env.ctx.split_indices
    for stream in streams:
        assert stream.size == 10 and np.unique(stream).size == 10
        assert np.isin(stream, split).all()
    # Marginal uniformity over the split, and over the first position alone.
    position = np.searchsorted(np.sort(split), np.concatenate(streams))
    assert stats.chisquare(np.bincount(position, minlength=split.size)).pvalue > 1e-4
    first = np.searchsorted(np.sort(split), [s[0] for s in streams])
    assert stats.chisquare(np.bincount(first, minlength=split.size)).pvalue > 1e-4
    # Reproducible under a seed; another seed gives other streams.
    _, same = streams_of_batched_env(table, 3, 600, episode_length=10)
    _, other = streams_of_batched_env(table, 4, 600, episode_length=10)
    assert all(np.array_equal(a, b) for a, b in zip(streams, same, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(streams, other, strict=True))


def sub_env_view(batched: dict, i: int) -> dict:
    """What sub-environment i reports in a batched (SyncVectorEnv-style) info dict."""
    out = {}
    for key, value in batched.items():
        if key.startswith("_") or not batched["_" + key][i]:
            continue
        out[key] = sub_env_view(value, i) if isinstance(value, dict) else value[i]
    return out


def obs_of(obs, i: int) -> dict:
    """Sub-environment i's observation, as a dict (``{"flat": row}`` for flat observations)."""
    return {key: value[i] for key, value in obs.items()} if isinstance(obs, dict) else {"flat": obs[i]}


def assert_matches_single(batched, single, where):
    if isinstance(single, dict):
        assert isinstance(batched, dict) and batched.keys() == single.keys(), (where, batched, single)
        for key in single:
            assert_matches_single(batched[key], single[key], f"{where}/{key}")
    elif isinstance(single, np.ndarray):
        assert batched.dtype == single.dtype, where
        np.testing.assert_array_equal(batched, single, err_msg=where)
    elif single is None:
        assert batched is None, where
    else:
        assert batched == single, (where, batched, single)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_ratio": (0.05, 1.0), "feedback": "full"},
        {"budget_ratio": 0.3, "observation": "flat"},
        {"budget_ratio": 0.1, "cost_weight": 0.25},
        {"budget_ratio": None, "observation": "flat", "feedback": "full"},
        {"budget_ratio": (0.05, 1.0), "budget_sampling": "log-uniform"},
    ],
    ids=["range-dict-full", "fixed-flat", "tight-penalty", "none-flat-full", "log-uniform-range"],
)
def test_batched_sub_envs_replay_like_single_envs_given_their_streams(table, kwargs):
    """Only the streams differ from per-env sampling: given its stream and budget ratio, each
    sub-environment's episode is the single environment's, step for step (infos and metrics too)."""
    length = 9
    env = MMRRoutingVectorEnv(table, num_envs=N, stream_sampling="batched", episode_length=length, **kwargs)
    obs, info = env.reset(seed=5)
    episodes = [[] for _ in range(N)]  # per sub-env: the current episode's (stream, first obs, steps)
    for i in range(N):
        episodes[i].append((env.episode_query_indices[i], obs_of(obs, i), []))
    rng = np.random.default_rng(5)
    done = np.zeros(N, dtype=bool)
    checked = 0
    for _ in range(60):
        actions = random_actions(rng, info["action_mask"].astype(bool), p_masked=0.3)
        obs, reward, terminated, _, info = env.step(actions)
        for i in range(N):
            this_obs = obs_of(obs, i)
            if done[i]:  # reset by this step: a new episode starts
                episodes[i].append((env.episode_query_indices[i], this_obs, []))
                continue
            episodes[i][-1][2].append(
                (int(actions[i]), this_obs, reward[i], terminated[i], sub_env_view(info, i))
            )
            if terminated[i]:
                checked += replay_in_single_env(table, kwargs, length, *episodes[i][-1])
        done = terminated
    assert checked >= 2 * N


def replay_in_single_env(table, kwargs, length, stream, first_obs, steps) -> int:
    single = MMRRoutingEnv(table, episode_length=length, **kwargs)
    metrics = steps[-1][4]["episode_metrics"]
    options = {"query_ids": table.query_ids[stream].tolist(), "time": metrics["time"]}
    if metrics["budget_ratio"] is not None:
        options["budget_ratio"] = metrics["budget_ratio"]
    obs, _ = single.reset(options=options)
    flat = lambda o: o if isinstance(o, dict) else {"flat": o}  # noqa: E731
    assert_matches_single(first_obs, flat(obs), "reset")
    for t, (action, batched_obs, reward, terminated, info) in enumerate(steps):
        obs, single_reward, single_terminated, _, single_info = single.step(action)
        assert_matches_single(batched_obs, flat(obs), f"step {t}/obs")
        assert reward == single_reward and terminated == single_terminated, t
        assert_matches_single(info, single_info, f"step {t}/info")
    return 1


def test_batched_seeding(table):
    def rollout(seed, **kwargs):
        env = MMRRoutingVectorEnv(
            table, num_envs=N, stream_sampling="batched", episode_length=6, budget_ratio=(0.1, 1.0), **kwargs
        )
        obs, info = env.reset(seed=seed)
        out = [obs["query"]]
        for _ in range(20):
            obs, reward, terminated, _, info = env.step(np.argmax(info["action_mask"], axis=1))
            out += [obs["query"], reward, terminated]
        return env, out

    env, first = rollout(5)
    assert env.np_random_seeds == (5,) * N  # one generator for all sub-environments
    for x, y in zip(first, rollout(5)[1], strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(first, rollout([5, 6, 7, 8])[1], strict=True):  # SyncVectorEnv's seed + i
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], rollout(6)[1][0])
    with pytest.raises(ValueError, match="one generator"):
        env.reset(seed=[5, 9, 7, 8])
    env.reset(seed=[None] * N)  # keeps the generator
    with pytest.raises(ValueError, match="stream_sampling"):
        MMRRoutingVectorEnv(table, num_envs=2, stream_sampling="shared")


def test_batched_mode_through_make_vec_and_many_envs(table):
    # More sub-environments than a refill batch, and replayed streams through reset options.
    env = gym.make_vec(
        "MMRRouting-v0",
        num_envs=1100,
        dataset=table,
        split="all",
        episode_length=5,
        stream_sampling="batched",
    )
    assert isinstance(env, MMRRoutingVectorEnv) and env.stream_sampling == "batched"
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert len({tuple(s) for s in env.episode_query_indices}) > 1000  # distinct episodes
    obs, info = env.reset(options={"query_ids": ["q1", "q2", "q3"]}, seed=1)
    assert all(s.tolist() == [1, 2, 3] for s in env.episode_query_indices)
    for _ in range(8):
        obs, *_ = env.step(np.argmax(env.action_masks(), axis=1))
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("stream_sampling", ["per-env", "batched"])
@pytest.mark.parametrize("autoreset_mode", [NEXT_STEP, SAME_STEP])
def test_returned_arrays_never_change_afterwards(table, stream_sampling, autoreset_mode):
    """The env reuses internal scratch buffers, never what it returned."""
    env = MMRRoutingVectorEnv(
        table,
        num_envs=N,
        episode_length=4,
        budget_ratio=0.2,
        feedback="full",
        stream_sampling=stream_sampling,
        autoreset_mode=autoreset_mode,
    )
    kept = [env.reset(seed=0)]
    snapshots = [copy.deepcopy(kept[0])]
    rng = np.random.default_rng(0)
    for _ in range(12):
        out = env.step(random_actions(rng, kept[-1][-1]["action_mask"].astype(bool), p_masked=0.3))
        kept.append(out)
        snapshots.append(copy.deepcopy(out))
    for out, snapshot in zip(kept, snapshots, strict=True):
        for x, y in zip(out, snapshot, strict=True):
            assert_same(x, y)
