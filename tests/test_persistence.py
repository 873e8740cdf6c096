"""Saving and reloading routers and bandit learners: identical predictions, identical continuation, clear errors."""

from __future__ import annotations

import fractions
import hashlib
import io
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
from mmr_gym.errors import UnverifiedFilesWarning
from mmr_gym.evaluate import run_stream, split_streams
from mmr_gym.files import CHECKSUM_FILE, format_checksums, parse_checksums

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
    before = [run_stream(env, PacedPolicy(router), ids, 0.3, time=0) for ids in streams]
    after = [
        run_stream(env, PacedPolicy(load_scorer(tmp_path / "router")), ids, 0.3, time=0) for ids in streams
    ]
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


def rewrite(directory, name, data: bytes) -> None:
    """Replace file ``name`` and record its new SHA-256, as a consistent (not damaged) save would."""
    (directory / name).write_bytes(data)
    checksums = directory / CHECKSUM_FILE
    digests = parse_checksums(checksums.read_text())
    digests[name] = hashlib.sha256(data).hexdigest()
    checksums.write_text(format_checksums(digests))


def edit_manifest(directory, **changes):
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest.update(changes)
    rewrite(directory, MANIFEST, json.dumps(manifest).encode())


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
    rewrite(saved_knn, "neighbours_.skops", b"not a zip archive")
    with pytest.raises(ValueError, match=r"neighbours_\.skops: not a readable skops file"):
        load_scorer(saved_knn)
    rewrite(saved_knn, ARRAYS, b"not a zip archive")
    with pytest.raises(ValueError, match=r"arrays\.npz: not a readable npz file"):
        load_scorer(saved_knn)
    rewrite(saved_knn, MANIFEST, b"{")
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


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_arrays_of_another_shape_are_refused(saved_knn):
    with np.load(saved_knn / ARRAYS, allow_pickle=False) as npz:
        arrays = dict(npz)
    # The file disagrees with the manifest.
    rewrite(saved_knn, ARRAYS, npz_bytes(**{**arrays, "correct_": arrays["correct_"][:, :2]}))
    with pytest.raises(
        ValueError, match=r"arrays\.npz: 'correct_' has shape \[150, 2\].*expected shape \[150, 4\]"
    ):
        load_scorer(saved_knn)
    rewrite(saved_knn, ARRAYS, npz_bytes(**{key: value for key, value in arrays.items() if key != "cost_"}))
    with pytest.raises(ValueError, match=r"missing \['cost_'\]"):
        load_scorer(saved_knn)


