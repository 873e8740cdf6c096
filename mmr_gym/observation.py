"""The observation layout: what an agent sees, where each part sits, and how to read it back.

An observation has three parts, in this order:

- ``query``: the query's features (``query_dim`` float32 values, see
  :class:`~mmr_gym.context.RoutingContext`);
- ``budget``: the three budget features of :data:`~mmr_gym.budget.BUDGET_FEATURE_NAMES`
  (remaining budget fraction, remaining steps fraction, affordable spend per remaining query
  relative to ``c_ref``);
- ``model_costs``: each model's cost estimate for the query relative to ``c_ref``.

``observation="dict"`` gives them as a ``Dict`` of three ``Box`` es, ``"flat"`` as one ``Box`` of
their concatenation. :class:`ObservationLayout` owns both spaces, the positions of the parts in
the flat vector, the encoding of a batch, and :meth:`ObservationLayout.decode`, which agents use
instead of slicing observations by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from mmr_gym.budget import BUDGET_FEATURE_NAMES, BUDGET_FEATURES, SPEND_PER_QUERY_CLIP

OBSERVATIONS = ("dict", "flat")
#: The parts of an observation, in the order of the flat vector (and of the Dict's keys).
PARTS = ("query", "budget", "model_costs")
#: Each budget feature's column in the ``budget`` part (:data:`~mmr_gym.budget.BUDGET_FEATURE_NAMES`).
BUDGET_COLUMNS = {name: column for column, name in enumerate(BUDGET_FEATURE_NAMES)}


class ObservationParts(NamedTuple):
    """An observation (or a batch: leading dimensions are kept) taken apart by name.

    Every field is a view or a slice of the observation, float32; ``budget_fraction``,
    ``steps_fraction`` and ``spend_per_query`` have the batch shape (a 0-d array for one
    observation), ``query`` and ``model_costs`` one more dimension.
    """

    query: np.ndarray
    budget_fraction: np.ndarray
    steps_fraction: np.ndarray
    spend_per_query: np.ndarray  # affordable spend per remaining query / c_ref, clipped
    model_costs: np.ndarray  # each model's cost estimate / c_ref

    @property
    def budget(self) -> np.ndarray:
        """The three budget features stacked on the last axis (a copy)."""
        return np.stack((self.budget_fraction, self.steps_fraction, self.spend_per_query), axis=-1)


@dataclass(frozen=True, eq=False)
class ObservationLayout:
    """Where each part of an observation sits, its bounds, and the observation space.

    Args:
        query_low: float32 ``[query_dim]`` lower bounds of the query features.
        query_high: float32 ``[query_dim]`` upper bounds of the query features.
        n_models: ``K``, the number of models (length of ``model_costs``).
        model_costs_high: upper bound of every ``model_costs`` entry (their lower bound is 0).
        mode: ``"dict"`` or ``"flat"``.
    """

    query_low: np.ndarray
    query_high: np.ndarray
    n_models: int
    model_costs_high: float
    mode: str = "dict"
    query: slice = field(init=False)
    budget: slice = field(init=False)
    model_costs: slice = field(init=False)
    #: length of the flat vector: ``query_dim + 3 + K``
    size: int = field(init=False)

    def __post_init__(self) -> None:
        if self.mode not in OBSERVATIONS:
            raise ValueError(f"unknown observation {self.mode!r}; allowed: {list(OBSERVATIONS)}")
        d = int(np.shape(self.query_low)[0])
        object.__setattr__(self, "query", slice(0, d))
        object.__setattr__(self, "budget", slice(d, d + BUDGET_FEATURES))
        object.__setattr__(
            self, "model_costs", slice(d + BUDGET_FEATURES, d + BUDGET_FEATURES + self.n_models)
        )
        object.__setattr__(self, "size", d + BUDGET_FEATURES + self.n_models)

    @classmethod
    def for_context(cls, ctx: Any, mode: str = "dict") -> ObservationLayout:
        """The layout of the environments over a :class:`~mmr_gym.context.RoutingContext`."""
        return cls(ctx.query_low, ctx.query_high, ctx.n_models, ctx.model_costs_high, mode)

    @property
    def query_dim(self) -> int:
        return self.query.stop

    # ------------------------------------------------------------------ spaces
    def part_spaces(self) -> dict[str, spaces.Box]:
        """One ``Box`` per part, by name (the ``Dict`` observation's spaces)."""
        budget_high = np.array([1.0, 1.0, SPEND_PER_QUERY_CLIP], dtype=np.float32)
        return {
            "query": spaces.Box(self.query_low, self.query_high, dtype=np.float32),
            "budget": spaces.Box(0.0, budget_high, shape=(BUDGET_FEATURES,), dtype=np.float32),
            "model_costs": spaces.Box(0.0, self.model_costs_high, shape=(self.n_models,), dtype=np.float32),
        }

    def observation_space(self) -> spaces.Space:
        """The single environment's observation space: a ``Dict`` of the parts, or their flat ``Box``."""
        parts = self.part_spaces()
        if self.mode == "dict":
            return spaces.Dict(parts)
        return spaces.Box(
            np.concatenate([p.low for p in parts.values()]),
            np.concatenate([p.high for p in parts.values()]),
            dtype=np.float32,
        )

    # ------------------------------------------------------------------ encode
    @staticmethod
    def base_rows(query: np.ndarray, model_costs: np.ndarray) -> np.ndarray:
        """Flat rows ``[query, 0, 0, 0, model_costs]`` (float32): what the step gathers, then fills
        with the budget features."""
        budget = np.zeros((query.shape[0], BUDGET_FEATURES), dtype=np.float32)
        return np.concatenate((query, budget, model_costs), axis=1).astype(np.float32, copy=False)

    def from_flat(self, flat: np.ndarray, budget: np.ndarray | None = None) -> Any:
        """The observation in this layout's mode from flat rows (one ``[size]`` or a batch ``[n, size]``).

        A ``Dict`` observation holds views of ``flat`` (its keys never overlap): one allocation,
        not three; or, given ``budget`` (float32 ``[..., 3]``), that array as its budget part.
        ``flat`` and ``budget`` must be fresh: the caller hands them out.
        """
        if self.mode == "flat":
            return flat
        return {
            "query": flat[..., self.query],
            "budget": flat[..., self.budget] if budget is None else budget,
            "model_costs": flat[..., self.model_costs],
        }

    # ------------------------------------------------------------------ decode
    def decode(self, obs: Any) -> ObservationParts:
        """Take an observation of either mode (one, or a batch) apart by name, without copying."""
        if isinstance(obs, dict):
            query = np.asarray(obs["query"])
            budget = np.asarray(obs["budget"])
            model_costs = np.asarray(obs["model_costs"])
        else:
            flat = np.asarray(obs)
            if flat.shape[-1] != self.size:
                raise ValueError(
                    f"a flat observation of this layout has {self.size} values on its last axis, "
                    f"got shape {flat.shape}"
                )
            query, budget, model_costs = (
                flat[..., self.query],
                flat[..., self.budget],
                flat[..., self.model_costs],
            )
        columns = BUDGET_COLUMNS
        return ObservationParts(
            query,
            budget[..., columns["budget_fraction"]],
            budget[..., columns["steps_fraction"]],
            budget[..., columns["spend_per_query"]],
            model_costs,
        )
