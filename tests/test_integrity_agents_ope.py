"""Regression tests for what a reliability probe of bad inputs found (issue 17, second round): off-policy
evaluation, bandits, paced policies and routers (tables, environments and loaders: test_integrity_probe.py).

Each case was a silent acceptance (a bad value taken and used) or a deep crash (numpy's, pyarrow's
or Python's own error without naming our argument, file or row) before the fix.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _tables import make_table

from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy
from mmr_gym.table import RoutingTable
from mmr_gym.vector import MMRRoutingVectorEnv


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return make_table(n=200, k=4, seed=1)


# ------------------------------------------------------------------------------ off-policy evaluation
@pytest.fixture(scope="module")
def decision_log(table):
    from agents.stochastic import UniformPolicy
    from mmr_gym import ope

    return ope.collect_log(MMRRoutingEnv(table, episode_length=10), UniformPolicy(seed=0), 200, seed=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_queries": True}, TypeError, "n_queries must be an integer"),
        ({"n_queries": 2.5}, TypeError, "n_queries must be an integer"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ],
)
def test_collect_log_checks_its_arguments(table, kwargs, error, match):
    from agents.stochastic import UniformPolicy
    from mmr_gym import ope

    with pytest.raises(error, match=match):
        ope.collect_log(
            MMRRoutingEnv(table, episode_length=10), UniformPolicy(), **{"n_queries": 10, **kwargs}
        )


def test_collect_log_refuses_a_vector_env(table):
    from agents.stochastic import UniformPolicy
    from mmr_gym import ope

    with pytest.raises(TypeError, match="collect_log needs one MMRRouting-v0 environment"):
        ope.collect_log(MMRRoutingVectorEnv(table, num_envs=2, episode_length=5), UniformPolicy(), 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"confidence_level": "0.9"}, TypeError, "confidence_level must be a number"),
        ({"confidence_level": True}, TypeError, "confidence_level must be a number"),
        ({"n_resamples": 0}, ValueError, "n_resamples must be an integer >= 1"),
        ({"n_resamples": 10.5}, TypeError, "n_resamples must be an integer"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
        ({"min_propensity": float("nan")}, ValueError, "min_propensity must be a finite number"),
        ({"min_ess": "3"}, TypeError, "min_ess must be a number"),
    ],
)
def test_estimate_checks_its_arguments(decision_log, kwargs, error, match):
    from agents.stochastic import UniformPolicy
    from mmr_gym import ope

    with pytest.raises(error, match=match):
        ope.estimate(decision_log, UniformPolicy(), "ips", **kwargs)


def test_estimate_takes_probabilities_as_lists_and_refuses_what_is_neither(decision_log):
    from mmr_gym import ope

    mask = decision_log.action_mask.astype(float)
    uniform = mask / mask.sum(axis=1, keepdims=True)
    as_list = ope.estimate(decision_log, uniform.tolist(), "ips", n_resamples=50)
    assert as_list.accuracy == ope.estimate(decision_log, uniform, "ips", n_resamples=50).accuracy
    with pytest.raises(TypeError, match="target must be a policy .* or probabilities"):
        ope.estimate(decision_log, "uniform", "ips")
    for model in ("ridge", uniform):
        with pytest.raises(TypeError, match="reward_model must be a fitted router .* got (str|ndarray)"):
            ope.estimate(decision_log, uniform, "dm", reward_model=model)


def test_estimate_refuses_what_is_not_a_log():
    from agents.stochastic import UniformPolicy
    from mmr_gym import ope

    with pytest.raises(TypeError, match="log must be a DecisionLog"):
        ope.estimate({"a": 1}, UniformPolicy(), "ips")


# ------------------------------------------------------------------------------ saved decision logs
def test_a_damaged_decision_log_is_an_error_not_other_numbers(decision_log, tmp_path):
    """Before its SHA-256, about half of the single-byte flips of a saved log loaded silently with
    other values (costs, propensities, even a lost observation key)."""
    from mmr_gym import ope
    from mmr_gym.errors import LogError

    path = decision_log.to_parquet(tmp_path / "log.parquet")
    assert ope.read_log(path).fingerprint() == decision_log.fingerprint()
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    errors = 0
    for position in rng.choice(len(good), 40, replace=False):
        damaged = bytearray(good)
        damaged[position] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            read = ope.read_log(path)
        except LogError:
            errors += 1
            continue
        assert read.fingerprint() == decision_log.fingerprint()  # a byte that holds no value
    assert errors >= 20


def test_a_decision_log_with_garbled_metadata_is_named(decision_log, tmp_path):
    import pyarrow.parquet as pq

    from mmr_gym import ope
    from mmr_gym.errors import LogError, UnverifiedFilesWarning

    path = decision_log.to_parquet(tmp_path / "log.parquet")
    table = pq.read_table(path)
    metadata = dict(table.schema.metadata)
    metadata[b"mmr_gym.ope"] = b"{not json"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with pytest.raises(LogError, match=r"log.parquet: damaged: its metadata is not JSON"):
        ope.read_log(path)
    header = json.loads(table.schema.metadata[b"mmr_gym.ope"])
    del header["sha256"]  # what an older mmr-gym wrote: read, with a warning
    metadata[b"mmr_gym.ope"] = json.dumps(header).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with pytest.warns(UnverifiedFilesWarning, match="cannot be checked for damage"):
        assert ope.read_log(path).fingerprint() == decision_log.fingerprint()


# ------------------------------------------------------------------------------ bandit feedback
@pytest.mark.parametrize("kind", ["linucb", "neural-ucb"])
@pytest.mark.parametrize(
    "feedback, match",
    [
        ((0, float("nan"), 1.0), "correct must be a finite number"),
        ((0, 1.0, -0.5), "cost must be a finite number >= 0"),
        ((-1, 1.0, 1.0), r"action must be a model index in \[0, 4\), got -1"),
        ((9, 1.0, 1.0), r"action must be a model index in \[0, 4\), got 9"),
    ],
)
def test_a_bandit_refuses_feedback_that_would_poison_it(kind, feedback, match):
    """A NaN reward made every later estimate NaN; action -1 updated the last model."""
    from agents.bandits import BANDITS

    bandit = BANDITS[kind](4, 3)
    with pytest.raises(ValueError, match=match):
        bandit.update(np.zeros(3, np.float32), *feedback)
    with pytest.raises(ValueError, match=r"warm_start: correct\[0, 1\] = nan"):
        bandit.warm_start(np.zeros((2, 3)), np.array([[0, np.nan, 0, 0], [1, 1, 1, 1]]), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"warm_start: correct must have shape \(2, 4\)"):
        bandit.warm_start(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))


# ------------------------------------------------------------------------------ paced policy
def test_a_paced_policy_refuses_what_it_cannot_route_with(table):
    from agents.pacing import PacedPolicy
    from agents.routers import fit_router

    with pytest.raises(ValueError, match="models must name at least one model"):
        PacedPolicy("linear", models=[])
    with pytest.raises(TypeError, match="scorer must be a router name or have predict"):
        PacedPolicy(5)
    with pytest.raises(TypeError, match="name must be a string, got 5"):
        PacedPolicy("linear", name=5)
    five_models = make_table(n=200, k=5, seed=1)
    router = fit_router("linear", MMRRoutingEnv(five_models, episode_length=5))
    env = MMRRoutingEnv(table, split="test", episode_length=10)
    with pytest.raises(
        ValueError, match=r"LinearRouter.predict gave performance of shape \(\d+, 5\), expected"
    ):
        evaluate_policy(PacedPolicy(router), env, budget_ratios=[0.5], seeds=[0], progress=False)


@pytest.mark.parametrize("kind", ["epsilon-greedy", "linucb", "lin-ts", "neural-ucb"])
def test_a_bandit_names_query_features_of_the_wrong_width(kind):
    """numpy's or torch's own product error before (\"matmul: Input operand 1 has a mismatch\")."""
    from agents.bandits import BANDITS

    bandit = BANDITS[kind](4, 3)
    for call in (
        lambda: bandit.predict(np.zeros((2, 5))),
        lambda: bandit.act_scores(np.zeros(5, np.float32)),
        lambda: bandit.update(np.zeros(5, np.float32), 0, 1.0, 0.1),
    ):
        with pytest.raises(
            ValueError, match=r"query features must have 3 dimensions .* got shape \(2?,? ?5,?\)"
        ):
            call()


def test_a_router_refuses_query_features_that_are_not_numbers(table):
    from agents.routers import fit_router

    router = fit_router("linear", MMRRoutingEnv(table, episode_length=5))
    with pytest.raises(TypeError, match="X must hold numbers .* got dtype <U1"):
        router.predict(np.full((1, router.n_features_), "a"))
