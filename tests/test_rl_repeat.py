"""A seeded RL run repeats: the same agent and the same figures from two processes that differ in
what torch would choose for itself (its thread count) and in Python's string hashing.

Training on two torch threads gives other weights than on one (the order of float sums changes
with the work split), so a run's figures would depend on the machine's core count if the library
left torch's default: :func:`agents.rl.train_agent` trains on one thread unless told otherwise.

What does not repeat: figures from other package versions (``constraints.txt`` pins them) or from
other code (the RL rows moved between commits of this repository: the default run gave MaskablePPO
0.6614 / DQN 0.6867 on 2 December and 0.6526 / 0.6813 on 7 December); and, untested here, other CPU
instruction sets, whose float kernels may round differently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Train a tiny MaskablePPO and DQN (checkpoints selected on held-out streams, as train.py does),
# score each with SB3Policy on the test split, and print the weights' digest and the figures.
SCRIPT = """
import hashlib, json, sys
from agents.rl import SB3Policy, train_agent
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy

out = {}
for algo, extra in (("maskable-ppo", {}), ("dqn", {"learning_starts": 500, "target_update_interval": 200})):
    model = train_agent(
        algo, {"episode_length": 20}, total_timesteps=2048, seed=3, log_dir=sys.argv[1] + "/" + algo,
        eval_freq=1024, n_eval_episodes=4, hyperparams=extra,
    )
    digest = hashlib.sha256()
    for name, tensor in model.policy.state_dict().items():
        digest.update(name.encode() + tensor.numpy().tobytes())
    env = MMRRoutingEnv(split="test", episode_length=20)
    result = evaluate_policy(SB3Policy(model), env, budget_ratios=(0.1, 0.5, 1.0), seeds=(0,), max_queries=400)
    out[algo] = {
        "weights": digest.hexdigest(),
        "nAUC": result.nAUC,
        "points": [(p.cost, p.accuracy) for p in result.points],
    }
print(json.dumps(out))
"""


def test_a_seeded_rl_run_repeats_in_another_process_with_other_threads(tmp_path):
    runs = []
    for threads, hash_seed in (("1", "0"), ("2", "1")):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONHASHSEED": hash_seed}
        out = tmp_path / f"threads-{threads}"
        runs.append(
            subprocess.Popen(  # side by side: two cores, half the wall time
                [sys.executable, "-c", SCRIPT, str(out)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    printed = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=900)
        assert run.returncode == 0, stderr[-3000:]
        printed.append(stdout.strip().splitlines()[-1])
    first = json.loads(printed[0])
    assert set(first) == {"maskable-ppo", "dqn"} and all(len(r["points"]) == 3 for r in first.values())
    assert 0 < first["maskable-ppo"]["nAUC"] < 1  # (the tiny DQN may route every query alike: nAUC NaN)
    assert printed[0] == printed[1]  # weights, nAUC and every point, to the last bit
