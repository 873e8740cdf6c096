"""The scenario benchmark: in a world that changes, the static paced router against adaptive agents.

For every preset of :mod:`mmr_gym.scenarios` (price-cut, outage, new-model, regression, drift,
combined), on the test split of a table (the bundled one by default), each agent answers every
seed's streams along the timeline at every budget ratio of the sweep (:func:`evaluate_policy` with
``scenario=``), and again on the same streams in a world without events
(:data:`~mmr_gym.scenarios.NO_EVENTS`). Per event (:func:`~mmr_gym.scenarios.analysis.event_effects`):

- **teeth**: the static Paced-LinearMF's *excess regret* after the event: its regret to the
  hindsight oracle on the episodes after the event minus its regret on the same queries in the
  same world without that event (:func:`counterfactuals`: without events for a preset of one
  event; the other events stay in ``combined``), per seed, averaged over budgets; mean and
  standard deviation over seeds. An agent in the counterfactual world knows the models that world
  has at time 0 (the counterfactual of a model that arrives later is one that was there all along);
- each agent's **regret after the event** (the same episodes, the same budgets: at equal budget)
  and its difference to the static policy's, paired by seed (mean, standard deviation, and on how
  many seeds it is lower). An agent **beats** the static policy after an event when its regret
  there is lower on every seed and the mean difference exceeds twice its standard deviation.

Agents (all fitted or warm-started on the training split only, never on the test split):

- ``static``: Paced-LinearMF, ``PacedPolicy(fit_router("linear-mf"), models=<models at time 0>)``;
- ``adaptive-pacing``: the same router in :class:`~agents.adaptive_pacing.AdaptivePacedPolicy`
  (realized/shown cost ratios, availability, a spend curve on the recent traffic);
- ``linucb-discounted``, ``linucb-window``, ``lin-ts-discounted``, ``lin-ts-window``: forgetting
  bandits (:mod:`agents.adaptive`) that learn LinearMF's residual from bandit feedback, inside the
  adaptive pacing; ``linucb-discounted-ridge``: the same learner warm-started by its own ridge fit;
- ``linucb-warm``: LinUCB warm-started on the training split, never forgetting, in the static
  pacing (learning without forgetting, for reference);
- ``rl-router``: MaskablePPO on the observation plus LinearMF's predictions and recent statistics
  (:mod:`agents.rl.adaptive`), trained on randomly drawn worlds of the training split (``--rl-steps``;
  0 skips it).

Writes ``DIR/scenarios.md`` (per preset: the teeth and the comparison; the bar's verdict;
provenance), ``DIR/scenarios.json`` (every effect record, per seed) and ``DIR/timeline-<preset>.png``
(accuracy, regret and spend over time, events marked). Usage::

    python benchmarks/bench_scenarios.py --out DIR [--quick] [--dataset NAME_OR_PATH] [--seeds 0,1,2]
        [--agents static,adaptive-pacing,...] [--presets regression,...] [--rl-steps 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.scenario_agents import SCENARIO_AGENTS, Builder, Deployment, models_at_start, rl_router_policy
from agents.supervised import fit_router
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import DEFAULT_BUDGET_RATIOS, PolicyResult, evaluate_policy, json_safe
from mmr_gym.policy import Policy
from mmr_gym.provenance import provenance, provenance_line
from mmr_gym.scenarios import NO_EVENTS, Scenario, available, compile_world, event_start, preset
from mmr_gym.scenarios.analysis import MARGIN, WINDOW, event_effects, plot_timeline

QUICK_BUDGET_RATIOS = (0.05, 0.2, 0.5, 1.0)
QUICK_AGENTS = ("static", "adaptive-pacing", "linucb-discounted")
BEATS_SIGMAS = 2.0  # the mean paired difference must exceed this many standard deviations


#: Agent name -> builder (what each is: agents.scenario_agents.SCENARIO_AGENTS).
AGENTS: dict[str, Builder] = {name: builder for name, (_, builder) in SCENARIO_AGENTS.items()}
DEFAULT_AGENTS = tuple(AGENTS)


def rl_builder(steps: int, train_kwargs: dict[str, Any]) -> Builder:
    """The ``rl-router`` agent: trained once per seed (cached), then one stateful policy per lane."""
    from agents.rl.adaptive import train_router_agent

    trained: dict[int, Any] = {}

    def build(d: Deployment) -> Callable[[], Policy]:
        if d.seed not in trained:
            trained[d.seed] = train_router_agent(train_kwargs, d.router, total_timesteps=steps, seed=d.seed)
        return rl_router_policy(trained[d.seed], d)

    return build


def counterfactuals(scenario: Scenario) -> dict[int, Scenario]:
    """Per event start time: the scenario without the events that start then (its other events, its
    seed: the same regressed queries); :data:`NO_EVENTS` for a scenario whose events start together."""
    starts = sorted({event_start(e) for e in scenario.events})
    if len(starts) == 1:
        return {starts[0]: NO_EVENTS}
    return {
        t: dataclasses.replace(
            scenario,
            name=f"{scenario.name} without t={t}",
            events=tuple(e for e in scenario.events if event_start(e) != t),
        )
        for t in starts
    }


def evaluate(
    builder: Builder,
    setting: Callable[[int], Deployment],
    test_env: MMRRoutingEnv,
    scenario: Any,
    seeds: Sequence[int],
    budgets: Sequence[float],
) -> PolicyResult:
    """One agent on every seed's lanes (built per seed: a learner's draws follow the seed), merged."""
    from mmr_gym.results import merge_seed_results

    results = [
        evaluate_policy(
            builder(setting(seed)),
            test_env,
            scenario=scenario,
            seeds=(seed,),
            budget_ratios=budgets,
            progress=False,
        )
        for seed in seeds
    ]
    return merge_seed_results(results)


def compare(effects: dict[str, list[dict[str, Any]]], static: str = "static") -> list[dict[str, Any]]:
    """Per event (events that start together count as one) and agent: regret after, paired with static's."""
    rows = []
    reference = _by_time(effects[static])
    for name, records in effects.items():
        for t, record in _by_time(records).items():
            mine = np.array(record["regret_after_per_seed"])
            theirs = np.array(reference[t]["regret_after_per_seed"])
            difference = mine - theirs
            spread = float(np.std(difference))
            rows.append(
                {
                    "agent": name,
                    "policy": record["policy"],
                    "time": t,
                    "event": record["event"],
                    "regret_before": record["regret_before"],
                    "regret_after": record["regret_after"],
                    "regret_after_std": record["regret_after_std"],
                    "regret_after_per_seed": mine.tolist(),
                    "difference": float(difference.mean()),
                    "difference_std": spread,
                    "seeds_better": int(np.sum(difference < 0)),
                    "seeds": int(difference.size),
                    "beats_static": name != static
                    and bool(np.all(difference < 0) and -difference.mean() > BEATS_SIGMAS * spread),
                    "excess_regret": record["excess_regret"],
                    "excess_regret_std": record["excess_regret_std"],
                    "excess_regret_per_seed": record["excess_regret_per_seed"],
                    "recovery_queries": record["recovery_queries"],
                    "recovered_share": record["recovered_share"],
                    "overrun_rate_after": record["overrun_rate_after"],
                    "spend_over_budget_after": record["spend_over_budget_after"],
                }
            )
    return rows


