"""Router quality: every family vs ``auto``, and budgeted streams vs the per-query threshold protocol.

    python benchmarks/bench_routers.py [--tables default,math-v] [--split-seeds 0,1,2] [--out DIR]

Per table (the bundled default, ``MMRRouting-v0``'s; MATH-V from ``../shared/data/math-v``, MiniLM
text and image statistics, ESTIMATED costs) and per split seed (MMR-Bench's "in" split, 20% of the
queries for training), on the test split:

1. **Families.** Every router family of :data:`agents.supervised.FAMILIES` at its defaults, and
   ``auto`` (:class:`~agents.routers.selection.AutoRouter`, cross-validated on the training split
   only), fitted on the training split and scored on the paper's per-query threshold protocol
   (nAUC, Ps, QNC). The bar: ``auto`` within noise of the best family chosen with hindsight (the
   family of highest mean test nAUC over the splits); noise is the spread over splits.
2. **Streams vs thresholds.** The ``auto`` router under the threshold protocol beside
   :class:`~agents.pacing.PacedPolicy` around it on budgeted streams (episodes of 100 queries, the
   budget ratios below, evaluation seeds 0-2), with the pacing rule of this code (the price
   re-solved at every step) and the rule before it (a dual step on the price after every call,
   kept below as ``_DualPacedPolicy`` to measure against). ``gap`` is the stream's accuracy minus
   that of the same router's offline price curve (every test query routed alone at one price, no
   budget) at equal spend, averaged over the budgets: what pacing one shared budget costs.

Budget ratios: 25, geometric from 0.02 to 1.5 (train.py's sweep spans the same range in 9), so that
QNC (read on the points) is less decided by the sweep's coarse steps. They are multiples of
``c_ref``, the cost of the most accurate model on the training split, which may be far dearer than
the test split's most accurate one; stream nAUC also counts the queries a low budget cannot answer
(on MATH-V the cheapest model costs 0.45 ``c_ref``), which the threshold protocol never meets. Prints a markdown report with the provenance
(:mod:`mmr_gym.provenance`) and writes it, with a JSON record, into ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from agents.pacing import PacedPolicy, _best_value
from agents.supervised import FAMILIES, fit_router
from mmr_gym.datasets import load_table
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import (
    PolicyResult,
    evaluate_policy,
    evaluation_rows,
    json_safe,
    threshold_result,
)
from mmr_gym.metrics import pareto_frontier
from mmr_gym.provenance import provenance, provenance_line

BUDGET_RATIOS = tuple(np.round(np.geomspace(0.02, 1.5, 25), 4).tolist())
STREAM_SEEDS = (0, 1, 2)
EPISODE_LENGTH = 100
_OFFLINE_PRICES = np.concatenate(([0.0], np.geomspace(1e-5, 1e4, 400)))


class _DualPacedPolicy(PacedPolicy):
    """The pacing rule before this code (commit f7b3823), kept to measure against.

    The price starts at the calibrated value for the episode's budget rate (carried over between
    episodes of one rate) and moves after every call by ``eta / rate**2 * (spent / c_ref -
    target)``, with ``eta = 0.01``; the choice, reserve and tie rule are the current ones.
    """

    def __init__(self, scorer: Any, **kwargs: Any) -> None:
        super().__init__(scorer, **kwargs)
        self.name = self.name.replace("Paced-", "Paced(dual)-")
        self._rate: float | None = None
        # Evaluated row by row, one episode after another (Policy.__init_subclass__: PacedPolicy's
        # batched methods run the re-solved rule); observe() reads each call's cost.
        self.info_keys = ("cost",)

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        super().begin_episode(env)
        self._first_step = True

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        query, parts, model_costs = self._split(obs)
        perf, _ = self._scores(query)
        cost = model_costs.astype(np.float64)
        self._target = float(parts.spend_per_query)
        if self._first_step:
            rate = self._target
            same = self._rate is not None and abs(rate - self._rate) <= 1e-3 * self._rate
            if not same:
                self._rate = max(rate, 1e-12)
                grid = np.concatenate(([0.0], np.geomspace(1e-3, 1e4, 71)))  # that rule's calibration
                spend = self._spend_at(grid)
                within = np.flatnonzero(spend <= self._rate)
                self.lambda_ = float(grid[within[0]] if within.size else grid[-1])
        self._first_step = False
        self._query = query
        mask = info["action_mask"].astype(bool)
        allowed = mask & (model_costs * self._overshoot <= self._spendable_now(parts))
        if not allowed.any():
            return int(np.argmin(np.where(mask, model_costs, np.inf)))
        return _best_value(perf - self.lambda_ * cost, cost, allowed, self._prior)

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        overspend = info["cost"] / self._c_ref - self._target
        self.lambda_ = max(0.0, self.lambda_ + 0.01 / self._rate**2 * overspend)

    def _spend_at(self, grid: np.ndarray) -> np.ndarray:
        rows = self._ctx.train_indices
        perf, cost = self._perf[rows], self._ctx.model_costs_obs[rows].astype(np.float64)
        choice = [np.argmax(perf - price * cost, axis=1) for price in grid]
        return np.array([np.take_along_axis(cost, c[:, None], axis=1).mean() for c in choice])


def offline_gap(result: PolicyResult, env: MMRRoutingEnv, perf: np.ndarray) -> float:
    """Mean over budgets of the stream's accuracy minus the offline price curve's at the same spend."""
    rows = evaluation_rows(env)
    correct, cost = env.ctx.table.correct[rows], env.ctx.table.cost[rows]
    estimate = env.ctx.cost_estimate[rows]
    index = np.arange(rows.size)
    points = []
    for price in _OFFLINE_PRICES:
        choice = np.argmax(perf - price * estimate, axis=1)
        points.append((cost[index, choice].mean(), correct[index, choice].mean()))
    front = pareto_frontier(np.asarray(points))
    gaps = [
        p.accuracy - np.interp(p.cost, front[:, 0], front[:, 1])
        for p in result.points
        if p.cost >= front[0, 0]
    ]
    return float(np.mean(gaps)) if gaps else math.nan


def run_split(table: Any, split_seed: int, families: Sequence[str]) -> dict[str, Any]:
    """Step 1 and 2 of the module docstring on one split."""
    env = MMRRoutingEnv(table, split="test", episode_length=EPISODE_LENGTH, split_seed=split_seed)
    X = env.ctx.query_obs[evaluation_rows(env)]
    out: dict[str, Any] = {"families": {}}
    for name in [*families, "auto"]:
        started = time.perf_counter()
        router = fit_router(name, env)
        seconds = time.perf_counter() - started
        result = threshold_result(name, env, *router.predict(X))
        out["families"][name] = {
            "nAUC": result.nAUC,
            "Ps": result.Ps,
            "QNC": result.QNC,
            "fit_seconds": seconds,
        }
        if name == "auto":
            auto, auto_threshold = router, result
    selection = auto.selection_
    out["auto_choice"] = {
        "family": selection["chosen_family"],
        "params": selection["chosen_params"],
        "calibrated": selection["chosen_calibrated"],
        "seconds": selection["seconds"],
    }
    out["best_single"] = auto_threshold.best_single
    perf = auto.predict(env.ctx.query_obs[evaluation_rows(env)])[0]
    out["streams"] = {
        "threshold": {"nAUC": auto_threshold.nAUC, "Ps": auto_threshold.Ps, "QNC": auto_threshold.QNC}
    }
    for label, cls in (("re-solved", PacedPolicy), ("dual", _DualPacedPolicy)):
        started = time.perf_counter()
        result = evaluate_policy(
            lambda cls=cls: cls(auto), env, budget_ratios=BUDGET_RATIOS, seeds=STREAM_SEEDS, progress=False
        )
        out["streams"][label] = {
            "nAUC": result.nAUC,
            "Ps": result.Ps,
            "QNC": result.QNC,
            "gap": offline_gap(result, env, perf),
            "unanswered": float(np.mean([p.unanswered_rate for p in result.points])),
            "seconds": time.perf_counter() - started,
            "points": [(p.budget_ratio, p.cost, p.accuracy) for p in result.points],
        }
    return out


def _mean_std(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        return " / ".join("inf" if math.isinf(v) else f"{v:.3f}" for v in values)
    return f"{np.mean(finite):.4f} ± {np.std(finite):.4f}"


def report(results: Mapping[str, list[dict[str, Any]]], record: Mapping[str, Any]) -> str:
    lines = [
        "# Router quality: families vs auto, budgeted streams vs the threshold protocol",
        "",
        f"Provenance: {provenance_line(record)}",
        "",
        f"Test split of MMR-Bench's in-split (20% training); split seeds as listed, mean ± std over "
        f"them (QNC per split). Streams: episodes of {EPISODE_LENGTH} queries, budget ratios "
        f"{', '.join(f'{b:g}' for b in BUDGET_RATIOS)}, stream seeds {list(STREAM_SEEDS)}.",
    ]
    for table, splits in results.items():
        names = list(splits[0]["families"])
        lines += [
            "",
            f"## {table}",
            "",
            f"Best single model on the test split: {splits[0]['best_single']['model']} "
            f"(accuracy {splits[0]['best_single']['accuracy']:.4f}, split 0).",
            "",
            "### Families at their defaults and auto (threshold protocol, test split)",
            "",
            "| router | nAUC | Ps | QNC | fit s |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in names:
            rows = [s["families"][name] for s in splits]
            lines.append(
                f"| {name} | {_mean_std([r['nAUC'] for r in rows])} | {_mean_std([r['Ps'] for r in rows])} | "
                f"{_mean_std([r['QNC'] for r in rows])} | {np.mean([r['fit_seconds'] for r in rows]):.1f} |"
            )
        family_means = {n: np.mean([s["families"][n]["nAUC"] for s in splits]) for n in names if n != "auto"}
        hindsight = max(family_means, key=family_means.get)
        differences = [s["families"]["auto"]["nAUC"] - s["families"][hindsight]["nAUC"] for s in splits]
        choices = "; ".join(
            f"split {i}: {s['auto_choice']['family']} {json.dumps(s['auto_choice']['params'])}"
            f"{' calibrated' if s['auto_choice']['calibrated'] else ''} ({s['auto_choice']['seconds']:.0f} s)"
            for i, s in enumerate(splits)
        )
        spread = np.std([s["families"][hindsight]["nAUC"] for s in splits])
        lines += [
            "",
            f"Best family in hindsight: {hindsight} (mean nAUC {family_means[hindsight]:.4f}, spread over "
            f"splits {spread:.4f}). auto - {hindsight} per split: "
            f"{', '.join(f'{d:+.4f}' for d in differences)} (mean {np.mean(differences):+.4f}).",
            f"auto chose: {choices}.",
            "",
            "### auto: threshold protocol vs budgeted streams",
            "",
            "| protocol | nAUC | Ps | QNC | gap to offline curve | unanswered | s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, title in (
            ("threshold", "per-query threshold (MMR-Bench)"),
            ("re-solved", "stream, price re-solved each step (this code)"),
            ("dual", "stream, dual step on the price (before)"),
        ):
            rows = [s["streams"][label] for s in splits]
            gap = _mean_std([r["gap"] for r in rows]) if "gap" in rows[0] else "n/a"
            unanswered = (
                f"{np.mean([r['unanswered'] for r in rows]):.4f}" if "unanswered" in rows[0] else "n/a"
            )
            seconds = f"{np.mean([r['seconds'] for r in rows]):.0f}" if "seconds" in rows[0] else ""
            lines.append(
                f"| {title} | {_mean_std([r['nAUC'] for r in rows])} | {_mean_std([r['Ps'] for r in rows])} | "
                f"{_mean_std([r['QNC'] for r in rows])} | {gap} | {unanswered} | {seconds} |"
            )
        lines += ["", "Stream accuracy per budget ratio, split 0:", ""]
        for label in ("re-solved", "dual"):
            points = splits[0]["streams"][label]["points"]
            lines.append(f"- {label}: " + ", ".join(f"{b:g}: {a:.4f}" for b, _, a in points))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", default="default,math-v", help="comma-separated: default, math-v")
    parser.add_argument("--split-seeds", default="0,1,2")
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"from {list(FAMILIES)}")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    record = provenance(sys.argv if argv is None else ["bench_routers.py", *argv])
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # sklearn's MLP at max_iter
    results: dict[str, list[dict[str, Any]]] = {}
    for name in [t.strip() for t in args.tables.split(",") if t.strip()]:
        table = load_table() if name == "default" else load_table(name, progress=False)
        results[name] = []
        for seed in [int(s) for s in args.split_seeds.split(",")]:
            started = time.perf_counter()
            results[name].append(run_split(table, seed, families))
            print(f"{name} split {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    text = report(results, record)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_routers.md").write_text(text, encoding="utf-8")
        payload = json_safe({"provenance": record, "results": results})
        (args.out / "bench_routers.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
