"""The main job: evaluate routing policies on MMRRouting-v0 over a budget sweep and report.

    python train.py                      # bundled simulated table, default policies
    python train.py --quick              # a smaller sweep, for smoke tests
    python train.py --dataset path/to/table --policies random,best-single,oracle

Writes into the run directory: results.md / results.csv / points.csv / results.json (one record
per policy: name, nAUC, Ps, QNC, regret, overrun_rate, points...) and pareto.png; prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym

import mmr_gym  # noqa: F401  (registers the environments)
from agents.baselines import BASELINES
from mmr_gym.evaluate import DEFAULT_BUDGET_RATIOS, evaluate_policy, per_query_oracle_result
from mmr_gym.report import markdown_table, write_report

DEFAULT_POLICIES = ("random", "cheapest", "best-single", "oracle")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="bundled name or path (default: the bundled simulated table)")
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES),
                        help=f"comma-separated, from {sorted(BASELINES)}")
    parser.add_argument("--budget-ratios", default=",".join(map(str, DEFAULT_BUDGET_RATIOS)),
                        help="budgets as multiples of episode_length * c_ref")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated evaluation seeds")
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--env-kwargs", default="{}", help='extra MMRRouting-v0 kwargs as JSON, e.g. \'{"modality": "text"}\'')
    parser.add_argument("--run-dir", default=None, help="output directory (default: runs/<timestamp>)")
    parser.add_argument("--quick", action="store_true", help="few budgets, one seed, 1,000 test queries")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    budget_ratios = [float(x) for x in args.budget_ratios.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    max_queries = None
    if args.quick:
        budget_ratios, seeds, max_queries = [0.05, 0.2, 0.5, 1.0, 1.5], seeds[:1], 1000
    names = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        print(f"unknown policies {unknown}; choose from {sorted(BASELINES)}", file=sys.stderr)
        return 2
    env_kwargs = {"dataset": args.dataset, "split": "test", "episode_length": args.episode_length}
    env_kwargs.update(json.loads(args.env_kwargs))
    env = gym.make("MMRRouting-v0", **env_kwargs).unwrapped
    run_dir = Path(args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))

    table = env.ctx.table
    print(f"table: {table!r}")
    print(f"test split: {env.ctx.split_indices.size} queries; c_ref = {env.c_ref:.4g} {env.cost_unit} "
          f"(reference model {env.model_names[env.ctx.reference_model]!r}, cost source: "
          f"{table.meta.get('cost_source', 'unspecified')})")

    results = []
    for name in names:
        factory = BASELINES[name]
        results.append(evaluate_policy(factory, env, budget_ratios=budget_ratios, seeds=seeds,
                                       max_queries=max_queries, progress=not args.no_progress))
    results.append(per_query_oracle_result(env, max_queries=max_queries))

    context = {
        "table": repr(table),
        "cost unit": f"{env.cost_unit} ({table.meta.get('cost_source', 'unspecified')})",
        "split": f"test ({env.ctx.split_indices.size} queries{'' if max_queries is None else f', a fixed random {max_queries} of them'})",
        "budget ratios": budget_ratios,
        "seeds": seeds,
        "episode length": args.episode_length,
        "c_ref": env.c_ref,
    }
    files = write_report(results, run_dir, title="mmr-gym: routing policies on MMRRouting-v0", context=context)
    print()
    print(markdown_table(results))
    print()
    print(f"wrote {', '.join(str(p) for p in files.values())} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
