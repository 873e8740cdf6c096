"""One routing episode in Python scalars: the single environment's episode core.

:class:`Episode` is the scalar twin of :class:`~mmr_gym.episodes.EpisodeBatch` (the module
:mod:`mmr_gym.episodes` states the episode's rules): the same rules in the same float64
operations, for the single environment, whose step then costs a few microseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmr_gym.actions import masked_action_error
from mmr_gym.budget import Budget, overrun_floor
from mmr_gym.config import EnvConfig
from mmr_gym.context import RoutingContext
from mmr_gym.observation import ObservationLayout
from mmr_gym.oracle import stream_oracle_accuracies
from mmr_gym.records import ansi_line, episode_metrics, frame_state, metrics_row, step_info
from mmr_gym.render import FrameState
from mmr_gym.scenarios import changing_world

__all__ = ["Episode"]


class Episode:
    """One routing episode in Python scalars: :class:`EpisodeBatch`'s scalar twin, for the single env.

    The same rules in the same float64 operations (:class:`~mmr_gym.budget.Budget` is the
    budget rule's scalar form), so an episode here and row ``i`` of a batch replaying the same
    stream agree bit for bit; the reports come from the same functions (:mod:`mmr_gym.records`).
    """

    def __init__(self, ctx: RoutingContext, config: EnvConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.layout = ObservationLayout.for_context(ctx, config.observation)
        self.lookups = ctx.lookups
        self.n_models = ctx.n_models
        self.slots: list[int] = []  # the stream; Python ints: the step reads them cheaper than numpy's
        self.t = 0
        self.budget = Budget(None, config.episode_length, ctx.c_ref)
        self.correct_sum = 0.0
        self.ended = True
        self.mask = np.zeros(ctx.n_models, dtype=bool)  # affordable models for the current query
        self.last_call: tuple[int, float, float, int] | None = None  # for frames (records.frame_state)
        self.started = False
        self.time0 = 0  # where the episode started on the timeline (mmr_gym.scenarios)
        self.world = changing_world(config.world(ctx))

    def start(self, slots: np.ndarray, ratio: float | None, time0: int = 0) -> None:
        """Start an episode on the stream ``slots`` under the budget ``ratio`` (None: no budget), at
        ``time0`` on the timeline."""
        self.slots = slots.tolist()
        self.budget = Budget(ratio, len(self.slots), self.ctx.c_ref)
        self.t = 0
        self.time0 = int(time0)
        self.correct_sum = 0.0
        self.ended = False
        self.started = True
        self.last_call = None
        self.mask = self._affordable(self.slots[0], self.time0)

    def known_estimates(self, slot: int, time: int) -> np.ndarray:
        """A query's cost estimates as the agent knows them at ``time`` (``inf``: cannot be called)."""
        estimates = self.lookups.cost_estimate[slot]
        if self.world is None:
            return estimates
        return self.world.known_estimates(estimates, self.world.segment(time))

    def _affordable(self, slot: int, time: int) -> np.ndarray:
        estimates = self.known_estimates(slot, time)
        mask = self.budget.affordable(estimates)
        if self.world is not None:  # a model that cannot be called now has an infinite estimate
            mask &= estimates < np.inf
        return mask

    def step(self, requested: int) -> tuple[int, float, float, float, bool]:
        """Call ``requested`` (or its fallback) on the current query; returns ``(model called,
        correct, cost, cost penalty, terminated)``."""
        slot = self.slots[self.t]
        mask = self.mask  # computed once, when this query became current
        chosen = requested
        if not mask[requested]:
            estimates = self.known_estimates(slot, self.time0 + self.t)
            if self.config.invalid_action == "error":
                raise masked_action_error(
                    "",
                    requested,
                    self.ctx.table.model_names[requested],
                    estimates[requested],
                    self.ctx.table.cost_unit,
                    self.budget.remaining,
                    np.flatnonzero(mask).tolist(),
                )
            if not np.count_nonzero(mask):  # cannot happen: an episode ends when nothing fits
                raise RuntimeError("no affordable model for the current query")
            chosen = int(np.argmin(np.where(mask, estimates, np.inf)))
        flat = slot * self.n_models + chosen
        correct, cost = self.lookups.outcomes[flat].tolist()
        world = self.world
        if world is not None:  # the world at the time of the call
            segment = world.segment(self.time0 + self.t)
            if world.regressed[segment, chosen]:
                correct = float(world.regressed_correct[slot, chosen])
            cost = cost * float(world.cost_scale[segment, chosen])
        self.budget.charge(cost)
        self.correct_sum += correct
        self.t += 1
        self.last_call = (chosen, correct, cost, requested)
        if self.t < len(self.slots):
            self.mask = self._affordable(self.slots[self.t], self.time0 + self.t)
            # Nothing fits the rest of the budget: the remaining queries go unanswered.
            terminated = self.budget.overrun > 0.0 or not np.count_nonzero(self.mask)  # any(): slower
        else:
            self.mask = np.zeros(self.n_models, dtype=bool)
            terminated = True
        self.ended = terminated
        return chosen, correct, cost, -self.config.cost_weight * cost / self.ctx.c_ref, terminated

    def observation(self) -> Any:
        """A fresh observation of the current query (after the last step: the last query's)."""
        slot = self.slots[min(self.t, len(self.slots) - 1)]
        flat = self.lookups.observations[slot].copy()
        flat[self.layout.budget] = self.budget.features(len(self.slots) - self.t)
        if self.world is not None:  # prices as known now; 0 for a model that cannot be called
            flat[self.layout.model_costs] *= self.world.shown_scale[self.world.segment(self.time0 + self.t)]
        return self.layout.from_flat(flat)

    def step_info(
        self, chosen: int, requested: int, correct: float, cost: float, cost_penalty: float
    ) -> dict[str, Any]:
        """The step's info (:func:`mmr_gym.records.step_info`)."""
        slot = self.slots[self.t - 1]
        lookups = self.lookups
        info = step_info(
            self.mask.astype(np.int8),
            self.ctx.table.model_names[chosen],
            chosen,
            chosen != requested,
            correct,
            cost,
            lookups.query_ids[slot],
            lookups.datasets[slot],
            cost_penalty,
            self.budget.remaining,
        )
        if self.config.feedback == "full":
            row = lookups.table_rows[slot]
            correct, cost = self.ctx.table.correct[row].copy(), self.ctx.table.cost[row].copy()
            if self.world is not None:
                time = np.array([self.time0 + self.t - 1])
                effective = self.world.effective_outcomes(correct[None], cost[None], np.array([slot]), time)
                correct, cost = (v[0].astype(np.float32) for v in effective)
            info["outcomes"] = {"correct": correct, "cost": cost}
        return info

    def metrics(self) -> dict[str, Any]:
        """:func:`~mmr_gym.records.episode_metrics` of the episode, as Python scalars."""
        budget = self.budget
        total = np.array([np.inf if budget.total is None else budget.total])
        stream = np.asarray(self.slots, dtype=np.int64)
        oracle = stream_oracle_accuracies(
            self.ctx,
            [stream],
            total,
            self.config.episode_length,
            world=self.world,
            starts=np.array([self.time0]),
        )
        one = np.ones(1)
        metrics = episode_metrics(
            one * self.correct_sum,
            np.array([len(self.slots)]),
            np.array([len(self.slots) - self.t]),
            one * budget.spend,
            total,
            one * (np.nan if budget.ratio is None else budget.ratio),
            np.array([-np.inf if budget.total is None else overrun_floor(budget.total)]),
            oracle,
            self.ctx.c_ref,
            self.ctx.table.cost_unit,
            np.array([self.time0]),
        )
        return metrics_row(metrics)

    def frame_state(self) -> FrameState:
        slot = self.slots[min(self.t, len(self.slots) - 1)]
        return frame_state(
            self.ctx.table.model_names,
            self.known_estimates(slot, self.time0 + min(self.t, len(self.slots) - 1)),
            self.mask,
            self.ctx.cost_observed,
            self.ctx.table.cost_unit,
            self.t,
            len(self.slots),
            self.correct_sum,
            self.budget.spend,
            self.budget.total,
            self.last_call,
            self.ended,
        )

    def ansi_line(self) -> str:
        return ansi_line(
            self.t,
            len(self.slots),
            self.budget.spend,
            self.budget.total,
            self.correct_sum,
            self.ctx.table.cost_unit,
        )
