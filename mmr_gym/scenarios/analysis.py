"""What an event did to a policy: regret before and after it, time to recover, budget adherence.

From a :class:`~mmr_gym.results.PolicyResult` evaluated under a scenario (its ``timeline``: one
record per episode of every (budget, seed) lane, in time order), :func:`event_effects` measures
each event:

- **regret before / after**: the hindsight oracle's accuracy minus the policy's, over the episodes
  that lie wholly before the event (since the previous one) and those that start at or after it
  (until the next one), weighted by their queries; per lane, then averaged over budgets for each
  seed; reported as the mean over seeds with their standard deviation. The oracle is the world's
  as it is at each query, so "after" measures the policy against the post-event oracle.
- **recovery**: per lane, the queries from the event until the first episode from which the
  policy's regret over ``window`` consecutive episodes is back within ``margin`` of its regret
  before the event (``inf`` if never); the median over lanes, and the share of lanes that recover.
- **budget adherence** after the event: the share of episodes whose last call overran the budget,
  and the mean spend as a share of the budget.
- **excess regret** (with ``baseline``: the same policy evaluated on the same streams in a world
  without events, :data:`~mmr_gym.scenarios.NO_EVENTS`): regret after the event minus regret on
  the same queries without it, per seed, then mean and spread over seeds. Unlike before/after,
  it does not mix the event with the difference between two stretches of traffic (a drifting
  scenario's streams differ from the baseline's, so there it compares other queries).

:func:`plot_timeline` draws accuracy, regret and spend over time for several policies, with the
events marked.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmr_gym.scenarios.events import event_from_dict, event_start
from mmr_gym.scenarios.world import describe_events

MARGIN = 0.02  # regret back within this of its pre-event level counts as recovered
WINDOW = 3  # episodes over which recovery is judged


def event_effects(
    result: Any, baseline: Any = None, margin: float = MARGIN, window: int = WINDOW
) -> list[dict[str, Any]]:
    """One record per event of ``result``'s scenario (see the module docstring); ``baseline``: the
    same policy on the same streams without events, for the excess regret."""
    if not result.timeline:
        raise ValueError(f"{result.name}: no timeline; evaluate it with evaluate_policy(..., scenario=...)")
    events = [event_from_dict(e) for e in result.scenario["events"]]
    starts = sorted({event_start(e) for e in events})
    end = int(result.scenario.get("split_queries", 0)) or max(
        r["time"] + r["length"] for r in result.timeline
    )
    lanes: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for record in result.timeline:
        lanes.setdefault((record["budget_ratio"], record["seed"]), []).append(record)
    seeds = sorted({seed for _, seed in lanes})
    effects = []
    for event in sorted(events, key=event_start):
        t = event_start(event)
        previous = max([s for s in starts if s < t], default=0)
        following = min([s for s in starts if s > t], default=end)
        before_by_seed: dict[int, list[float]] = {s: [] for s in seeds}
        after_by_seed: dict[int, list[float]] = {s: [] for s in seeds}
        recovery, overruns, spend_share, accuracy_after, oracle_after = [], [], [], [], []
        for (_, seed), records in lanes.items():
            before = [r for r in records if r["time"] >= previous and r["time"] + r["length"] <= t]
            after = [r for r in records if t <= r["time"] < following]
            if not before or not after:
                continue
            regret_before = _regret(before)
            before_by_seed[seed].append(regret_before)
            after_by_seed[seed].append(_regret(after))
            recovery.append(_recovery(after, t, regret_before + margin, window))
            overruns.extend(float(r["overrun"] > 0) for r in after)
            spend_share.extend(r["spend"] / r["budget"] for r in after if r["budget"])
            accuracy_after.append(_weighted(after, "accuracy"))
            oracle_after.append(_weighted(after, "oracle_accuracy"))
        before_means = [np.mean(v) for v in before_by_seed.values() if v]
        after_means = [np.mean(v) for v in after_by_seed.values() if v]
        recovered = [r for r in recovery if math.isfinite(r)]
        excess = _excess(result, baseline, t, following) if baseline is not None else []
        effects.append(
            {
                "policy": result.name,
                "event": describe_events([event])[0],
                "time": t,
                "regret_before": _mean(before_means),
                "regret_before_std": _std(before_means),
                "regret_after": _mean(after_means),
                "regret_after_std": _std(after_means),
                "regret_after_per_seed": [float(v) for v in after_means],
                "change": _mean(after_means) - _mean(before_means),
                "accuracy_after": _mean(accuracy_after),
                "oracle_accuracy_after": _mean(oracle_after),
                "recovery_queries": float(np.median(recovery)) if recovery else math.nan,
                "recovered_share": len(recovered) / len(recovery) if recovery else math.nan,
                "overrun_rate_after": _mean(overruns),
                "spend_over_budget_after": _mean(spend_share),
                "excess_regret": _mean(excess),
                "excess_regret_std": _std(excess),
                "excess_regret_per_seed": [float(v) for v in excess],
            }
        )
    return effects


def _excess(result: Any, baseline: Any, start: int, end: int) -> list[float]:
    """Per seed: the regret in ``[start, end)`` minus the baseline's there (each averaged over budgets)."""
    out = []
    for seed in sorted({r["seed"] for r in result.timeline}):
        per_budget = []
        for ratio in sorted({r["budget_ratio"] for r in result.timeline}):

            def window(
                timeline: Sequence[dict[str, Any]], seed: int = seed, ratio: float = ratio
            ) -> list[dict]:
                return [
                    r
                    for r in timeline
                    if r["seed"] == seed and r["budget_ratio"] == ratio and start <= r["time"] < end
                ]

            mine, theirs = window(result.timeline), window(baseline.timeline)
            if mine and theirs:
                per_budget.append(_regret(mine) - _regret(theirs))
        if per_budget:
            out.append(float(np.mean(per_budget)))
    return out