def test_a_state_that_does_not_fit_the_parameters_is_refused(env, tmp_path):
    # File and manifest agree, but the statistics are for 4 models and the parameters say 3.
    directory = save_scorer(make_bandit("linucb", env), tmp_path / "linucb")
    params = read_manifest(directory)["params"]
    edit_manifest(directory, params={**params, "n_models": 3})
    with pytest.raises(
        ValueError,
        match=r"params ask for 'stats\.b_perf' of shape \[3, 8\], but the saved state holds shape \[4, 8\]",
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
    rewrite(directory, "perf_model_.skops", skops.io.dumps(router.perf_model_))
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


# ------------------------------------------------------------------------------ integrity (issue 17)
@pytest.mark.parametrize("name", [MANIFEST, ARRAYS, "neighbours_.skops"])
def test_a_damaged_file_is_named_before_it_is_read(saved_knn, name):
    data = bytearray((saved_knn / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (saved_knn / name).write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match=rf"{name.replace('.', '[.]')}: damaged or changed since it was saved"
    ):
        load_scorer(saved_knn)


def test_a_damaged_tensor_file_is_named(env, tmp_path):
    directory = save_scorer(make_bandit("neural-ucb", env, seed=5), tmp_path / "neural")
    data = bytearray((directory / TENSORS).read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's values: the layout still parses
    (directory / TENSORS).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"tensors\.safetensors: damaged or changed since it was saved"):
        load_scorer(directory)


def test_every_saved_file_is_listed_in_the_checksums(env, tmp_path):
    directory = save_scorer(make_bandit("neural-ucb", env, seed=5), tmp_path / "neural")
    digests = parse_checksums((directory / CHECKSUM_FILE).read_text())
    assert set(digests) == {MANIFEST, ARRAYS, TENSORS}
    for name, digest in digests.items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest


def test_a_scorer_saved_without_checksums_loads_with_a_warning(saved_knn, env):
    # As an mmr-gym older than checksums wrote it: no list, no 'checksum_file' entry.
    manifest = json.loads((saved_knn / MANIFEST).read_text())
    del manifest["checksum_file"]
    (saved_knn / MANIFEST).write_text(json.dumps(manifest))
    (saved_knn / CHECKSUM_FILE).unlink()
    with pytest.warns(UnverifiedFilesWarning, match=r"knn: no checksums\.sha256 .* load and save it again"):
        loaded = load_scorer(saved_knn)
    X = env.ctx.query_obs
    np.testing.assert_array_equal(loaded.predict(X)[0], fit_router("knn", env, k=5).predict(X)[0])


def test_a_missing_checksum_list_is_refused_when_the_manifest_names_it(saved_knn):
    (saved_knn / CHECKSUM_FILE).unlink()
    with pytest.raises(
        ValueError, match=r"checksums\.sha256 not found, but scorer\.json says the scorer was saved"
    ):
        load_scorer(saved_knn)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"estimators": {"neighbours_": "abc"}},
            r"estimators\['neighbours_'\] must be \{'file': str, 'type': str\}, got 'abc' \(str\)",
        ),
        ({"estimators": {"neighbours_": {"file": 3, "type": "x"}}}, r"estimators\['neighbours_'\] must be"),
        ({"estimators": {"neighbours_": {"file": "../x.skops", "type": "x"}}}, r"not a \.skops file name"),
        ({"params": [5]}, r"'params' must be a JSON object, got \[5\] \(list\)"),
        (
            {"arrays": {"correct_": {"shape": "big", "dtype": "float64"}}},
            r"arrays\['correct_'\] must be \{'shape'",
        ),
        ({"tensors": []}, r"'tensors' must be a JSON object"),
        (
            {"state": {"n_features_": "abc", "n_models_": 4}},
            r"params do not fit KNNRouter: n_features_ must be an integer",
        ),
        (
            {"params": {"k": "abc", "metric": "cosine", "seed": 0}},
            r"params do not fit KNNRouter: k must be an integer",
        ),
    ],
)
def test_manifest_entries_of_the_wrong_type_are_named(saved_knn, changes, message):
    edit_manifest(saved_knn, **changes)
    with pytest.raises(ValueError, match=message):
        load_scorer(saved_knn)


def never_built(monkeypatch, cls):
    """Make building ``cls`` fail the test: what is refused must be refused before anything is allocated."""

    def init(*args, **kwargs):
        raise AssertionError(f"{cls.__name__} was built")

    monkeypatch.setattr(cls, "__init__", init)


@pytest.mark.parametrize(
    ("name", "param", "value", "message"),
    [
        # 10**12 units, so that a broken check fails at once (the allocation is refused) instead of
        # allocating terabytes.
        (
            "neural-ucb",
            "hidden",
            10**12,
            r"params ask for 'net\.encoder\.0\.weight' of shape \[1000000000000, 7\]",
        ),
        ("neural-ucb", "features", 10**12, r"params ask for 'stats\.b_perf' of shape \[4, 1000000000001\]"),
        ("linucb", "dim", 10**12, r"params ask for 'stats\.b_perf' of shape \[4, 1000000000001\]"),
    ],
)
def test_bandit_params_that_ask_for_huge_shapes_are_refused_before_building(
    env, tmp_path, monkeypatch, name, param, value, message
):
    directory = save_scorer(make_bandit(name, env, seed=1), tmp_path / name)
    edit_manifest(directory, params={**read_manifest(directory)["params"], param: value})
    never_built(monkeypatch, BANDITS[name])
    with pytest.raises(ValueError, match=message):
        load_scorer(directory)


