"""Regression tests for what a reliability probe of bad inputs found (issue 17, second round).

Each case was a silent acceptance (a bad value taken and used) or a deep crash (numpy's, pyarrow's
or Python's own error without naming our argument, file or row) before the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _replay import assert_sees_the_same
from _tables import make_table

from mmr_gym.env import MMRRoutingEnv
from mmr_gym.errors import TableError
from mmr_gym.evaluate import evaluate_policy
from mmr_gym.files import CHECKSUM_FILE, format_checksums, parse_checksums
from mmr_gym.scenarios import NewModel, Outage, PriceChange, Retirement, Scenario
from mmr_gym.scenarios.events import EventError
from mmr_gym.table import RoutingTable
from mmr_gym.vector import MMRRoutingVectorEnv


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return make_table(n=200, k=4, seed=1)


def small(**changes):
    args = {
        "correct": np.ones((3, 2), np.float32),
        "cost": np.ones((3, 2), np.float32),
        "query_ids": ["a", "b", "c"],
        "datasets": ["d", "d", "d"],
        "model_names": ("m1", "m2"),
    }
    return RoutingTable(**{**args, **changes})


# ------------------------------------------------------------------------------ RoutingTable
@pytest.mark.parametrize(
    "changes, match",
    [
        ({"model_names": "ab"}, r"column 'model_names': expected one name per entry, got a single string"),
        ({"query_ids": "abc"}, r"column 'query_ids': expected one name per entry"),
        ({"datasets": "ddd"}, r"column 'datasets': expected one name per entry"),
        (
            {"correct": [["1", "0"], ["1", "1"], ["0", "0"]]},
            r"column 'correct', row 0: not a real number: '1'",
        ),
        (
            {"correct": [[1, 0], [1, "yes"], [0, 0]]},
            r"column 'correct', row 0: not a real number: '1' \(dtype <U",
        ),
        ({"cost": np.ones((3, 2)) * (1 + 2j)}, r"column 'cost', row 0: not a real number"),
        (
            {"features": {"text": np.ones((3, 2)) * (1 + 1j)}},
            r"column \"features\['text'\]\", row 0: not a real",
        ),
        (
            {"features": {"": np.ones((3, 2))}},
            r"column 'features': a channel name must be a non-empty string",
        ),
        ({"features": [np.ones((3, 2))]}, r"column 'features': expected a mapping, got list"),
        ({"meta": ["a"]}, r"column 'meta': expected a mapping, got list"),
    ],
)
def test_a_table_refuses_values_numpy_would_silently_convert(changes, match):
    with pytest.raises(TableError, match=match):
        small(**changes)


def test_a_missing_text_is_empty_not_the_word_nan():
    assert small(texts=["a", float("nan"), None]).texts.tolist() == ["a", "", ""]


@pytest.mark.parametrize(
    "idx, error, match",
    [
        ([0.5, 1.7], TypeError, "integer positions or a boolean mask"),
        ([-1], IndexError, r"positions must be in \[0, 200\)"),
        ([0, 500], IndexError, r"positions must be in \[0, 200\)"),
        (np.array([True, False, True]), ValueError, r"boolean mask needs shape \(200,\)"),
        (["q0"], TypeError, "integer positions"),
    ],
)
def test_subset_takes_positions_only(table, idx, error, match):
    with pytest.raises(error, match=match):
        table.subset(idx)


def test_a_single_string_is_not_a_list_of_names(table):
    with pytest.raises(TypeError, match="the string 'text'"):
        table.without_features("text")
    with pytest.raises(TypeError, match="the string 'model0'"):
        table.select_models("model0")


def test_test_datasets_outside_mode_out_is_an_error_not_ignored(table):
    with pytest.raises(ValueError, match="test_datasets is for split mode 'out' only"):
        table.split("in", test_datasets=["alpha"])
    with pytest.raises(ValueError, match="test_datasets is for split mode 'out' only"):
        MMRRoutingEnv(table, test_datasets=["alpha"], episode_length=5)


# ------------------------------------------------------------------------------ saved tables
def rewrite_outcomes(directory: Path, change) -> None:
    """Change outcomes.parquet and record its new SHA-256: consistent files, wrong content."""
    frame = pd.read_parquet(directory / "outcomes.parquet")
    change(frame)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    (directory / "outcomes.parquet").write_bytes(buffer.getvalue())
    digests = parse_checksums((directory / CHECKSUM_FILE).read_text())
    digests["outcomes.parquet"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (directory / CHECKSUM_FILE).write_text(format_checksums(digests))


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda f: f.__setitem__("model0_correct", f["model0_correct"].where(f.index != 3)),
            r"outcomes.parquet, column 'model0_correct', row 3: missing value \(1 such row",
        ),
        (
            lambda f: f.__setitem__("model1_cost", f["model1_cost"].astype(str)),
            r"outcomes.parquet, column 'model1_cost': stored as (object|str), not as numbers",
        ),
    ],
)
def test_a_saved_table_is_not_filled_or_parsed_like_a_csv(tmp_path, change, match):
    """A saved table was complete and numeric: a NaN there is damage, not a gap to fill with the
    column mean (it loaded as 0.2857 before), and text is not parsed as numbers."""
    directory = make_table(n=50, k=3).save(tmp_path / "t")
    rewrite_outcomes(directory, change)
    with pytest.raises(TableError, match=match):
        RoutingTable.load(directory)


# ------------------------------------------------------------------------------ evaluate_policy
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"budget_ratios": []}, ValueError, "budget_ratios must not be empty"),
        ({"seeds": []}, ValueError, "seeds must not be empty"),
        ({"budget_ratios": 0.5}, TypeError, "budget_ratios must be a sequence"),
        ({"budget_ratios": ["0.5"]}, TypeError, r"budget_ratios\[0\] must be a number"),
        ({"budget_ratios": [None]}, TypeError, r"budget_ratios\[0\] must be a number"),
        ({"budget_ratios": [0.5, 0.5]}, ValueError, "budget_ratios repeats a value"),
        ({"seeds": [0, 0]}, ValueError, "seeds repeats a value"),
        ({"seeds": 3}, TypeError, "seeds must be a sequence of integers"),
        ({"seeds": [1.5]}, TypeError, r"seeds\[0\] must be an integer"),
        ({"seeds": [-1]}, ValueError, r"seeds\[0\] must be an integer >= 0"),
        ({"max_queries": -5}, ValueError, "max_queries must be an integer >= 1"),
        ({"max_queries": True}, TypeError, "max_queries must be an integer"),
        ({"on_point": 3}, TypeError, "on_point must be callable"),
    ],
)
def test_evaluate_policy_checks_its_grid(table, kwargs, error, match):
    from agents.baselines import RandomPolicy

    env = MMRRoutingEnv(table, split="test", episode_length=10)
    with pytest.raises(error, match=match):
        evaluate_policy(RandomPolicy, env, progress=False, **kwargs)


def test_evaluate_policy_refuses_what_is_not_a_policy_or_an_env(table):
    from agents.baselines import RandomPolicy

    env = MMRRoutingEnv(table, split="test", episode_length=10)
    with pytest.raises(TypeError, match="policy must be a Policy or a factory"):
        evaluate_policy(object(), env, progress=False)
    with pytest.raises(TypeError, match="env must be an MMRRoutingEnv"):
        evaluate_policy(
            RandomPolicy, MMRRoutingVectorEnv(table, num_envs=2, episode_length=5), progress=False
        )


# ------------------------------------------------------------------------------ vector env options
@pytest.mark.parametrize(
    "seed, error, match",
    [
        ([1.5, 2.7], TypeError, r"seed\[0\] must be an integer"),
        (["1", "2"], TypeError, r"seed\[0\] must be an integer"),
        ([True, False], TypeError, r"seed\[0\] must be an integer"),
        (-1, ValueError, "seed must be an integer >= 0"),
    ],
)
def test_vector_seeds_are_integers(table, seed, error, match):
    venv = MMRRoutingVectorEnv(table, num_envs=2, episode_length=5, stream_sampling="per-env")
    with pytest.raises(error, match=match):
        venv.reset(seed=seed)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"times": {0: 1, 1: 2}}, ValueError, r"options\['times'\] must hold one time per sub-environment"),
        ({"times": [0, 2**70]}, ValueError, r"options\['times'\]\[1\] must be an integer in \[0, "),
        ({"time": 2**63}, ValueError, r"options\['time'\] must be an integer in \[0, "),
        ({"budget_ratios": 0.5}, ValueError, r"options\['budget_ratios'\] must hold one entry"),
        ({"streams": 3}, ValueError, r"options\['streams'\] must hold one entry"),
        ({"streams": {"q1", "q2"}}, ValueError, r"options\['streams'\] must hold one entry"),
    ],
)
def test_vector_reset_options_are_checked(table, options, error, match):
    venv = MMRRoutingVectorEnv(table, num_envs=2, episode_length=5, scenario="outage")
    with pytest.raises(error, match=match):
        venv.reset(seed=0, options=options)


def test_absurd_sizes_and_times_are_errors_not_overflows(table):
    with pytest.raises(ValueError, match=r"num_envs must be an integer in \[1, 1048576\]"):
        MMRRoutingVectorEnv(table, num_envs=10**12, episode_length=5)
    env = MMRRoutingEnv(table, episode_length=5, scenario="outage")
    with pytest.raises(ValueError, match=r"options\['time'\] must be an integer in \[0, 9007199254740992\]"):
        env.reset(seed=0, options={"time": 2**63})


# ------------------------------------------------------------------------------ scenarios
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Scenario("x", None), r"events must be a list of events, got None"),
        (lambda: Scenario("x", Outage("model1", start=0, end=5)), "events must be a list of events"),
        (lambda: Scenario("x", (), seed="1"), r"scenario 'x': seed must be an integer"),
        (lambda: Scenario("x", (), seed=-1), r"scenario 'x': seed must be an integer >= 0"),
        (lambda: Scenario(None, ()), "a scenario's name must be a non-empty string"),
        (lambda: Outage("model1", start=0, end=2**70), r"Outage: end must be an integer in \[0, "),
        (lambda: PriceChange("model1", at=5, factor=2.0, lag=2**63), r"lag must be an integer in \[0, "),
        (
            lambda: PriceChange("model1", at=0, factor=1e300),
            r"factor must be a finite number > 0 and <= 1e\+06",
        ),
        (
            lambda: Scenario("x", (NewModel("model0", at=50), Retirement("model0", at=10))),
            "'model0' retires at 10, before it arrives at 50",
        ),
    ],
)
def test_bad_scenarios_are_refused(make, match):
    with pytest.raises(EventError, match=match):
        make()


def test_price_changes_that_multiply_past_the_bound_are_refused(table):
    """Two changes of 1e300 overflowed the float32 costs to inf before; now each is bounded and so is
    their product."""
    changes = (PriceChange("model3", at=0, factor=1e6), PriceChange("model3", at=1, factor=10.0))
    with pytest.raises(EventError, match=r"price changes of 'model3' multiply its price by 1e\+07"):
        MMRRoutingEnv(table, scenario=Scenario("x", changes), episode_length=5)


# ------------------------------------------------------------------------------ loaders
def test_an_empty_model_name_is_an_error(write_csv):
    path = write_csv("x.csv", "dataset_idx,question,_correct,_cost\nA_1,hi,1,0.1\n")
    with pytest.raises(TableError, match=r"column '_correct': no model name before the suffix"):
        from mmr_gym.datasets import load_table

        load_table(path)


def test_a_json_object_as_a_query_id_is_an_error(write_csv):
    from mmr_gym.datasets import load_call_log

    path = write_csv("l.jsonl", '{"query_id": {"x": 1}, "model": "m", "correct": 1, "cost": 0.1}\n')
    with pytest.raises(
        TableError, match=r"l.jsonl, column 'query_id': line 1: not a single value: \{'x': 1\}"
    ):
        load_call_log(path, features=None)


HEADER = "model,provider_model,kind,input_usd_per_1m,output_usd_per_1m,image_tokens,source_url,as_of,note"


@pytest.mark.parametrize(
    "text, match",
    [
        (
            f"{HEADER}\nm,m,multimodal,1,2,85.7,,,\n",
            r"column 'image_tokens': line 2: '85.7' is not a whole number",
        ),
        (
            f"{HEADER}\nm,m,multimodal,1,2,1e300,,,\n",
            r"column 'image_tokens': line 2: '1e300' is not a whole",
        ),
        (f"{HEADER},bogus\nm,m,multimodal,1,2,85,,,,x\n", r"column 'bogus': line 1: unknown column"),
        (
            f"{HEADER},note\nm,m,multimodal,1,2,85,,,,x\n",
            r"column 'note': line 1: the header names this column",
        ),
        (f"{HEADER}\n", "empty price table: no model's price"),
        (
            f"{HEADER},price_status,read_on\nm,m,multimodal,1,2,85,https://x,,,sourced,2024-13-45\n",
            r"column 'read_on': line 2: a sourced price needs the date",
        ),
    ],
)
def test_price_tables_are_read_strictly(write_csv, text, match):
    from mmr_gym.datasets.prices import load_prices

    with pytest.raises(TableError, match=match):
        load_prices(write_csv("p.csv", text))


# ------------------------------------------------------------------------------ copies
def test_a_copied_env_with_a_scenario_continues_exactly(table):
    """Mid-run, across episode ends and the scenario's events, a deepcopy steps as the original."""
    env = MMRRoutingEnv(table, episode_length=7, scenario="combined", budget_ratio=(0.1, 1.0))
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    for _ in range(20):
        if env.step(int(rng.integers(4)))[2]:
            env.reset()
    clone = copy.deepcopy(env)
    for _ in range(60):
        action = int(rng.integers(4))
        a, b = env.step(action), clone.step(action)
        np.testing.assert_equal(dataclasses.astuple(Step(*a)), dataclasses.astuple(Step(*b)))
        if a[2]:
            np.testing.assert_equal(env.reset(), clone.reset())


