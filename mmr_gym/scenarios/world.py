"""A scenario and the world it makes: what each model costs, whether it can be called, what it
answers and which traffic arrives, at each time of the timeline.

:class:`Scenario` is a named list of events (:mod:`mmr_gym.scenarios.events`) with a seed.
:func:`compile_world` turns it into a :class:`World` for one environment context: the timeline cut
into segments at every event time, and per segment the models' price factors (realized and as
the agent knows them), their availability and which of them have regressed, as arrays the
environments index with a segment number (one ``searchsorted`` per step for a batch).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmr_gym.arrays import read_only
from mmr_gym.checks import check_int
from mmr_gym.scenarios.events import (
    EVENT_TYPES,
    MAX_PRICE_FACTOR,
    Event,
    EventError,
    NewModel,
    Outage,
    PriceChange,
    Regression,
    Retirement,
    TrafficDrift,
    event_from_dict,
    event_times,
)


@dataclass(frozen=True, eq=False)
class Scenario:
    """A schedule of events on the timeline of queries (see :mod:`mmr_gym.scenarios`).

    Args:
        name: what reports call it.
        events: the events, in any order.
        seed: seeds what the events draw (which queries a regression touches).
        description: one line for reports.
    """

    name: str
    events: tuple[Event, ...]
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise EventError(f"a scenario's name must be a non-empty string, got {self.name!r}")
        if isinstance(self.events, str | bytes | Mapping) or not isinstance(self.events, Sequence):
            raise EventError(f"scenario {self.name!r}: events must be a list of events, got {self.events!r}")
        try:
            object.__setattr__(self, "seed", check_int("seed", self.seed, low=0))
        except (TypeError, ValueError) as exc:
            raise EventError(f"scenario {self.name!r}: {exc}") from None
        events = tuple(event_from_dict(e) if isinstance(e, Mapping) else e for e in self.events)
        for event in events:
            if not isinstance(
                event, PriceChange | Outage | Retirement | NewModel | Regression | TrafficDrift
            ):
                raise EventError(f"scenario {self.name!r}: not an event: {event!r}")
        for kind in (NewModel, Regression, Retirement):
            models = [e.model for e in events if isinstance(e, kind)]
            repeated = sorted({m for m in models if models.count(m) > 1})
            if repeated:
                raise EventError(f"scenario {self.name!r}: more than one {kind.__name__} of {repeated}")
        arrivals = {e.model: e.at for e in events if isinstance(e, NewModel)}
        for e in events:
            if isinstance(e, Retirement) and e.model in arrivals and e.at <= arrivals[e.model]:
                raise EventError(
                    f"scenario {self.name!r}: {e.model!r} retires at {e.at}, before it arrives at "
                    f"{arrivals[e.model]}: it could never be called"
                )
        if sum(isinstance(e, TrafficDrift) for e in events) > 1:
            raise EventError(f"scenario {self.name!r}: at most one TrafficDrift")
        object.__setattr__(self, "events", events)

    @property
    def has_drift(self) -> bool:
        return any(isinstance(e, TrafficDrift) for e in self.events)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (reports store it)."""
        kinds = {cls: name for name, cls in EVENT_TYPES.items()}
        return {
            "name": self.name,
            "seed": self.seed,
            "description": self.description,
            "events": [{"type": kinds[type(e)], **_fields(e)} for e in self.events],
        }


#: A world where nothing changes: the baseline an event's effect is measured against (same streams).
NO_EVENTS = Scenario("no events", (), description="nothing changes")


def _fields(event: Event) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in event.__dict__.items()}


