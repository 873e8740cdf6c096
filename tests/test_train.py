"""train.py, the main job: the quick run writes every file, and seeds merge as the evaluator merges them."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import train
from agents.baselines import BestSinglePolicy, RandomPolicy
from agents.persistence import load_scorer, read_manifest
from agents.rl import load_agent
from agents.rl.threads import torch_threads
from agents.supervised import fit_router
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy, merge_seed_results

RECORD_KEYS = {"name", "nAUC", "Ps", "QNC", "regret", "overrun_rate", "points"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``train.py --quick`` as a user runs it, its output (progress included) redirected to a file."""
    run_dir = tmp_path_factory.mktemp("run")
    with open(run_dir / "log.txt", "wb") as log:
        done = subprocess.run(
            [sys.executable, "train.py", "--quick", "--run-dir", str(run_dir)],
            cwd=Path(train.__file__).parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    assert done.returncode == 0, (run_dir / "log.txt").read_text()[-3000:]
    return run_dir


def test_a_redirected_run_logs_plain_lines_that_say_what_runs(quick_run):
    log = (quick_run / "log.txt").read_bytes()
    assert not re.search(rb"[\r\x1b\x08]", log), "terminal control codes in a redirected log"
    text = log.decode("utf-8")
    # Which policy (of how many), which seed, which phase; then each bar's few lines.
    assert re.search(r"^\[policy 7/8, [^\]]+\] rl-maskable-ppo: seed 0 \(1/1\): training$", text, re.M)
    assert re.search(r"^\[policy 8/8, [^\]]+\] rl-dqn: seed 0 \(1/1\): evaluating RL-DQN$", text, re.M)
    assert re.search(r"^train DQN \(seed 0\): done, [\d,]+ steps in ", text, re.M)
    assert re.search(r"^evaluate Random \(seed 0; 5 budgets\): done, 5,000 queries in ", text, re.M)
    # A few lines per phase, not one per update (the quick run has 8 policies, 13 phases).
    assert len(text.splitlines()) < 120, len(text.splitlines())


def test_quick_run_writes_the_report_files(quick_run):
    for name in ("results.md", "results.csv", "points.csv", "results.json", "pareto.png"):
        assert (quick_run / name).stat().st_size > 0, name


def test_quick_run_records_every_default_policy(quick_run):
    records = json.loads((quick_run / "results.json").read_text())["results"]
    names = [r["name"] for r in records]
    expected = ["Random", "Cheapest", "BestSingle", "Oracle"]  # the baselines, then the agents
    expected += ["Paced-Auto", "Auto (threshold)", "Paced-LinUCB", "RL-MaskablePPO", "RL-DQN"]
    expected += ["PerQueryOracle"]
    assert names == expected
    for record in records:
        assert set(record) >= RECORD_KEYS, record["name"]
        assert record["points"], record["name"]
    rl = records[names.index("RL-MaskablePPO")]
    assert rl["protocol"] == "budgeted stream" and len(rl["points"]) == len(train.QUICK_BUDGET_RATIOS)
    assert 0.0 <= rl["nAUC"] <= 1.0


def test_quick_run_saves_reloadable_agents_and_tensorboard_logs(quick_run):
    seed_dir = quick_run / "agents" / "rl-maskable-ppo" / "seed0"
    model = load_agent(seed_dir / "model.zip")
    assert type(model).__name__ == "MaskablePPO"
    assert json.loads((seed_dir / "agent.json").read_text())["env_kwargs"]["split"] == "train"
    assert list(seed_dir.glob("tb/*/events.out.tfevents.*"))


def test_quick_run_saves_reloadable_routers_and_bandit_learners(quick_run):
    router = load_scorer(quick_run / "agents" / "auto" / "seed0")
    # On one thread of torch and of BLAS, as the run above (OMP_NUM_THREADS=1): other counts sum in
    # another order and change the last bits.
    with torch_threads(1), threadpool_limits(1):
        refit = fit_router("auto", MMRRoutingEnv(split="train", episode_length=100), seed=0)
    # The cross-validated choice and every candidate's scores are saved with it.
    selection = read_manifest(quick_run / "agents" / "auto" / "seed0")["state"]["selection"]
    assert selection["chosen_family"] == refit.selection_["chosen_family"]
    assert [c["nAUC"] for c in selection["candidates"]] == [c["nAUC"] for c in refit.selection_["candidates"]]
    X = MMRRoutingEnv(split="test", episode_length=100).ctx.query_obs[:500]
    for saved, fresh in zip(router.predict(X), refit.predict(X), strict=True):
        np.testing.assert_array_equal(saved, fresh)

    records = json.loads((quick_run / "results.json").read_text())["results"]
    points = next(r for r in records if r["name"] == "Paced-LinUCB")["points"]
    for ratio, point in zip(train.QUICK_BUDGET_RATIOS, points, strict=True):
        directory = quick_run / "agents" / "linucb" / "seed0" / f"budget{float(ratio)}"
        learner = load_scorer(directory)
        assert read_manifest(directory)["metadata"]["budget_ratio"] == ratio
        # Saved after its streams: one update per answered test query (A_k's constant entry is
        # ridge + the number of calls of model k).
        calls = np.linalg.inv(learner.stats.A_inv)[:, -1, -1] - learner.stats.ridge
        answered = train.QUICK_MAX_QUERIES * (1 - point["unanswered_rate"])
        assert calls.sum() == pytest.approx(answered, abs=1e-6), ratio


def test_unknown_policy_is_rejected(tmp_path, capsys):
    assert train.main(["--policies", "random,no-such-agent", "--run-dir", str(tmp_path)]) == 2
    assert "no-such-agent" in capsys.readouterr().err


def test_every_option_says_what_it_does(monkeypatch):
    parsers: list[argparse.ArgumentParser] = []

    def capture(self, args=None, namespace=None):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        train.parse_args([])
    options = {action.option_strings[-1]: action.help for action in parsers[0]._actions}
    assert {"--no-progress", "--episode-length", "--torch-threads"} <= set(options)
    assert all(text and len(text.split()) >= 3 for text in options.values()), options


@pytest.mark.parametrize("factory", [RandomPolicy, BestSinglePolicy])
def test_merging_per_seed_results_equals_evaluating_the_seeds_together(factory):
    env = MMRRoutingEnv(split="test", episode_length=50)
    kwargs = {"budget_ratios": (0.05, 0.3, 1.0), "max_queries": 400, "progress": False}
    together = evaluate_policy(factory, env, seeds=(0, 1, 2), **kwargs)
    merged = merge_seed_results([evaluate_policy(factory, env, seeds=(s,), **kwargs) for s in (0, 1, 2)])
    keys = (
        "nAUC",
        "Ps",
        "QNC",
        "nAUC_std",
        "Ps_std",
        "regret",
        "overrun_rate",
        "regret_std",
        "overrun_rate_std",
    )
    for key in (*keys, "budget_violations"):
        a, b = getattr(together, key), getattr(merged, key)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), key
    assert merged.QNC_per_seed == pytest.approx(together.QNC_per_seed)
    np.testing.assert_allclose(merged.frontier, together.frontier)
    for p, q in zip(together.points, merged.points, strict=True):
        assert (p.cost, p.accuracy, p.accuracy_std, p.regret) == pytest.approx(
            (q.cost, q.accuracy, q.accuracy_std, q.regret)
        )


def test_a_quick_run_under_a_scenario_reports_each_events_effect(tmp_path):
    run_dir = tmp_path / "scenario"
    argv = ["--quick", "--run-dir", str(run_dir), "--no-progress", "--scenario", "regression"]
    assert train.main([*argv, "--policies", "cheapest,best-single"]) == 0
    payload = json.loads((run_dir / "results.json").read_text())
    assert payload["context"]["scenario"] == "regression"
    best = next(r for r in payload["results"] if r["name"] == "BestSingle")
    assert best["scenario"]["name"] == "regression" and best["timeline"]
    assert {r["time"] for r in best["timeline"]} >= {0, 100}  # lanes run along the timeline
    markdown = (run_dir / "results.md").read_text()
    assert "## Scenario 'regression'" in markdown and "answers as" in markdown
    assert (run_dir / "timeline.png").stat().st_size > 0
