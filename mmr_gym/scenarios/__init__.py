"""Scenarios: routing in a world that changes while the agent serves it.

A scenario is a schedule of events on the *timeline* of queries served, which runs across
episodes (an episode is a budget window, say a day, inside a longer deployment): price changes,
outages, retirements, new models, silent regressions and traffic drift
(:mod:`mmr_gym.scenarios.events`). ``gym.make("MMRRouting-v0", scenario="price-cut")`` takes a
preset by name (:func:`available`), or a :class:`Scenario` of one's own::

    from mmr_gym.scenarios import PriceChange, Regression, Scenario

    mine = Scenario("cheaper-then-worse", (
        PriceChange("GPT-5", at=1000, factor=0.1, lag=500),
        Regression("GPT-5-mini", at=3000, replacement="Qwen2.5-VL-3B", probability=0.5),
    ))
    env = gym.make("MMRRouting-v0", scenario=mine)

A seeded reset starts the timeline at 0 (``options={"time": t}`` starts it at ``t``); a reset
without a seed continues it. The observation shows only what is known at the time: prices as
the scenario makes them known, availability as it stands (a model that cannot be called is
masked and its cost shows as 0). The hindsight oracle and the regret use the world as it is at
each query. Episode metrics say where on the timeline each episode started (``time``).
"""

from __future__ import annotations

from mmr_gym.scenarios.events import (
    Event,
    EventError,
    NewModel,
    Outage,
    PriceChange,
    Regression,
    Retirement,
    TrafficDrift,
    event_from_dict,
    event_start,
)
from mmr_gym.scenarios.presets import available, preset, roles
from mmr_gym.scenarios.world import (
    NO_EVENTS,
    Scenario,
    World,
    changing_world,
    compile_world,
    describe_events,
    drifting_world,
)

__all__ = [
    "NO_EVENTS",
    "Event",
    "EventError",
    "NewModel",
    "Outage",
    "PriceChange",
    "Regression",
    "Retirement",
    "Scenario",
    "TrafficDrift",
    "World",
    "available",
    "changing_world",
    "drifting_world",
    "compile_world",
    "describe_events",
    "event_from_dict",
    "event_start",
    "preset",
    "roles",
]