def _weighted(records: Sequence[dict[str, Any]], key: str) -> float:
    lengths = np.array([r["length"] for r in records], dtype=np.float64)
    return float(np.dot([r[key] for r in records], lengths) / lengths.sum())


def _regret(records: Sequence[dict[str, Any]]) -> float:
    return _weighted(records, "oracle_accuracy") - _weighted(records, "accuracy")


def _recovery(after: Sequence[dict[str, Any]], t: int, target: float, window: int) -> float:
    for k in range(len(after) - window + 1):
        if _regret(after[k : k + window]) <= target:
            return float(after[k]["time"] - t)
    return math.inf


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _std(values: Sequence[float]) -> float:
    return float(np.std(values)) if len(values) else math.nan


def effects_markdown(effects: Sequence[dict[str, Any]]) -> str:
    """A markdown table of :func:`event_effects` records (several policies at once)."""
    lines = [
        "| policy | event | regret before | regret after | change | excess regret (vs no event) | "
        "recovery (queries, median) | recovered | overrun rate after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in effects:
        recovery = "never" if math.isinf(e["recovery_queries"]) else f"{e['recovery_queries']:.0f}"
        excess = (
            "n/a"
            if math.isnan(e["excess_regret"])
            else f"{e['excess_regret']:+.4f} ± {e['excess_regret_std']:.4f}"
        )
        lines.append(
            f"| {e['policy']} | {e['event']} | {e['regret_before']:.4f} ± {e['regret_before_std']:.4f} | "
            f"{e['regret_after']:.4f} ± {e['regret_after_std']:.4f} | {e['change']:+.4f} | {excess} | {recovery} | "
            f"{e['recovered_share']:.0%} | {e['overrun_rate_after']:.3f} |"
        )
    return "\n".join(lines)


def timeline_curves(result: Any, bins: int = 40) -> dict[str, np.ndarray]:
    """``result``'s accuracy, oracle accuracy and spend per query over time, each episode put in one
    of ``bins`` equal time bins by its start, averaged over every lane (weighted by queries)."""
    times = np.array([r["time"] for r in result.timeline], dtype=np.float64)
    lengths = np.array([r["length"] for r in result.timeline], dtype=np.float64)
    edges = np.linspace(0.0, times.max() + 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, bins - 1)
    weight = np.bincount(index, weights=lengths, minlength=bins)

    def curve(values: np.ndarray) -> np.ndarray:
        total = np.bincount(index, weights=values * lengths, minlength=bins)
        return np.divide(total, weight, out=np.full(bins, np.nan), where=weight > 0)

    accuracy = curve(np.array([r["accuracy"] for r in result.timeline]))
    oracle = curve(np.array([r["oracle_accuracy"] for r in result.timeline]))
    spend = curve(np.array([r["spend"] / r["length"] for r in result.timeline]))
    return {"time": (edges[:-1] + edges[1:]) / 2, "accuracy": accuracy, "oracle": oracle, "spend": spend}


def plot_timeline(results: Sequence[Any], path: str | Path, title: str = "", footer: str = "") -> Path:
    """Accuracy, regret to the hindsight oracle and spend per query over time, per policy, with the
    scenario's events marked (vertical lines); PNG (and PDF beside it). ``footer``: a line printed
    under the plots (e.g. the provenance: command, commit, date)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if r.timeline]
    if not timed:
        raise ValueError("no result has a timeline (evaluate under a scenario)")
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for r in timed:
        curves = timeline_curves(r)
        axes[0].plot(curves["time"], curves["accuracy"], label=r.name)
        axes[1].plot(curves["time"], curves["oracle"] - curves["accuracy"], label=r.name)
        axes[2].plot(curves["time"], curves["spend"], label=r.name)
    for event in timed[0].scenario["events"]:
        for ax in axes:
            ax.axvline(event_start(event_from_dict(event)), color="grey", linestyle="--", linewidth=0.8)
    axes[0].set_ylabel("accuracy")
    axes[1].set_ylabel("regret to the oracle")
    unit = textwrap.fill(timed[0].cost_unit, 28)
    axes[2].set_ylabel(f"spend per query\n({unit})", fontsize=8)
    axes[2].set_xlabel("time (queries of the deployment; dashed: events)")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title or f"scenario {timed[0].scenario['name']!r}: mean over budgets and seeds", fontsize=10)
    if footer:
        fig.text(0.01, 0.005, textwrap.fill(footer, 140), fontsize=6, color="dimgrey", va="bottom")
        fig.tight_layout(rect=(0, 0.035, 1, 1))
    else:
        fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return path
