"""Scenarios: events validated by name, the world they make at each time, the timeline, and the
environment contract under every preset (checkers, determinism across processes, the budget
invariant, single env = vector env step for step, nothing of the future leaks)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from _replay import assert_sees_the_same
from _tables import make_table
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mmr_gym  # noqa: F401  (registers the ids)
from agents.baselines import CheapestPolicy, RandomPolicy
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy
from mmr_gym.scenarios import (
    EventError,
    NewModel,
    Outage,
    PriceChange,
    Regression,
    Scenario,
    TrafficDrift,
    available,
    changing_world,
    compile_world,
    drifting_world,
    event_from_dict,
    preset,
)
from mmr_gym.vector import MMRRoutingVectorEnv


@pytest.fixture(scope="module")
def table():
    return make_table(n=1000, k=4, seed=3)


def scripted(table):
    """A scenario that exercises every kind of event early on a short timeline."""
    return Scenario(
        "scripted",
        (
            PriceChange("model3", at=10, factor=0.1, lag=15),
            Outage("model2", start=12, end=30),
            NewModel("model1", at=8),
            Regression("model3", at=20, replacement="model0", probability=0.7),
        ),
        seed=4,
    )


# ---------------------------------------------------------------------------- events
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: PriceChange("m", at=-1, factor=0.5),
            r"PriceChange: at must be an integer in \[0, 9007199254740992\], got -1",
        ),
        (
            lambda: PriceChange("m", at=1, factor=0.0),
            r"PriceChange\('m'\): factor must be a finite number > 0",
        ),
        (lambda: PriceChange("m", at=1, factor="x"), r"factor must be a number"),
        (lambda: PriceChange("", at=1, factor=0.5), r"PriceChange: model must be a model name"),
        (lambda: Outage("m", start=5, end=5), r"Outage\('m'\): end must be after start"),
        (lambda: Regression("m", at=1, replacement="m"), r"replacement must be another model"),
        (lambda: Regression("m", at=1, replacement="r", probability=1.5), r"probability must be a finite"),
        (lambda: TrafficDrift(0, 10, before={}, after={"a": 1}), r"TrafficDrift: before must map dataset"),
        (
            lambda: TrafficDrift(0, 10, before={"a": -1}, after={"a": 1}),
            r"before\['a'\] must be a finite number >= 0",
        ),
        (lambda: event_from_dict({"type": "eclipse"}), r"unknown event type 'eclipse'"),
        (lambda: event_from_dict({"type": "outage", "model": "m", "start": 1}), r"outage: .*end"),
        (lambda: Scenario("s", (NewModel("m", 1), NewModel("m", 2))), r"more than one NewModel of \['m'\]"),
    ],
)
def test_bad_events_are_refused_naming_the_event_and_field(make, message):
    with pytest.raises(EventError, match=message):
        make()


def test_events_that_name_what_the_table_lacks_are_refused(table):
    env = MMRRoutingEnv(table, split="test", episode_length=5)
    with pytest.raises(
        EventError, match=r"names model 'GPT-9', which .* does not have; its models: \['model0'"
    ):
        compile_world(Scenario("s", (Outage("GPT-9", 0, 5),)), env.ctx)
    with pytest.raises(EventError, match=r"names dataset\(s\) \['zeta'\]"):
        compile_world(Scenario("s", (TrafficDrift(0, 5, {"alpha": 1}, {"zeta": 1}),)), env.ctx)
    everything_down = Scenario("s", tuple(Outage(f"model{m}", 3, 9) for m in range(4)))
    with pytest.raises(EventError, match="from time 3 no model can be called"):
        compile_world(everything_down, env.ctx)
    with pytest.raises(ValueError, match="unknown scenario 'heatwave'"):
        MMRRoutingEnv(table, scenario="heatwave")


# ---------------------------------------------------------------------------- the world at each time
def test_the_world_changes_at_the_event_times(table):
    env = MMRRoutingEnv(table, split="test", episode_length=40, budget_ratio=None, scenario=scripted(table))
    world = env.config.world(env.ctx)
    assert world.breaks.tolist() == [0, 8, 10, 12, 20, 25, 30]
    seg = {t: world.segment(t) for t in (0, 9, 11, 13, 21, 26, 31)}
    assert not world.available[seg[0], 1] and world.available[seg[9], 1]  # new model arrives at 8
    assert world.cost_scale[seg[9], 3] == 1 and world.cost_scale[seg[11], 3] == pytest.approx(0.1)
    assert world.known_scale[seg[21], 3] == 1 and world.known_scale[seg[26], 3] == pytest.approx(0.1)
    assert world.available[seg[11], 2] and not world.available[seg[13], 2] and world.available[seg[31], 2]
    assert not world.regressed[seg[13], 3] and world.regressed[seg[21], 3]
    # The regression replaces model3's outcome by model0's on about 70% of queries (fixed draws).
    rows = env.ctx.split_indices
    replaced = world.regressed_correct[:, 3] != table.correct[rows, 3]
    differ = table.correct[rows, 3] != table.correct[rows, 0]
    assert np.all(world.regressed_correct[replaced, 3] == table.correct[rows[replaced], 0])
    assert 0.6 < replaced.sum() / differ.sum() < 0.8


def test_a_static_world_steps_as_no_world_and_shown_prices_are_tabled_per_segment(table):
    env = MMRRoutingEnv(table, split="test", episode_length=40, budget_ratio=None, scenario=scripted(table))
    world = env.config.world(env.ctx)
    assert changing_world(world) is world and changing_world(None) is None
    # Traffic drift alone changes no price, availability or outcome: a static world.
    drift = Scenario("drift only", (TrafficDrift(0, 10, {"alpha": 1}, {"beta": 1}),))
    static = compile_world(drift, env.ctx)
    assert static.static and changing_world(static) is None
    assert changing_world(compile_world(Scenario("none", ()), env.ctx)) is None
    # ... but its streams follow the drift: the one world the streams are drawn from.
    assert drifting_world(static) is static and drifting_world(None) is None
    assert drifting_world(compile_world(Scenario("none", ()), env.ctx)) is None
    # The shown price factors: the known ones where a model can be called, 0 elsewhere.
    np.testing.assert_array_equal(world.shown_scale, np.where(world.available, world.known_scale, 0.0))
    assert not world.shown_scale.flags.writeable and (world.shown_scale == 0).any()


def test_what_the_agent_sees_and_pays_follows_the_world(table):
    env = MMRRoutingEnv(table, split="test", episode_length=40, budget_ratio=None, scenario=scripted(table))
    obs, info = env.reset(seed=0)
    base = env.ctx.model_costs_obs
    rows = env.episode_query_indices
    for t in range(35):
        q = rows[t]
        shown = obs["model_costs"]
        assert info["action_mask"][1] == (t >= 8) and info["action_mask"][2] == (not 12 <= t < 30)
        assert shown[1] == (base[q, 1] if t >= 8 else 0.0)  # a model not there shows cost 0
        expected = base[q, 3] * np.float32(0.1) if t >= 25 else base[q, 3]
        assert shown[3] == pytest.approx(expected, rel=1e-6)
        obs, _, _, _, info = env.step(3)
        assert info["cost"] == pytest.approx(table.cost[q, 3] * (0.1 if t >= 10 else 1.0), rel=1e-6)
        world = env.config.world(env.ctx)
        want = world.regressed_correct[env.ctx.lookups.slot_of_row[q], 3] if t >= 20 else table.correct[q, 3]
        assert info["correct"] == want


def test_the_timeline_runs_across_episodes_and_restarts_when_seeded(table):
    env = MMRRoutingEnv(table, split="test", episode_length=7, budget_ratio=None)
    for seed, start in ((0, 0), (None, 7), (None, 14), (1, 0)):
        env.reset(seed=seed)
        for _ in range(7):
            *_, terminated, _, info = env.step(0)
        assert terminated and info["episode_metrics"]["time"] == start
    env.reset(options={"time": 500})
    for _ in range(7):
        *_, info = env.step(0)
    assert info["episode_metrics"]["time"] == 500
    venv = MMRRoutingVectorEnv(table, num_envs=2, split="test", episode_length=7, budget_ratio=None)
    venv.reset(seed=0)
    times = []
    for _ in range(15):  # NEXT_STEP: two episodes end, a third starts
        *_, info = venv.step(np.zeros(2, dtype=np.int64))
        if "episode_metrics" in info:
            times.append(info["episode_metrics"]["time"].tolist())
    assert times == [[0, 0], [7, 7]]


def test_the_vector_env_starts_each_reset_row_at_its_own_time(table):
    venv = MMRRoutingVectorEnv(table, num_envs=3, split="test", episode_length=7, budget_ratio=None)
    venv.reset(options={"times": [5, 0, 40]})
    venv.reset(options={"reset_mask": np.array([False, True, True]), "times": [3, 9]})
    for _ in range(7):
        *_, info = venv.step(np.zeros(3, dtype=np.int64))
    assert info["episode_metrics"]["time"].tolist() == [5, 3, 9]
    for options, match in (
        ({"times": [1, 2]}, "one time per sub-environment reset"),
        ({"times": [1, -2, 3]}, r"options\['times'\]\[1\]"),
        ({"times": [1, 2, 3], "time": 4}, "exclude each other"),
        ({"times": "123"}, "one time per sub-environment reset"),
    ):
        with pytest.raises(ValueError, match=match):
            venv.reset(options=options)


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_the_vector_env_keeps_each_current_querys_segment(table, mode):
    # EpisodeBatch.segments is state kept by start and step: it must always be the segment of
    # each current query's time, through resets at given times, partial resets and autoresets.
    venv = MMRRoutingVectorEnv(
        table, num_envs=4, split="test", episode_length=7, scenario=scripted(table), autoreset_mode=mode
    )
    episodes = venv._episodes
    world = episodes.world

    def check():
        np.testing.assert_array_equal(episodes.segments, world.segment(episodes.now()))

    venv.reset(options={"times": [5, 0, 18, 27]})
    check()
    venv.reset(options={"reset_mask": np.array([False, True, True, False]), "times": [9, 11]})
    check()
    rng = np.random.default_rng(0)
    segments_seen = set()
    for _ in range(30):
        venv.step(rng.integers(0, 4, size=4))
        check()
        segments_seen.update(episodes.segments.tolist())
    assert len(segments_seen) > 3  # the episodes crossed several segments


def test_a_budget_the_scenario_makes_too_small_somewhere_is_refused(table):
    # A 30x price rise of every model at t=5: the configured ratio fits before, not after.
    rise = Scenario("rise", tuple(PriceChange(f"model{m}", at=5, factor=30.0) for m in range(4)))
    env = MMRRoutingEnv(table, split="test", episode_length=10)
    minimum = env.ctx.min_budget_ratio(10)
    MMRRoutingEnv(table, split="test", episode_length=10, budget_ratio=minimum * 1.5)
    with pytest.raises(ValueError, match="too small"):
        MMRRoutingEnv(table, split="test", episode_length=10, budget_ratio=minimum * 1.5, scenario=rise)


def test_traffic_drift_moves_the_mix_of_drawn_streams(table):
    drift = Scenario("d", (TrafficDrift(0, 200, before={"alpha": 1.0}, after={"beta": 1.0}),))
    env = MMRRoutingEnv(table, split="test", episode_length=20, budget_ratio=None, scenario=drift)
    shares = []
    env.reset(seed=0)
    for _ in range(12):
        rows = env.episode_query_indices
        shares.append(np.mean(table.datasets[rows] == "beta"))
        for _ in range(20):
            env.step(0)
        env.reset()
    assert shares[0] < 0.2 and shares[-1] == 1.0 and shares[5] > shares[1]


# ---------------------------------------------------------------------------- the contract under presets
@pytest.mark.parametrize("name", available())
def test_every_preset_passes_both_checkers_without_warnings(name):
    env = gym.make("MMRRouting-v0", episode_length=20, scenario=name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
    assert [str(w.message) for w in caught] == []


def _trajectory_digest(name: str) -> str:
    """A rollout across the preset's first event, reduced to a hash (for the cross-process check)."""
    env = MMRRoutingEnv(episode_length=50, budget_ratio=(0.05, 1.0), scenario=name, feedback="full")
    start = max(0, int(compile_world(preset(name, env.ctx), env.ctx).breaks[-1]) - 120)
    digest = hashlib.sha256()
    obs, info = env.reset(seed=11, options={"time": start})
    rng = np.random.default_rng(0)
    for _ in range(300):
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, _, info = env.step(action)
        for value in (obs["query"], obs["budget"], obs["model_costs"], reward, info["cost"], info["correct"]):
            digest.update(np.asarray(value).tobytes())
        if terminated:
            digest.update(repr(sorted(info["episode_metrics"].items())).encode())
            obs, info = env.reset()
    return digest.hexdigest()


