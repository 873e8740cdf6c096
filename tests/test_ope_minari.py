"""read_minari: PaddedInfo episodes as Minari stores them (a stand-in in both of its formats, and
real Minari when it is installed) become the decision log they recorded."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table

import mmr_gym  # noqa: F401  (registers the environments)
from agents.stochastic import UniformPolicy
from mmr_gym.errors import LogError
from mmr_gym.ope import read_minari
from mmr_gym.wrappers import PaddedInfo


@pytest.fixture(scope="module")
def env():
    table = make_table(n=200, k=4, seed=2)
    return PaddedInfo(
        gym.make(
            "MMRRouting-v0", dataset=table, split="test", episode_length=8, budget_ratio=0.2, feedback="full"
        )
    )


def _stack(values: list, layout: str):
    """One info key over an episode, as Minari gives it back: HDF5 stacks nested dicts key by key
    and stores strings as bytes; Arrow gives nested dicts back as an array of dicts."""
    first = values[0]
    if isinstance(first, dict):
        if layout == "arrow":
            return np.array(values, dtype=object)
        return {key: _stack([v[key] for v in values], layout) for key in first}
    if isinstance(first, str):
        return (
            np.array([v.encode("utf-8") for v in values])
            if layout == "hdf5"
            else np.array(values, dtype=object)
        )
    return np.asarray(values)


def record(env, episodes: int, seed: int, layout: str) -> list[SimpleNamespace]:
    """A stand-in for ``minari.DataCollector(env, record_infos=True)``: uniform affordable actions."""
    rng = np.random.default_rng(seed)
    out = []
    for number in range(episodes):
        obs, info = env.reset(seed=seed + number)
        observations, infos, actions, done = [obs], [info], [], False
        while not done:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, _, terminated, truncated, info = env.step(action)
            observations.append(obs)
            infos.append(info)
            actions.append(action)
            done = terminated or truncated
        out.append(
            SimpleNamespace(
                id=number,
                observations={key: np.stack([o[key] for o in observations]) for key in observations[0]},
                actions=np.asarray(actions),
                infos={key: _stack([i[key] for i in infos], layout) for key in infos[0]},
            )
        )
    return out


def _check_against_the_table(log, env) -> None:
    ctx = env.unwrapped.ctx
    position = {q: i for i, q in enumerate(ctx.table.query_ids.tolist())}
    rows = np.array([position[q] for q in log.query_id])
    np.testing.assert_array_equal(log.correct, ctx.table.correct[rows, log.action])
    np.testing.assert_allclose(log.cost, ctx.table.cost[rows, log.action])
    np.testing.assert_array_equal(log.observations["query"], ctx.query_obs[rows])
    np.testing.assert_allclose(log.propensity, 1.0 / log.action_mask.sum(axis=1))
    for episode in np.unique(log.episode):
        steps = np.flatnonzero(log.episode == episode)
        np.testing.assert_array_equal(log.step[steps], np.arange(steps.size))
        # The budget left before each call is the whole budget minus what the earlier calls cost.
        spent = np.concatenate([[0.0], np.cumsum(log.cost[steps])[:-1]])
        np.testing.assert_allclose(
            log.budget_remaining[steps], np.maximum(log.budget_total[steps] - spent, 0.0)
        )
    assert log.meta["model_names"] == list(env.unwrapped.model_names)
    assert log.meta["c_ref"] == env.unwrapped.c_ref


@pytest.mark.parametrize("layout", ["hdf5", "arrow"])
def test_padded_info_episodes_become_the_decisions_they_recorded(env, layout):
    episodes = record(env, 4, seed=3, layout=layout)
    log = read_minari(episodes, env=env)
    assert len(log) == sum(len(e.actions) for e in episodes) and log.n_episodes == 4
    np.testing.assert_array_equal(log.action, np.concatenate([e.actions for e in episodes]))
    assert np.isfinite(log.budget_total).all() and log.budget_total[0] == pytest.approx(
        0.2 * 8 * env.unwrapped.c_ref
    )
    _check_against_the_table(log, env)


def test_the_two_formats_and_the_three_kinds_of_propensity_agree(env):
    hdf5 = read_minari(record(env, 3, seed=5, layout="hdf5"), env=env)
    arrow = read_minari(record(env, 3, seed=5, layout="arrow"), env=env)
    for name in ("action", "propensity", "correct", "cost", "budget_remaining", "query_id", "dataset"):
        np.testing.assert_array_equal(getattr(hdf5, name), getattr(arrow, name), err_msg=name)
    episodes = record(env, 3, seed=5, layout="hdf5")
    asked = read_minari(episodes, env=env, propensities=UniformPolicy())
    np.testing.assert_allclose(asked.propensity, hdf5.propensity)
    np.testing.assert_allclose(asked.behaviour_probs, hdf5.behaviour_probs)
    given = read_minari(episodes, env=env, propensities=np.full(len(hdf5), 0.5))
    assert (given.propensity == 0.5).all() and given.behaviour_probs is None


def test_episodes_not_recorded_through_padded_info_are_refused(env):
    episodes = record(env, 2, seed=1, layout="hdf5")
    broken = [SimpleNamespace(**vars(e)) for e in episodes]
    broken[1].infos = {**episodes[1].infos, "model_index": episodes[1].infos["model_index"].copy()}
    broken[1].infos["model_index"][0] = 2
    with pytest.raises(LogError, match=r"episode 1, column 'infos.model_index', row 0: .*PaddedInfo"):
        read_minari(broken, env=env)
    missing = [SimpleNamespace(**vars(e)) for e in episodes]
    missing[0].infos = {k: v for k, v in episodes[0].infos.items() if k != "budget_remaining"}
    with pytest.raises(LogError, match=r"column 'infos.budget_remaining': missing"):
        read_minari(missing, env=env)
    with pytest.raises(ValueError, match="one value per decision"):
        read_minari(episodes, env=env, propensities=np.ones(3))
    with pytest.raises(ValueError, match="needs env"):
        read_minari(episodes)


@pytest.mark.parametrize("data_format", ["arrow", "hdf5"])
def test_a_real_minari_dataset_reads_back(env, tmp_path, monkeypatch, data_format):
    minari = pytest.importorskip("minari", reason="Minari is optional: pip install 'minari[create]'")
    pytest.importorskip("jax", reason="Minari's DataCollector needs jax: pip install 'minari[create]'")
    if data_format == "hdf5":
        pytest.importorskip("h5py", reason="Minari's HDF5 format needs h5py")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    collector = minari.DataCollector(env, record_infos=True, data_format=data_format)
    rng = np.random.default_rng(0)
    for seed in range(3):
        _, info = collector.reset(seed=seed)
        terminated = False
        while not terminated:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            _, _, terminated, _, info = collector.step(action)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari's advice to add a description, an author, ...
        dataset = collector.create_dataset(dataset_id="mmr/ope-test-v0", algorithm_name="uniform")
    log = read_minari(dataset, env=env)
    assert len(log) == dataset.total_steps and log.n_episodes == 3
    _check_against_the_table(log, env)