@pytest.mark.parametrize(
    ("name", "param", "value", "message"),
    [
        (
            "mlp-mf",
            "hidden",
            [10**12, 64],
            r"params ask for 'perf_net_\.encoder\.0\.weight' of shape \[1000000000000, 7\]",
        ),
        (
            "mlp-mf",
            "hidden",
            [1] * 5000,
            r"hidden=.* asks for 5000 layers, but the saved state has \d+ tensors",
        ),
        ("cmr", "n_layers", 10**9, r"n_layers=1000000000 asks for 1000000000 layers"),
        (
            "cmr",
            "d_model",
            2**20,
            r"params ask for 'net_\.token_embedding' of shape \[2, 1048576\]",
        ),
        ("cmr", "d_model", 2**40, r"params do not fit CMRRouter: Storage size calculation overflowed"),
    ],
)
def test_router_params_that_ask_for_huge_shapes_are_refused_before_building(
    env, tmp_path, monkeypatch, name, param, value, message
):
    router = fit_router(name, env, epochs=1)
    directory = save_scorer(router, tmp_path / name)
    edit_manifest(directory, params={**read_manifest(directory)["params"], param: value})
    monkeypatch.setattr(type(router), "load_state_dict", lambda *a: pytest.fail("the router was built"))
    with pytest.raises(ValueError, match=message):
        load_scorer(directory)


def test_a_state_that_claims_huge_feature_counts_is_refused(env, tmp_path):
    directory = save_scorer(fit_router("mlp-mf", env, epochs=1), tmp_path / "mlp-mf")
    state = read_manifest(directory)["state"]
    # Claiming huge inputs: the networks' shapes are checked against the saved tensors first.
    edit_manifest(directory, state={**state, "n_inputs_": 10**12})
    with pytest.raises(
        ValueError, match=r"params ask for 'perf_net_\.encoder\.0\.weight' of shape \[128, 1000000000000\]"
    ):
        load_scorer(directory)
    # Claiming huge features: the input transform's width is checked before any module is built.
    edit_manifest(directory, state={**state, "n_features_": 10**12})
    with pytest.raises(ValueError, match=r"inputs: the transform gives 1000000000000 inputs, not 7"):
        load_scorer(directory)


def test_non_finite_saved_values_are_refused(saved_knn):
    with np.load(saved_knn / ARRAYS, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["cost_"] = np.full_like(arrays["cost_"], np.nan)
    rewrite(saved_knn, ARRAYS, npz_bytes(**arrays))
    with pytest.raises(ValueError, match=r"arrays\.npz: 'cost_' holds 600 NaN or infinite value\(s\) of 600"):
        load_scorer(saved_knn)


def test_a_json_state_of_the_wrong_type_is_named(env, tmp_path):
    directory = save_scorer(make_bandit("neural-ucb", env, seed=5), tmp_path / "neural")
    state = read_manifest(directory)["state"]
    edit_manifest(directory, state={**state, "optimiser.param_groups": "abc"})
    with pytest.raises(ValueError, match=r"the saved state does not fit NeuralUCBBandit"):
        load_scorer(directory)
    edit_manifest(directory, state={**state, "rng": "abc"})
    with pytest.raises(ValueError, match=r"the saved state does not fit NeuralUCBBandit"):
        load_scorer(directory)


def test_saves_are_atomic_and_leave_no_temporary_files(saved_knn, env):
    save_scorer(fit_router("knn", env, k=5), saved_knn)  # again, over the first save
    assert sorted(p.name for p in saved_knn.iterdir()) == sorted(
        [MANIFEST, ARRAYS, CHECKSUM_FILE, "neighbours_.skops"]
    )
