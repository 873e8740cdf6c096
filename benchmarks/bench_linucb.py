"""LinUCB's decisions per second: this implementation against the one before it, in the same run.

    python benchmarks/bench_linucb.py [--tables default,math-v] [--decisions 2000] [--out DIR]

``_PreviousRidgeStatistics`` below is the ridge statistics of ``agents/bandits.py`` before the
low-rank form (commit dd9e86e): every decision took ``einsum("i,kij,j->k")`` over all ``K`` dense
``p x p`` inverses, every update an ``np.outer`` and two ``A_inv @ b`` products. Per table (the
bundled default: ``p = 33``; MATH-V with MiniLM text and image statistics: ``p = 412``), it runs

1. the learner alone: a cold LinUCB (and one warm-started on the training split) acts on the test queries in a seeded order (``act_scores``,
   then the model of highest ``perf - 0.1 * cost / c_ref``), and learns from that model's outcome
   (and, for agreement, both implementations fed the same trajectory: :func:`same_trajectory`);
2. ``PacedPolicy`` around a cold LinUCB in the environment, on the test streams of seed 0 at budget
   ratio 0.3 (the whole loop: pacing, environment step, learner),

once with each implementation, interleaved in rounds (the machine's load hits both alike), and
reports decisions per second (the median round), the ratio, whether the two made the same decisions,
and the largest difference between their scores. Writes ``bench_linucb.md`` / ``.json`` with the
provenance into ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.bandits import LinUCBBandit
from agents.pacing import PacedPolicy
from agents.ridge import RidgeStatistics
from mmr_gym.datasets import load_table
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import run_stream, split_streams
from mmr_gym.provenance import provenance, provenance_line


class _PreviousRidgeStatistics(RidgeStatistics):
    """The implementation before this one (commit dd9e86e), kept to measure against."""

    def __init__(self, n_models: int, dim: int, ridge: float = 1.0) -> None:
        p = dim + 1
        self.ridge = float(ridge)
        self.A_inv_dense = np.tile(np.eye(p) / ridge, (n_models, 1, 1))
        self.b_perf = np.zeros((n_models, p))
        self.b_cost = np.zeros((n_models, p))
        self.theta_perf = np.zeros((n_models, p))
        self.theta_cost = np.zeros((n_models, p))

    def update(self, z: np.ndarray, model: int, correct: float, cost: float) -> None:
        A_inv = self.A_inv_dense[model]
        u = A_inv @ z
        A_inv -= np.outer(u, u) / (1.0 + z @ u)
        self.b_perf[model] += correct * z
        self.b_cost[model] += cost * z
        self.theta_perf[model] = A_inv @ self.b_perf[model]
        self.theta_cost[model] = A_inv @ self.b_cost[model]

    def widths(self, z: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(np.einsum("i,kij,j->k", z, self.A_inv_dense, z), 0.0))

    def fit(self, Z: np.ndarray, correct: np.ndarray, cost: np.ndarray, models: Any = None) -> None:
        n_models, p = self.b_perf.shape
        A = np.broadcast_to(self.ridge * np.eye(p) + Z.T @ Z, (n_models, p, p))
        self.b_perf, self.b_cost = correct.T @ Z, cost.T @ Z
        self.A_inv_dense = np.linalg.inv(A)
        self.theta_perf = np.einsum("kij,kj->ki", self.A_inv_dense, self.b_perf)
        self.theta_cost = np.einsum("kij,kj->ki", self.A_inv_dense, self.b_cost)


def _learner(env: MMRRoutingEnv, previous: bool, warm: bool = False) -> LinUCBBandit:
    learner = LinUCBBandit(env.ctx.n_models, env.ctx.query_obs.shape[1])
    if previous:
        learner.stats = _PreviousRidgeStatistics(learner.n_models, learner.dim, learner.ridge)
    if warm:  # full information on the training split: every model's inverse is dense from the start
        rows = env.ctx.train_indices
        learner.warm_start(env.ctx.query_obs[rows], env.ctx.table.correct[rows], env.ctx.table.cost[rows])
    return learner


def learner_run(env: MMRRoutingEnv, previous: bool, decisions: int, warm: bool = False) -> dict[str, Any]:
    """A LinUCB alone (cold, or ``warm``-started) over ``decisions`` test queries (seeded order):
    time, actions, scores."""
    ctx = env.ctx
    rows = np.random.default_rng(0).permutation(ctx.split_indices)[:decisions]
    X = ctx.query_obs[rows]
    correct, cost = ctx.table.correct[rows], ctx.table.cost[rows]
    learner = _learner(env, previous, warm)
    actions, scores = np.empty(rows.size, dtype=np.int64), np.empty((rows.size, ctx.n_models))
    started = time.perf_counter()
    for i in range(rows.size):
        perf, predicted_cost = learner.act_scores(X[i])
        action = int(np.argmax(perf - 0.1 * predicted_cost / ctx.c_ref))
        learner.update(X[i], action, float(correct[i, action]), float(cost[i, action]))
        actions[i], scores[i] = action, perf
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "decisions": rows.size, "actions": actions, "scores": scores}


def same_trajectory(env: MMRRoutingEnv, decisions: int) -> dict[str, Any]:
    """Both implementations fed the previous one's decisions: do they score and choose alike at every step?

    Free-running learners part ways at the first step where two models' scores are equal up to float
    rounding and the two implementations round them in opposite orders (cold learners start with
    exact ties); fed the same trajectory, every step is compared.
    """
    ctx = env.ctx
    rows = np.random.default_rng(0).permutation(ctx.split_indices)[:decisions]
    X = ctx.query_obs[rows]
    correct, cost = ctx.table.correct[rows], ctx.table.cost[rows]
    previous, current = _learner(env, True), _learner(env, False)
    worst, differing, gaps = 0.0, 0, []
    for i in range(rows.size):
        values = []
        for learner in (previous, current):
            perf, predicted_cost = learner.act_scores(X[i])
            values.append(perf - 0.1 * predicted_cost / ctx.c_ref)
        worst = max(worst, float(np.abs(values[0] - values[1]).max()))
        action = int(np.argmax(values[0]))
        if int(np.argmax(values[1])) != action:
            differing += 1
            top_two = np.sort(values[0])[-2:]
            gaps.append(float(top_two[1] - top_two[0]))
        for learner in (previous, current):
            learner.update(X[i], action, float(correct[i, action]), float(cost[i, action]))
    return {
        "decisions": int(rows.size),
        "max_value_difference": worst,
        "differing_choices": differing,
        "largest_gap_where_choices_differ": max(gaps) if gaps else 0.0,
    }


def paced_run(env: MMRRoutingEnv, previous: bool, max_decisions: int) -> dict[str, Any]:
    """``PacedPolicy`` around a cold LinUCB on the test streams of seed 0 at budget ratio 0.3."""
    policy = PacedPolicy(_learner(env, previous), name="Paced-LinUCB")
    actions: list[int] = []
    act = policy.act

    def recording_act(obs: Any, info: dict[str, Any]) -> int:
        actions.append(act(obs, info))
        return actions[-1]

    policy.act = recording_act  # type: ignore[method-assign]
    started = time.perf_counter()
    for ids in split_streams(env, seed=0):
        if len(actions) >= max_decisions:
            break
        run_stream(env, policy, ids, 0.3)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "decisions": len(actions), "actions": np.asarray(actions)}


def compare(env: MMRRoutingEnv, decisions: int, rounds: int) -> dict[str, Any]:
    """Both implementations, ``rounds`` interleaved rounds each, for the learner alone and paced."""
    out: dict[str, Any] = {"p": env.ctx.query_obs.shape[1] + 1, "K": env.ctx.n_models}

    def warm_run(env: MMRRoutingEnv, previous: bool, decisions: int) -> dict[str, Any]:
        return learner_run(env, previous, decisions, warm=True)

    for label, run in (("learner", learner_run), ("paced", paced_run), ("learner, warm", warm_run)):
        rates: dict[str, list[float]] = {"previous": [], "current": []}
        results: dict[str, dict[str, Any]] = {}
        for _ in range(rounds):
            for which in ("previous", "current"):
                result = run(env, which == "previous", decisions)
                rates[which].append(result["decisions"] / result["seconds"])
                results[which] = result
        before, after = statistics.median(rates["previous"]), statistics.median(rates["current"])
        record = {
            "decisions": results["current"]["decisions"],
            "per_second_previous": before,
            "per_second_current": after,
            "speedup": after / before,
            "rounds": rounds,
            "same_decisions": bool(
                np.array_equal(results["previous"]["actions"], results["current"]["actions"])
            ),
        }
        if "scores" in results["current"]:
            difference = np.abs(results["previous"]["scores"] - results["current"]["scores"])
            record["max_score_difference"] = float(difference.max())
        out[label] = record
    out["same_trajectory"] = same_trajectory(env, decisions)
    return out


def markdown(results: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    lines = [
        "# LinUCB decisions per second: previous implementation vs current (same run)",
        "",
        f"Provenance: {provenance_line(record)}",
        "",
        "| table | p | K | loop | decisions | previous /s | current /s | speed-up | same decisions | max score diff |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for table, result in results.items():
        for loop in ("learner", "paced", "learner, warm"):
            r = result[loop]
            diff = f"{r['max_score_difference']:.1e}" if "max_score_difference" in r else "n/a"
            lines.append(
                f"| {table} | {result['p']} | {result['K']} | {loop} | {r['decisions']} | "
                f"{r['per_second_previous']:.0f} | {r['per_second_current']:.0f} | {r['speedup']:.1f}x | "
                f"{'yes' if r['same_decisions'] else 'no'} | {diff} |"
            )
    lines += [
        "",
        "Fed the same trajectory (the previous implementation's choices), per step: the largest difference",
        "between the two implementations' values `perf - 0.1 * cost / c_ref`, and the steps where they",
        "would choose differently, with the largest gap between the previous one's two best values there",
        "(a gap at float rounding means a tie broken the other way).",
        "",
        "| table | decisions | max value difference | differing choices | largest gap where they differ |",
        "|---|---:|---:|---:|---:|",
    ]
    for table, result in results.items():
        r = result["same_trajectory"]
        lines.append(
            f"| {table} | {r['decisions']} | {r['max_value_difference']:.1e} | {r['differing_choices']} | "
            f"{r['largest_gap_where_choices_differ']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", default="default,math-v", help="comma-separated: default, math-v")
    parser.add_argument("--decisions", type=int, default=2000, help="decisions per loop and implementation")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per implementation")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    record = provenance(sys.argv if argv is None else ["bench_linucb.py", *argv])
    results = {}
    for name in [t.strip() for t in args.tables.split(",") if t.strip()]:
        table = load_table() if name == "default" else load_table(name, progress=False)
        env = MMRRoutingEnv(table, split="test", episode_length=100)
        results[name] = compare(env, args.decisions, args.rounds)
    text = markdown(results, record)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_linucb.md").write_text(text, encoding="utf-8")
        payload = {"provenance": record, "results": results}
        (args.out / "bench_linucb.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