@pytest.mark.parametrize("name", ["price-cut", "regression", "drift", "combined"])
def test_a_seeded_run_repeats_across_processes(name):
    here = Path(__file__).parent
    code = f"import test_scenarios; print(test_scenarios._trajectory_digest({name!r}))"
    env_vars = {
        **os.environ,
        "PYTHONHASHSEED": "7",
        "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env_vars, cwd=here, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == _trajectory_digest(name)


@pytest.mark.parametrize("name", available())
def test_the_budget_invariant_holds_under_every_preset(name):
    env = MMRRoutingEnv(split="test", episode_length=50, scenario=name)
    result = evaluate_policy(
        RandomPolicy, env, budget_ratios=(0.05, 0.5), seeds=(0,), max_queries=3000, progress=False
    )
    assert result.budget_violations == 0 and all(p.budget_violations == 0 for p in result.points)


def dearest_made_cheapest(table):
    """The dearest model becomes the cheapest at once, announced: the fallback for a masked action
    (the cheapest affordable model as the agent knows the prices) changes with it."""
    dearest = table.model_names[int(np.argmax(table.cost.mean(axis=0)))]
    return Scenario("cut", (PriceChange(dearest, at=0, factor=0.001, lag=0),))


@pytest.mark.parametrize(
    ("make_scenario", "budgets"),
    [(scripted, (0.05, 1.0)), (dearest_made_cheapest, (0.02, 0.1))],  # tight: masked actions fall back
)
@pytest.mark.parametrize("sampling", ["per-env", "batched"])
@pytest.mark.parametrize("feedback", ["bandit", "full"])
def test_single_and_vector_env_agree_step_for_step_under_a_scenario(
    table, sampling, feedback, make_scenario, budgets
):
    kwargs = {"split": "test", "episode_length": 9, "budget_ratio": budgets, "feedback": feedback}
    kwargs["scenario"] = make_scenario(table)
    venv = MMRRoutingVectorEnv(table, num_envs=3, stream_sampling=sampling, **kwargs)
    obs, info = venv.reset(seed=2)
    singles = [MMRRoutingEnv(table, **kwargs) for _ in range(3)]
    rng = np.random.default_rng(1)
    current = [None] * 3

    def start(i):
        rows = venv.episode_query_indices[i]
        metrics_ratio = venv.budget[i] / (rows.size * venv.c_ref)
        options = {"query_ids": table.query_ids[rows].tolist(), "budget_ratio": float(metrics_ratio)}
        options["time"] = int(venv._episodes.time0[i])
        return singles[i].reset(options=options)

    for i in range(3):
        current[i] = start(i)
    done = np.zeros(3, dtype=bool)
    for _ in range(80):
        actions = np.array([rng.integers(0, 4) for _ in range(3)])
        obs, reward, terminated, _, info = venv.step(actions)
        for i in range(3):
            if done[i]:
                current[i] = start(i)
                continue
            s_obs, s_reward, s_term, _, s_info = singles[i].step(int(actions[i]))
            for key in s_obs:
                np.testing.assert_allclose(obs[key][i], s_obs[key], rtol=1e-6)
            assert reward[i] == s_reward and terminated[i] == s_term
            assert info["cost"][i] == s_info["cost"] and info["correct"][i] == s_info["correct"]
            if feedback == "full":
                np.testing.assert_array_equal(info["outcomes"]["correct"][i], s_info["outcomes"]["correct"])
                np.testing.assert_array_equal(info["outcomes"]["cost"][i], s_info["outcomes"]["cost"])
            if s_term:
                for key in ("accuracy", "oracle_accuracy", "spend", "time"):
                    assert info["episode_metrics"][key][i] == s_info["episode_metrics"][key], key
        done = terminated


def test_nothing_of_the_current_outcome_or_of_the_future_shows_before_acting(table):
    """Under a scenario: rewrite the current query's outcomes, and move every event after the
    current time later: what the agent sees before acting stays the same, bit for bit."""
    scenario = scripted(table)
    kwargs = {"split": "test", "episode_length": 40, "budget_ratio": 0.5, "scenario": scenario}
    env = MMRRoutingEnv(table, **kwargs)
    obs, info = env.reset(seed=3)
    rows = env.episode_query_indices
    options = {"query_ids": table.query_ids[rows].tolist(), "time": 0}
    actions = []
    for t, q in enumerate(rows.tolist()[:30]):
        correct, cost = table.correct.copy(), table.cost.copy()
        correct[q], cost[q] = correct[q, ::-1], cost[q, ::-1] * 3.0
        later = Scenario(
            "later",
            tuple(_shifted(e, t) for e in scenario.events),
            seed=scenario.seed,
        )
        other = MMRRoutingEnv(
            dataclasses.replace(table, correct=correct, cost=cost), **{**kwargs, "scenario": later}
        )
        actions.append(assert_sees_the_same(other, actions, obs, info, options=options))
        obs, _, terminated, _, info = env.step(actions[-1])
        if terminated:
            break
    assert len(actions) > 20


def _shifted(event, now):
    """``event`` with every time after ``now`` moved 1000 later (what has happened stays)."""
    fields = dict(event.__dict__)
    for key in ("at", "start", "end"):
        if key in fields and fields[key] > now:
            fields[key] += 1000
    if isinstance(event, PriceChange) and event.lag is not None and event.at + event.lag > now >= event.at:
        fields["lag"] = event.lag + 1000
    return type(event)(**fields)


def test_evaluation_runs_lanes_along_the_timeline_and_matches_one_by_one(table):
    env = MMRRoutingEnv(table, split="test", episode_length=25, scenario=scripted(table))
    kwargs = {"budget_ratios": (0.05, 0.5), "seeds": (0, 1), "progress": False, "max_queries": 300}
    batched = evaluate_policy(CheapestPolicy, env, **kwargs)
    one_by_one = evaluate_policy(CheapestPolicy, env, vectorized=False, **kwargs)
    assert batched.to_dict() == one_by_one.to_dict()


def test_event_effects_measure_regret_before_and_after_and_recovery():
    from types import SimpleNamespace

    from mmr_gym.scenarios.analysis import event_effects

    scenario = Scenario("s", (Regression("a", at=100, replacement="b"),)).to_dict()
    timeline = []
    for seed in (0, 1):
        for k in range(10):  # episodes of 25 queries; the event at 100: 4 before, 6 after
            after = k >= 4
            # Regret 0.1 before; 0.4 for two episodes after, then back to 0.11 (within the margin).
            regret = 0.1 if not after else (0.4 if k < 6 else 0.11)
            record = {"time": 25 * k, "length": 25, "answered": 25, "spend": 5.0, "budget": 10.0}
            record.update(accuracy=0.5, oracle_accuracy=0.5 + regret, overrun=0.1 if k == 4 else 0.0)
            timeline.append({"budget_ratio": 0.3, "seed": seed, **record})
    result = SimpleNamespace(name="P", timeline=timeline, scenario={**scenario, "split_queries": 250})
    (effect,) = event_effects(result, margin=0.02, window=2)
    assert effect["regret_before"] == pytest.approx(0.1) and effect["regret_before_std"] == pytest.approx(0.0)
    assert effect["regret_after"] == pytest.approx((2 * 0.4 + 4 * 0.11) / 6)
    assert effect["change"] == pytest.approx(effect["regret_after"] - 0.1)
    assert effect["recovery_queries"] == 50.0 and effect["recovered_share"] == 1.0  # from t=150
    assert effect["overrun_rate_after"] == pytest.approx(1 / 6)
    assert effect["spend_over_budget_after"] == pytest.approx(0.5)
    # Against the same queries without the event (regret 0.1 throughout): the excess after it.
    calm = SimpleNamespace(name="P", timeline=[dict(r, oracle_accuracy=0.6) for r in timeline])
    (against,) = event_effects(result, baseline=calm, margin=0.02, window=2)
    assert against["excess_regret"] == pytest.approx(effect["regret_after"] - 0.1)
    assert against["excess_regret_per_seed"] == pytest.approx([effect["regret_after"] - 0.1] * 2)
    assert math.isnan(effect["excess_regret"])  # no baseline, no excess
    never = [dict(r, oracle_accuracy=0.9) if r["time"] >= 100 else r for r in timeline]
    (stuck,) = event_effects(SimpleNamespace(name="Q", timeline=never, scenario=result.scenario))
    assert stuck["recovery_queries"] == float("inf") and stuck["recovered_share"] == 0.0