def _by_time(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """One record per event time (simultaneous events, e.g. an outage of three models, are one change)."""
    out: dict[int, dict[str, Any]] = {}
    for r in records:
        if r["time"] in out:
            out[r["time"]] = {**out[r["time"]], "event": out[r["time"]]["event"] + "; " + r["event"]}
        else:
            out[r["time"]] = dict(r)
    return out


def preset_markdown(name: str, description: str, rows: list[dict[str, Any]]) -> str:
    """The preset's section: the teeth, then one table per event."""
    lines = [f"### {name}", "", description, ""]
    for t in sorted({r["time"] for r in rows}):
        event = [r for r in rows if r["time"] == t]
        static = next(r for r in event if r["agent"] == "static")
        per_seed = ", ".join(f"{v:+.4f}" for v in static["excess_regret_per_seed"])
        lines += [
            f"**{static['event']}** (t={t}). Teeth: the static {static['policy']}'s excess regret after it "
            f"is **{static['excess_regret']:+.4f} ± {static['excess_regret_std']:.4f}** (per seed {per_seed}); "
            f"its regret went from {static['regret_before']:.4f} before the event to {static['regret_after']:.4f} "
            "after it (other queries: the change mixes the event with the traffic).",
            "",
            "| agent | regret before | regret after (± std over seeds) | vs static after (paired) | "
            "seeds better | beats static | excess regret | recovery (queries, median; share of lanes) | "
            "overrun rate after | spend / budget after |",
            "|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|",
        ]
        for r in event:
            recovery = "never" if math.isinf(r["recovery_queries"]) else f"{r['recovery_queries']:.0f}"
            recovery += f"; {r['recovered_share']:.0%}"
            versus = "" if r["agent"] == "static" else f"{r['difference']:+.4f} ± {r['difference_std']:.4f}"
            better = "" if r["agent"] == "static" else f"{r['seeds_better']}/{r['seeds']}"
            lines.append(
                f"| {r['policy']} | {r['regret_before']:.4f} | {r['regret_after']:.4f} ± {r['regret_after_std']:.4f} | "
                f"{versus} | {better} | "
                f"{'**yes**' if r['beats_static'] else ''} | {r['excess_regret']:+.4f} ± {r['excess_regret_std']:.4f} | "
                f"{recovery} | {r['overrun_rate_after']:.3f} | {r['spend_over_budget_after']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def verdict(per_preset: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The issue's bar: teeth on every preset; an adaptive agent beats static after an event on >= 3."""
    teeth, wins = {}, {}
    for name, rows in per_preset.items():
        static = [r for r in rows if r["agent"] == "static"]
        teeth[name] = [r["excess_regret"] for r in static]
        wins[name] = sorted({r["policy"] for r in rows if r["beats_static"]})
    with_teeth = [n for n, v in teeth.items() if v and max(v) > 0]
    won = [n for n, v in wins.items() if v]
    return {
        "presets_with_teeth": with_teeth,
        "presets_won": won,
        "winners": wins,
        "met": len(with_teeth) == len(per_preset) and len(won) >= 3,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--quick", action="store_true", help=f"agents {', '.join(QUICK_AGENTS)}; 4 budgets")
    p.add_argument(
        "--dataset", default=None, help="a bundled table name or a path (default: the bundled table)"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated stream seeds (one lane per budget each)")
    p.add_argument("--agents", default=None, help=f"comma-separated, from {list(AGENTS) + ['rl-router']}")
    p.add_argument("--presets", default=",".join(available()), help="comma-separated presets")
    p.add_argument(
        "--budgets", default=None, help="comma-separated budget ratios (default: the evaluator's sweep)"
    )
    p.add_argument("--episode-length", type=int, default=100)
    p.add_argument(
        "--rl-steps", type=int, default=0, help="train the rl-router agent this many steps per seed"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    record = provenance()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = (
        [float(b) for b in args.budgets.split(",")]
        if args.budgets
        else list(QUICK_BUDGET_RATIOS if args.quick else DEFAULT_BUDGET_RATIOS)
    )
    names = (
        [a.strip() for a in args.agents.split(",")]
        if args.agents
        else list(QUICK_AGENTS if args.quick else DEFAULT_AGENTS) + (["rl-router"] if args.rl_steps else [])
    )
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    env_kwargs = {"dataset": args.dataset, "episode_length": args.episode_length}
    train_env, test_env = (
        MMRRoutingEnv(**env_kwargs, split="train"),
        MMRRoutingEnv(**env_kwargs, split="test"),
    )
    builders = {n: AGENTS[n] for n in names if n in AGENTS}
    if "rl-router" in names:
        builders["rl-router"] = rl_builder(args.rl_steps, {**env_kwargs, "split": "train"})
    unknown = sorted(set(names) - set(builders))
    if unknown or "static" not in builders:
        print(
            f"unknown agents {unknown} (and 'static' is required); choose from {list(AGENTS)}",
            file=sys.stderr,
        )
        return 2
    router = fit_router("linear-mf", train_env)
    args.out.mkdir(parents=True, exist_ok=True)
    # The counterfactual of each event is the same world without it (without events, for a preset of
    # one event), and an agent there knows the models that world has at time 0: the counterfactual of
    # "a model arrives later" is "it was there all along", and the router fitted before knew it.
    baselines: dict[tuple[str, str], PolicyResult] = {}

    def settings(world: Any) -> Callable[[int], Deployment]:
        known = models_at_start(test_env.model_names, compile_world(world, test_env.ctx))
        return lambda seed: Deployment(train_env, router, known, seed)

    per_preset: dict[str, list[dict[str, Any]]] = {}
    sections, seconds = [], {}
    for name in presets:
        scenario = preset(name, test_env.ctx)
        setting = settings(scenario)
        results, effects = [], {}
        for agent, builder in builders.items():
            t = time.perf_counter()
            result = evaluate(builder, setting, test_env, scenario, seeds, budgets)
            effects[agent] = []
            for start, world in counterfactuals(scenario).items():
                key = (agent, json.dumps(world.to_dict(), sort_keys=True) if world.events else "none")
                if key not in baselines:  # the world without events is the same for every preset
                    baselines[key] = evaluate(builder, settings(world), test_env, world, seeds, budgets)
                effects[agent] += [
                    e for e in event_effects(result, baseline=baselines[key]) if e["time"] == start
                ]
            results.append(result)
            seconds[f"{name}/{agent}"] = round(time.perf_counter() - t, 1)
            after = ", ".join(f"{e['regret_after']:.4f}" for e in effects[agent])
            print(
                f"{name:10s} {result.name:36s} regret after: {after} ({seconds[f'{name}/{agent}']:.0f} s)",
                flush=True,
            )
        rows = compare(effects)
        per_preset[name] = rows
        sections.append(preset_markdown(name, scenario.description, rows))
        print(sections[-1], flush=True)
        plot_timeline(
            results,
            args.out / f"timeline-{name}.png",
            title=f"{name}: {scenario.description}",
            footer=f"{record['command']} · mmr-gym git {record['git']} · {record['created']}",
        )
    bar = verdict(per_preset)
    config = {
        "table": repr(test_env.ctx.table),
        "test queries": int(test_env.ctx.split_indices.size),
        "episode length": args.episode_length,
        "budget ratios": budgets,
        "seeds": seeds,
        "agents": {
            n: r["policy"] for n, r in {r["agent"]: r for rows in per_preset.values() for r in rows}.items()
        },
        "rl steps": args.rl_steps,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write(args.out, sections, per_preset, bar, config, record, seconds)
    print(
        f"bar {'met' if bar['met'] else 'NOT met'}: {bar}; wrote {args.out / 'scenarios.md'} ({config['seconds']:.0f} s)"
    )
    return 0


def write(
    out: Path,
    sections: list[str],
    per_preset: dict[str, list[dict[str, Any]]],
    bar: dict[str, Any],
    config: dict[str, Any],
    record: dict[str, Any],
    seconds: dict[str, float],
) -> None:
    """``scenarios.md`` and ``scenarios.json``."""
    won = ", ".join(f"{p} ({', '.join(bar['winners'][p])})" for p in bar["presets_won"]) or "none"
    head = [
        "# Scenarios: the static paced router against adaptive agents",
        "",
        f"Table {config['table']}, test split ({config['test queries']} queries, one timeline per seed), "
        f"episodes of {config['episode length']} queries, budget ratios {config['budget ratios']}, seeds "
        f"{config['seeds']}. Regret: the budgeted hindsight oracle's accuracy minus the policy's, averaged "
        "over budgets per seed; mean ± standard deviation over seeds. *Excess regret*: after the event minus "
        "on the same queries in the same world without that event (the other events of combined stay). "
        f"*Beats static*: lower regret after the event on every seed, by more than {BEATS_SIGMAS:g} "
        "standard deviations of the paired difference.",
        "",
        f"**Bar**: presets with teeth {len(bar['presets_with_teeth'])}/{len(per_preset)} "
        f"({', '.join(bar['presets_with_teeth'])}); presets where an adaptive agent beats static after an "
        f"event: {len(bar['presets_won'])} ({won}): **{'met' if bar['met'] else 'not met'}**. "
        f"No adaptive agent beats static on: {', '.join(p for p in per_preset if p not in bar['presets_won']) or '-'}.",
        "",
        "*Recovery*: queries from the event until a lane's regret over "
        f"{WINDOW} episodes is back within {MARGIN} of its regret before the event (median over lanes; the "
        "share of lanes that get there).",
        "",
    ]
    footer = ["", f"Provenance: {provenance_line(record)}", ""]
    (out / "scenarios.md").write_text("\n".join(head + sections + footer), encoding="utf-8")
    payload = {"bar": bar, "config": config, "presets": per_preset, "seconds": seconds, "provenance": record}
    (out / "scenarios.json").write_text(json.dumps(json_safe(payload), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
