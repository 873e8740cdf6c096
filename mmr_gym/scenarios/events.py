"""The events of a scenario: what changes in the world, and when, on the timeline of queries.

Time ``t`` counts the queries of the deployment: an episode that starts at ``t0`` presents queries
``t0, t0 + 1, ...``, and the next episode starts where its stream would have ended (queries a
tight budget leaves unanswered still arrived). Every event is checked when it is made; an error
names the event and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmr_gym.checks import MAX_TIME, check_float, check_int

#: A price change multiplies a price by at most this (and the changes of a model together too):
#: beyond it a float32 cost would overflow to infinity.
MAX_PRICE_FACTOR = 1e6


class EventError(ValueError):
    """A scenario event with a bad field (the message names the event and the field)."""


def _time(event: str, name: str, value: Any) -> int:
    try:
        return check_int(name, value, low=0, high=MAX_TIME)
    except (TypeError, ValueError) as exc:
        raise EventError(f"{event}: {exc}") from None


def _model(event: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise EventError(f"{event}: model must be a model name (a non-empty string), got {value!r}")
    return value


@dataclass(frozen=True)
class PriceChange:
    """From time ``at`` the model's calls cost ``factor`` times as much (a cut: ``factor < 1``).

    The agent's cost estimates (the observation's ``model_costs`` and the affordability rule)
    follow ``lag`` queries later: ``lag=0`` is an announced change, a positive ``lag`` a stale
    price table, ``lag=None`` a table that is never updated.
    """

    model: str
    at: int
    factor: float
    lag: int | None = 0

    def __post_init__(self) -> None:
        name = "PriceChange"
        object.__setattr__(self, "model", _model(name, self.model))
        object.__setattr__(self, "at", _time(name, "at", self.at))
        try:
            object.__setattr__(
                self,
                "factor",
                check_float("factor", self.factor, low=0.0, high=MAX_PRICE_FACTOR, low_open=True),
            )
        except (TypeError, ValueError) as exc:
            raise EventError(f"{name}({self.model!r}): {exc}") from None
        if self.lag is not None:
            object.__setattr__(self, "lag", _time(f"{name}({self.model!r})", "lag", self.lag))


@dataclass(frozen=True)
class Outage:
    """The model cannot be called during ``[start, end)`` (it is masked)."""

    model: str
    start: int
    end: int

    def __post_init__(self) -> None:
        name = "Outage"
        object.__setattr__(self, "model", _model(name, self.model))
        object.__setattr__(self, "start", _time(name, "start", self.start))
        object.__setattr__(self, "end", _time(name, "end", self.end))
        if self.end <= self.start:
            raise EventError(
                f"{name}({self.model!r}): end must be after start, got [{self.start}, {self.end})"
            )


@dataclass(frozen=True)
class Retirement:
    """The model cannot be called from time ``at`` on (it is masked)."""

    model: str
    at: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", _model("Retirement", self.model))
        object.__setattr__(self, "at", _time("Retirement", "at", self.at))


@dataclass(frozen=True)
class NewModel:
    """The model arrives at time ``at``: before, it is masked and its cost shows as 0 (never seen)."""

    model: str
    at: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", _model("NewModel", self.model))
        object.__setattr__(self, "at", _time("NewModel", "at", self.at))


@dataclass(frozen=True)
class Regression:
    """From time ``at`` the model silently gets worse: on each query, with ``probability``, its
    outcome is the ``replacement`` model's (a fixed draw per query, seeded by the scenario); its
    price does not change and nothing in the observation says so."""

    model: str
    at: int
    replacement: str
    probability: float = 1.0

    def __post_init__(self) -> None:
        name = "Regression"
        object.__setattr__(self, "model", _model(name, self.model))
        object.__setattr__(self, "at", _time(name, "at", self.at))
        if not isinstance(self.replacement, str) or not self.replacement:
            raise EventError(
                f"{name}({self.model!r}): replacement must be a model name, got {self.replacement!r}"
            )
        if self.replacement == self.model:
            raise EventError(f"{name}({self.model!r}): replacement must be another model")
        try:
            probability = check_float("probability", self.probability, low=0.0, high=1.0, low_open=True)
        except (TypeError, ValueError) as exc:
            raise EventError(f"{name}({self.model!r}): {exc}") from None
        object.__setattr__(self, "probability", probability)


@dataclass(frozen=True)
class TrafficDrift:
    """The mix of datasets in the streams moves from ``before`` to ``after`` (weights by dataset
    name; datasets not named weigh 0) linearly over ``[start, end]``: each query of a stream is
    drawn from a dataset chosen with the weights of its time."""

    start: int
    end: int
    before: Mapping[str, float] = field(default_factory=dict)
    after: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = "TrafficDrift"
        object.__setattr__(self, "start", _time(name, "start", self.start))
        object.__setattr__(self, "end", _time(name, "end", self.end))
        if self.end < self.start:
            raise EventError(f"{name}: end must not be before start, got [{self.start}, {self.end}]")
        for side in ("before", "after"):
            weights = getattr(self, side)
            if not isinstance(weights, Mapping) or not weights:
                raise EventError(f"{name}: {side} must map dataset names to weights, got {weights!r}")
            checked = {}
            for dataset, weight in weights.items():
                try:
                    checked[str(dataset)] = check_float(f"{side}[{dataset!r}]", weight, low=0.0)
                except (TypeError, ValueError) as exc:
                    raise EventError(f"{name}: {exc}") from None
            if not sum(checked.values()) > 0:
                raise EventError(f"{name}: the weights of {side} must not all be 0")
            object.__setattr__(self, side, checked)


Event = PriceChange | Outage | Retirement | NewModel | Regression | TrafficDrift
EVENT_TYPES: dict[str, type] = {
    "price_change": PriceChange,
    "outage": Outage,
    "retirement": Retirement,
    "new_model": NewModel,
    "regression": Regression,
    "traffic_drift": TrafficDrift,
}


def event_from_dict(record: Mapping[str, Any]) -> Event:
    """An event from a plain mapping: ``{"type": "price_change", "model": ..., "at": ..., ...}``."""
    if not isinstance(record, Mapping) or "type" not in record:
        raise EventError(
            f"an event must be a mapping with a 'type' (one of {sorted(EVENT_TYPES)}), got {record!r}"
        )
    kind = record["type"]
    if kind not in EVENT_TYPES:
        raise EventError(f"unknown event type {kind!r}; known: {sorted(EVENT_TYPES)}")
    fields = {k: v for k, v in record.items() if k != "type"}
    try:
        return EVENT_TYPES[kind](**fields)
    except TypeError as exc:
        raise EventError(f"{kind}: {exc}") from None


def event_times(event: Event) -> list[int]:
    """The times at which ``event`` changes something in the world (segment boundaries)."""
    if isinstance(event, PriceChange):
        return [event.at] + ([event.at + event.lag] if event.lag is not None else [])
    if isinstance(event, Outage):
        return [event.start, event.end]
    if isinstance(event, TrafficDrift):
        return []  # a continuous change: weights are computed per query
    return [event.at]


def event_start(event: Event) -> int:
    """When ``event`` begins (for reports: regret before and after it)."""
    return event.start if isinstance(event, Outage | TrafficDrift) else event.at
