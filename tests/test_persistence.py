"""Saving and reloading routers and bandit learners: identical predictions, identical continuation, clear errors."""

from __future__ import annotations

import fractions
import json

import numpy as np
import pytest
import skops.io
import torch
from _tables import make_table

from agents.bandits import BANDITS, make_bandit
from agents.pacing import PacedPolicy
from agents.persistence import (
    ARRAYS,
    FORMAT_VERSION,
    MANIFEST,
    TENSORS,
    load_scorer,
    read_manifest,
    save_scorer,
)
from agents.supervised import ROUTERS, LinearRouter, fit_router
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import run_stream, split_streams

# Short training keeps the file fast; what is tested is the round trip, not the fit.
ROUTER_FAST = {
    "mlp": {"max_iter": 30},
    "mlp-mf": {"epochs": 3},
    "cmr": {"epochs": 3},
    "auto": {"candidates": [("linear-mf", {}), ("knn", {"k": 10})], "folds": 3},
}
# NeuralUCB retrains every 25 updates, so retraining (and Adam's state) is exercised before and after saving.
BANDIT_FAST = {"neural-ucb": {"train_every": 25, "train_steps": 5, "batch_size": 32}}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def env() -> MMRRoutingEnv:
    return MMRRoutingEnv(make_table(n=300, k=4, seed=3), split="test", train_fraction=0.5, episode_length=20)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_a_reloaded_router_predicts_exactly_as_the_fitted_one(env, tmp_path, name):
    router = fit_router(name, env, seed=1, **ROUTER_FAST.get(name, {}))
    save_scorer(router, tmp_path / name, metadata={"seed": 1})
    loaded = load_scorer(tmp_path / name)
    assert type(loaded) is type(router) and loaded.get_params() == router.get_params()
    X = env.ctx.query_obs
    for original, reloaded in zip(router.predict(X), loaded.predict(X), strict=True):
        np.testing.assert_array_equal(reloaded, original)
    manifest = read_manifest(tmp_path / name)
    assert (manifest["kind"], manifest["name"], manifest["metadata"]) == ("router", name, {"seed": 1})


def drive(learner, X: np.ndarray, correct: np.ndarray, cost: np.ndarray, steps: range) -> list[np.ndarray]:
    """Run ``act_scores`` then ``update`` on rows ``steps`` of ``X``, calling the best-scored model."""
    scores = []
    for i in steps:
        perf, predicted_cost = learner.act_scores(X[i])
        action = int(np.argmax(perf - 0.1 * predicted_cost))
        learner.update(X[i], action, float(correct[i, action]), float(cost[i, action]))
        scores += [perf, predicted_cost]
    return scores


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("name", list(BANDITS))
def test_a_reloaded_bandit_continues_exactly_as_the_original(env, tmp_path, name, warm):
    # Epsilon 0.5 so that epsilon-greedy draws from its generator on many steps.
    kwargs = {"epsilon": 0.5} if name == "epsilon-greedy" else BANDIT_FAST.get(name, {})
    learner = make_bandit(name, env, warm_start=warm, seed=2, **kwargs)
    X, correct, cost = env.ctx.query_obs, env.ctx.table.correct, env.ctx.table.cost
    drive(learner, X, correct, cost, range(60))
    save_scorer(learner, tmp_path / name)
    loaded = load_scorer(tmp_path / name)
    fresh = make_bandit(name, env, warm_start=warm, seed=2, **kwargs)
    assert not np.array_equal(fresh.predict(X)[0], loaded.predict(X)[0])  # the learned state came back
    after_original = drive(learner, X, correct, cost, range(60, 130))
    after_loaded = drive(loaded, X, correct, cost, range(60, 130))
    for original, reloaded in zip(after_original, after_loaded, strict=True):
        np.testing.assert_array_equal(reloaded, original)
    for original, reloaded in zip(learner.predict(X), loaded.predict(X), strict=True):
        np.testing.assert_array_equal(reloaded, original)


def test_a_paced_policy_around_a_reloaded_router_acts_as_before(env, tmp_path):
    router = fit_router("linear-mf", env)
    with pytest.raises(TypeError, match="policy.scorer"):
        save_scorer(PacedPolicy(router), tmp_path / "paced")
    save_scorer(router, tmp_path / "router")
    streams = split_streams(env, seed=0)[:3]
    before = [run_stream(env, PacedPolicy(router), ids, 0.3) for ids in streams]
    after = [run_stream(env, PacedPolicy(load_scorer(tmp_path / "router")), ids, 0.3) for ids in streams]
    assert before == after


def test_loading_a_torch_learner_leaves_torchs_global_generator_alone(env, tmp_path):
    save_scorer(make_bandit("neural-ucb", env, seed=5), tmp_path / "neural")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_scorer(tmp_path / "neural")
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


# ------------------------------------------------------------------------------------- errors
@pytest.fixture
def saved_knn(env, tmp_path):
    return save_scorer(fit_router("knn", env, k=5), tmp_path / "knn")


