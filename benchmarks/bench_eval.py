"""Decisions per second of ``evaluate_policy``: batched lanes on the vector env vs the single env.

    python benchmarks/bench_eval.py                 # the default sweep: 9 budgets x 3 seeds, test split
    python benchmarks/bench_eval.py --quick         # 2 budgets, 1 seed, 1,000 test queries
    python benchmarks/bench_eval.py --out DIR       # also DIR/bench_eval.md and DIR/bench_eval.json

On the bundled table's test split, with ``train.py``'s default budget sweep, three policies are
evaluated both ways in the same run, one after the other: Paced-LinearMF (the budget-paced router
of ``train.py``), Paced-LinUCB (a cold bandit learning online: one copy per lane), and MaskablePPO
(briefly trained here: decision speed does not depend on how well it was trained). A decision is
one step of the environment (one model called); both paths make exactly the same decisions (the
results are checked to be equal, bit for bit). Reported: decisions per second of wall time and of
this process's CPU time (the machine is shared: CPU time moves less), and the ratio batched /
single-env. Torch runs on one thread, as in ``train.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

import mmr_gym  # noqa: F401  (registers the environments)
from agents.bandits import paced_bandit
from agents.pacing import PacedPolicy
from agents.rl import SB3Policy, train_agent
from agents.supervised import fit_router
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import DEFAULT_BUDGET_RATIOS, PolicyResult, evaluate_policy, evaluation_rows
from mmr_gym.provenance import provenance, provenance_line

#: The bar: batched evaluation of the paced router at least this many times faster.
ROUTER_BAR = 10.0


def decisions(result: PolicyResult, n_queries: int) -> int:
    """How many models a sweep called: per point and seed, the queries answered."""
    seeds = len(result.extra["seeds"])
    return round(sum((1.0 - p.unanswered_rate) * n_queries * seeds for p in result.points))


def timed(
    policy: Any, env: MMRRoutingEnv, vectorized: bool, **kwargs: Any
) -> tuple[PolicyResult, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = evaluate_policy(policy, env, vectorized=vectorized, progress=False, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 budgets, 1 seed, 1,000 test queries")
    parser.add_argument("--out", type=Path, default=None, help="write bench_eval.md and bench_eval.json here")
    parser.add_argument("--rl-steps", type=int, default=20_000, help="MaskablePPO training steps")
    parser.add_argument(
        "--policies",
        default="linear-mf,linucb,maskable-ppo",
        help="comma-separated: linear-mf, linucb, maskable-ppo",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    sweep: dict[str, Any] = {"budget_ratios": DEFAULT_BUDGET_RATIOS, "seeds": (0, 1, 2), "max_queries": None}
    if args.quick:
        sweep = {"budget_ratios": (0.1, 0.5), "seeds": (0,), "max_queries": 1000}
    train_env = MMRRoutingEnv(split="train")
    test_env = MMRRoutingEnv(split="test")
    n_queries = evaluation_rows(test_env, sweep["max_queries"]).size
    wanted = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = sorted(set(wanted) - {"linear-mf", "linucb", "maskable-ppo"})
    if unknown or not wanted:
        parser.error(f"--policies: unknown {unknown} (choose from linear-mf, linucb, maskable-ppo)")
    policies: dict[str, Any] = {}
    if "linear-mf" in wanted:
        router = fit_router("linear-mf", train_env)
        policies["Paced-LinearMF"] = lambda: PacedPolicy(router)
    if "linucb" in wanted:
        policies["Paced-LinUCB"] = lambda: paced_bandit("linucb", train_env, seed=0)
    if "maskable-ppo" in wanted:
        model = train_agent("maskable-ppo", {}, total_timesteps=args.rl_steps, seed=0, eval_freq=0)
        policies["RL-MaskablePPO"] = SB3Policy(model)

    rows = []
    for name, policy in policies.items():
        batched, batched_wall, batched_cpu = timed(policy, test_env, True, **sweep)
        single, single_wall, single_cpu = timed(policy, test_env, False, **sweep)
        if batched.to_dict() != single.to_dict():
            print(f"{name}: the two paths gave different results", file=sys.stderr)
            return 1
        count = decisions(batched, n_queries)
        rows.append(
            {
                "policy": name,
                "decisions": count,
                "batched_per_s": count / batched_wall,
                "single_per_s": count / single_wall,
                "ratio_wall": single_wall / batched_wall,
                "batched_per_cpu_s": count / batched_cpu,
                "single_per_cpu_s": count / single_cpu,
                "ratio_cpu": single_cpu / batched_cpu,
            }
        )
        print(f"{name}: {rows[-1]['ratio_wall']:.1f}x wall, {rows[-1]['ratio_cpu']:.1f}x CPU", flush=True)

    router_row = next((row for row in rows if row["policy"] == "Paced-LinearMF"), None)
    met = router_row is not None and router_row["ratio_wall"] >= ROUTER_BAR
    sweep_text = f"{len(sweep['budget_ratios'])} budget ratios x {len(sweep['seeds'])} seeds on {n_queries:,} test queries"
    lines = [
        "# evaluate_policy: batched (vector env) vs single env",
        "",
        f"Sweep: {sweep_text} of the bundled table. Both paths made the same decisions (results equal bit for bit).",
        "",
        "| policy | decisions | batched /s | single env /s | ratio (wall) | ratio (CPU) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['policy']} | {row['decisions']:,} | {row['batched_per_s']:,.0f} | {row['single_per_s']:,.0f} "
            f"| {row['ratio_wall']:.1f}x | {row['ratio_cpu']:.1f}x |"
        )
    if router_row is not None:
        lines += [
            "",
            f"Bar: Paced-LinearMF batched >= {ROUTER_BAR:g}x the single-env path (wall): "
            f"{'met' if met else 'NOT met'} ({router_row['ratio_wall']:.1f}x).",
        ]
    lines += ["", provenance_line(provenance())]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_eval.md").write_text(text + "\n", encoding="utf-8")
        record = {"sweep": {**sweep, "n_queries": n_queries}, "rows": rows, "bar": ROUTER_BAR, "met": met}
        record["provenance"] = provenance()
        (args.out / "bench_eval.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
