"""render_mode="rgb_array": frames of the single and the vectorized environment, and through SB3."""

from __future__ import annotations

import dataclasses
import itertools
import pickle

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table
from gymnasium.wrappers import RenderCollection
from stable_baselines3.common.env_util import make_vec_env

from mmr_gym.env import MMRRoutingEnv
from mmr_gym.render import FRAME_SHAPE, FrameState, _title
from mmr_gym.sb3 import SB3VecEnvAdapter
from mmr_gym.table import RoutingTable
from mmr_gym.vector import MMRRoutingVectorEnv


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return make_table(n=120, k=4, seed=2)


def masked_random_actions(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    return (rng.random(masks.shape) * masks).argmax(axis=-1)


def test_frames_have_a_fixed_shape_and_follow_the_episode(table):
    env = MMRRoutingEnv(table, episode_length=6, budget_ratio=0.3, render_mode="rgb_array")
    with pytest.raises(RuntimeError, match="before reset"):
        env.render()
    _, info = env.reset(seed=0)
    frames = [env.render()]
    rng = np.random.default_rng(0)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(int(masked_random_actions(rng, info["action_mask"])))
        frames.append(env.render())
    assert all(f.shape == FRAME_SHAPE and f.dtype == np.uint8 for f in frames)
    # Every step changes what the frame shows (position, spend, last call).
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(frames))
    # Rendering does not change the episode: a second render of the same state is the same frame.
    np.testing.assert_array_equal(env.render(), frames[-1])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(env)).render(), frames[-1])
    env.close()


def test_frames_are_deterministic_under_a_seed(table):
    def frames(seed: int) -> list[np.ndarray]:
        env = MMRRoutingEnv(table, episode_length=5, render_mode="rgb_array")
        _, info = env.reset(seed=seed)
        out = [env.render()]
        for a in (0, 1, 2):
            env.step(a)
            out.append(env.render())
        return out

    first = frames(4)
    for a, b in zip(first, frames(4), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, frames(5), strict=True))


def test_frame_state_is_what_the_agent_knows(table):
    env = MMRRoutingEnv(table, episode_length=8, budget_ratio=0.2, render_mode="rgb_array")
    _, info = env.reset(seed=1)
    state = env._episode.frame_state()
    assert state.last_call is None and state.answered == 0 and not state.ended
    np.testing.assert_array_equal(state.mask, info["action_mask"].astype(bool))
    _, _, _, _, info = env.step(3)  # the dearest model: masked at this budget or not, a call is made
    state = env._episode.frame_state()
    assert state.last_call == (info["model"], info["correct"], info["cost"])
    assert state.replaced == ("model3" if info["action_replaced"] else None)
    assert (state.answered, state.spend, state.remaining) == (1, info["cost"], info["budget_remaining"])
    np.testing.assert_array_equal(state.mask, info["action_mask"].astype(bool))
    assert state.cost_label == "cost estimate"
    observed = MMRRoutingEnv(table, episode_length=8, cost_observed=True, render_mode="rgb_array")
    observed.reset(seed=1)
    assert observed._episode.frame_state().cost_label == "cost"


def test_the_frame_never_shows_the_current_querys_outcome(table):
    """Two tables that differ only in one test query's outcomes give the same frame until it is answered."""
    env = MMRRoutingEnv(table, split="test", episode_length=4, render_mode="rgb_array")
    q = int(env.ctx.split_indices[0])
    correct, cost = table.correct.copy(), table.cost.copy()
    correct[q] = 1.0 - correct[q]
    cost[q] *= 3.0
    other_table = dataclasses.replace(table, correct=correct, cost=cost)  # validated again
    other = MMRRoutingEnv(other_table, split="test", episode_length=4, render_mode="rgb_array")
    stream = {"query_ids": [str(table.query_ids[r]) for r in env.ctx.split_indices[:4]]}
    env.reset(options=stream)
    other.reset(options=stream)
    np.testing.assert_array_equal(env.render(), other.render())
    env.step(0)
    other.step(0)
    assert not np.array_equal(env.render(), other.render())  # now the last call's outcome is shown