def edit_manifest(directory, **changes):
    path = directory / MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_missing_files_are_named(saved_knn, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"scorer\.json not found"):
        load_scorer(tmp_path / "nothing-here")
    (saved_knn / "neighbours_.skops").unlink()
    with pytest.raises(FileNotFoundError, match=r"neighbours_\.skops not found.*NearestNeighbors"):
        load_scorer(saved_knn)
    (saved_knn / ARRAYS).unlink()
    with pytest.raises(
        FileNotFoundError, match=r"arrays\.npz not found.*\['correct_', 'cost_', 'inputs\.center'"
    ):
        load_scorer(saved_knn)


def test_a_missing_tensor_file_is_named(env, tmp_path):
    directory = save_scorer(fit_router("cmr", env, epochs=1), tmp_path / "cmr")
    (directory / TENSORS).unlink()
    with pytest.raises(FileNotFoundError, match=r"tensors\.safetensors not found"):
        load_scorer(directory)


def test_unreadable_files_are_named(saved_knn):
    (saved_knn / "neighbours_.skops").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"neighbours_\.skops: not a readable skops file"):
        load_scorer(saved_knn)
    (saved_knn / ARRAYS).write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"arrays\.npz: not a readable npz file"):
        load_scorer(saved_knn)
    (saved_knn / MANIFEST).write_text("{")
    with pytest.raises(ValueError, match=r"scorer\.json: not valid JSON"):
        load_scorer(saved_knn)


def test_another_format_version_is_refused(saved_knn):
    edit_manifest(saved_knn, format_version=FORMAT_VERSION + 1)
    with pytest.raises(
        ValueError,
        match=rf"format_version {FORMAT_VERSION + 1} is not supported.*reads version {FORMAT_VERSION}",
    ):
        load_scorer(saved_knn)


def test_unknown_or_mismatched_classes_are_refused(saved_knn):
    edit_manifest(saved_knn, name="forest")
    with pytest.raises(ValueError, match=r"unknown router 'forest'; expected one of \['auto', 'cmr'"):
        load_scorer(saved_knn)
    edit_manifest(saved_knn, name="knn", **{"class": "KMeansRouter"})
    with pytest.raises(ValueError, match="class 'KMeansRouter' does not match router 'knn'"):
        load_scorer(saved_knn)
    edit_manifest(saved_knn, kind="oracle")
    with pytest.raises(ValueError, match="unknown kind 'oracle'"):
        load_scorer(saved_knn)


def test_arrays_of_another_shape_are_refused(saved_knn):
    with np.load(saved_knn / ARRAYS, allow_pickle=False) as npz:
        arrays = dict(npz)
    # The file disagrees with the manifest.
    np.savez(saved_knn / ARRAYS, **{**arrays, "correct_": arrays["correct_"][:, :2]})
    with pytest.raises(
        ValueError, match=r"arrays\.npz: 'correct_' has shape \[150, 2\].*expected shape \[150, 4\]"
    ):
        load_scorer(saved_knn)
    np.savez(saved_knn / ARRAYS, **{key: value for key, value in arrays.items() if key != "cost_"})
    with pytest.raises(ValueError, match=r"missing \['cost_'\]"):
        load_scorer(saved_knn)


def test_a_state_that_does_not_fit_the_parameters_is_refused(env, tmp_path):
    # File and manifest agree, but the statistics are for 4 models and the parameters say 3.
    directory = save_scorer(make_bandit("linucb", env), tmp_path / "linucb")
    params = read_manifest(directory)["params"]
    edit_manifest(directory, params={**params, "n_models": 3})
    with pytest.raises(
        ValueError,
        match=r"does not fit LinUCBBandit: RidgeStatistics.dense_inverse: expected shape \(3, 8, 8\), got \(4, 8, 8\)",
    ):
        load_scorer(directory)
    edit_manifest(directory, params={**params, "gamma": 1.0})
    with pytest.raises(ValueError, match="params do not fit LinUCBBandit"):
        load_scorer(directory)


def test_estimators_with_untrusted_types_are_refused(env, tmp_path):
    router = fit_router("linear", env)
    directory = save_scorer(router, tmp_path / "linear")
    router.perf_model_.note_ = fractions.Fraction(1, 3)  # any type skops does not trust
    with pytest.raises(TypeError, match=r"types outside SKOPS_TRUSTED: \['fractions.Fraction'\]"):
        save_scorer(router, tmp_path / "other")
    (directory / "perf_model_.skops").write_bytes(skops.io.dumps(router.perf_model_))
    with pytest.raises(
        ValueError, match=r"perf_model_\.skops: refusing to load untrusted types \['fractions.Fraction'\]"
    ):
        load_scorer(directory)


def test_only_registered_fitted_scorers_are_saved(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        save_scorer(LinearRouter(), tmp_path / "unfitted")
    with pytest.raises(TypeError, match="cannot save a dict"):
        save_scorer({}, tmp_path / "dict")
    assert not (tmp_path / "unfitted" / MANIFEST).exists()