@dataclass(frozen=True, eq=False)
class World:
    """A scenario compiled for one context: per segment of the timeline, what each model is.

    Segment ``s`` covers times ``[breaks[s], breaks[s + 1])`` (the last one runs on). Arrays are
    indexed ``[segment, model]`` unless said otherwise; slots are positions in the context's split.
    """

    scenario: Scenario
    breaks: np.ndarray  # int64 [S], breaks[0] = 0
    cost_scale: np.ndarray  # float64 [S, K]: realized cost = table cost x this
    known_scale: np.ndarray  # float64 [S, K]: what the cost estimates show: estimate x this
    available: np.ndarray  # bool [S, K]: the model can be called
    regressed: np.ndarray  # bool [S, K]: the model's outcomes are its regressed ones
    regressed_correct: np.ndarray | None  # float64 [slots, K]: each model's correctness once regressed
    dataset_of_slot: np.ndarray | None = None  # int64 [slots]: index into drift_datasets
    drift_datasets: tuple[str, ...] = ()
    drift_window: tuple[int, int] = (0, 0)
    drift_before: np.ndarray | None = None  # float64 [D], normalised
    drift_after: np.ndarray | None = None
    static: bool = field(default=False)  # no event changes prices, availability or outcomes
    # float64 [S, K]: the factor on each model's shown price (known_scale; 0 where it cannot be
    # called): the observation's per segment, made once rather than at every step.
    shown_scale: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shown = np.where(self.available, self.known_scale, 0.0)
        object.__setattr__(self, "shown_scale", read_only(shown))  # frozen: set once here

    def segment(self, time: np.ndarray | int) -> np.ndarray | int:
        """The segment of each time (int64 array for an array, an int for an int)."""
        index = np.searchsorted(self.breaks, time, side="right") - 1
        return int(index) if np.ndim(index) == 0 else index

    def known_estimates(self, estimates: np.ndarray, segments: np.ndarray | int) -> np.ndarray:
        """Cost estimates as the agent knows them in ``segments`` (one per row of ``estimates``, or
        one for all): scaled by the known price factors, ``inf`` for a model that cannot be called."""
        return np.where(self.available[segments], estimates * self.known_scale[segments], np.inf)

    def cheapest_known(self, estimates: np.ndarray) -> np.ndarray:
        """float64 ``[slots]``: each query's cheapest known estimate, at the time it is dearest."""
        return np.max(
            [self.known_estimates(estimates, s).min(axis=1) for s in range(self.breaks.size)], axis=0
        )

    def dataset_weights(self, times: np.ndarray) -> np.ndarray:
        """float64 ``[len(times), D]``: the traffic mix at each time (rows sum to 1)."""
        start, end = self.drift_window
        progress = (
            np.ones(times.shape) if end == start else np.clip((times - start) / (end - start), 0.0, 1.0)
        )
        progress = np.where(times < start, 0.0, progress)
        return (1 - progress)[:, None] * self.drift_before + progress[:, None] * self.drift_after

    def effective_outcomes(
        self, correct: np.ndarray, cost: np.ndarray, slots: np.ndarray, times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The outcomes of calling each model on the queries ``slots`` at ``times`` (float64
        ``[n, K]`` each, from the table's ``correct`` and ``cost`` of those queries): regressed
        models answer as regressed, prices are scaled, and a model that cannot be called then
        scores 0 (so no oracle calls it)."""
        seg = self.segment(times)
        correct = np.asarray(correct, dtype=np.float64)
        if self.regressed_correct is not None:
            correct = np.where(self.regressed[seg], self.regressed_correct[slots], correct)
        correct = np.where(self.available[seg], correct, 0.0)
        return correct, np.asarray(cost, dtype=np.float64) * self.cost_scale[seg]


def changing_world(world: World | None) -> World | None:
    """``world`` unless there is none or it is static (no event changes prices, availability or
    outcomes: at most the traffic mix moves, which only the streams see): the world an episode must
    consult at each step, or None when it can step as if there were no scenario."""
    return world if world is not None and not world.static else None


def drifting_world(world: World | None) -> World | None:
    """``world`` if its traffic drifts (the mix of datasets moves with time), else None: the world
    the streams must be drawn from (:func:`mmr_gym.streams.draw_drift_stream`)."""
    return world if world is not None and world.scenario.has_drift else None


def compile_world(scenario: Scenario, ctx: Any) -> World:
    """``scenario`` for the context ``ctx`` (:class:`~mmr_gym.context.RoutingContext`): model and
    dataset names resolved, every segment checked to leave some model to call (cached per pair)."""
    return _compile(scenario, ctx)


@functools.lru_cache(maxsize=16)
def _compile(scenario: Scenario, ctx: Any) -> World:
    table = ctx.table
    names = list(table.model_names)
    k = len(names)

    def model(event: Event, name: str) -> int:
        if name not in names:
            raise EventError(
                f"scenario {scenario.name!r}: {type(event).__name__} names model {name!r}, which {table.source} "
                f"does not have; its models: {names}"
            )
        return names.index(name)

    times = {0}
    for event in scenario.events:
        times.update(event_times(event))
    breaks = np.array(sorted(times), dtype=np.int64)
    s = breaks.size
    cost_scale = np.ones((s, k))
    known_scale = np.ones((s, k))
    available = np.ones((s, k), dtype=bool)
    regressed = np.zeros((s, k), dtype=bool)
    regressed_correct = None
    for event in scenario.events:
        if isinstance(event, PriceChange):
            m = model(event, event.model)
            cost_scale[breaks >= event.at, m] *= event.factor
            if event.lag is not None:
                known_scale[breaks >= event.at + event.lag, m] *= event.factor
        elif isinstance(event, Outage):
            available[(breaks >= event.start) & (breaks < event.end), model(event, event.model)] = False
        elif isinstance(event, Retirement):
            available[breaks >= event.at, model(event, event.model)] = False
        elif isinstance(event, NewModel):
            available[breaks < event.at, model(event, event.model)] = False
        elif isinstance(event, Regression):
            m, r = model(event, event.model), model(event, event.replacement)
            regressed[breaks >= event.at, m] = True
            if regressed_correct is None:
                regressed_correct = table.correct.astype(np.float64).copy()
            # One draw per table row (so a query regresses alike in every split), by event.
            draws = np.random.default_rng([scenario.seed, scenario.events.index(event)]).random(
                table.n_queries
            )
            hit = draws < event.probability
            regressed_correct[hit, m] = table.correct[hit, r]
    for scale in (cost_scale, known_scale):
        too_dear = np.flatnonzero((scale > MAX_PRICE_FACTOR).any(axis=0))
        if too_dear.size:
            raise EventError(
                f"scenario {scenario.name!r}: the price changes of {names[int(too_dear[0])]!r} multiply its "
                f"price by {scale[:, too_dear[0]].max():.3g}, more than {MAX_PRICE_FACTOR:g}"
            )
    for segment in range(s):
        if not available[segment].any():
            raise EventError(
                f"scenario {scenario.name!r}: from time {int(breaks[segment])} no model can be called"
            )
    if regressed_correct is not None:
        regressed_correct = regressed_correct[ctx.split_indices]
    drift: dict[str, Any] = {}
    for event in scenario.events:
        if isinstance(event, TrafficDrift):
            drift = _compile_drift(scenario, event, ctx)
    static = bool(
        (cost_scale == 1).all() and (known_scale == 1).all() and available.all() and not regressed.any()
    )
    return World(
        scenario=scenario,
        breaks=read_only(breaks),
        cost_scale=read_only(cost_scale),
        known_scale=read_only(known_scale),
        available=read_only(available),
        regressed=read_only(regressed),
        regressed_correct=None if regressed_correct is None else read_only(regressed_correct),
        static=static,
        **drift,
    )


def _compile_drift(scenario: Scenario, event: TrafficDrift, ctx: Any) -> dict[str, Any]:
    split_datasets = ctx.table.datasets[ctx.split_indices]
    present = tuple(sorted(set(split_datasets.tolist())))
    weights = []
    for side, mix in (("before", event.before), ("after", event.after)):
        unknown = sorted(set(mix) - set(present))
        if unknown:
            raise EventError(
                f"scenario {scenario.name!r}: TrafficDrift {side} names dataset(s) {unknown} that this split "
                f"does not have; its datasets: {list(present)}"
            )
        vector = np.array([mix.get(d, 0.0) for d in present], dtype=np.float64)
        weights.append(vector / vector.sum())
    index = {d: i for i, d in enumerate(present)}
    return {
        "dataset_of_slot": read_only(np.array([index[d] for d in split_datasets.tolist()], dtype=np.int64)),
        "drift_datasets": present,
        "drift_window": (event.start, event.end),
        "drift_before": read_only(weights[0]),
        "drift_after": read_only(weights[1]),
    }


def describe_events(events: Sequence[Event]) -> list[str]:
    """One line per event, for reports."""
    lines = []
    for e in events:
        if isinstance(e, PriceChange):
            known = (
                "announced"
                if e.lag == 0
                else ("never announced" if e.lag is None else f"known {e.lag} queries later")
            )
            lines.append(f"t={e.at}: {e.model} costs x{e.factor:g} ({known})")
        elif isinstance(e, Outage):
            lines.append(f"t={e.start}-{e.end}: {e.model} is down")
        elif isinstance(e, Retirement):
            lines.append(f"t={e.at}: {e.model} is retired")
        elif isinstance(e, NewModel):
            lines.append(f"t={e.at}: {e.model} arrives")
        elif isinstance(e, Regression):
            lines.append(f"t={e.at}: {e.model} answers as {e.replacement} on {e.probability:.0%} of queries")
        else:
            lines.append(f"t={e.start}-{e.end}: traffic moves from {dict(e.before)} to {dict(e.after)}")
    return lines
