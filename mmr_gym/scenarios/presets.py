"""Named scenarios, each built for the table it runs on.

A preset names models by their role on the training split, so that it means the same on any table:
the *best* model (the most accurate: the reference model of ``c_ref``), the *workhorse* (the most
accurate model whose mean cost is at most a quarter of ``c_ref``: what a paced router calls most
at moderate budgets), the *runner-up* (the second most accurate), the *weakest*, and the *cheap
tier* (the three cheapest, by mean cost). Times are
fractions of ``T``, the number of queries of the environment's split (one evaluation seed's
timeline).

=================  ======================================================================
preset             what happens
=================  ======================================================================
``price-cut``      at T/4 the best model becomes 10x cheaper; the price table is never
                   updated (the agent sees the old estimates, pays the new prices)
``outage``         the cheap tier is down during [T/4, T/2): every call costs more
``new-model``      the runner-up arrives at T/4 (masked before: unknown to a router fitted
                   before it)
``regression``     from T/4 the workhorse answers as the weakest model on 80% of queries,
                   at its old price, and nothing says so
``drift``          the traffic moves from the three datasets the best model finds easiest to
                   the three it finds hardest over [T/8, T/2]
``combined``       the workhorse regresses at T/4, the runner-up arrives at 3T/8, the best
                   model becomes 10x cheaper at T/2 (the price table is not updated)
=================  ======================================================================

Each preset has teeth: after its event a static budget-paced router fitted before it (told only the
models it knew) has more regret to the hindsight oracle than on the same queries without the event
(``benchmarks/bench_scenarios.py`` prints by how much). An announced price change is not a preset:
the estimates follow it and a paced policy loses nothing (build it with ``PriceChange(lag=0)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from mmr_gym.scenarios.events import NewModel, Outage, PriceChange, Regression, TrafficDrift
from mmr_gym.scenarios.world import Scenario

WORKHORSE_COST = 0.25  # the workhorse's mean cost is at most this many c_ref


def roles(ctx: Any) -> dict[str, str]:
    """The models a preset names, by role (see the module docstring), from the training split."""
    train = ctx.table.subset(ctx.train_indices)
    accuracy, cost = train.model_accuracy(), train.model_mean_cost()
    order = np.lexsort((cost, -accuracy))  # most accurate first, cheaper first on ties
    names = ctx.table.model_names
    cheap = [m for m in order.tolist() if cost[m] <= WORKHORSE_COST * ctx.c_ref and m != order[0]]
    workhorse = cheap[0] if cheap else int(order[min(2, len(order) - 1)])
    cheapest = np.argsort(cost, kind="stable")[: min(3, len(names) - 1)]  # leave one model to call
    return {
        "best": names[int(order[0])],
        "runner-up": names[int(order[1])] if len(order) > 1 else names[int(order[0])],
        "workhorse": names[workhorse],
        "weakest": names[int(order[-1])],
        "cheap tier": ",".join(names[int(m)] for m in cheapest),
    }


def _price_cut(ctx: Any, r: dict[str, str], t: int) -> Scenario:
    return Scenario(
        "price-cut",
        (PriceChange(r["best"], at=t // 4, factor=0.1, lag=None),),
        description=f"{r['best']} becomes 10x cheaper at t={t // 4}; the price table is not updated",
    )


def _outage(ctx: Any, r: dict[str, str], t: int) -> Scenario:
    tier = r["cheap tier"].split(",")
    return Scenario(
        "outage",
        tuple(Outage(m, start=t // 4, end=t // 2) for m in tier),
        description=f"the cheap tier ({', '.join(tier)}) is down during [{t // 4}, {t // 2})",
    )


def _new_model(ctx: Any, r: dict[str, str], t: int) -> Scenario:
    return Scenario(
        "new-model",
        (NewModel(r["runner-up"], at=t // 4),),
        description=f"{r['runner-up']} arrives at t={t // 4}",
    )


def _regression(ctx: Any, r: dict[str, str], t: int) -> Scenario:
    return Scenario(
        "regression",
        (Regression(r["workhorse"], at=t // 4, replacement=r["weakest"], probability=0.8),),
        description=f"{r['workhorse']} answers as {r['weakest']} on 80% of queries from t={t // 4}",
    )


def _drift(ctx: Any, r: dict[str, str], t: int) -> Scenario:
    train = ctx.table.subset(ctx.train_indices)
    best = ctx.table.model_names.index(r["best"])
    names = sorted(set(ctx.table.datasets[ctx.split_indices].tolist()))
    accuracy = {
        d: float(train.correct[train.datasets == d, best].mean())
        for d in names
        if (train.datasets == d).any()
    }
    ranked = sorted(accuracy, key=lambda d: (-accuracy[d], d))
    k = max(1, min(3, len(ranked) // 2))
    easy, hard = ranked[:k], ranked[-k:]
    return Scenario(
        "drift",
        (
            TrafficDrift(
                start=t // 8, end=t // 2, before=dict.fromkeys(easy, 1.0), after=dict.fromkeys(hard, 1.0)
            ),
        ),
        description=f"traffic moves from {easy} to {hard} over [{t // 8}, {t // 2}]",
    )


def _combined(ctx: Any, r: dict[str, str], t: int) -> Scenario:
    # The order gives each event teeth: a regression after an announced cut of the best model hurt
    # nothing (the paced router had moved its calls to the best model), and a cut once announced
    # costs a paced policy nothing.
    events = [Regression(r["workhorse"], at=t // 4, replacement=r["weakest"], probability=0.8)]
    if r["runner-up"] != r["workhorse"]:
        events.append(NewModel(r["runner-up"], at=3 * t // 8))
    events.append(PriceChange(r["best"], at=t // 2, factor=0.1, lag=None))
    return Scenario(
        "combined",
        tuple(events),
        description="a silent regression, a new model and a price cut never announced, one after the other",
    )


PRESETS: dict[str, Callable[[Any, dict[str, str], int], Scenario]] = {
    "price-cut": _price_cut,
    "outage": _outage,
    "new-model": _new_model,
    "regression": _regression,
    "drift": _drift,
    "combined": _combined,
}


def available() -> list[str]:
    """The names of the preset scenarios."""
    return list(PRESETS)


@functools.lru_cache(maxsize=64)
def preset(name: str, ctx: Any) -> Scenario:
    """The preset ``name`` built for the context ``ctx`` (one object per pair: cached)."""
    if name not in PRESETS:
        raise ValueError(f"unknown scenario {name!r}; presets: {available()}")
    return PRESETS[name](ctx, roles(ctx), int(ctx.split_indices.size))
