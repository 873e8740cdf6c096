"""The environments' arguments: one definition, checked once, shared by the single and vector envs.

:class:`EnvConfig` holds every keyword argument of :class:`~mmr_gym.env.MMRRoutingEnv` (the
vector env takes the same ones), refuses wrong types and values with an error that names the
argument, and builds the shared :class:`~mmr_gym.context.RoutingContext`. What depends on the
table (the episode length against the split's size, the budget ratio against the cheapest calls)
is checked by :meth:`EnvConfig.resolve`, once the context exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmr_gym.budget import BUDGET_SAMPLINGS, check_budget_ratio
from mmr_gym.checks import check_bool, check_float, check_int
from mmr_gym.context import RoutingContext, build_context
from mmr_gym.observation import OBSERVATIONS
from mmr_gym.table import RoutingTable

SPLITS = ("train", "test", "all")
SPLIT_MODES = ("in", "out", "ids")
MODALITIES = ("mm", "text", "image")
FEEDBACKS = ("bandit", "full")
INVALID_ACTIONS = ("fallback", "error")
RENDER_MODES = ("ansi", "rgb_array")
#: A reset that asks for no budget ratio of its own: the configured ``budget_ratio`` applies.
DEFAULT_RATIO = "default"


@dataclass(frozen=True)
class EnvConfig:
    """The keyword arguments of the routing environments (see :class:`~mmr_gym.env.MMRRoutingEnv`
    for what each means), validated. ``EnvConfig(**kwargs)`` raises ``TypeError`` for an argument of
    the wrong type and ``ValueError`` for a wrong value, naming the first bad argument."""

    dataset: str | Path | RoutingTable | None = None
    dataset_kwargs: Mapping[str, Any] | None = None
    split: str = "train"
    split_mode: str = "in"
    train_fraction: float = 0.2
    split_seed: int = 0
    test_datasets: tuple[str, ...] | None = None
    train_ids: tuple[str, ...] | None = None
    test_ids: tuple[str, ...] | None = None
    features: str | tuple[str, ...] | None = None
    episode_length: int = 100
    budget_ratio: float | tuple[float, float] | None = 0.5
    budget_sampling: str = "uniform"
    cost_weight: float = 0.0
    modality: str = "mm"
    feedback: str = "bandit"
    cost_observed: bool = False
    obs_dim: int | None = None
    observation: str = "dict"
    invalid_action: str = "fallback"
    render_mode: str | None = None
    scenario: str | Any | None = None  # a preset name or a mmr_gym.scenarios.Scenario

    def __post_init__(self) -> None:
        for name, allowed in (
            ("split", SPLITS),
            ("split_mode", SPLIT_MODES),
            ("modality", MODALITIES),
            ("feedback", FEEDBACKS),
            ("observation", OBSERVATIONS),
            ("invalid_action", INVALID_ACTIONS),
            ("budget_sampling", BUDGET_SAMPLINGS),
        ):
            _check_choice(name, getattr(self, name), allowed)
        if self.render_mode is not None:
            _check_choice("render_mode", self.render_mode, RENDER_MODES)
        if not (self.dataset is None or isinstance(self.dataset, (str, Path, RoutingTable))):
            raise TypeError(
                f"dataset must be a bundled name, a path or a RoutingTable, got {type(self.dataset).__name__}"
            )
        if self.dataset_kwargs is not None and not isinstance(self.dataset_kwargs, Mapping):
            raise TypeError(f"dataset_kwargs must be a mapping, got {type(self.dataset_kwargs).__name__}")
        fraction = check_float(
            "train_fraction", self.train_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
        cost_weight = check_float("cost_weight", self.cost_weight, low=0.0)
        _set = object.__setattr__
        for name in ("test_datasets", "train_ids", "test_ids"):
            _set(self, name, _names(name, getattr(self, name)))
        if self.train_ids is not None or self.test_ids is not None:
            if self.split_mode == "out":
                raise ValueError(
                    "train_ids/test_ids give the split explicitly; they do not go with split_mode='out'"
                )
            _set(self, "split_mode", "ids")
        elif self.split_mode == "ids":
            raise ValueError("split_mode='ids' needs train_ids or test_ids")
        if self.features is not None:
            if isinstance(self.dataset, RoutingTable):
                raise ValueError("features are computed by a loader; a ready RoutingTable takes none")
            if self.dataset_kwargs is not None and "features" in self.dataset_kwargs:
                raise ValueError("give features once: as features=..., or in dataset_kwargs, not both")
            _set(
                self,
                "features",
                self.features if isinstance(self.features, str) else _names("features", self.features),
            )
        _set(self, "train_fraction", fraction)
        _set(self, "cost_weight", cost_weight)
        _set(self, "split_seed", check_int("split_seed", self.split_seed))
        _set(self, "episode_length", check_int("episode_length", self.episode_length, low=1))
        _set(self, "cost_observed", check_bool("cost_observed", self.cost_observed))
        if self.obs_dim is not None:
            _set(self, "obs_dim", check_int("obs_dim", self.obs_dim, low=1))
        if self.scenario is not None:
            from mmr_gym.scenarios import Scenario, available  # local: scenarios is optional weight

            if isinstance(self.scenario, str):
                if self.scenario not in available():
                    raise ValueError(f"unknown scenario {self.scenario!r}; presets: {available()}")
            elif not isinstance(self.scenario, Scenario):
                raise TypeError(
                    f"scenario must be a preset name or a mmr_gym.scenarios.Scenario, got {type(self.scenario).__name__}"
                )
        # The type of budget_ratio now; its range once the table is known (resolve).
        check_budget_ratio(self.budget_ratio, minimum=0.0, length=1, c_ref=1.0)

    def kwargs(self) -> dict[str, Any]:
        """The arguments as keyword arguments of either environment."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def context(self) -> RoutingContext:
        """The shared :class:`~mmr_gym.context.RoutingContext` (cached: equal arguments share one)."""
        dataset_kwargs = dict(self.dataset_kwargs or {})
        if self.features is not None:
            dataset_kwargs["features"] = (
                self.features if isinstance(self.features, str) else list(self.features)
            )
        return build_context(
            self.dataset,
            dataset_kwargs=dataset_kwargs or None,
            split=self.split,
            split_mode=self.split_mode,
            train_fraction=self.train_fraction,
            split_seed=self.split_seed,
            test_datasets=self.test_datasets,
            train_ids=self.train_ids,
            test_ids=self.test_ids,
            modality=self.modality,
            cost_observed=self.cost_observed,
            obs_dim=self.obs_dim,
        )

    def world(self, ctx: RoutingContext) -> Any:
        """The scenario's :class:`~mmr_gym.scenarios.World` for ``ctx`` (None without a scenario)."""
        if self.scenario is None:
            return None
        from mmr_gym.scenarios import compile_world, preset

        scenario = preset(self.scenario, ctx) if isinstance(self.scenario, str) else self.scenario
        return compile_world(scenario, ctx)

    def resolve(self, ctx: RoutingContext) -> EnvConfig:
        """This config with ``episode_length`` and ``budget_ratio`` checked against ``ctx`` (normalised);
        under a scenario, the budget must let every query start at every time."""
        n_split = ctx.split_indices.size
        if self.episode_length > n_split:
            hint = ""
            if self.split == "train" and self.split_mode == "in":
                hint = (
                    f"; the training split is train_fraction={self.train_fraction:g} of the "
                    f"{ctx.table.n_queries} queries (MMR-Bench trains on 20%): use a shorter episode_length, "
                    "a larger train_fraction, or split='all'"
                )
            raise ValueError(
                f"episode_length must be an integer in [1, {n_split}] (the {self.split!r} split has "
                f"{n_split} queries), got {self.episode_length!r}{hint}"
            )
        ratio = check_budget_ratio(
            self.budget_ratio,
            minimum=ctx.min_budget_ratio(self.episode_length, world=self.world(ctx)),
            length=self.episode_length,
            c_ref=ctx.c_ref,
        )
        return dataclasses.replace(self, budget_ratio=ratio)

    def reset_request(
        self,
        ctx: RoutingContext,
        query_ids: Sequence[str] | None,
        budget_ratio: Any = DEFAULT_RATIO,
        name: str = "options['query_ids']",
    ) -> tuple[np.ndarray | None, Any]:
        """What a reset asks for, checked: ``(slots of the replayed stream or None, budget ratio)``.

        ``budget_ratio`` is :data:`DEFAULT_RATIO` (the configured one), None (no budget), a
        number or a ``(low, high)`` range. A replayed stream must fit the budget in effect: each
        of its queries' cheapest model must fit the whole budget, else the stream is refused
        (its first step would offer no model, and no model may be called).
        """
        stream = None if query_ids is None else ctx.slots_from_ids(query_ids, name)
        length = self.episode_length if stream is None else stream.size
        ratio = budget_ratio
        if not (isinstance(ratio, str) and ratio == DEFAULT_RATIO):
            minimum = ctx.min_budget_ratio(length, stream, world=self.world(ctx))
            ratio = check_budget_ratio(ratio, minimum=minimum, length=length, c_ref=ctx.c_ref)
        elif stream is not None:  # the configured ratio was checked for drawn streams when made
            minimum = ctx.min_budget_ratio(length, stream, world=self.world(ctx))
            check_budget_ratio(self.budget_ratio, minimum=minimum, length=length, c_ref=ctx.c_ref)
        return stream, ratio


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {list(allowed)}")


def _names(name: str, values: Any) -> tuple[str, ...] | None:
    """A sequence of names (query ids, dataset names, encoders) as a tuple of str; one string is refused."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of names, got {values!r}")
    return tuple(str(v) for v in values)
