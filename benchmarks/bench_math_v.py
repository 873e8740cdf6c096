"""Routing on a real table: MATH-V with estimated costs, baselines against supervised routers.

Loads MATH-V (correctness from upstream's output files, costs ESTIMATED from tokens and public
prices, see :mod:`mmr_gym.datasets.math_v`) with MiniLM text and image-statistics features, then on
the test split (MMR-Bench's "in" split: 20% of the queries train, 80% test):

- the baselines Random, Cheapest, BestSingle and the budgeted hindsight Oracle, each as a policy
  in the environment over a sweep of budget ratios and seeds (``evaluate_policy``);
- supervised routers from ``agents/supervised.py`` (``fit_router``, fitted on the training split
  with full information), scored on MMR-Bench's per-query threshold protocol
  (``threshold_result``), and the same routers paced to the budget in the environment
  (``PacedPolicy``); plus the per-query oracle.

It prints nAUC, Ps and QNC for each, and whether routing beats the best single model, at what
share of its cost. Usage::

    python benchmarks/bench_math_v.py [--root PATH] [--out DIR] [--routers linear-mf,knn] [--quick]

``--out DIR`` writes results.md, results.json, results.csv, points.csv and pareto.png. The first
run encodes the 3,040 questions with MiniLM (minutes on two CPU cores); later runs read the cache.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from agents.baselines import BestSinglePolicy, CheapestPolicy, OraclePolicy, RandomPolicy
from mmr_gym.datasets.math_v import load_math_v
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import (
    DEFAULT_BUDGET_RATIOS,
    PolicyResult,
    evaluate_policy,
    evaluation_rows,
    per_query_oracle_result,
    threshold_result,
)
from mmr_gym.report import markdown_table, write_report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, help="MATH-V checkout (default: as load_math_v finds it)")
    p.add_argument("--models", default="multimodal", choices=("multimodal", "all"))
    p.add_argument("--text", default="minilm", choices=("minilm", "tfidf", "none"), help="text channel")
    p.add_argument(
        "--routers", default="linear,linear-mf,knn,kmeans,mlp-mf", help="comma-separated fit_router names"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budgets", type=float, nargs="+", default=list(DEFAULT_BUDGET_RATIOS))
    p.add_argument("--episode-length", type=int, default=100)
    p.add_argument("--train-fraction", type=float, default=0.2, help="MMR-Bench's default share for training")
    p.add_argument("--max-queries", type=int, help="evaluate a fixed subset of the test split")
    p.add_argument("--cache-dir", type=Path, help="feature/table cache (default ~/.cache/mmr-gym)")
    p.add_argument("--quick", action="store_true", help="one seed, fewer budgets, linear-mf only")
    p.add_argument("--out", type=Path, help="write the report files into this directory")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.budgets, args.routers = [0], [0.1, 0.3, 0.5, 1.0, 1.5], "linear-mf"
    return args


def _verdict(result: PolicyResult) -> str:
    best = result.best_single
    frontier = np.asarray(result.frontier, dtype=np.float64).reshape(-1, 2)
    gain = result.Ps - best["accuracy"]
    if math.isfinite(result.QNC):
        cost_note = f"matches it at {result.QNC:.2f}x its cost"
    else:
        cost_note = "never reaches its accuracy"
    cheapest = frontier[np.argmin(frontier[:, 0])] if frontier.size else (float("nan"), float("nan"))
    return (
        f"{result.name:28s} peak {result.Ps:6.1%} ({gain:+.1%} vs {best['model']} {best['accuracy']:.1%}); "
        f"{cost_note}; cheapest point {cheapest[1]:.1%} at {cheapest[0] * 1000:.3f} mUSD/query"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    encoders = ([args.text] if args.text != "none" else []) + ["image-stats"]
    table = load_math_v(args.root, models=args.models, features=encoders, cache_dir=args.cache_dir)
    timings["load_math_v_s"] = time.perf_counter() - started
    print(f"{table}  (loaded in {timings['load_math_v_s']:.1f} s)")
    print(f"costs: {table.meta['cost_unit']}, token counter: {table.meta['token_counter']}")

    env = MMRRoutingEnv(
        table,
        split="test",
        train_fraction=args.train_fraction,
        episode_length=args.episode_length,
        budget_ratio=0.5,
    )
    rows = evaluation_rows(env, args.max_queries)
    print(
        f"train {env.ctx.train_indices.size} / test {rows.size} queries; reference model "
        f"{env.model_names[env.ctx.reference_model]} (c_ref {env.ctx.c_ref * 1000:.4f} mUSD/query)"
    )
    results: list[PolicyResult] = []
    common = {"budget_ratios": args.budgets, "seeds": args.seeds, "max_queries": args.max_queries}

    t = time.perf_counter()
    for make in (lambda: RandomPolicy(seed=0), CheapestPolicy, BestSinglePolicy, OraclePolicy):
        results.append(evaluate_policy(make, env, **common))
    timings["baselines_s"] = time.perf_counter() - t

    supervised_source = "agents.supervised.fit_router"
    try:
        from agents.pacing import PacedPolicy
        from agents.supervised import fit_router
    except ImportError:  # the routers' module is newer than this script: fall back to a plain ridge
        fit_router, PacedPolicy, supervised_source = None, None, "sklearn Ridge (agents.supervised missing)"

    t = time.perf_counter()
    X_eval = env.ctx.query_obs[rows]
    for name in [r.strip() for r in args.routers.split(",") if r.strip()]:
        t_fit = time.perf_counter()
        if fit_router is not None:
            router = fit_router(name, env)
        else:
            router = _RidgeRouter().fit(env)
            name = "ridge"
        perf, cost = router.predict(X_eval)
        results.append(threshold_result(name, env, perf, cost, max_queries=args.max_queries))
        if PacedPolicy is not None:
            paced = evaluate_policy(
                lambda router=router, name=name: PacedPolicy(router, name=f"{name}+pacing"), env, **common
            )
            results.append(paced)
        print(f"  {name}: fitted and evaluated in {time.perf_counter() - t_fit:.1f} s")
    results.append(per_query_oracle_result(env, max_queries=args.max_queries))
    timings["routers_s"] = time.perf_counter() - t

    print()
    print(markdown_table(results))
    print()
    print("Does routing beat the best single model? (Ps: peak accuracy; QNC: cost to match it, x its cost)")
    verdicts = [_verdict(r) for r in results]
    for line in verdicts:
        print("  " + line)
    timings["total_s"] = time.perf_counter() - started
    print(f"\ntimings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")

    if args.out is not None:
        context = {
            "table": repr(table),
            "costs": f"{table.meta['cost_unit']}; {table.meta['cost_method']}",
            "token counter": table.meta["token_counter"],
            "features": "; ".join(f"{c}: {n}" for c, n in table.meta["features"].items()),
            "split": f"in, train fraction {args.train_fraction}, test queries {rows.size}",
            "episode length": args.episode_length,
            "budget ratios": args.budgets,
            "seeds": args.seeds,
            "supervised routers": supervised_source,
            "verdicts": verdicts,
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
        }
        files = write_report(
            results,
            args.out,
            title="MATH-V (estimated costs): baselines vs routers",
            context=context,
            price_sources=table.meta.get("price_sources"),
        )
        print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


class _RidgeRouter:
    """Fallback when ``agents.supervised`` is absent: ridge heads for performance and cost."""

    def fit(self, env: MMRRoutingEnv) -> _RidgeRouter:
        from sklearn.linear_model import Ridge

        rows = env.ctx.train_indices
        X = env.ctx.query_obs[rows]
        self.perf = Ridge(alpha=1.0).fit(X, env.ctx.table.correct[rows])
        self.cost = Ridge(alpha=1.0).fit(X, env.ctx.table.cost[rows])
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.perf.predict(X), np.maximum(self.cost.predict(X), 0.0)


if __name__ == "__main__":
    sys.exit(main())
