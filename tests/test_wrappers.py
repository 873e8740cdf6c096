"""The wrappers: ActionMaskObservation (the mask inside the observation, RLlib's convention) and
PaddedInfo (one info structure per episode, for recorders such as Minari)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from _tables import make_table
from gymnasium.utils.env_checker import check_env

from mmr_gym.wrappers import ActionMaskObservation, PaddedInfo


@pytest.fixture(scope="module")
def table():
    return make_table(n=120, k=4, seed=3)


def test_the_observation_carries_the_infos_mask(table):
    env = ActionMaskObservation(
        gym.make("MMRRoutingFlat-v0", dataset=table, episode_length=8, budget_ratio=0.15)
    )
    plain = gym.make("MMRRoutingFlat-v0", dataset=table, episode_length=8, budget_ratio=0.15)
    obs, info = env.reset(seed=2)
    plain_obs, _ = plain.reset(seed=2)
    assert set(obs) == {"observations", "action_mask"}
    saw_masked = False
    for _ in range(8):
        assert env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs["observations"], plain_obs)
        np.testing.assert_array_equal(obs["action_mask"], info["action_mask"].astype(np.float32))
        assert obs["action_mask"].dtype == np.float32
        saw_masked |= not obs["action_mask"].all()
        action = int(np.flatnonzero(obs["action_mask"])[-1])
        obs, _, terminated, _, info = env.step(action)
        plain_obs, *_ = plain.step(action)
        if terminated:
            break
    assert saw_masked  # the budget is tight enough that the mask mattered


def test_checkers_pass_and_bad_arguments_are_named(table):
    env = ActionMaskObservation(gym.make("MMRRoutingFlat-v0", dataset=table, episode_length=8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    # check_env always says a wrapped environment is wrapped; nothing else may be reported.
    assert [str(w.message) for w in caught if "has a wrapper applied" not in str(w.message)] == []
    with pytest.raises(ValueError, match="must differ"):
        ActionMaskObservation(env.env, "mask", "mask")
    with pytest.raises(ValueError, match="Discrete"):
        ActionMaskObservation(_box_action_env())


def _box_action_env() -> gym.Env:
    class BoxActions(gym.Env):
        action_space = gym.spaces.Box(-1.0, 1.0, (1,))
        observation_space = gym.spaces.Box(-1.0, 1.0, (1,))

    return BoxActions()


# ---------------------------------------------------------------------------------------- PaddedInfo
def _structure(value):
    """The tree of keys with the type (and for arrays shape and dtype) of every leaf."""
    if isinstance(value, dict):
        return {key: _structure(v) for key, v in value.items()}
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, value.dtype.str)
    return type(value).__name__


def _same(padded, plain) -> None:
    """Every value the plain info holds is in the padded one, unchanged (inf for a missing budget)."""
    for key, value in plain.items():
        if isinstance(value, dict):
            _same(padded[key], value)
        elif value is None:
            assert padded[key] == np.inf, key
        else:
            np.testing.assert_array_equal(padded[key], value, err_msg=key)


@pytest.mark.parametrize(
    ("feedback", "budget_ratio"), [("bandit", 0.15), ("full", 0.15), ("bandit", None), ("full", (0.05, 0.3))]
)
def test_padded_infos_have_one_structure_and_the_real_values(table, feedback, budget_ratio):
    kwargs = dict(dataset=table, episode_length=8, budget_ratio=budget_ratio, feedback=feedback)
    env = PaddedInfo(gym.make("MMRRouting-v0", **kwargs))
    plain = gym.make("MMRRouting-v0", **kwargs)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        _, plain_info = plain.reset(seed=seed)
        _same(info, plain_info)
        assert (info["model_index"], info["model"], info["correct"], info["cost"]) == (-1, "", 0.0, 0.0)
        assert info["episode_metrics"]["length"] == -1
        budget = env.unwrapped.budget
        assert info["budget_remaining"] == (np.inf if budget is None else budget)
        if feedback == "full":
            assert info["outcomes"]["correct"].shape == (table.n_models,)
            assert not info["outcomes"]["cost"].any()
        infos, terminated = [info], False
        while not terminated:
            action = int(np.flatnonzero(info["action_mask"])[-1])
            _, _, terminated, _, info = env.step(action)
            _, _, _, _, plain_info = plain.step(action)
            _same(info, plain_info)
            infos.append(info)
        # The step infos hold every key the environment has (none missed by the fills) ...
        assert set(plain_info) == set(info)
        assert set(plain_info["episode_metrics"]) == set(info["episode_metrics"])
        # ... and every info of the episode, reset included, has the same structure.
        assert all(_structure(i) == _structure(infos[0]) for i in infos)
        assert all(i["episode_metrics"]["length"] == -1 for i in infos[:-1])
        assert (
            infos[-1]["episode_metrics"]["length"] == len(infos) - 1
            or infos[-1]["episode_metrics"]["unanswered"] > 0
        )


def test_padded_info_checks_and_remakes(table):
    env = PaddedInfo(gym.make("MMRRouting-v0", dataset=table, episode_length=8, feedback="full"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert [str(w.message) for w in caught if "has a wrapper applied" not in str(w.message)] == []
    # The reset fills are fresh arrays: writing into one does not change the next reset's.
    _, info = env.reset(seed=0)
    info["outcomes"]["cost"][:] = 1.0
    assert not env.reset(seed=0)[1]["outcomes"]["cost"].any()
    # Recorded in the spec, so a recorder's saved spec remakes the wrapped environment.
    assert env.spec.additional_wrappers[-1].name == "PaddedInfo"
    with pytest.raises(ValueError, match="MMRRouting environment"):
        PaddedInfo(_box_action_env())


@pytest.mark.parametrize("data_format", ["arrow", "hdf5"])
def test_minari_records_padded_infos(table, tmp_path, monkeypatch, data_format):
    minari = pytest.importorskip("minari", reason="Minari is optional: pip install 'minari[create]'")
    pytest.importorskip("jax", reason="Minari's DataCollector needs jax: pip install 'minari[create]'")
    if data_format == "hdf5":
        pytest.importorskip("h5py", reason="Minari's HDF5 format needs h5py")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(
        PaddedInfo(gym.make("MMRRouting-v0", dataset=table, episode_length=8, feedback="full")),
        record_infos=True,
        data_format=data_format,
    )
    steps = 0
    for seed in range(2):
        _, info = env.reset(seed=seed)
        terminated = False
        while not terminated:
            _, _, terminated, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
            steps += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari's advice to add a description, an author, ...
        dataset = env.create_dataset(dataset_id="mmr/test-v0", algorithm_name="cheapest")
    assert (dataset.total_episodes, dataset.total_steps) == (2, steps)
    episode = next(iter(dataset.iterate_episodes()))
    assert episode.infos["model_index"][0] == -1 and (episode.infos["model_index"][1:] >= 0).all()
    assert episode.infos["action_mask"].shape == (len(episode.rewards) + 1, table.n_models)
    # Minari 0.5.4's arrow format gives nested dicts back as an object array of dicts, HDF5 as dicts.
    outcomes = episode.infos["outcomes"]
    costs = outcomes["cost"] if isinstance(outcomes, dict) else np.stack([o["cost"] for o in outcomes])
    assert costs.shape == (len(episode.rewards) + 1, table.n_models)
    assert not costs[0].any() and costs[1:].all()  # the reset's fill, then every model's real cost
