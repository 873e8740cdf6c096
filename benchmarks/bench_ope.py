"""Off-policy evaluation against the truth: every estimator's figure beside what really happens.

Our outcome tables hold every model's outcome on every query, so a target's true accuracy is known
(computed by running the target in the environment over the whole test split, independently of
the estimators). For each table (the bundled default, and MATH-V when its data is found), regime,
logging policy and replication, this script logs ``--n-logged`` decisions with
:func:`mmr_gym.ope.collect_log`, estimates every target with DM, IPS, SNIPS, DR and replay, and
compares: bias, RMSE and the coverage of the 95% intervals over the replications.

Regimes (test split, episodes of 100 queries):

- ``no budget``: ``budget_ratio=None``, ``cost_weight=0.3`` (cost-penalised routing). Nothing in a
  context depends on past spending, so a target's per-decision value on the logged contexts *is*
  its online value, for every method. Loggers: uniform, epsilon-greedy (0.2) around the paced
  Linear router, softmax over LinearMF's scores, Thompson sampling (cold, learning as it logs).
  Targets: BestSingle, Cheapest, Paced-LinearMF (priced at the cost weight), Thompson sampling on a
  warm-started posterior (frozen, stochastic), and a LinUCB bandit that learns from scratch
  (replay only: the per-decision methods cannot judge learning; its truth is its online accuracy
  over its first T queries, T the mean number of decisions replay accepted, over 20 runs).
- ``budget 0.5``: ``budget_ratio=0.5``. Loggers: uniform over the affordable models,
  epsilon-greedy. The per-decision methods judge each target on the logger's budget states
  (``truth_logged``: the target's expected outcome on those logged contexts, from the full table);
  replay runs the target with its own budget, so it aims at ``truth`` (the online value).

The bar's setting (default table, no budget, uniform logger) gets ``--bar-replications`` (100):
its intervals' coverage is judged against 90%, and 25 replications measure a coverage only to
about +-0.04.

Writes ``DIR/ope.json`` (one record per table, regime, logger, target and method: ``n_logged``,
``estimate``, ``ci_low``, ``ci_high``, ``truth`` and the rest; the bar's verdict; provenance),
``DIR/ope.md`` and ``DIR/ope.png`` (estimate against truth). Usage::

    python benchmarks/bench_ope.py --out runs/ope [--quick] [--tables default,math-v]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import mmr_gym  # noqa: F401  (registers the environments)
from agents.bandits import make_bandit, paced_bandit
from agents.baselines import BestSinglePolicy, CheapestPolicy
from agents.pacing import PacedPolicy
from agents.stochastic import EpsilonGreedyPolicy, SoftmaxPolicy, ThompsonSamplingPolicy, UniformPolicy
from agents.supervised import fit_router
from mmr_gym.datasets import load_table
from mmr_gym.ope import StochasticPolicy, collect_log, estimate, target_probabilities
from mmr_gym.provenance import provenance

try:
    from benchmarks.ope_report import write_outputs
except ModuleNotFoundError:  # run as a script (python benchmarks/bench_ope.py): its directory is on the path
    from ope_report import write_outputs

PER_DECISION = ("dm", "ips", "snips", "dr")
#: (budget_ratio, cost_weight) of each regime
REGIMES: dict[str, tuple[float | None, float]] = {"no budget": (None, 0.3), "budget 0.5": (0.5, 0.0)}
BAR = {"table": "default", "regime": "no budget", "logger": "uniform", "methods": ("dr", "snips")}
BAR_TOLERANCE, BAR_COVERAGE = 0.02, 0.90


@dataclass
class Target:
    """A target: how to make a fresh one, which methods judge it, how to compute its truth."""

    make: Callable[[], Any]
    methods: tuple[str, ...] = (*PER_DECISION, "replay")
    #: A learner: its truth is its online value over its first T queries, T the number of decisions
    #: replay accepted (it depends on the logger: about n_logged / K under the uniform one).
    learns: bool = False


@dataclass
class Setting:
    table: str
    regime: str
    env: gym.Env
    loggers: dict[str, Callable[[int], Any]]
    targets: dict[str, Target]
    reward_model: Any
    truths: dict[str, dict[str, float]] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for ope.json, ope.md and ope.png")
    p.add_argument("--quick", action="store_true", help="3 replications of 2,000 decisions")
    p.add_argument("--tables", default="default,math-v", help="comma-separated: default, math-v")
    p.add_argument("--replications", type=int, default=25)
    p.add_argument(
        "--bar-replications",
        type=int,
        default=100,
        help="replications of the bar's setting (default table, no budget, uniform logger): its coverage "
        "is judged against 90%%, so it gets more",
    )
    p.add_argument("--n-logged", type=int, default=10_000)
    p.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples per interval")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.replications, args.bar_replications, args.n_logged = 3, 3, 2000
    return args


def build_settings(name: str, table: Any, n_logged: int) -> list[Setting]:
    settings = []
    for regime, (ratio, weight) in REGIMES.items():
        env = gym.make("MMRRouting-v0", dataset=table, split="test", budget_ratio=ratio, cost_weight=weight)
        u = env.unwrapped
        linear, linear_mf = fit_router("linear", u), fit_router("linear-mf", u)
        warm_ts = make_bandit("lin-ts", u, warm_start=True, v=1.0)
        loggers: dict[str, Callable[[int], Any]] = {
            "uniform": lambda s: UniformPolicy(seed=s),
            "eps-greedy": lambda s, r=linear: EpsilonGreedyPolicy(PacedPolicy(r), 0.2, seed=s),
        }
        targets = {
            "BestSingle": Target(BestSinglePolicy),
            "Cheapest": Target(CheapestPolicy),
            "Paced-LinearMF": Target(lambda r=linear_mf: PacedPolicy(r)),
            "TS-LinTS-warm": Target(
                lambda b=warm_ts, w=weight: ThompsonSamplingPolicy(
                    b, n_draws=128, price=w, learn=False, seed=7
                )
            ),
        }
        if ratio is None:
            loggers["softmax"] = lambda s, r=linear_mf, w=weight: SoftmaxPolicy(r, 0.1, price=w, seed=s)
            loggers["thompson"] = lambda s, e=u, w=weight: ThompsonSamplingPolicy(
                make_bandit("lin-ts", e, seed=s), price=w, seed=s
            )
            # A learner from scratch: replay judges it online, over the decisions it accepts
            # (about n_logged / K under the uniform logger).
            targets["LinUCB-learning"] = Target(
                lambda e=u: paced_bandit("linucb", e), ("replay",), learns=True
            )
        settings.append(Setting(name, regime, env, loggers, targets, linear_mf))
    return settings


def online_truth(make_policy: Callable[[], Any], env: gym.Env, seeds, max_steps: int | None = None) -> dict:
    """A policy's accuracy and mean cost per query when it runs in ``env``, from the table alone.

    Per seed: the test split in a random order, cut into streams of ``episode_length`` (the last
    shorter), every query answered once (unanswered ones wrong); or only the first ``max_steps``
    queries (a learner's first steps). A stochastic policy contributes its *expected* correctness
    and cost at each step (its probabilities times the table's outcomes), then acts by a draw.
    """
    u = env.unwrapped
    table, length = u.ctx.table, u.episode_length
    values = []
    for seed in seeds:
        policy, rng = make_policy(), np.random.default_rng(seed)
        ids = table.query_ids[rng.permutation(u.ctx.split_indices)]
        limit = ids.size if max_steps is None else min(max_steps, ids.size)
        correct = cost = 0.0
        for start in range(0, limit, length):
            stream = ids[start : min(start + length, limit)].tolist()
            obs, info = env.reset(seed=int(seed), options={"query_ids": stream})
            policy.begin_episode(u)
            rows = u.episode_query_indices
            for t in range(len(stream)):
                if isinstance(policy, StochasticPolicy):
                    p = np.asarray(policy.action_probabilities(obs, info), dtype=np.float64)
                    action = int(rng.choice(p.size, p=p / p.sum()))
                    expected = (p @ table.correct[rows[t]], p @ table.cost[rows[t]])
                else:
                    action, expected = policy.act(obs, info), None
                obs, reward, terminated, _, info = env.step(action)
                policy.observe(action, reward, info)
                correct += info["correct"] if expected is None else expected[0]
                cost += info["cost"] if expected is None else expected[1]
                if terminated:
                    break
        values.append((correct / limit, cost / limit))
    accuracy, cost = np.asarray(values).T
    se = float(accuracy.std(ddof=1) / np.sqrt(accuracy.size)) if accuracy.size > 1 else 0.0
    return {
        "accuracy": float(accuracy.mean()),
        "cost": float(cost.mean()),
        "accuracy_se": se,
        "seeds": len(values),
    }


def compute_truths(setting: Setting) -> None:
    """Every fixed target's truth (a learner's waits for its number of steps: :func:`aggregate`)."""
    for name, target in setting.targets.items():
        if target.learns:
            continue
        # Without a budget one pass over the split is exact for a fixed policy; with a budget the
        # value depends on the order of the stream: average seeds.
        seeds = (0,) if REGIMES[setting.regime][0] is None else range(5)
        setting.truths[name] = online_truth(target.make, setting.env, seeds)


def replicate(setting: Setting, logger: str, seed: int, n_logged: int, n_resamples: int) -> list[dict]:
    """One log, every target and method: the figures of one replication."""
    env, table = setting.env, setting.env.unwrapped.ctx.table
    log = collect_log(env, setting.loggers[logger](seed), n_logged, seed=seed)
    position = {qid: row for row, qid in enumerate(table.query_ids.tolist())}
    rows = np.array([position[q] for q in log.query_id.tolist()])
    model = setting.reward_model.predict(log.observations["query"])
    out = []
    for name, target in setting.targets.items():
        logged_truth = (np.nan, np.nan)
        if any(m in PER_DECISION for m in target.methods):
            probs = target_probabilities(log, target.make(), env)
            logged_truth = (
                float((probs * table.correct[rows]).sum(1).mean()),
                float((probs * table.cost[rows]).sum(1).mean()),
            )
        for method in target.methods:
            record = {
                "target": name,
                "method": method,
                "truth_logged": logged_truth[0],
                "cost_truth_logged": logged_truth[1],
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # kept in the result instead
                try:
                    subject = target.make() if method == "replay" else probs
                    result = estimate(
                        log, subject, method, env=env, reward_model=model, n_resamples=n_resamples, seed=seed
                    )
                except ValueError as err:
                    out.append({**record, "error": str(err)})
                    continue
            out.append({**record, **result.to_dict()})
    return out


def aggregate(setting: Setting, logger: str, runs: list[list[dict]], n_logged: int) -> list[dict]:
    records = []
    keys = [(r["target"], r["method"]) for r in runs[0]]
    for target, method in keys:
        rows = [r for run in runs for r in run if (r["target"], r["method"]) == (target, method)]
        ok = [r for r in rows if "error" not in r]
        truth = setting.truths.get(target)
        if setting.targets[target].learns and ok:
            steps = round(np.mean([r["n_used"] for r in ok]))
            truth = online_truth(setting.targets[target].make, setting.env, range(20), max_steps=steps)
            truth["steps"] = steps
        elif setting.targets[target].learns:  # replay never ran: no number of steps to judge it at
            truth = {"accuracy": float("nan"), "cost": float("nan"), "accuracy_se": float("nan")}
        record: dict[str, Any] = {
            "table": setting.table,
            "regime": setting.regime,
            "logger": logger,
            "target": target,
            "method": method,
            "estimand": "online" if method == "replay" else "logged contexts",
            "n_logged": n_logged,
            "replications": len(ok),
            "failed": len(rows) - len(ok),
            "truth": truth["accuracy"],
            "truth_se": truth["accuracy_se"],
            "cost_truth": truth["cost"],
        }
        if "steps" in truth:
            record["truth_steps"] = truth["steps"]
        if rows and not ok:
            record["error"] = rows[0]["error"]
        if ok:
            est = np.array([r["accuracy"] for r in ok])
            low, high = (np.array([r["accuracy_ci"][i] for r in ok]) for i in (0, 1))
            costs = np.array([r["cost"] for r in ok])
            cost_low, cost_high = (np.array([r["cost_ci"][i] for r in ok]) for i in (0, 1))
            logged = np.array([r["truth_logged"] for r in ok])
            record.update(
                estimate=float(est.mean()),
                ci_low=float(np.nanmean(low)),
                ci_high=float(np.nanmean(high)),
                bias=float(est.mean() - truth["accuracy"]),
                rmse=float(np.sqrt(np.mean((est - truth["accuracy"]) ** 2))),
                max_abs_error=float(np.abs(est - truth["accuracy"]).max()),
                within_tolerance=float(np.mean(np.abs(est - truth["accuracy"]) <= BAR_TOLERANCE)),
                coverage=float(np.mean((low <= truth["accuracy"]) & (truth["accuracy"] <= high))),
                cost_estimate=float(costs.mean()),
                cost_ci_low=float(np.nanmean(cost_low)),
                cost_ci_high=float(np.nanmean(cost_high)),
                cost_bias=float(costs.mean() - truth["cost"]),
                cost_coverage=float(np.mean((cost_low <= truth["cost"]) & (truth["cost"] <= cost_high))),
                ess=float(np.mean([r["ess"] for r in ok])),
                n_used=float(np.mean([r["n_used"] for r in ok])),
                estimates=est.round(6).tolist(),
                warnings=sorted({w.split(": ", 1)[-1][:160] for r in ok for w in r["warnings"]}),
            )
            if method != "replay":
                record.update(
                    truth_logged=float(logged.mean()),
                    bias_logged=float(np.mean(est - logged)),
                    rmse_logged=float(np.sqrt(np.mean((est - logged) ** 2))),
                    coverage_logged=float(np.mean((low <= logged) & (logged <= high))),
                )
        records.append(record)
    return records


def bar_verdict(records: list[dict]) -> dict:
    """The issue's bar: uniform logger, default table, DR and SNIPS within 0.02 of each target's
    accuracy (the mean estimate over replications) and 95% intervals covering it in >= 90% of them."""
    rows = [
        r
        for r in records
        if all(r[k] == BAR[k] for k in ("table", "regime", "logger")) and r["method"] in BAR["methods"]
    ]
    checks = []
    for r in rows:
        if "estimate" not in r:
            checks.append(
                {"target": r["target"], "method": r["method"], "met": False, "error": r.get("error")}
            )
            continue
        met = abs(r["bias"]) <= BAR_TOLERANCE and r["coverage"] >= BAR_COVERAGE
        checks.append(
            {
                key: r[key]
                for key in (
                    "target",
                    "method",
                    "n_logged",
                    "replications",
                    "estimate",
                    "truth",
                    "bias",
                    "rmse",
                    "max_abs_error",
                    "within_tolerance",
                    "coverage",
                )
            }
            | {"met": met, "rmse_within_tolerance": r["rmse"] <= BAR_TOLERANCE}
        )
    return {
        "setting": {**BAR, "methods": list(BAR["methods"])},
        "tolerance": BAR_TOLERANCE,
        "coverage_required": BAR_COVERAGE,
        "met": bool(checks) and all(c["met"] for c in checks),
        "checks": checks,
    }


def load_tables(names: list[str]) -> dict[str, Any]:
    tables = {}
    for name in names:
        if name == "default":
            tables[name] = load_table()
        elif name == "math-v":
            try:
                tables[name] = load_table("math-v")
            except (FileNotFoundError, ValueError, OSError) as err:
                print(f"skipping MATH-V: {err}")
        else:
            raise SystemExit(f"unknown table {name!r}; choose from default, math-v")
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    record = provenance()  # the code as it was when the run started
    tables = load_tables([t.strip() for t in args.tables.split(",") if t.strip()])
    records: list[dict] = []
    for name, table in tables.items():
        for setting in build_settings(name, table, args.n_logged):
            t = time.perf_counter()
            compute_truths(setting)
            truths = ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in setting.truths.items())
            print(f"{name}, {setting.regime}: truths {truths} ({time.perf_counter() - t:.0f} s)", flush=True)
            for logger in setting.loggers:
                is_bar = (name, setting.regime, logger) == (BAR["table"], BAR["regime"], BAR["logger"])
                count = max(args.replications, args.bar_replications) if is_bar else args.replications
                seeds = [args.seed + 1000 * i for i in range(count)]
                runs = [
                    replicate(setting, logger, seed, args.n_logged, args.n_resamples)
                    for seed in tqdm(seeds, desc=f"{name}, {setting.regime}, {logger}", leave=False)
                ]
                records.extend(aggregate(setting, logger, runs, args.n_logged))
                for r in records[-len(runs[0]) :]:
                    shown = (
                        f"{r['estimate']:.4f} (bias {r['bias']:+.4f}, cov {r['coverage']:.2f})"
                        if "estimate" in r
                        else "failed"
                    )
                    print(
                        f"  {logger:10s} {r['target']:16s} {r['method']:6s} {shown}  truth {r['truth']:.4f}",
                        flush=True,
                    )
    bar = bar_verdict(records)
    config = {
        "tables": list(tables),
        "regimes": {k: {"budget_ratio": v[0], "cost_weight": v[1]} for k, v in REGIMES.items()},
        "replications": args.replications,
        "bar_replications": args.bar_replications,
        "n_logged": args.n_logged,
        "n_resamples": args.n_resamples,
        "seed": args.seed,
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_outputs(args.out, records, bar, config, record)
    print(
        f"bar {'met' if bar['met'] else 'NOT met'}; wrote {args.out / 'ope.json'}, ope.md, ope.png "
        f"({config['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
