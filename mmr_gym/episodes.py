"""The episode core: the state and the transition of routing episodes, for many at once or for one.

An episode replays a stream of queries (slots of the split, :mod:`mmr_gym.streams`) under one
budget (:mod:`mmr_gym.budget`). Each step calls one model for the current query; the table says
whether it answered correctly and what it cost. The step:

1. judges the action against the mask the agent saw: a masked action raises
   (``invalid_action="error"``) or calls the cheapest affordable model instead (``"fallback"``);
2. charges the realized cost and counts the correctness;
3. moves to the next query and recomputes the mask (the models whose cost estimate fits what is
   left);
4. ends the episode when the call overshot the budget, when not even the cheapest model fits what
   is left (the queries left go unanswered, counted wrong) or when the stream is over.

:class:`EpisodeBatch` holds ``num_envs`` episodes as arrays and steps them with a fixed number of
numpy expressions (the vector environment); :class:`~mmr_gym.episode.Episode` (in
:mod:`mmr_gym.episode`) is its scalar twin for one episode (the single environment, whose step
costs a few microseconds in Python scalars). What an action is, and the error for a masked one,
live in :mod:`mmr_gym.actions`. Both report
through :mod:`mmr_gym.records`, encode observations through :mod:`mmr_gym.observation` and apply
the budget rule of :mod:`mmr_gym.budget`; the tests check them against each other step for step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmr_gym.actions import masked_action_error
from mmr_gym.arrays import read_only
from mmr_gym.budget import (
    BUDGET_FEATURES,
    affordable,
    affordable_limit,
    budget_total,
    fill_budget_features,
    fraction_denominator,
    overrun_floor,
    spend_per_query_denominator,
)
from mmr_gym.config import DEFAULT_RATIO, EnvConfig
from mmr_gym.context import RoutingContext
from mmr_gym.observation import ObservationLayout
from mmr_gym.oracle import stream_oracle_accuracies
from mmr_gym.records import (
    StepResult,
    ansi_line,
    batched_step_info,
    episode_metrics,
    frame_state,
)
from mmr_gym.render import FrameState
from mmr_gym.scenarios import changing_world

# Columns of the per-episode state (see EpisodeBatch.__init__).
_LENGTH, _STEPS_LEFT = range(2)
_SPEND, _CORRECT_SUM, _TOTAL, _RATIO, _FRACTION_DENOMINATOR, _OVERRUN_FLOOR, _ORACLE = range(7)
_EPISODE_COLUMNS = 7


class EpisodeBatch:
    """``num_envs`` routing episodes as arrays of shape ``(num_envs, ...)``.

    The episodes share one :class:`~mmr_gym.context.RoutingContext` and one resolved
    :class:`~mmr_gym.config.EnvConfig`; their streams are given to :meth:`start` (drawn by
    :mod:`mmr_gym.streams`). Streams and current queries are *slots* (positions in the split),
    which index the per-split lookups (``ctx.lookups``).

    Args:
        ctx: the shared context.
        config: the environments' arguments, resolved against ``ctx``.
        num_envs: the number of episodes.
        track_calls: keep each episode's last call (for frames); off by default (it costs a little
            per step).
    """

    def __init__(
        self, ctx: RoutingContext, config: EnvConfig, num_envs: int, track_calls: bool = False
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.num_envs = n = num_envs
        self.layout = ObservationLayout.for_context(ctx, config.observation)
        self.lookups = ctx.lookups
        self.episode_length = length = config.episode_length
        self.n_models = k = ctx.n_models
        self.model_names = np.array([*ctx.table.model_names, None], dtype=object)  # K: none
        self._model_offset = np.arange(n) * k  # entry (i, a) of a C-ordered [n, K] array is i * K + a
        # With cost_weight 0 the penalty is -0.0 * cost / c_ref = -0.0 for every call: one constant.
        self.no_penalty = read_only(np.full(n, -0.0)) if config.cost_weight == 0 else None
        self._no_replacement = read_only(np.zeros(n, dtype=bool))
        # remaining steps -> remaining steps / episode_length, as true_divide computes it, in float32
        # as the observation holds it (rounding once, the same bits as the scalar twin's)
        self._steps_fraction = np.true_divide(np.arange(length + 1), length).astype(np.float32)
        fixed_ratio = not isinstance(config.budget_ratio, tuple)
        self._default_episode = self._episode_rows(config.budget_ratio, length) if fixed_ratio else None
        self._default_budgeted = fixed_ratio and bool(np.isfinite(self._default_episode[0, _TOTAL]))

        # State, one entry (row) per episode. Streams hold slots with one extra column repeating
        # the last query: after the last step the current slot is read there without clipping
        # (the last observation shows the last query again).
        self._set_width(length)
        # int32 slots when the split allows (it always does in practice): half the cache lines
        self._slot_dtype = np.int32 if ctx.split_indices.size < 2**31 else np.int64
        self._streams_2d = np.zeros((n, length + 1), dtype=self._slot_dtype)
        self.pos = self._stream_offset.copy()  # position of the current query in the streams, flattened
        # Integer and float state, one column per quantity: starting episodes writes all of an
        # episode's quantities in one assignment, and each column is contiguous (order F) for the
        # per-step arithmetic. The names bound by _bind_views are views of those columns.
        self._counts = np.zeros((n, 2), dtype=np.int64, order="F")
        self._episode = np.zeros((n, _EPISODE_COLUMNS), order="F")
        self.all_default_length = True  # every current episode has episode_length queries
        self.all_budgeted = False  # every current episode has a (finite) budget
        # Step counts at which some stream may run out (t reaching its length); other steps skip
        # that check. Entries of episodes that ended early are harmless and dropped when reached.
        self.step_count = 0
        self._stream_ends: set[int] = set()
        self.slots = np.zeros(n, dtype=np.int64)  # slot of the current query
        self.mask = np.zeros((n, k), dtype=bool)  # affordable models for the current query
        # Every entry of the mask is True (every model fits every episode's budget): no action can
        # be masked, and judging the actions costs nothing. Every write to the mask updates it.
        self.all_affordable = False
        # Scratch for the estimates of the current queries: never handed out, so reused (a fresh
        # [n, K] float64 array per step costs page faults when malloc trims the freed heap).
        self._estimates = np.empty((n, k))
        # Each episode's last call (model called, correct, cost, model asked for), for frames.
        self.last_calls: np.ndarray | None = None
        if track_calls:
            self.last_calls = np.zeros((n, 4))
            self.last_calls[:, 0] = -1  # no call yet
        # The timeline (mmr_gym.scenarios): where each episode started; its current query is at
        # time0 + answered. ``world`` changes prices, availability and outcomes with time (None:
        # nothing does, and the step skips all of it). Under a world, ``segments`` holds the segment
        # of each current query's time (kept by start and step: one searchsorted per step, read by
        # the masks, the call and the observation).
        self.time0 = np.zeros(n, dtype=np.int64)
        self.world = changing_world(config.world(ctx))
        self.segments = np.zeros(n, dtype=np.int64)
        self._bind_views()

    # ------------------------------------------------------------------ state views
    def _bind_views(self) -> None:
        """Name the columns of the state blocks (views: one write updates both names)."""
        self.length, self.steps_left = self._counts[:, _LENGTH], self._counts[:, _STEPS_LEFT]
        episode = self._episode
        self.spend, self.correct_sum = episode[:, _SPEND], episode[:, _CORRECT_SUM]
        self.total = episode[:, _TOTAL]  # inf: no budget
        self.fraction_denominator = episode[:, _FRACTION_DENOMINATOR]
        self.overrun_floor = episode[:, _OVERRUN_FLOOR]
        self._streams_flat = self._streams_2d.reshape(-1)  # a view: C-contiguous

    def __getstate__(self) -> dict[str, Any]:
        # Views would be pickled (and deep-copied) as arrays of their own, no longer the columns
        # of the blocks they name: keep only the blocks and name the columns again on load.
        views = ("length", "steps_left", "spend", "correct_sum", "total")
        views += ("fraction_denominator", "overrun_floor", "_streams_flat")
        return {key: value for key, value in self.__dict__.items() if key not in views}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_views()

    def stream_rows(self, i: int) -> np.ndarray:
        """Table rows of episode ``i``'s stream (a copy)."""
        return self.lookups.table_rows.take(self._streams_2d[i, : self.length[i]])

    def remaining(self) -> np.ndarray:
        """float64 ``[num_envs]``: the budget left (inf: no budget), >= 0 (a fresh array)."""
        return np.maximum(self.total - self.spend, 0.0)

    def total_of(self, ratio: float | None) -> float:
        """The budget of an episode of ``episode_length`` queries under ``ratio`` (inf: none)."""
        return float(self._episode_rows(ratio, self.episode_length)[0, _TOTAL])

    # ------------------------------------------------------------------ starting episodes
    def start(
        self,
        envs: np.ndarray,
        streams: np.ndarray,
        ratio: Any = DEFAULT_RATIO,
        oracle: np.ndarray | None = None,
        times: np.ndarray | int = 0,
    ) -> None:
        """Start episodes in ``envs`` (int indices) on ``streams``: slots ``[m, length + 1]`` (each
        stream, then its last slot again), or one such row that all of them replay.

        ``ratio``: :data:`~mmr_gym.config.DEFAULT_RATIO` (the configured fixed ratio), None (no
        budget), a float, or float ``[m]`` (NaN: no budget); ``oracle``: the oracle accuracies
        computed ahead (NaN: not yet); ``times``: where on the timeline they start.
        """
        default = isinstance(ratio, str)
        length = streams.shape[-1] - 1
        if length > self._width:
            self._widen(length)
        # Started now, they step from the next step on: their streams run out `length` steps later.
        self._stream_ends.add(self.step_count + length)
        if length == self._width:
            self._streams_2d[envs] = streams
        else:
            self._streams_2d[envs, : length + 1] = streams
        self._counts[envs] = length  # length and steps left
        if self.last_calls is not None:
            self.last_calls[envs, 0] = -1
        self.pos[envs] = self._stream_offset.take(envs)
        self.slots[envs] = streams[..., 0]
        self.time0[envs] = times
        if self.world is not None:  # their current query is their first, at their start time
            self.segments[envs] = self.world.segment(times)
        if default and length == self.episode_length and self._default_episode is not None:
            self._episode[envs] = self._default_episode  # the common case: one precomputed row
            if oracle is not None:
                self._episode[envs, _ORACLE] = oracle
            still_budgeted = self.all_budgeted and self._default_budgeted
        else:
            self._episode[envs] = self._episode_rows(self.config.budget_ratio if default else ratio, length)
            still_budgeted = False
        if length != self.episode_length:
            self.all_default_length = False
        elif not self.all_default_length:
            self.all_default_length = not np.count_nonzero(self.length != length)
        # Budgeted rows replaced by budgeted rows stay all budgeted; otherwise look at every row.
        self.all_budgeted = still_budgeted or bool(np.isfinite(self.total).all())

    def next_times(self, envs: np.ndarray) -> np.ndarray:
        """Where the next episodes of ``envs`` start: after the streams of their current ones."""
        return self.time0[envs] + self.length[envs]

    def now(self, envs: np.ndarray | None = None) -> np.ndarray:
        """The time of each episode's current query (of all, or of ``envs``)."""
        if envs is None:
            return self.time0 + (self.length - self.steps_left)
        return self.time0[envs] + (self.length[envs] - self.steps_left[envs])

    def known_estimates(self, envs: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """The current queries' cost estimates as the agent knows them now (of all, or of ``envs``):
        under a scenario scaled by the known prices, ``inf`` where a model cannot be called."""
        slots = self.slots if envs is None else self.slots[envs]
        estimates = self.lookups.cost_estimate.take(slots, axis=0, out=out, mode="clip")
        if self.world is None:
            return estimates
        return self.world.known_estimates(estimates, self.segments if envs is None else self.segments[envs])

    def forget_stream_ends(self) -> None:
        """Every episode starts anew (a full reset): the stream ends noted so far are stale."""
        self._stream_ends.clear()

    def set_masks(self, remaining: np.ndarray) -> None:
        """The masks of all episodes, all just started (``remaining``: their budget left)."""
        estimates = self.known_estimates()
        self.mask = affordable(estimates, remaining) & (estimates < np.inf)
        self.all_affordable = False

    def first_masks(self, envs: np.ndarray, remaining: np.ndarray) -> None:
        """The masks of the episodes ``envs`` that just started (``remaining`` is theirs).

        A new episode is never over, so no episode needs the end-of-stream rule.
        """
        estimates = self.known_estimates(envs)
        self.mask[envs] = affordable(estimates, remaining) & (estimates < np.inf)
        self.all_affordable = False

    def _episode_rows(self, ratio: float | np.ndarray | None, length: int) -> np.ndarray:
        """Float state rows at the start of an episode with ``ratio`` (None or NaN: no budget)."""
        ratios = np.atleast_1d(np.asarray(np.nan if ratio is None else ratio, dtype=np.float64))
        total = budget_total(ratios, length, self.ctx.c_ref)
        rows = np.zeros((ratios.size, _EPISODE_COLUMNS))
        rows[:, _TOTAL] = total
        rows[:, _RATIO] = ratios
        rows[:, _FRACTION_DENOMINATOR] = fraction_denominator(total)
        rows[:, _OVERRUN_FLOOR] = overrun_floor(total)
        rows[:, _ORACLE] = np.nan  # computed when the episode ends
        return rows

    def _set_width(self, width: int) -> None:
        """Stream capacity and what depends on it (offsets, the per-query spend denominators)."""
        self._width = width
        self._stream_offset = np.arange(self.num_envs) * (width + 1)
        self._per_query_denominator = spend_per_query_denominator(np.arange(width + 1), self.ctx.c_ref)

    def _widen(self, width: int) -> None:
        """Make room for replayed streams longer than ``episode_length``."""
        streams = np.zeros((self.num_envs, width + 1), dtype=self._slot_dtype)
        streams[:, : self._width + 1] = self._streams_2d
        t = self.length - self.steps_left
        self._set_width(width)
        self._streams_2d = streams
        self._streams_flat = streams.reshape(-1)
        self.pos = self._stream_offset + t

    # ------------------------------------------------------------------ stepping
    def check_actions(self, actions: Any) -> np.ndarray:
        """``actions`` as int64 ``[num_envs]`` model indices; anything else raises ``ValueError``."""
        k = self.n_models
        if type(actions) is not np.ndarray or actions.dtype != np.int64:
            array = np.asarray(actions)
            if array.dtype.kind not in "iu":
                raise ValueError(f"actions must be integers in [0, {k}), got dtype {array.dtype}")
            if array.dtype == np.uint64 and array.size and array.max() >= k:
                raise ValueError(f"actions must be integers in [0, {k}), got {array[array >= k].tolist()}")
            actions = array.astype(np.int64)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        # Seen as unsigned, a negative action is huge: the largest checks both bounds.
        if np.maximum.reduce(actions.view(np.uint64)) >= k:
            bad = actions[(actions < 0) | (actions >= k)]
            raise ValueError(f"actions must be integers in [0, {k}), got {bad.tolist()}")
        return actions

    def judge_actions(
        self, requested: np.ndarray, done: np.ndarray, any_done: bool
    ) -> tuple[np.ndarray, bool]:
        """The models to call: ``requested``, with masked actions replaced by the fallback (or an
        error, with nothing changed). Episodes in ``done`` are reset instead: their actions are ignored."""
        if self.all_affordable:
            return requested, False
        # count_nonzero is the cheapest all/any.
        valid = self.mask.reshape(-1).take(self._model_offset + requested)
        if any_done:
            valid |= done
        replaced = np.count_nonzero(valid) != self.num_envs
        return (self._replace_invalid(requested, ~valid) if replaced else requested), replaced

    def _replace_invalid(self, actions: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        """Apply ``invalid_action`` to the episodes whose action is masked."""
        envs = np.flatnonzero(invalid)
        estimates = self.known_estimates(envs)  # as the agent knows them now (a scenario's prices)
        if self.config.invalid_action == "error":
            i, a = int(envs[0]), int(actions[envs[0]])
            error = masked_action_error(
                f"sub-environment {i}: ",
                a,
                self.ctx.table.model_names[a],
                estimates[0, a],
                self.ctx.table.cost_unit,
                float(self.remaining()[i]),
                np.flatnonzero(self.mask[i]).tolist(),
            )
            raise ValueError(f"{error} (masked actions in sub-environments {envs.tolist()})")
        if not self.mask[envs].any(axis=1).all():
            # Cannot happen (an episode ends when nothing fits): never call a model the rule forbids.
            raise RuntimeError(
                f"sub-environments {envs[~self.mask[envs].any(axis=1)].tolist()} have no affordable model"
            )
        estimates = np.where(self.mask[envs], estimates, np.inf)
        chosen = actions.copy()
        chosen[envs] = estimates.argmin(axis=1)
        return chosen

    def step(
        self, requested: np.ndarray, chosen: np.ndarray, replaced: bool, done: np.ndarray, any_done: bool
    ) -> StepResult:
        """Call ``chosen`` in every episode not in ``done`` (those were just started again by the
        caller and take no call), charge it, move on, and judge which episodes end."""
        lookups, k = self.lookups, self.n_models
        slots = self.slots
        stepping = None
        if any_done:
            stepping = ~done
            chosen = np.where(done, 0, chosen)  # SyncVectorEnv's fill value for model_index
        flat = slots * k
        flat += chosen
        if any_done:
            flat[done] = lookups.nothing  # correct 0 and cost 0 for the episodes reset
        outcome = lookups.outcomes.take(flat, axis=0)  # fresh [n, 2]: each call's (correct, cost)
        correct, cost = outcome[:, 0], outcome[:, 1]
        world = self.world
        times = None
        if world is not None:  # the world at the time of each call (reset episodes keep their 0s)
            times = self.now()
            segment = self.segments
            if world.regressed_correct is not None:
                regressed = world.regressed_correct.reshape(-1).take(flat, mode="clip")
                np.copyto(
                    correct, regressed, where=world.regressed[segment, chosen] & (flat != lookups.nothing)
                )
            cost *= world.cost_scale[segment, chosen]
        if self.last_calls is not None:
            self.last_calls[:, 0] = np.where(done, -1, chosen) if any_done else chosen
            self.last_calls[:, 1], self.last_calls[:, 2], self.last_calls[:, 3] = correct, cost, requested
        if any_done:
            self.pos += stepping
            self.steps_left -= stepping
        else:
            self.pos += 1
            self.steps_left -= 1
        # The float64 additions of the scalar twin (Episode, Budget): same bits.
        self.spend += cost
        self.correct_sum += correct
        if self.no_penalty is not None:
            cost_penalty = self.no_penalty
            reward = correct.copy()  # correct + -0.0 is correct, bit for bit
        else:
            cost_penalty = -self.config.cost_weight * cost / self.ctx.c_ref
            reward = correct + cost_penalty

        self.slots = next_slots = self._streams_flat.take(self.pos).astype(np.int64)
        balance = self.total - self.spend
        overran = balance < self.overrun_floor  # the last call overshot (budget.overrun_floor)
        remaining = np.maximum(balance, 0.0, out=balance)
        limit = affordable_limit(remaining)
        if world is None:
            self._static_masks(next_slots, limit)
            # Every episode that affords every model affords the cheapest: only the others may end.
            cheapest = None if self.all_affordable else lookups.cheapest_estimate.take(next_slots)
        else:
            self.segments = world.segment(self.now())  # of the next queries
            # mode="clip" (slots are valid): with mode="raise" take() would buffer its output
            estimates = self.known_estimates(out=self._estimates)
            # Into the mask's own buffer: it is internal state, only ever handed out as copies. A
            # model that cannot be called now has an infinite estimate.
            self.mask = np.less_equal(estimates, limit[:, None], out=self.mask)
            self.mask &= estimates < np.inf
            self.all_affordable = False
            cheapest = estimates.min(axis=1)
        # Terminated: the last call overshot the budget, or not even the cheapest model fits the
        # rest of it (the remaining queries go unanswered; one column instead of K), or the
        # stream is over.
        if cheapest is None:
            terminated = overran
        else:
            terminated = cheapest > limit
            terminated |= overran
        if self.step_count in self._stream_ends:
            self._stream_ends.discard(self.step_count)
            ended = self.steps_left == 0
            self.mask[ended] = False  # after the last query nothing is affordable
            self.all_affordable = False
            terminated |= ended
        if any_done:
            terminated &= stepping
        return StepResult(
            slots,
            requested,
            chosen,
            replaced,
            correct,
            cost,
            cost_penalty,
            reward,
            terminated,
            remaining,
            stepping,
            times,
        )

    def _static_masks(self, slots: np.ndarray, limit: np.ndarray) -> None:
        """The masks of queries ``slots`` under ``limit`` (:func:`~mmr_gym.budget.affordable_limit`)
        when prices never change: the table's estimates that fit, into the mask's own buffer.

        Most episodes can afford every model (their query's dearest estimate fits): their rows are
        all True, and only the others' ``K`` estimates are gathered and compared (all of them when
        many are short: one broadcast then costs less than picking rows).
        """
        lookups, mask = self.lookups, self.mask
        rich = lookups.dearest_estimate.take(slots) <= limit  # NaN estimates: not rich
        short = self.num_envs - np.count_nonzero(rich)
        self.all_affordable = short == 0
        if short == 0:
            mask.fill(True)
        elif short > self.num_envs // 8:
            estimates = lookups.cost_estimate.take(slots, axis=0, out=self._estimates, mode="clip")
            np.less_equal(estimates, limit[:, None], out=mask)
        else:
            rows = np.flatnonzero(~rich)
            mask.fill(True)
            mask[rows] = lookups.cost_estimate.take(slots[rows], axis=0) <= limit[rows, None]

    # ------------------------------------------------------------------ what the agent sees
    def observation(self, remaining: np.ndarray, envs: np.ndarray | None = None) -> Any:
        """Fresh observations of every episode (or of ``envs``); ``remaining`` is theirs.

        One gather of ``[query, 0, 0, 0, model_costs]`` rows, then the budget features: in place
        (flat) or into their own block (Dict).
        """
        if envs is None:
            slots, steps_left, denominator = self.slots, self.steps_left, self.fraction_denominator
        else:
            slots, steps_left = self.slots[envs], self.steps_left[envs]
            denominator = self.fraction_denominator[envs]
        obs = self.lookups.observations.take(slots, axis=0)
        if self.layout.mode == "flat":
            budget = obs[:, self.layout.budget]
        else:
            # A Dict observation's budget part is its own block, one feature per row: each feature
            # is written contiguously (in the flat rows each is a strided column, several times slower).
            budget = np.empty((BUDGET_FEATURES, obs.shape[0]), dtype=np.float32).T
        if envs is None and self.all_default_length:
            self._steps_fraction.take(steps_left, out=budget[:, 1], mode="clip")
            steps_fraction = None
        else:
            steps_fraction = np.true_divide(steps_left, self.length if envs is None else self.length[envs])
        per_query = self._per_query_denominator.take(steps_left)
        all_budgeted = self.all_budgeted if envs is None else bool(np.isfinite(self.total[envs]).all())
        fill_budget_features(budget, remaining, denominator, steps_fraction, per_query, all_budgeted)
        if self.world is not None:  # prices as known now; 0 for a model that cannot be called
            obs[:, self.layout.model_costs] *= self.world.shown_scale[
                self.segments if envs is None else self.segments[envs]
            ]
        return self.layout.from_flat(obs, budget)

    # ------------------------------------------------------------------ what the episodes report
    def step_info(self, result: StepResult, keys: frozenset[str], everyone: np.ndarray) -> dict[str, Any]:
        """The step's info, batched (:func:`mmr_gym.records.batched_step_info`)."""
        return batched_step_info(
            result,
            keys,
            everyone,
            self._no_replacement,
            self.model_names,
            self.ctx,
            self.config.feedback,
            self.world,
        )

    def episode_metrics(self, envs: np.ndarray) -> dict[str, Any]:
        """:func:`~mmr_gym.records.episode_metrics` of the finished episodes ``envs`` (arrays ``[m]``)."""
        # One gather per block of state, along its columns (contiguous: many times faster than rows).
        counts = self._counts.T.take(envs, axis=1)  # [2, m]
        episode = self._episode.T.take(envs, axis=1)  # [7, m]
        length = counts[_LENGTH]
        oracle = episode[_ORACLE]
        if np.count_nonzero(np.isnan(oracle)):
            oracle = oracle.copy()
            todo = np.flatnonzero(np.isnan(oracle))
            streams = [self._streams_2d[envs[j], : length[j]] for j in todo.tolist()]
            totals = episode[_TOTAL, todo]
            starts = self.time0[envs[todo]]
            oracle[todo] = stream_oracle_accuracies(
                self.ctx, streams, totals, self.episode_length, world=self.world, starts=starts
            )
        return episode_metrics(
            episode[_CORRECT_SUM],
            length,
            counts[_STEPS_LEFT],
            episode[_SPEND],
            episode[_TOTAL],
            episode[_RATIO],
            episode[_OVERRUN_FLOOR],
            oracle,
            self.ctx.c_ref,
            self.ctx.table.cost_unit,
            self.time0[envs],
        )

    def frame_state(self, i: int, ended: bool) -> FrameState:
        """What episode ``i``'s frame shows (needs ``track_calls``)."""
        total = float(self.total[i]) if np.isfinite(self.total[i]) else None
        model, correct, cost, asked = self.last_calls[i].tolist()
        return frame_state(
            self.ctx.table.model_names,
            self.known_estimates(np.array([i]))[0],
            self.mask[i],
            self.ctx.cost_observed,
            self.ctx.table.cost_unit,
            int(self.length[i] - self.steps_left[i]),
            int(self.length[i]),
            float(self.correct_sum[i]),
            float(self.spend[i]),
            total,
            None if model < 0 else (int(model), correct, cost, int(asked)),
            ended,
        )

    def ansi_line(self, i: int) -> str:
        """Episode ``i``'s ``render_mode="ansi"`` line."""
        length = int(self.length[i])
        total = float(self.total[i]) if np.isfinite(self.total[i]) else None
        answered = length - int(self.steps_left[i])
        unit = self.ctx.table.cost_unit
        return ansi_line(answered, length, float(self.spend[i]), total, float(self.correct_sum[i]), unit)
