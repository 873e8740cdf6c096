"""MMRRoutingVectorEnv: ``num_envs`` routing environments stepped as one set of numpy arrays.

The sub-environments have exactly the semantics of :class:`~mmr_gym.env.MMRRoutingEnv` (same
constructor arguments, streams, budgets, masks, rewards, termination rules, infos and episode
metrics), but their state lives in arrays of shape ``(num_envs, ...)`` and a step is a fixed
number of numpy expressions, whatever ``num_envs`` is. They replay one shared
:class:`~mmr_gym.context.RoutingContext`: the table and every array derived from it exist once.

Seeding: sub-environment ``i`` owns one ``np.random.Generator``, used only when it starts an
episode (to draw its stream and, for a ``(low, high)`` budget range, its budget ratio), with the
same calls in the same order as ``MMRRoutingEnv.reset``. So after ``reset(seed=s)``
sub-environment ``i`` behaves step for step like an ``MMRRoutingEnv`` reset with ``seed=s + i``
and auto-reset with ``seed=None``, i.e. like ``gymnasium.vector.SyncVectorEnv`` of single
environments given the same seed. Starting an episode is the only per-sub-environment Python
work (one generator call, once per episode); ``step`` has no loop over sub-environments.

Autoreset follows ``AutoresetMode.NEXT_STEP`` (like Gymnasium's ``CartPoleVectorEnv``): a
sub-environment that terminated is reset by the *next* ``step``, which ignores its action and
returns its first observation, reward 0 and only ``action_mask`` in its part of the info.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from mmr_gym.budget import _TOLERANCE, BUDGET_FEATURES, affordable, budget_features
from mmr_gym.context import RoutingContext
from mmr_gym.env import MMRRoutingEnv, _check_budget_ratio
from mmr_gym.oracle import budgeted_oracle, per_query_oracle_accuracy
from mmr_gym.table import RoutingTable

RESET_OPTIONS = ("budget_ratio", "query_ids")


class MMRRoutingVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of :class:`~mmr_gym.env.MMRRoutingEnv`, vectorized with numpy.

    Args:
        dataset: as for :class:`~mmr_gym.env.MMRRoutingEnv` (a bundled name, a path or a table).
        num_envs: number of sub-environments (>= 1).
        **kwargs: every keyword argument of :class:`~mmr_gym.env.MMRRoutingEnv` (``split``,
            ``episode_length``, ``budget_ratio``, ``cost_weight``, ``feedback``, ``observation``,
            ``invalid_action``, ...), with the same meaning and the same validation.

    Observations are the single environment's, batched with ``batch_space``: a ``Dict`` of
    ``[num_envs, ...]`` float32 arrays, or one ``[num_envs, D]`` array for ``observation="flat"``.
    Rewards are float64 ``[num_envs]``, terminations and truncations bool ``[num_envs]``
    (truncations are always False: episodes end only by the single environment's rules).
    Infos follow Gymnasium's vector convention, exactly as ``SyncVectorEnv`` merges the single
    environments' infos: ``info[key]`` is an array over sub-environments, ``info["_" + key]`` a
    read-only bool mask of the sub-environments that report ``key`` (nested for ``rewards``,
    ``outcomes`` and ``episode_metrics``); unreported entries are 0 (None for strings).
    ``info["action_mask"]`` is int8 ``[num_envs, K]``; :meth:`action_masks` gives it as bool.

    A masked action in a sub-environment that is not being reset raises ``ValueError`` before any
    state changes with ``invalid_action="error"``; with ``"fallback"`` that sub-environment calls
    its cheapest affordable model instead (``info["action_replaced"]``).
    """

    metadata = {
        "render_modes": ["ansi"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    #: Attributes and methods whose value has one entry per sub-environment (the SB3 adapter
    #: hands entry ``i`` to sub-environment ``i``; every other attribute is shared).
    per_env_attributes = ("budget", "budget_remaining", "episode_query_indices", "action_masks", "render")

    def __init__(
        self, dataset: str | RoutingTable | None = None, *, num_envs: int = 1, **kwargs: Any
    ) -> None:
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        # The single environment is the specification: it validates the arguments, takes the
        # shared context from build_context's cache (or builds it) and defines the spaces.
        prototype = MMRRoutingEnv(dataset, **kwargs)
        self.ctx: RoutingContext = prototype.ctx
        self.num_envs = n = int(num_envs)
        self.episode_length = prototype.episode_length
        self.budget_ratio = prototype.budget_ratio
        self.cost_weight = prototype.cost_weight
        self.feedback = prototype.feedback
        self.observation_mode = prototype.observation_mode
        self.invalid_action = prototype.invalid_action
        self.render_mode = prototype.render_mode
        self.single_observation_space = prototype.observation_space
        self.single_action_space = prototype.action_space
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)

        k = self.ctx.n_models
        self._rowwise = _rowwise(self.ctx)
        self._flat_obs = _flat_observations(self.ctx) if self.observation_mode == "flat" else None
        self._model_names = np.array(self.ctx.table.model_names, dtype=object)
        self._model_offset = np.arange(n) * k  # entry (i, a) of a C-ordered [n, K] array is i * K + a
        self._everyone = _read_only(np.ones(n, dtype=bool))

        # One generator per sub-environment, used only to start its episodes (module docstring).
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._seeds: list[int | None] = [None] * n

        # Episode state, one entry (row) per sub-environment; set by reset().
        self._width = self.episode_length
        self._streams = np.zeros((n, self._width), dtype=np.int64)
        self._stream_offset = np.arange(n) * self._width
        self._length = np.full(n, self.episode_length, dtype=np.int64)
        self._t = np.zeros(n, dtype=np.int64)
        self._pos = self._stream_offset.copy()  # position of the current query in _streams, flattened
        self._last_pos = self._stream_offset + self._length - 1
        self._rows = np.zeros(n, dtype=np.int64)  # table row of the current query
        self._ratio = np.full(n, np.nan)  # NaN: no budget
        self._total = np.full(n, np.inf)  # inf: no budget
        self._spend = np.zeros(n)
        self._correct_sum = np.zeros(n)
        self._mask = np.zeros((n, k), dtype=bool)  # affordable models for the current query
        self._prev_done = np.zeros(n, dtype=bool)
        self._started = False

    # ------------------------------------------------------------------ public read-only facts
    @property
    def model_names(self) -> tuple[str, ...]:
        return self.ctx.table.model_names

    @property
    def c_ref(self) -> float:
        """Mean per-query cost of the reference model on the training split, in ``cost_unit``."""
        return self.ctx.c_ref

    @property
    def cost_unit(self) -> str:
        return self.ctx.table.cost_unit

    @property
    def budget(self) -> np.ndarray:
        """float64 ``[num_envs]``: each sub-environment's total budget, in ``cost_unit`` (NaN: none)."""
        return np.where(np.isfinite(self._total), self._total, np.nan)

    @property
    def budget_remaining(self) -> np.ndarray:
        """float64 ``[num_envs]``: each sub-environment's budget left (inf: no budget), >= 0."""
        return np.maximum(self._total - self._spend, 0.0)

    @property
    def episode_query_indices(self) -> list[np.ndarray]:
        """Table rows of each sub-environment's stream (copies). For oracles and logging, not agents."""
        return [self._streams[i, : self._length[i]].copy() for i in range(self.num_envs)]

    @property
    def np_random_seeds(self) -> tuple[int | None, ...]:
        """The seed each sub-environment's generator was last created from."""
        return tuple(self._seeds)

    def action_masks(self) -> np.ndarray:
        """bool ``[num_envs, K]``: the affordable models for each sub-environment's current query."""
        return self._mask.copy()

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Start a new episode in every sub-environment.

        Args:
            seed: ``None`` (keep each sub-environment's generator; the first time, seed it from
                entropy), an int ``s`` (sub-environment ``i`` gets ``s + i``, as in
                ``SyncVectorEnv``) or a sequence of ``num_envs`` seeds (int or None).
            options: the options of ``MMRRoutingEnv.reset``, for every sub-environment and this
                episode only: ``budget_ratio``, and ``query_ids`` (a stream all of them replay).
        """
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = [None if s is None else int(s) for s in seed]
            if len(seeds) != n:
                raise ValueError(
                    f"seed must be None, an int or {n} seeds (one per sub-environment), got {len(seeds)}"
                )
        super().reset(seed=seeds[0])
        for i, s in enumerate(seeds):
            if s is not None or self._rngs[i] is None:
                self._rngs[i], self._seeds[i] = seeding.np_random(s)

        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: {list(RESET_OPTIONS)}")
        stream = self.ctx.stream_from_ids(options["query_ids"]) if "query_ids" in options else None
        ratio = self.budget_ratio
        if "budget_ratio" in options:
            length = self.episode_length if stream is None else stream.size
            ratio = _check_budget_ratio(options["budget_ratio"], self.ctx.min_budget_ratio(length))

        everyone = np.arange(n)
        self._start_episodes(everyone, stream=stream, ratio=ratio)
        self._prev_done[:] = False
        self._started = True
        self._update_mask(np.maximum(self._total - self._spend, 0.0))
        return self._observation(), {
            "action_mask": self._mask.astype(np.int8),
            "_action_mask": self._everyone,
        }

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment; those that terminated on the last step start a new episode."""
        if not self._started:
            raise RuntimeError("step() called before reset()")
        actions = self._check_actions(actions)
        done = self._prev_done
        any_done = bool(done.any())

        # Masked actions, judged against the mask the agent saw; sub-environments being reset
        # ignore their action (as SyncVectorEnv's do).
        invalid = ~self._mask.reshape(-1).take(self._model_offset + actions)
        if any_done:
            invalid &= ~done
        chosen = self._replace_invalid(actions, invalid) if invalid.any() else actions

        if any_done:
            self._start_episodes(np.flatnonzero(done))
            chosen = np.where(done, 0, chosen)
        rows = self._rows
        flat = rows * self.ctx.n_models + chosen
        correct = self.ctx.table.correct.reshape(-1).take(flat).astype(np.float64)
        cost = self.ctx.table.cost.reshape(-1).take(flat).astype(np.float64)
        if any_done:
            correct[done] = 0.0
            cost[done] = 0.0
            stepping = ~done
            self._t += stepping
            self._pos += stepping
        else:
            stepping = self._everyone
            self._t += 1
            self._pos += 1
        # The float64 operations of MMRRoutingEnv and Budget, in the same order: same bits.
        self._spend += cost
        self._correct_sum += correct
        cost_penalty = -self.cost_weight * cost / self.ctx.c_ref
        reward = correct + cost_penalty

        self._rows = self._streams.reshape(-1).take(np.minimum(self._pos, self._last_pos))
        remaining = np.maximum(self._total - self._spend, 0.0)
        ended = self._update_mask(remaining)
        # Terminated: the stream is over, the last call overshot the budget, or not even the
        # cheapest model fits the rest of it (the remaining queries go unanswered). "Any model
        # affordable" is "the cheapest estimate affordable": one column instead of K.
        can_act = affordable(self._rowwise.cheapest_estimate.take(self._rows)[:, None], remaining)[:, 0]
        terminated = ~can_act | _overran(self._spend, self._total)
        if ended is not None:
            terminated |= ended
        if any_done:
            terminated &= stepping
        self._prev_done = terminated.copy()  # the caller may write into what step() returns

        info: dict[str, Any] = {"action_mask": self._mask.astype(np.int8), "_action_mask": self._everyone}
        if not any_done or not done.all():
            info.update(
                self._step_info(rows, chosen, actions, correct, cost, cost_penalty, remaining, done, any_done)
            )
        if terminated.any():
            info["episode_metrics"] = self._episode_metrics(terminated)
            info["_episode_metrics"] = _read_only(terminated.copy())
        return self._observation(), reward, terminated, np.zeros(self.num_envs, dtype=bool), info

    def reset_finished(self) -> tuple[np.ndarray, Any, dict[str, Any]]:
        """Start the next episode *now* in the sub-environments that terminated on the last step.

        For same-step autoreset (stable-baselines3's convention, see :mod:`mmr_gym.sb3`); the
        draws are the ones the next ``step`` would have made. Returns the indices of the reset
        sub-environments, their first observations (batched over those indices only) and their
        reset info (``action_mask``, int8 ``[len(indices), K]``).
        """
        envs = np.flatnonzero(self._prev_done)
        if envs.size:
            self._start_episodes(envs)
            self._prev_done[envs] = False
            remaining = np.maximum(self._total[envs] - self._spend[envs], 0.0)
            # A new episode is never over, so no sub-environment needs the end-of-stream rule.
            self._mask[envs] = affordable(self.ctx.cost_estimate.take(self._rows[envs], axis=0), remaining)
        return envs, self._observation(envs), {"action_mask": self._mask[envs].astype(np.int8)}

    def render(self) -> tuple[str, ...] | None:
        """``render_mode="ansi"``: one line per sub-environment (as ``MMRRoutingEnv.render``)."""
        if self.render_mode != "ansi":
            return None
        lines = []
        for i in range(self.num_envs):
            length, t = int(self._length[i]), int(self._t[i])
            head = f"query {min(t + 1, length)}/{length}"
            if np.isfinite(self._total[i]):
                head += f", spent {self._spend[i]:.4g} of {self._total[i]:.4g} {self.cost_unit}"
            lines.append(f"{head}, correct so far {self._correct_sum[i]:g}")
        return tuple(lines)

    # ------------------------------------------------------------------ internals
    def _check_actions(self, actions: Any) -> np.ndarray:
        if type(actions) is not np.ndarray or actions.dtype != np.int64:
            array = np.asarray(actions)
            if array.dtype.kind not in "iu":
                raise ValueError(
                    f"actions must be integers in [0, {self.ctx.n_models}), got dtype {array.dtype}"
                )
            actions = array.astype(np.int64)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        # Seen as unsigned, a negative action is huge: one comparison checks both bounds.
        if (actions.view(np.uint64) >= self.ctx.n_models).any():
            bad = actions[(actions < 0) | (actions >= self.ctx.n_models)]
            raise ValueError(f"actions must be integers in [0, {self.ctx.n_models}), got {bad.tolist()}")
        return actions

    def _replace_invalid(self, actions: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        """Apply ``invalid_action`` to the sub-environments whose action is masked."""
        envs = np.flatnonzero(invalid)
        rows = self._rows[envs]
        if self.invalid_action == "error":
            i, a = int(envs[0]), int(actions[envs[0]])
            raise ValueError(
                f"sub-environment {i}: action {a} ({self.model_names[a]!r}) is masked: its estimated cost "
                f"{self.ctx.cost_estimate[rows[0], a]:.6g} {self.cost_unit} exceeds the remaining budget "
                f"{self.budget_remaining[i]:.6g}; affordable actions: {np.flatnonzero(self._mask[i]).tolist()} "
                f"(masked actions in sub-environments {envs.tolist()})"
            )
        estimates = np.where(self._mask[envs], self.ctx.cost_estimate[rows], np.inf)
        chosen = actions.copy()
        chosen[envs] = estimates.argmin(axis=1)
        return chosen

    def _start_episodes(
        self,
        envs: np.ndarray,
        *,
        stream: np.ndarray | None = None,
        ratio: float | tuple[float, float] | None | str = "default",
    ) -> None:
        """Draw a stream and a budget for the sub-environments ``envs``, as ``MMRRoutingEnv.reset`` does."""
        ratio = self.budget_ratio if isinstance(ratio, str) else ratio
        length = self.episode_length if stream is None else stream.size
        if length > self._width:
            self._widen_streams(length)
        # The one loop over sub-environments: each one's generator makes the calls of
        # MMRRoutingEnv.reset, in its order (stream, then budget ratio). choice() over positions,
        # then indexing the split, equals choice() over the split.
        rngs = [self._rngs[i] for i in envs.tolist()]
        if stream is None:
            n_split = self.ctx.split_indices.size
            positions = np.array([rng.choice(n_split, length, replace=False) for rng in rngs], dtype=np.int64)
            stream = self.ctx.split_indices[positions.reshape(envs.size, length)]
        if isinstance(ratio, tuple):
            ratios = np.array([rng.uniform(*ratio) for rng in rngs], dtype=np.float64)
        else:
            ratios = np.full(envs.size, np.nan if ratio is None else float(ratio))  # NaN: no budget
        self._streams[envs, :length] = stream
        self._length[envs] = length
        self._t[envs] = 0
        self._pos[envs] = self._stream_offset[envs]
        self._last_pos[envs] = self._stream_offset[envs] + length - 1
        self._rows[envs] = self._streams[envs, 0]
        self._ratio[envs] = ratios
        # Budget.total is ratio * length * c_ref, in this order; no budget is an infinite total.
        self._total[envs] = np.where(np.isnan(ratios), np.inf, ratios * length * self.ctx.c_ref)
        self._spend[envs] = 0.0
        self._correct_sum[envs] = 0.0

    def _widen_streams(self, width: int) -> None:
        """Make room for replayed streams longer than ``episode_length`` (reset option ``query_ids``)."""
        streams = np.zeros((self.num_envs, width), dtype=np.int64)
        streams[:, : self._width] = self._streams
        self._streams, self._width = streams, width
        self._stream_offset = np.arange(self.num_envs) * width
        self._pos = self._stream_offset + self._t
        self._last_pos = self._stream_offset + self._length - 1

    def _update_mask(self, remaining: np.ndarray) -> np.ndarray | None:
        """Recompute the affordable models of every current query; return which streams are over.

        A stream that is over has no affordable model (``MMRRoutingEnv`` returns an all-zero
        mask then). Returns None, not an all-False array, in the common case that none is over.
        """
        self._mask = affordable(self.ctx.cost_estimate.take(self._rows, axis=0), remaining)
        ended = self._t >= self._length
        if not ended.any():
            return None
        self._mask[ended] = False
        return ended

    def _observation(self, envs: np.ndarray | None = None) -> Any:
        """The observations of every sub-environment (or of ``envs``), as fresh arrays."""
        sel = slice(None) if envs is None else envs
        rows, length = self._rows[sel], self._length[sel]
        budget = budget_features(
            self._spend[sel], self._total[sel], length - self._t[sel], length, self.ctx.c_ref
        )
        if self._flat_obs is not None:
            # One gather of [query, 0, 0, 0, model_costs] rows, then the budget features in place.
            obs = self._flat_obs.take(rows, axis=0)
            d = self.ctx.query_obs.shape[1]
            obs[:, d : d + BUDGET_FEATURES] = budget
            return obs
        return {
            "query": self.ctx.query_obs.take(rows, axis=0),
            "budget": budget,
            "model_costs": self.ctx.model_costs_obs.take(rows, axis=0),
        }

    def _step_info(
        self,
        rows: np.ndarray,
        chosen: np.ndarray,
        requested: np.ndarray,
        correct: np.ndarray,
        cost: np.ndarray,
        cost_penalty: np.ndarray,
        remaining: np.ndarray,
        done: np.ndarray,
        any_done: bool,
    ) -> dict[str, Any]:
        """The keys ``MMRRoutingEnv.step`` adds to the info, for the sub-environments that stepped.

        The sub-environments that were reset instead hold SyncVectorEnv's fill values (0, or
        None for strings) and False in the ``_key`` masks.
        """
        table = self.ctx.table
        replaced = chosen != requested
        model = self._model_names.take(chosen)
        query_id = table.query_ids.take(rows)
        dataset = table.datasets.take(rows)
        budget_remaining = remaining.copy()
        if any_done:
            replaced &= ~done
            model[done] = None
            query_id[done] = None
            dataset[done] = None
            budget_remaining[done] = 0.0
            mask = _read_only(~done)
        else:
            mask = self._everyone
        info: dict[str, Any] = {
            "model": model,
            "model_index": chosen.copy() if chosen is requested else chosen,
            "action_replaced": replaced,
            "correct": correct,
            "cost": cost,
            "query_id": query_id,
            "dataset": dataset,
            "rewards": {
                "correct": correct.copy(),
                "_correct": mask,
                "cost_penalty": cost_penalty,
                "_cost_penalty": mask,
            },
            "budget_remaining": budget_remaining,
        }
        if self.feedback == "full":
            outcome_correct = table.correct.take(rows, axis=0)
            outcome_cost = table.cost.take(rows, axis=0)
            if any_done:
                outcome_correct[done] = 0.0
                outcome_cost[done] = 0.0
            info["outcomes"] = {
                "correct": outcome_correct,
                "_correct": mask,
                "cost": outcome_cost,
                "_cost": mask,
            }
        for key in list(info):
            info["_" + key] = mask
        return info

    def _episode_metrics(self, finished: np.ndarray) -> dict[str, Any]:
        """``MMRRoutingEnv``'s episode metrics for the ``finished`` sub-environments, batched."""
        envs = np.flatnonzero(finished)
        n = self.num_envs
        length, answered = self._length[envs], self._t[envs]
        spend, total = self._spend[envs], self._total[envs]
        accuracy = self._correct_sum[envs] / length
        oracle = self._oracle_accuracy(envs)
        has_budget = np.isfinite(total)

        def filled(values: Any, dtype: Any) -> np.ndarray:
            out = np.zeros(n, dtype=dtype)
            out[envs] = values
            return out

        def objects(values: Sequence[Any]) -> np.ndarray:
            out = np.full(n, None, dtype=object)
            out[envs] = values
            return out

        def float_or_none(values: np.ndarray) -> np.ndarray:
            # SyncVectorEnv types a key by its first value: float64 with budgets, objects (None) without.
            if has_budget.all():
                return filled(values, np.float64)
            return objects([float(v) if b else None for v, b in zip(values, has_budget, strict=True)])

        metrics = {
            "accuracy": filled(accuracy, np.float64),
            "answered": filled(answered, np.int64),
            "unanswered": filled(length - answered, np.int64),
            "length": filled(length, np.int64),
            "spend": filled(spend, np.float64),
            "budget": float_or_none(total),
            "budget_ratio": float_or_none(self._ratio[envs]),
            "overrun": filled(np.where(_overran(spend, total), spend - total, 0.0), np.float64),
            "oracle_accuracy": filled(oracle, np.float64),
            "regret": filled(oracle - accuracy, np.float64),
            "c_ref": filled(self.ctx.c_ref, np.float64),
            "cost_unit": objects([self.cost_unit] * envs.size),
        }
        mask = _read_only(finished.copy())
        for key in list(metrics):
            metrics["_" + key] = mask
        return metrics

    def _oracle_accuracy(self, envs: np.ndarray) -> np.ndarray:
        """The hindsight oracle's accuracy on each finished stream, as ``MMRRoutingEnv`` computes it.

        Full-length streams with 0/1 correctness (the common case) are solved together, by the
        oracle's own greedy rule (sort the cheapest correct prices, take the prefix that fits):
        the same float64 operations, so the same bits. Graded streams and replayed streams of
        another length call :mod:`mmr_gym.oracle` one by one.
        """
        oracle = np.empty(envs.size)
        rows = self._streams[envs, : self.episode_length]
        total = self._total[envs]
        full = self._length[envs] == self.episode_length
        unbudgeted = full & ~np.isfinite(total)
        greedy = full & np.isfinite(total) & self._rowwise.binary[rows].all(axis=1)
        if unbudgeted.any():
            oracle[unbudgeted] = self._rowwise.best_correct[rows[unbudgeted]].mean(axis=1)
        if greedy.any():
            spent = np.cumsum(np.sort(self._rowwise.cheapest_correct[rows[greedy]], axis=1), axis=1)
            oracle[greedy] = (spent <= total[greedy, None]).sum(axis=1) / self.episode_length
        table = self.ctx.table
        for j in np.flatnonzero(~(unbudgeted | greedy)).tolist():
            i = envs[j]
            stream = self._streams[i, : self._length[i]]
            correct, cost = table.correct[stream], table.cost[stream]
            if np.isfinite(self._total[i]):
                oracle[j] = budgeted_oracle(correct, cost, float(self._total[i]), allow_skip=True).accuracy
            else:
                oracle[j] = per_query_oracle_accuracy(correct)
        return oracle


@dataclass(frozen=True)
class _Rowwise:
    """Per table row facts the step and the oracle look up (read-only, one copy per context)."""

    cheapest_estimate: np.ndarray  # float64: the lowest cost estimate of any model
    cheapest_correct: np.ndarray  # float64: the cost of the cheapest correct model (inf: none)
    best_correct: np.ndarray  # float64: the best correctness of any model
    binary: np.ndarray  # bool: the row's correctness is all 0/1


@functools.lru_cache(maxsize=16)
def _rowwise(ctx: RoutingContext) -> _Rowwise:
    # Cached per context (contexts are cached themselves), so vector envs share it like the table.
    # float64 as the oracle computes (check_outcomes casts to float64).
    correct = ctx.table.correct.astype(np.float64)
    cost = ctx.table.cost.astype(np.float64)
    return _Rowwise(
        cheapest_estimate=_read_only(ctx.cost_estimate.min(axis=1)),
        cheapest_correct=_read_only(np.where(correct == 1.0, cost, np.inf).min(axis=1)),
        best_correct=_read_only(correct.max(axis=1)),
        binary=_read_only(((correct == 0.0) | (correct == 1.0)).all(axis=1)),
    )


@functools.lru_cache(maxsize=16)
def _flat_observations(ctx: RoutingContext) -> np.ndarray:
    """float32 ``[n, d + 3 + K]``: each row's flat observation with zeros for the budget part."""
    n = ctx.query_obs.shape[0]
    budget = np.zeros((n, BUDGET_FEATURES), dtype=np.float32)
    return _read_only(np.concatenate((ctx.query_obs, budget, ctx.model_costs_obs), axis=1))


def _overran(spend: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Where ``Budget.overrun`` is positive: spend beyond the total by more than the tolerance."""
    return (spend - total) > _TOLERANCE * total  # -inf > inf is False without a budget


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