@dataclasses.dataclass
class Step:
    obs: dict
    reward: float
    terminated: bool
    truncated: bool
    info: dict


# ------------------------------------------------------------------------------ SB3 adapter
def test_the_sb3_adapter_refuses_a_single_env_and_unknown_info_keys(table):
    from mmr_gym.sb3 import SB3VecEnvAdapter

    with pytest.raises(TypeError, match="SB3VecEnvAdapter wraps an MMRRoutingVectorEnv"):
        SB3VecEnvAdapter(MMRRoutingEnv(table, episode_length=5))
    venv = MMRRoutingVectorEnv(table, num_envs=2, episode_length=5)
    with pytest.raises(TypeError, match="info_keys must be a list of info keys, got the string"):
        SB3VecEnvAdapter(venv, info_keys="episode_metrics")
    with pytest.raises(ValueError, match=r"unknown info_keys \['episod_metrics'\]"):
        SB3VecEnvAdapter(venv, info_keys=("episod_metrics",))


# ------------------------------------------------------------------------------ leaks under scenarios
@pytest.mark.parametrize("preset", ["price-cut", "outage", "new-model", "regression", "drift", "combined"])
def test_no_leak_of_the_current_outcome_under_any_scenario(table, preset):
    """As the split leak test in test_env.py, in a world that changes mid-stream: the stream starts a
    few queries before the preset's first event (t/8 for the drift, t/4 for the others), so the
    observations before each action cross it. Rewriting the current query's outcomes (every model
    but the reference one) changes nothing the agent sees before acting."""
    kwargs = {"split": "all", "episode_length": 12, "budget_ratio": 0.6, "scenario": preset}
    env = MMRRoutingEnv(table, **kwargs)
    rows = env.ctx.split_indices[:12]
    start = env.ctx.split_indices.size // (8 if preset == "drift" else 4) - 6
    options = {"query_ids": table.query_ids[rows].tolist(), "time": start}
    obs, info = env.reset(seed=3, options=options)
    others = np.array([m for m in range(table.n_models) if m != env.ctx.reference_model])
    actions = []
    for q in rows.tolist():
        correct, cost = table.correct.copy(), table.cost.copy()
        correct[q, others] = correct[q, others[::-1]]
        cost[q, others] = cost[q, others[::-1]] * 7.0
        rewritten = MMRRoutingEnv(dataclasses.replace(table, correct=correct, cost=cost), **kwargs)
        actions.append(assert_sees_the_same(rewritten, actions, obs, info, seed=3, options=options))
        obs, _, terminated, _, info = env.step(actions[-1])
        if terminated:
            break
    assert len(actions) >= 8  # the stream crossed the event, not ended before it


def test_a_table_whose_meta_holds_nan_is_not_saved_as_invalid_json(tmp_path):
    with pytest.raises(TypeError, match=r"its meta must hold JSON values only .*Out of range float values"):
        small(meta={"x": float("nan")}).save(tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_call_log_dataset_name_is_a_string(write_csv):
    from mmr_gym.datasets import load_call_log

    path = write_csv("l.csv", "query_id,model,correct,cost\na,m,1,0.1\n")
    with pytest.raises(TypeError, match="dataset must be a dataset name .* got 5"):
        load_call_log(path, dataset=5, features=None)


def test_options_of_another_split_mode_are_errors_not_ignored(table):
    with pytest.raises(ValueError, match="train_rounding is for split mode 'in' only"):
        table.split(train_ids=["q0"], train_rounding="sklearn")


def test_a_cost_of_true_is_no_amount(tmp_path):
    from mmr_gym.datasets import load_call_log

    path = tmp_path / "l.parquet"
    pd.DataFrame({"query_id": ["a"], "model": ["m"], "correct": [True], "cost": [True]}).to_parquet(path)
    with pytest.raises(TableError, match=r"l.parquet, column 'cost', row 0: not a number: True"):
        load_call_log(path, features=None)