def test_frames_without_a_budget_and_with_graded_scores():
    graded = make_table(n=60, k=3, graded=True)
    env = MMRRoutingEnv(graded, episode_length=3, budget_ratio=None, render_mode="rgb_array")
    rows = [r for r in env.ctx.split_indices.tolist() if graded.correct[r, 1] not in (0.0, 1.0)]
    env.reset(options={"query_ids": [str(graded.query_ids[r]) for r in rows[:3]]})
    env.step(1)
    state = env._episode.frame_state()
    assert state.total is None and state.remaining is None
    assert f"score {float(graded.correct[rows[0], 1]):.3g}" in _title(state)
    assert env.render().shape == FRAME_SHAPE


def test_title_names_the_last_call():
    state = FrameState(
        model_names=("a", "b"),
        estimates=np.array([0.0, 2.0]),
        mask=np.array([True, False]),
        cost_label="cost estimate",
        cost_unit="USD",
        answered=3,
        length=10,
        correct_sum=2.0,
        spend=1.5,
        total=4.0,
        remaining=2.5,
        last_call=("b", 0.0, 0.25),
        ended=False,
    )
    assert _title(state) == "query 4 of 10   correct so far: 2 of 3 answered\nlast call: b, wrong, cost 0.25"
    replaced = FrameState(**{**state.__dict__, "last_call": ("a", 1.0, 0.5), "replaced": "b"})
    assert _title(replaced).endswith("last call: a (fallback: b was masked), correct, cost 0.5")
    graded = FrameState(**{**state.__dict__, "last_call": ("a", 0.625, 0.1), "ended": True})
    assert _title(graded).startswith("episode over") and "a, score 0.625, cost 0.1" in _title(graded)


def test_render_collection_gathers_an_episodes_frames(table):
    env = RenderCollection(
        gym.make("MMRRouting-v0", dataset=table, episode_length=4, render_mode="rgb_array")
    )
    _, info = env.reset(seed=0)
    for _ in range(4):
        env.step(int(np.flatnonzero(info["action_mask"])[0]))
    frames = env.render()
    assert len(frames) == 5 and all(f.shape == FRAME_SHAPE for f in frames)


def test_vector_frames_match_single_env_frames(table):
    """Sub-environment i renders what MMRRoutingEnv seeded s + i renders, across autoresets."""
    n, kwargs = 2, {"episode_length": 3, "budget_ratio": 0.4, "render_mode": "rgb_array"}
    venv = MMRRoutingVectorEnv(table, num_envs=n, stream_sampling="per-env", **kwargs)
    singles = gym.vector.SyncVectorEnv(
        [lambda: MMRRoutingEnv(table, **kwargs) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )
    _, info = venv.reset(seed=7)
    singles.reset(seed=7)
    rng = np.random.default_rng(0)
    replaced = 0
    for t in range(8):  # two episodes and an autoreset step
        for i, (a, b) in enumerate(zip(venv.render(), singles.render(), strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=f"step {t}, sub-environment {i}")
        actions = masked_random_actions(rng, info["action_mask"]) if t % 2 else np.full(n, 3)
        _, _, _, _, info = venv.step(actions)
        _, _, _, _, single_info = singles.step(actions)
        replaced += int(np.count_nonzero(single_info.get("action_replaced", False)))
    assert replaced > 0  # the frames of a fallback were compared too
    venv.close()


def test_sb3_make_vec_env_renders(table):
    """make_vec_env asks for render_mode="rgb_array" by default; DummyVecEnv and the adapter tile alike."""
    kwargs = {"dataset": table, "episode_length": 3}
    reference = make_vec_env("MMRRouting-v0", n_envs=2, seed=0, env_kwargs=kwargs)
    assert reference.render_mode == "rgb_array"
    adapter = SB3VecEnvAdapter(
        MMRRoutingVectorEnv(num_envs=2, stream_sampling="per-env", render_mode="rgb_array", **kwargs)
    )
    adapter.seed(0)
    reference.reset()
    adapter.reset()
    for _ in range(4):  # past the end of the first episodes: SB3 resets in the same step
        np.testing.assert_array_equal(reference.render(), adapter.render())
        reference.step(np.zeros(2, dtype=np.int64))
        adapter.step(np.zeros(2, dtype=np.int64))
    quiet = SB3VecEnvAdapter(MMRRoutingVectorEnv(table, num_envs=2, episode_length=3))
    with pytest.warns(UserWarning, match="rgb_array"):
        assert quiet.get_images() == [None, None]
