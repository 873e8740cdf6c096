"""MMRRoutingVectorEnv: ``num_envs`` routing environments stepped as one set of numpy arrays.

The sub-environments have exactly the semantics of :class:`~mmr_gym.env.MMRRoutingEnv` (same
constructor arguments, budgets, masks, rewards, termination rules, infos and episode metrics),
but their state lives in arrays of shape ``(num_envs, ...)`` and a step is a fixed number of
numpy expressions, whatever ``num_envs`` is. They replay one shared
:class:`~mmr_gym.context.RoutingContext`: the table and every array derived from it exist once.

Where the randomness comes from (the only randomness is at the start of an episode: its query
stream and, for a ``(low, high)`` budget range, its budget ratio) is chosen by ``stream_sampling``:

- ``"batched"`` (default, fast): one generator for the whole vector environment, as in
  Gymnasium's own ``CartPoleVectorEnv``, draws the streams of many episodes in one batched
  operation (:func:`draw_distinct_rows`, ahead of need) and the budget ratios of all
  sub-environments starting together in one call. Every stream is a uniform draw without
  replacement from the split (uniform over ordered sequences of distinct queries, independent
  across episodes), as a single environment's is, and the environment is reproducible: same
  seed and actions, same rollout; but sub-environment ``i`` does not replay the streams of a
  single environment seeded ``s + i``.
- ``"per-env"`` (exact): sub-environment ``i`` owns one ``np.random.Generator`` and makes the
  calls of ``MMRRoutingEnv.reset``, in the same order. After ``reset(seed=s)`` sub-environment
  ``i`` behaves step for step like an ``MMRRoutingEnv`` reset with ``seed=s + i`` and auto-reset
  with ``seed=None``, i.e. like ``gymnasium.vector.SyncVectorEnv`` of single environments given
  the same seed. Each episode start costs one ``Generator.choice`` call (a Python-level loop
  over the sub-environments that start), which bounds the speed at many sub-environments.

Autoreset follows ``autoreset_mode``, with ``SyncVectorEnv``'s semantics for each of Gymnasium's
three modes:

- ``AutoresetMode.NEXT_STEP`` (default, like Gymnasium's ``CartPoleVectorEnv``): a sub-environment
  that terminated is reset by the *next* ``step``, which ignores its action and returns its first
  observation, reward 0 and only ``action_mask`` in its part of the info.
- ``AutoresetMode.SAME_STEP``: it is reset within the step that terminated it. That step returns its
  first observation, its step's reward and termination; its step's observation and info go to
  ``info["final_obs"]`` (an object array of single observations) and ``info["final_info"]``
  (batched, ``episode_metrics`` included), and its part of the info is the reset's
  ``action_mask``.
- ``AutoresetMode.DISABLED``: nothing is reset by ``step``; the caller resets the terminated
  sub-environments with ``reset(options={"reset_mask": mask})`` before stepping them again.

``reset(options={"reset_mask": mask})`` starts new episodes in the masked sub-environments only, in
every mode, as ``SyncVectorEnv`` does.

Streams and the current queries are held as *slots*: positions in the environment's split
(``ctx.split_indices``), which index per-split lookup tables (:class:`_Lookups`): the rows an
episode can visit lie together in memory, and a drawn position is its own slot. Table rows
appear only where they are handed out (``episode_query_indices``).

In ``"batched"`` mode the streams are drawn ahead in batches of up to 1024 (with, for a fixed
budget and 0/1 correctness, the hindsight oracle's accuracy of each, computed for the batch at
once); reseeding drops the streams drawn ahead.

Returned arrays: every array returned by ``reset``/``step`` is either fresh (allocated for that
call, never written by the environment afterwards, so it is safe to keep and to modify) or, when
its content is the same every step (the ``_key`` masks, ``action_replaced`` when nothing was
replaced, ``rewards["cost_penalty"]`` when ``cost_weight`` is 0), one shared read-only array.
Observations and infos are therefore not written into preallocated buffers (a caller that keeps
them, as rollout buffers and ``DictInfoToList`` do, would see them change); only scratch that is
never handed out is preallocated and reused (the ``[num_envs, K]`` cost estimates of the current
queries). Internal state is never handed out; nothing the caller keeps changes under it.
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

from mmr_gym.budget import (
    BUDGET_FEATURES,
    affordable,
    affordable_limit,
    draw_budget_ratios,
    fill_budget_features,
    fraction_denominator,
    overrun_floor,
    spend_per_query_denominator,
)
from mmr_gym.context import ContextFacts, RoutingContext
from mmr_gym.env import MMRRoutingEnv, check_budget_ratio
from mmr_gym.oracle import budgeted_oracle, per_query_oracle_accuracy
from mmr_gym.render import FrameRenderer, FrameState, cost_label
from mmr_gym.table import RoutingTable

RESET_OPTIONS = ("budget_ratio", "query_ids")
STREAM_SAMPLINGS = ("per-env", "batched")
#: The keys of ``MMRRoutingEnv``'s step info (``action_mask`` aside, which is always there), in its order.
INFO_KEYS = (
    "model",
    "model_index",
    "action_replaced",
    "correct",
    "cost",
    "query_id",
    "dataset",
    "rewards",
    "budget_remaining",
    "outcomes",
    "episode_metrics",
)

# Streams drawn ahead in "batched" mode: num_envs clipped to [_MIN_BATCH, _MAX_BATCH], and at most
# _MAX_BATCH_ENTRIES queries. Larger batches save nothing per stream, and their temporaries (a few
# MB) come fresh from the OS on every refill: page faults cost more than the draws at 4096 envs.
_MIN_BATCH = 64
_MAX_BATCH = 1024
_MAX_BATCH_ENTRIES = 1 << 17
# Columns of the per-episode state (see MMRRoutingVectorEnv.__init__).
_LENGTH, _STEPS_LEFT = range(2)
_SPEND, _CORRECT_SUM, _TOTAL, _RATIO, _FRACTION_DENOMINATOR, _OVERRUN_FLOOR, _ORACLE = range(7)
_EPISODE_COLUMNS = 7
_MANY_STREAMS = 256  # _greedy_accuracy: from here on, column-wise prefix sums are faster
_DEFAULT = "default"  # _start_episodes: the constructor's budget_ratio


class MMRRoutingVectorEnv(gym.vector.VectorEnv, ContextFacts):
    """``num_envs`` copies of :class:`~mmr_gym.env.MMRRoutingEnv`, vectorized with numpy.

    Args:
        dataset: as for :class:`~mmr_gym.env.MMRRoutingEnv` (a bundled name, a path or a table).
        num_envs: number of sub-environments (>= 1).
        stream_sampling: ``"batched"`` (default): one generator draws the streams and budget
            ratios of all sub-environments in batches; each stream is uniform without replacement
            from the split, as a single environment's, but not a given single environment's.
            ``"per-env"``: one generator per sub-environment, which then replays
            ``MMRRoutingEnv`` (and ``SyncVectorEnv``) exactly, at several times the cost of an
            episode start (module docstring).
        info_keys: which keys of :data:`INFO_KEYS` the infos hold (``action_mask`` is always
            there). ``None`` (default): all of them, exactly as ``SyncVectorEnv`` gives.
            A training loop that reads only the episode statistics passes
            ``("episode_metrics",)``: the per-step string arrays (``model``, ``query_id``,
            ``dataset``) are then never built, which is most of what a step costs beyond the
            observation. ``outcomes`` is reported only with ``feedback="full"``.
        autoreset_mode: Gymnasium's ``AutoresetMode`` (or its value): ``NEXT_STEP`` (default),
            ``SAME_STEP`` or ``DISABLED``, each as ``SyncVectorEnv`` does it (module docstring).
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
    :meth:`render` gives a tuple of what each sub-environment's ``MMRRoutingEnv.render`` gives
    (``render_mode="ansi"``: lines, ``"rgb_array"``: frames, the same pixels).
    Arrays whose content never changes are shared and read-only (module docstring).

    A masked action in a sub-environment that is not being reset raises ``ValueError`` before any
    state changes with ``invalid_action="error"``; with ``"fallback"`` that sub-environment calls
    its cheapest affordable model instead (``info["action_replaced"]``).
    """

    metadata = {
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    # Set in __init__ once the arguments are checked; a class default for close() after a failed __init__.
    _renderer: FrameRenderer | None = None

    #: Attributes and methods whose value has one entry per sub-environment (the SB3 adapter
    #: hands entry ``i`` to sub-environment ``i``; every other attribute is shared).
    per_env_attributes = ("budget", "budget_remaining", "episode_query_indices", "action_masks", "render")

    def __init__(
        self,
        dataset: str | RoutingTable | None = None,
        *,
        num_envs: int = 1,
        stream_sampling: str = "batched",
        info_keys: Sequence[str] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            allowed = [m.value for m in AutoresetMode]
            raise ValueError(f"unknown autoreset_mode {autoreset_mode!r}; allowed: {allowed}") from None
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if isinstance(info_keys, str):
            raise ValueError(f"info_keys must be a sequence of key names, got the string {info_keys!r}")
        keys = set(INFO_KEYS if info_keys is None else info_keys)
        unknown = sorted(keys - set(INFO_KEYS))
        if unknown:
            raise ValueError(f"unknown info_keys {unknown}; allowed: {list(INFO_KEYS)}")
        if stream_sampling not in STREAM_SAMPLINGS:
            raise ValueError(
                f"unknown stream_sampling {stream_sampling!r}; allowed: {list(STREAM_SAMPLINGS)}"
            )
        # The single environment is the specification: it validates the arguments, takes the
        # shared context from build_context's cache (or builds it) and defines the spaces.
        prototype = MMRRoutingEnv(dataset, **kwargs)
        self.ctx: RoutingContext = prototype.ctx
        self.num_envs = n = int(num_envs)
        self.stream_sampling = stream_sampling
        # An attribute beside the metadata, as SyncVectorEnv has it (TorchRL's GymWrapper reads it).
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.info_keys = tuple(key for key in INFO_KEYS if key in keys)
        self._step_keys = frozenset(keys - {"episode_metrics"})
        self._report_episodes = "episode_metrics" in keys
        self.episode_length = length = prototype.episode_length
        self.budget_ratio = prototype.budget_ratio
        self.budget_sampling = prototype.budget_sampling
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
        self._lookups = _lookups(self.ctx)
        self._query_dim = self.ctx.query_obs.shape[1]
        self._model_names = np.array([*self.ctx.table.model_names, None], dtype=object)  # K: none
        self._model_offset = np.arange(n) * k  # entry (i, a) of a C-ordered [n, K] array is i * K + a
        self._everyone = _read_only(np.ones(n, dtype=bool))
        self._no_replacement = _read_only(np.zeros(n, dtype=bool))
        # With cost_weight 0 the penalty is -0.0 * cost / c_ref = -0.0 for every call: one constant.
        self._no_penalty = _read_only(np.full(n, -0.0)) if self.cost_weight == 0 else None
        # remaining steps -> remaining steps / episode_length, as true_divide computes it, in float32
        # as the observation holds it (rounding once, the same bits as the single env's)
        self._steps_fraction = np.true_divide(np.arange(length + 1), length).astype(np.float32)

        # Episode state, one entry (row) per sub-environment; set by reset(). Streams hold slots
        # (module docstring) with one extra column repeating the last query: after the last step
        # the current slot is read there without clipping (MMRRoutingEnv shows the last query again).
        self._set_width(length)
        self._streams = np.zeros((n, length + 1), dtype=np.int64)
        self._pos = self._stream_offset.copy()  # position of the current query in _streams, flattened
        # Integer and float state, one column per quantity: starting episodes writes all of a
        # sub-environment's quantities in one assignment, and each column is contiguous (order F)
        # for the per-step arithmetic. The names below are views of those columns.
        self._counts = np.zeros((n, 2), dtype=np.int64, order="F")
        self._length, self._steps_left = self._counts[:, _LENGTH], self._counts[:, _STEPS_LEFT]
        self._all_default_length = True  # every current episode has episode_length queries
        self._all_budgeted = False  # every current episode has a (finite) budget
        # Step counts at which some stream may run out (t reaching its length); other steps skip
        # that check. Entries of episodes that ended early are harmless and dropped when reached.
        self._step_count = 0
        self._stream_ends: set[int] = set()
        self._episode = np.zeros((n, _EPISODE_COLUMNS), order="F")
        self._spend = self._episode[:, _SPEND]
        self._correct_sum = self._episode[:, _CORRECT_SUM]
        self._total = self._episode[:, _TOTAL]  # inf: no budget
        self._ratio = self._episode[:, _RATIO]  # NaN: no budget
        self._fraction_denominator = self._episode[:, _FRACTION_DENOMINATOR]
        self._overrun_floor = self._episode[:, _OVERRUN_FLOOR]
        fixed_ratio = not isinstance(self.budget_ratio, tuple)
        self._default_episode = self._episode_rows(self.budget_ratio, length) if fixed_ratio else None
        self._slots = np.zeros(n, dtype=np.int64)  # slot of the current query
        self._mask = np.zeros((n, k), dtype=bool)  # affordable models for the current query
        # Scratch for the estimates of the current queries: never handed out, so reused (a fresh
        # [n, K] float64 array per step costs page faults when malloc trims the freed heap).
        self._estimates = np.empty((n, k))
        self._prev_done = np.zeros(n, dtype=bool)
        self._prev_any_done = False
        self._started = False
        # Frames show each sub-environment's last call: kept only when rendering them (-1: none yet).
        self._renderer = FrameRenderer(self.ctx.cost_estimate) if self.render_mode == "rgb_array" else None
        if self._renderer is not None:
            self._last_model, self._last_requested = np.full(n, -1), np.full(n, -1)
            self._last_correct, self._last_cost = np.zeros(n), np.zeros(n)

        # Randomness (module docstring): one generator per sub-environment, or one for all of
        # them plus the streams it drew ahead.
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._seeds: list[int | None] = [None] * n
        self._rng: np.random.Generator | None = None
        self._pool: _StreamPool | None = None
        if stream_sampling == "batched":
            batch = max(1, min(max(_MIN_BATCH, n), _MAX_BATCH, _MAX_BATCH_ENTRIES // (length + 1)))
            # The oracle of a default episode depends on its stream only when its budget is fixed.
            greedy = fixed_ratio and self.budget_ratio is not None and self._lookups.all_binary
            oracle_budget = float(self._default_episode[0, _TOTAL]) if greedy else None
            self._pool = _StreamPool(self._lookups, length, batch, oracle_budget)

    # ------------------------------------------------------------------ public read-only facts
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
        rows = self._lookups.table_rows
        return [rows.take(self._streams[i, : self._length[i]]) for i in range(self.num_envs)]

    @property
    def np_random_seeds(self) -> tuple[int | None, ...]:
        """Per sub-environment, the seed its generator was last created from.

        With ``stream_sampling="batched"`` all sub-environments share one generator, so every
        entry is that generator's seed.
        """
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
        """Start a new episode in every sub-environment (or in those of ``options["reset_mask"]``).

        Args:
            seed: ``None`` (keep the generators; the first time, seed them from entropy), an int
                ``s`` (sub-environment ``i`` gets ``s + i``, as in ``SyncVectorEnv``) or a
                sequence of ``num_envs`` seeds (int or None). With ``stream_sampling="batched"``
                the one generator is seeded with ``s``; a sequence must then be ``SyncVectorEnv``'s
                ``[s, s + 1, ...]`` (what SB3's ``VecEnv.seed(s)`` makes) or all None.
            options: the options of ``MMRRoutingEnv.reset``, for every sub-environment reset and
                this episode only: ``budget_ratio``, and ``query_ids`` (a stream all of them
                replay); and ``reset_mask``, bool ``[num_envs]``: reset only these (after a first
                full reset), as ``SyncVectorEnv`` does. The others keep their episodes, and the
                info holds ``action_mask`` for the reset ones only (``info["_action_mask"]``).
        """
        n = self.num_envs
        options = dict(options or {})
        unknown = sorted(set(options) - {*RESET_OPTIONS, "reset_mask"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: {[*RESET_OPTIONS, 'reset_mask']}")
        reset_mask = options.pop("reset_mask", None)
        if reset_mask is not None:
            self._check_reset_mask(reset_mask)
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
        stream = None
        if "query_ids" in options:
            stream = self._lookups.slot_of_row.take(self.ctx.stream_from_ids(options["query_ids"]))
        ratio: Any = _DEFAULT
        if "budget_ratio" in options:
            length = self.episode_length if stream is None else stream.size
            ratio = check_budget_ratio(options["budget_ratio"], self.ctx.min_budget_ratio(length))

        # Every argument is checked: only now does anything change.
        envs = np.arange(n) if reset_mask is None else np.flatnonzero(reset_mask)
        if self._pool is None:
            for i in envs.tolist():  # as SyncVectorEnv: only the sub-environments reset get their seed
                if seeds[i] is not None or self._rngs[i] is None:
                    self._rngs[i], self._seeds[i] = seeding.np_random(seeds[i])
        else:
            self._seed_shared_generator(seeds)
        super().reset(seed=seeds[0])
        if reset_mask is None:
            self._stream_ends.clear()
        self._start_episodes(envs, stream=stream, ratio=ratio)
        if reset_mask is None:
            self._prev_done = np.zeros(n, dtype=bool)
        else:
            self._prev_done = self._prev_done & ~reset_mask
        self._prev_any_done = np.count_nonzero(self._prev_done) > 0
        self._started = True
        remaining = np.maximum(self._total - self._spend, 0.0)
        if reset_mask is None:
            self._mask = affordable(self._lookups.cost_estimate.take(self._slots, axis=0), remaining)
            return self._observation(remaining), {
                "action_mask": self._mask.view(np.int8).copy(),
                "_action_mask": self._everyone,
            }
        self._first_masks(envs, remaining[envs])
        action_mask = np.zeros((n, self.ctx.n_models), dtype=np.int8)  # SyncVectorEnv's fill: 0
        action_mask[envs] = self._mask[envs]
        return self._observation(remaining), {"action_mask": action_mask, "_action_mask": reset_mask.copy()}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment. Those that terminated start a new episode as ``autoreset_mode`` says."""
        if not self._started:
            raise RuntimeError("step() called before reset()")
        if self._prev_any_done and self.autoreset_mode is AutoresetMode.DISABLED:
            envs = np.flatnonzero(self._prev_done).tolist()
            raise RuntimeError(
                f"sub-environments {envs} terminated and autoreset_mode is DISABLED: reset them first, "
                "with reset(options={'reset_mask': mask})"
            )
        n, k, lookups = self.num_envs, self.ctx.n_models, self._lookups
        requested = self._check_actions(actions)
        done = self._prev_done
        any_done = self._prev_any_done

        # Masked actions, judged against the mask the agent saw; sub-environments being reset
        # ignore their action (as SyncVectorEnv's do). count_nonzero is the cheapest all/any.
        valid = self._mask.reshape(-1).take(self._model_offset + requested)
        if any_done:
            valid |= done
        replaced = np.count_nonzero(valid) != n
        chosen = self._replace_invalid(requested, ~valid) if replaced else requested
        self._step_count += 1  # only now: an invalid action may have raised, changing nothing

        slots = self._slots
        if any_done:
            stepping = ~done
            self._start_episodes(np.flatnonzero(done))  # writes their first query into slots
            chosen = np.where(done, 0, chosen)  # SyncVectorEnv's fill value for model_index
        flat = slots * k
        flat += chosen
        if any_done:
            flat[done] = lookups.nothing  # correct 0 and cost 0 for the sub-environments reset
        outcome = lookups.outcomes.take(flat, axis=0)  # fresh [n, 2]: each call's (correct, cost)
        correct, cost = outcome[:, 0], outcome[:, 1]
        if self._renderer is not None:
            self._last_model[:] = np.where(done, -1, chosen) if any_done else chosen
            self._last_correct[:], self._last_cost[:] = correct, cost
            self._last_requested[:] = requested
        if any_done:
            self._pos += stepping
            self._steps_left -= stepping
        else:
            self._pos += 1
            self._steps_left -= 1
        # The float64 additions of MMRRoutingEnv and Budget: same bits.
        self._spend += cost
        self._correct_sum += correct
        if self._no_penalty is not None:
            cost_penalty = self._no_penalty
            reward = correct.copy()  # correct + -0.0 is correct, bit for bit
        else:
            cost_penalty = -self.cost_weight * cost / self.ctx.c_ref
            reward = correct + cost_penalty

        self._slots = next_slots = self._streams_flat.take(self._pos)
        balance = self._total - self._spend
        overran = balance < self._overrun_floor  # the last call overshot (budget.overrun_floor)
        remaining = np.maximum(balance, 0.0, out=balance)
        limit = affordable_limit(remaining)
        # mode="clip" (slots are valid): with mode="raise" take() would buffer its output
        estimates = lookups.cost_estimate.take(next_slots, axis=0, out=self._estimates, mode="clip")
        # Into the mask's own buffer: it is internal state, only ever handed out as copies.
        self._mask = np.less_equal(estimates, limit[:, None], out=self._mask)
        # Terminated: the last call overshot the budget, or not even the cheapest model fits the
        # rest of it (the remaining queries go unanswered; one column instead of K), or the
        # stream is over.
        terminated = lookups.cheapest_estimate.take(next_slots) > limit
        terminated |= overran
        if self._step_count in self._stream_ends:
            self._stream_ends.discard(self._step_count)
            ended = self._steps_left == 0
            self._mask[ended] = False  # MMRRoutingEnv's mask after the last query is all zeros
            terminated |= ended
        if any_done:
            terminated &= stepping
        self._prev_done = terminated
        self._prev_any_done = finished = np.count_nonzero(terminated) > 0

        info: dict[str, Any] = {
            "action_mask": self._mask.view(np.int8).copy(),
            "_action_mask": self._everyone,
        }
        if self._step_keys and not (any_done and np.count_nonzero(stepping) == 0):
            info.update(
                self._step_info(
                    slots,
                    chosen,
                    requested,
                    replaced,
                    correct,
                    cost,
                    cost_penalty,
                    remaining,
                    stepping if any_done else None,
                )
            )
        if finished and self._report_episodes:
            mask = _read_only(terminated.copy())
            info["episode_metrics"] = self._episode_metrics(np.flatnonzero(terminated), mask)
            info["_episode_metrics"] = mask
        obs = self._observation(remaining)
        if finished and self.autoreset_mode is AutoresetMode.SAME_STEP:
            obs, info = self._reset_same_step(obs, info)
        return obs, reward, terminated.copy(), np.zeros(n, dtype=bool), info

    def reset_finished(self) -> tuple[np.ndarray, Any, dict[str, Any]]:
        """Start the next episode *now* in the sub-environments that terminated on the last step.

        For same-step autoreset (stable-baselines3's convention, see :mod:`mmr_gym.sb3`); the
        draws are the ones the next ``step`` would have made. Returns the indices of the reset
        sub-environments, their first observations (batched over those indices only) and their
        reset info (``action_mask``, int8 ``[len(indices), K]``).
        """
        envs = np.flatnonzero(self._prev_done)
        remaining = np.zeros(0)
        if envs.size:
            self._start_episodes(envs)
            self._prev_done = np.zeros(self.num_envs, dtype=bool)
            self._prev_any_done = False
            remaining = np.maximum(self._total[envs] - self._spend[envs], 0.0)
            self._first_masks(envs, remaining)
        mask = self._mask[envs].view(np.int8)  # fancy indexing made a fresh array
        return envs, self._observation(remaining, envs), {"action_mask": mask}

    def render(self) -> tuple[str, ...] | tuple[np.ndarray, ...] | None:
        """One line (``"ansi"``) or one frame (``"rgb_array"``) per sub-environment, as ``MMRRoutingEnv.render``."""
        if self.render_mode is None:
            return None
        if not self._started:
            raise RuntimeError("render() called before reset()")
        if self.render_mode == "rgb_array":
            return tuple(self._renderer(self._frame_state(i)) for i in range(self.num_envs))
        lines = []
        for i in range(self.num_envs):
            length = int(self._length[i])
            t = length - int(self._steps_left[i])
            head = f"query {min(t + 1, length)}/{length}"
            if np.isfinite(self._total[i]):
                head += f", spent {self._spend[i]:.4g} of {self._total[i]:.4g} {self.cost_unit}"
            lines.append(f"{head}, correct so far {self._correct_sum[i]:g}")
        return tuple(lines)

    def close_extras(self, **kwargs: Any) -> None:
        if self._renderer is not None:
            self._renderer.close()

    # ------------------------------------------------------------------ internals
    def _first_masks(self, envs: np.ndarray, remaining: np.ndarray) -> None:
        """The masks of the sub-environments ``envs`` whose episodes just started (``remaining`` is theirs).

        A new episode is never over, so no sub-environment needs the end-of-stream rule.
        """
        estimates = self._lookups.cost_estimate.take(self._slots[envs], axis=0)
        self._mask[envs] = affordable(estimates, remaining)

    def _reset_same_step(self, obs: Any, info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """``AutoresetMode.SAME_STEP``: the sub-environments that terminated start their next episode now.

        As ``SyncVectorEnv`` does it: their step's observations go to ``info["final_obs"]`` (one
        single-environment observation each, None elsewhere) and their step's info to
        ``info["final_info"]``; in the returned observation and info their part is the reset's.
        """
        ended = _read_only(self._prev_done)  # the step's terminations; reset_finished replaces them
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(ended).tolist():
            if isinstance(obs, dict):
                final_obs[i] = {key: value[i].copy() for key, value in obs.items()}
            else:
                final_obs[i] = obs[i].copy()
        final_info = _reported_by(info, ended)
        envs, first_obs, reset_info = self.reset_finished()
        if isinstance(obs, dict):
            for key, value in obs.items():
                value[envs] = first_obs[key]  # obs is fresh: its rows are ours to write
        else:
            obs[envs] = first_obs
        info = _reported_by({k: v for k, v in info.items() if k != "action_mask"}, ~ended)
        action_mask = self._mask.view(np.int8).copy()  # the steppers' next masks, the reset ones' first
        info.update(
            action_mask=action_mask,
            _action_mask=self._everyone,
            final_obs=final_obs,
            _final_obs=ended,
            final_info=final_info,
            _final_info=ended,
        )
        return obs, info

    def _check_reset_mask(self, reset_mask: Any) -> None:
        """``options["reset_mask"]`` as ``SyncVectorEnv`` accepts it: bool ``[num_envs]``, some True."""
        if not isinstance(reset_mask, np.ndarray):
            raise TypeError(f"options['reset_mask'] must be a numpy array, got {type(reset_mask)}")
        if reset_mask.shape != (self.num_envs,):
            raise ValueError(
                f"options['reset_mask'] must have shape ({self.num_envs},), got {reset_mask.shape}"
            )
        if reset_mask.dtype != np.bool_:
            raise TypeError(f"options['reset_mask'] must have dtype bool, got {reset_mask.dtype}")
        if not reset_mask.any():
            raise ValueError("options['reset_mask'] must mark at least one sub-environment")
        if not self._started:
            raise RuntimeError(
                "reset(options={'reset_mask': ...}) before a first reset() of every sub-environment"
            )

    def _frame_state(self, i: int) -> FrameState:
        """What sub-environment ``i``'s frame shows (:meth:`MMRRoutingEnv._frame_state`'s fields)."""
        total = float(self._total[i]) if np.isfinite(self._total[i]) else None
        spend, model, asked = float(self._spend[i]), int(self._last_model[i]), int(self._last_requested[i])
        last = replaced = None
        if model >= 0:
            last = (self.model_names[model], float(self._last_correct[i]), float(self._last_cost[i]))
            replaced = None if asked == model else self.model_names[asked]
        return FrameState(
            model_names=self.model_names,
            estimates=self._lookups.cost_estimate[self._slots[i]],
            mask=self._mask[i],
            cost_label=cost_label(self.ctx.cost_observed),
            cost_unit=self.cost_unit,
            answered=int(self._length[i] - self._steps_left[i]),
            length=int(self._length[i]),
            correct_sum=float(self._correct_sum[i]),
            spend=spend,
            total=total,
            remaining=None if total is None else max(total - spend, 0.0),
            last_call=last,
            ended=bool(self._prev_done[i]),
            replaced=replaced,
        )

    def _seed_shared_generator(self, seeds: list[int | None]) -> None:
        """``stream_sampling="batched"``: (re)seed the one generator and drop the streams drawn ahead."""
        base = seeds[0]
        consecutive = base is not None and seeds == [base + i for i in range(len(seeds))]
        if not (consecutive or all(s is None for s in seeds)):
            raise ValueError(
                "stream_sampling='batched' has one generator for all sub-environments: seed must be "
                f"None, an int s, or [s, s + 1, ...] (SyncVectorEnv's convention), got {seeds}"
            )
        if base is not None or self._rng is None:
            self._rng, seed = seeding.np_random(base)
            self._seeds = [seed] * self.num_envs
            self._pool.restart(self._rng)

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
        # Seen as unsigned, a negative action is huge: the largest checks both bounds.
        if np.maximum.reduce(actions.view(np.uint64)) >= self.ctx.n_models:
            bad = actions[(actions < 0) | (actions >= self.ctx.n_models)]
            raise ValueError(f"actions must be integers in [0, {self.ctx.n_models}), got {bad.tolist()}")
        return actions

    def _replace_invalid(self, actions: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        """Apply ``invalid_action`` to the sub-environments whose action is masked."""
        envs = np.flatnonzero(invalid)
        estimates = self._lookups.cost_estimate[self._slots[envs]]
        if self.invalid_action == "error":
            i, a = int(envs[0]), int(actions[envs[0]])
            raise ValueError(
                f"sub-environment {i}: action {a} ({self.model_names[a]!r}) is masked: its estimated cost "
                f"{estimates[0, a]:.6g} {self.cost_unit} exceeds the remaining budget "
                f"{self.budget_remaining[i]:.6g}; affordable actions: {np.flatnonzero(self._mask[i]).tolist()} "
                f"(masked actions in sub-environments {envs.tolist()})"
            )
        estimates = np.where(self._mask[envs], estimates, np.inf)
        chosen = actions.copy()
        chosen[envs] = estimates.argmin(axis=1)
        return chosen

    def _start_episodes(
        self,
        envs: np.ndarray,
        *,
        stream: np.ndarray | None = None,
        ratio: float | tuple[float, float] | None | str = _DEFAULT,
    ) -> None:
        """Draw a stream and a budget for the sub-environments ``envs``, as ``MMRRoutingEnv.reset`` does.

        ``stream``: a replayed stream (slots) for all of them instead of drawn ones.
        """
        default = isinstance(ratio, str)
        ratio = self.budget_ratio if default else ratio
        length = self.episode_length if stream is None else stream.size
        if length > self._width:
            self._widen_streams(length)
        m = envs.size
        oracle = None
        if stream is not None:
            streams = np.append(stream, stream[-1])  # the same stream (and end column) for all
        if self._pool is None:
            # The one loop over sub-environments: each one's generator makes the calls of
            # MMRRoutingEnv.reset, in its order (stream, then budget ratio). choice() over
            # positions in the split (slots), then indexing the split, equals choice() over it.
            rngs = [self._rngs[i] for i in envs.tolist()]
            if stream is None:
                n_split = self.ctx.split_indices.size
                positions = np.array(
                    [rng.choice(n_split, length, replace=False) for rng in rngs], dtype=np.int64
                ).reshape(m, length)
                streams = np.concatenate((positions, positions[:, -1:]), axis=1)
            ratios = None
            if isinstance(ratio, tuple):
                sampling = self.budget_sampling
                ratios = np.array([draw_budget_ratios(rng, ratio, sampling) for rng in rngs])
        else:
            if stream is None:
                streams, oracle = self._pool.take(m)
            ratios = None
            if isinstance(ratio, tuple):
                ratios = draw_budget_ratios(self._rng, ratio, self.budget_sampling, m)

        # Started now, they step from the next step on: their streams run out `length` steps later.
        self._stream_ends.add(self._step_count + length)
        if length == self._width:
            self._streams[envs] = streams
        else:
            self._streams[envs, : length + 1] = streams
        self._counts[envs] = length  # length and steps left
        if self._renderer is not None:
            self._last_model[envs] = -1
        self._pos[envs] = self._stream_offset.take(envs)
        self._slots[envs] = self._streams[envs, 0]
        if ratios is None and default and length == self.episode_length:
            self._episode[envs] = self._default_episode  # the common case: one precomputed row
            if oracle is not None:
                self._episode[envs, _ORACLE] = oracle
        else:
            self._episode[envs] = self._episode_rows(ratio if ratios is None else ratios, length)
        if length != self.episode_length:
            self._all_default_length = False
        elif not self._all_default_length:
            self._all_default_length = not np.count_nonzero(self._length != length)
        self._all_budgeted = bool(np.isfinite(self._total).all())

    def _episode_rows(self, ratio: float | np.ndarray | None, length: int) -> np.ndarray:
        """Float state rows at the start of an episode with ``ratio`` (None or NaN: no budget)."""
        ratios = np.atleast_1d(np.asarray(np.nan if ratio is None else ratio, dtype=np.float64))
        # Budget.total is ratio * length * c_ref, in this order; no budget is an infinite total.
        total = np.where(np.isnan(ratios), np.inf, ratios * length * self.ctx.c_ref)
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

    def _widen_streams(self, width: int) -> None:
        """Make room for replayed streams longer than ``episode_length`` (reset option ``query_ids``)."""
        streams = np.zeros((self.num_envs, width + 1), dtype=np.int64)
        streams[:, : self._width + 1] = self._streams
        t = self._length - self._steps_left
        self._set_width(width)
        self._streams = streams
        self._pos = self._stream_offset + t

    @property
    def _streams(self) -> np.ndarray:
        return self._streams_2d

    @_streams.setter
    def _streams(self, streams: np.ndarray) -> None:
        self._streams_2d = streams
        self._streams_flat = streams.reshape(-1)  # a view: C-contiguous

    def _observation(self, remaining: np.ndarray, envs: np.ndarray | None = None) -> Any:
        """Fresh observations of every sub-environment (or of ``envs``); ``remaining`` is theirs.

        One gather of ``[query, 0, 0, 0, model_costs]`` rows, then the budget features in place;
        a ``Dict`` observation holds views of that one fresh array (its keys never overlap).
        """
        if envs is None:
            slots, steps_left, denominator = self._slots, self._steps_left, self._fraction_denominator
        else:
            slots, steps_left = self._slots[envs], self._steps_left[envs]
            denominator = self._fraction_denominator[envs]
        obs = self._lookups.observations.take(slots, axis=0)
        d = self._query_dim
        budget = obs[:, d : d + BUDGET_FEATURES]
        if envs is None and self._all_default_length:
            self._steps_fraction.take(steps_left, out=budget[:, 1], mode="clip")
            steps_fraction = None
        else:
            steps_fraction = np.true_divide(steps_left, self._length if envs is None else self._length[envs])
        per_query = self._per_query_denominator.take(steps_left)
        all_budgeted = self._all_budgeted if envs is None else bool(np.isfinite(self._total[envs]).all())
        fill_budget_features(budget, remaining, denominator, steps_fraction, per_query, all_budgeted)
        if self.observation_mode == "flat":
            return obs
        return {"query": obs[:, :d], "budget": budget, "model_costs": obs[:, d + BUDGET_FEATURES :]}

    def _step_info(
        self,
        slots: np.ndarray,
        chosen: np.ndarray,
        requested: np.ndarray,
        replaced: bool,
        correct: np.ndarray,
        cost: np.ndarray,
        cost_penalty: np.ndarray,
        remaining: np.ndarray,
        stepping: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """The keys of ``info_keys`` that ``MMRRoutingEnv.step`` adds to the info, batched.

        ``stepping``: the sub-environments that stepped (None: all of them). The others were
        reset instead; they hold SyncVectorEnv's fill values (0, or None for strings: the padded
        lookups' last entries) and False in the ``_key`` masks. ``remaining`` becomes the info's
        ``budget_remaining``: the caller must not write to it.
        """
        keys = self._step_keys
        lookups = self._lookups
        done = None if stepping is None else ~stepping
        mask = self._everyone if stepping is None else _read_only(stepping)
        info: dict[str, Any] = {}
        if "model" in keys:
            names = chosen if done is None else np.where(done, self.ctx.n_models, chosen)
            info["model"] = self._model_names.take(names)
        if "model_index" in keys:
            # requested may be the caller's own array: never hand it back (np.where made a fresh one)
            info["model_index"] = chosen if replaced or done is not None else chosen.copy()
        if "action_replaced" in keys:
            if not replaced:
                info["action_replaced"] = self._no_replacement
            else:
                info["action_replaced"] = (
                    chosen != requested if done is None else (chosen != requested) & mask
                )
        if "correct" in keys:
            info["correct"] = correct
        if "cost" in keys:
            info["cost"] = cost
        if "query_id" in keys or "dataset" in keys:
            info_slots = slots if done is None else np.where(done, lookups.no_query, slots)
            if "query_id" in keys:
                info["query_id"] = lookups.query_ids.take(info_slots)
            if "dataset" in keys:
                info["dataset"] = lookups.datasets.take(info_slots)
        if "rewards" in keys:
            info["rewards"] = {
                "correct": correct.copy(),
                "_correct": mask,
                "cost_penalty": cost_penalty,
                "_cost_penalty": mask,
            }
        if "budget_remaining" in keys:
            info["budget_remaining"] = remaining if done is None else np.where(done, 0.0, remaining)
        if "outcomes" in keys and self.feedback == "full":
            table, rows = self.ctx.table, self._lookups.table_rows.take(slots)
            outcome_correct = table.correct.take(rows, axis=0)
            outcome_cost = table.cost.take(rows, axis=0)
            if done is not None:
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

    def _episode_metrics(self, envs: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        """``MMRRoutingEnv``'s episode metrics for the finished sub-environments ``envs``, batched.

        The numeric keys are rows of two fresh blocks (float64 and int64), each filled by one
        assignment; ``mask`` (read-only) marks ``envs`` and is shared by every ``_key``.
        """
        n = self.num_envs
        counts = self._counts.take(envs, axis=0)  # [m, 2]: one gather per block of state
        episode = self._episode.take(envs, axis=0)  # [m, 7]
        length = counts[:, _LENGTH]
        spend, total = episode[:, _SPEND], episode[:, _TOTAL]
        balance = total - spend
        has_budget = np.isfinite(total)
        all_budget = np.count_nonzero(has_budget) == envs.size

        values = np.zeros((8 if all_budget else 6, envs.size))
        np.divide(episode[:, _CORRECT_SUM], length, out=values[0])  # accuracy
        values[1] = spend
        np.negative(balance, out=values[2], where=balance < episode[:, _OVERRUN_FLOOR])  # overrun
        oracle = episode[:, _ORACLE]
        if np.count_nonzero(np.isnan(oracle)):
            oracle = self._oracle_accuracy(envs, length, total, oracle)
        values[3] = oracle
        np.subtract(oracle, values[0], out=values[4])  # regret
        values[5] = self.ctx.c_ref
        if all_budget:
            values[6] = total
            values[7] = episode[:, _RATIO]
        floats = np.zeros((values.shape[0], n))
        floats[:, envs] = values
        ints = np.zeros((3, n), dtype=np.int64)
        ints[0, envs] = length - counts[:, _STEPS_LEFT]  # answered
        ints[1, envs] = counts[:, _STEPS_LEFT]  # unanswered
        ints[2, envs] = length
        cost_unit = np.full(n, None, dtype=object)
        cost_unit[envs] = self.cost_unit
        if all_budget:
            budget, budget_ratio = floats[6], floats[7]
        else:
            # SyncVectorEnv types a key by its first value: float64 with budgets, objects (None) without.
            budget = np.full(n, None, dtype=object)
            budget_ratio = np.full(n, None, dtype=object)
            budget[envs] = [float(v) if b else None for v, b in zip(total, has_budget, strict=True)]
            budget_ratio[envs] = [
                float(v) if b else None for v, b in zip(episode[:, _RATIO], has_budget, strict=True)
            ]
        metrics = {
            "accuracy": floats[0],
            "answered": ints[0],
            "unanswered": ints[1],
            "length": ints[2],
            "spend": floats[1],
            "budget": budget,
            "budget_ratio": budget_ratio,
            "overrun": floats[2],
            "oracle_accuracy": floats[3],
            "regret": floats[4],
            "c_ref": floats[5],
            "cost_unit": cost_unit,
        }
        for key in list(metrics):
            metrics["_" + key] = mask
        return metrics

    def _oracle_accuracy(
        self, envs: np.ndarray, length: np.ndarray, total: np.ndarray, known: np.ndarray
    ) -> np.ndarray:
        """The hindsight oracle's accuracy on each finished stream, as ``MMRRoutingEnv`` computes it.

        ``known`` holds the accuracies computed ahead (NaN: not yet). Full-length streams with 0/1
        correctness are solved together, by the oracle's own greedy rule (:func:`_greedy_accuracy`:
        the same float64 operations, so the same bits). Graded streams and replayed streams of
        another length call :mod:`mmr_gym.oracle` one by one.
        """
        lookups = self._lookups
        oracle = known.copy()
        todo = np.isnan(oracle)
        full_length = self.episode_length
        slots = self._streams[envs, :full_length]
        full = todo & (length == full_length)
        budgeted = np.isfinite(total)
        binary = full if lookups.all_binary else full & lookups.binary.take(slots).all(axis=1)
        greedy = binary & budgeted
        unbudgeted = full & ~budgeted
        if np.count_nonzero(greedy):
            prices = lookups.cheapest_correct_cost.take(slots[greedy])
            oracle[greedy] = _greedy_accuracy(prices, total[greedy], full_length)
        if np.count_nonzero(unbudgeted):
            oracle[unbudgeted] = lookups.best_correct.take(slots[unbudgeted]).mean(axis=1)
        table = self.ctx.table
        for j in np.flatnonzero(todo & ~(unbudgeted | greedy)).tolist():
            i = envs[j]
            stream = lookups.table_rows.take(self._streams[i, : self._length[i]])
            correct, cost = table.correct[stream], table.cost[stream]
            if budgeted[j]:
                oracle[j] = budgeted_oracle(correct, cost, float(total[j]), allow_skip=True).accuracy
            else:
                oracle[j] = per_query_oracle_accuracy(correct)
        return oracle


def _greedy_accuracy(prices: np.ndarray, total: np.ndarray, length: int) -> np.ndarray:
    """The 0/1 hindsight oracle's accuracy per stream (row of ``prices``, float64 ``[m, length]``).

    ``budgeted_oracle``'s greedy rule with skipping: answer the queries whose cheapest correct
    model is cheapest first while the running sum fits the budget (same cumulative sums, same bits).
    """
    # The prices are float32 costs (or inf): sorting them as float32 gives the same order, faster.
    ordered = np.sort(prices.astype(np.float32), axis=1)
    if ordered.shape[0] < _MANY_STREAMS:
        spent = ordered.astype(np.float64)
        np.cumsum(spent, axis=1, out=spent)
        return np.count_nonzero(spent <= total[:, None], axis=1) / length
    # numpy's cumsum along rows runs one short inner loop per row; for many streams, add the
    # columns of the transposed prices one by one instead (the same sums in the same order).
    spent = np.array(ordered.T, dtype=np.float64, order="C")
    for j in range(1, spent.shape[0]):
        spent[j] += spent[j - 1]
    return np.count_nonzero(spent <= total, axis=0) / length


# ---------------------------------------------------------------------------- batched streams
def draw_distinct_rows(rng: np.random.Generator, n: int, length: int, count: int) -> np.ndarray:
    """``count`` independent rows of ``length`` distinct integers in ``[0, n)``, each uniform.

    Each row is uniformly distributed over the ordered sequences of ``length`` distinct values
    (the distribution of ``rng.choice(n, length, replace=False)``, not its draws), and the rows
    are independent; all rows are drawn together.

    For ``length <= n / 4``: rejection of repeats, batched. Every entry is drawn uniformly; then,
    round after round, entries that repeat a value of their row are drawn again. Which entries are
    drawn again depends only on positions and on which entries are equal, never on the values, so
    the result is invariant under any relabeling of the values, row by row; the only such
    distribution over rows of distinct values is the uniform one (relabelings act transitively).
    Round 1 sorts ``(row * n + value) * 2**b + position`` per row, which orders the whole batch:
    the later occurrences of a value are redrawn. Round 2 looks the new values up in that sorted
    array (and among themselves); later rounds, with few entries left, compare them with their
    rows. Longer rows, where repeats would need many rounds, are the first ``length`` entries of
    ``rng.permuted`` rows (a Fisher-Yates shuffle per row).

    Returns ``[count, length]`` integers: int32 when ``count * n`` is small enough, else int64.
    """
    if not 1 <= length <= n:
        raise ValueError(f"length must be in [1, n={n}], got {length}")
    if count == 0:
        return np.zeros((0, length), dtype=np.int64)
    if 4 * length > n:
        return _permuted_rows(rng, n, length, count)
    bits = max(int(length - 1).bit_length(), 1)
    low_bits = (1 << bits) - 1
    dtype = np.int32 if ((count * n) << bits) < 2**31 else np.int64  # int32 keys sort faster
    values = rng.integers(0, n, (count, length), dtype=dtype)
    flat = values.reshape(-1)
    keys = values << bits
    keys += _key_offsets(count, length, n, bits, dtype)  # + (row * n) * 2**bits + position
    keys.sort(axis=1)  # rows are in ascending key ranges: the flat array is sorted too
    keys = keys.reshape(-1)
    # Equal (row, value) differ only in the position bits; the earliest position comes first.
    later = np.flatnonzero((keys[1:] ^ keys[:-1]) <= low_bits) + 1
    if later.size == 0:
        return values
    row = later // length
    target = row * length + (keys[later] & low_bits)  # flat index of each later occurrence

    # Round 2: each new value against its row's values of round 1 (all still present: a redrawn
    # entry repeated one that stays) and against the other new values of its row. The probes are
    # sorted first: searchsorted is much faster on ascending needles, and repeats are neighbours.
    new = rng.integers(0, n, target.size, dtype=dtype)
    flat[target] = new
    probe = (row * n).astype(dtype) + new  # keys' dtype: searchsorted would cast all keys otherwise
    order = np.argsort(probe)
    probe = probe[order]
    at = np.minimum(np.searchsorted(keys, probe << bits), keys.size - 1)
    hit = (keys[at] >> bits) == probe
    repeat = probe[1:] == probe[:-1]
    hit[1:] |= repeat
    hit[:-1] |= repeat
    again = np.zeros(target.size, dtype=bool)
    again[order[hit]] = True  # back in position order: what is redrawn depends on positions only
    target = target[again]

    while target.size:  # later rounds: few entries, each compared with its row
        new = rng.integers(0, n, target.size, dtype=dtype)
        flat[target] = new
        if target.size * length <= flat.size:
            equal = values[target // length] == new[:, None]
            target = target[np.count_nonzero(equal, axis=1) > 1]  # it equals itself once
        else:
            rows = np.unique(target // length)
            keys = (values[rows] << bits) | np.arange(length, dtype=dtype)
            keys.sort(axis=1)
            r, c = np.nonzero((keys[:, 1:] ^ keys[:, :-1]) <= low_bits)
            target = rows[r] * length + (keys[r, c + 1] & low_bits)
    return values


@functools.lru_cache(maxsize=8)
def _key_offsets(count: int, length: int, n: int, bits: int, dtype: type) -> np.ndarray:
    """``(row * n) * 2**bits + position`` for ``draw_distinct_rows`` (read-only, reused by the pool)."""
    rows = np.arange(count, dtype=dtype)[:, None] * n
    return _read_only((rows << bits) | np.arange(length, dtype=dtype))


def _permuted_rows(rng: np.random.Generator, n: int, length: int, count: int) -> np.ndarray:
    out = np.empty((count, length), dtype=np.int64)
    chunk = max(1, (1 << 22) // n)  # bounds the [chunk, n] working array
    for start in range(0, count, chunk):
        rows = np.tile(np.arange(n, dtype=np.int64), (min(chunk, count - start), 1))
        out[start : start + chunk] = rng.permuted(rows, axis=1, out=rows)[:, :length]
    return out


class _StreamPool:
    """``stream_sampling="batched"``: streams (table rows) drawn ahead, ``batch`` at a time.

    Drawing many streams in one :func:`draw_distinct_rows` call costs a fraction of a
    microsecond per stream; the pool hands them out in order as sub-environments start episodes,
    so a rollout depends only on the seed and the actions. Each stream has one extra column
    repeating its last row (the layout of ``MMRRoutingVectorEnv._streams``). With a fixed
    budget ``total`` and 0/1 correctness the hindsight oracle's accuracy of each stream is
    computed here too, for the whole batch at once (``oracle``, else NaN: computed at the end).
    """

    def __init__(self, lookups: _Lookups, length: int, batch: int, oracle_budget: float | None) -> None:
        self.lookups = lookups
        self.length = length
        self.batch = batch
        self.oracle_budget = oracle_budget
        self.rng: np.random.Generator | None = None
        self._streams = np.zeros((0, length + 1), dtype=np.int64)
        self._oracle = np.zeros(0)
        self._next = 0

    def restart(self, rng: np.random.Generator) -> None:
        """Draw from ``rng`` from now on; streams drawn ahead from the previous generator are dropped."""
        self.rng = rng
        self._streams = self._streams[:0]
        self._oracle = self._oracle[:0]
        self._next = 0

    def take(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``m`` streams (slots, int64 ``[m, length + 1]``) and their oracle accuracies (float64 ``[m]``)."""
        start = self._next
        if start + m <= self._streams.shape[0]:
            self._next = start + m
            return self._streams[start : start + m], self._oracle[start : start + m]
        streams, oracle = [self._streams[start:]], [self._oracle[start:]]
        need = m - streams[0].shape[0]
        while need > 0:
            self._refill()
            self._next = min(need, self.batch)
            streams.append(self._streams[: self._next])
            oracle.append(self._oracle[: self._next])
            need -= self._next
        return np.concatenate(streams), np.concatenate(oracle)

    def _refill(self) -> None:
        length, lookups = self.length, self.lookups
        streams = np.empty((self.batch, length + 1), dtype=np.int64)
        streams[:, :length] = draw_distinct_rows(self.rng, lookups.table_rows.size, length, self.batch)
        streams[:, length] = streams[:, length - 1]
        self._streams = streams
        if self.oracle_budget is None:
            self._oracle = np.full(self.batch, np.nan)
        else:
            total = np.full(self.batch, self.oracle_budget)
            self._oracle = _greedy_accuracy(
                lookups.cheapest_correct_cost.take(streams[:, :length]), total, length
            )
        self._next = 0


# ---------------------------------------------------------------------------- per-split lookups
@dataclass(frozen=True)
class _Lookups:
    """What the step and the oracle look up per query, indexed by slot (read-only, one copy per context).

    A slot is a position in the split (``ctx.split_indices``): an episode visits only the split's
    queries, so these tables hold those rows alone, contiguous (a fraction of the table for a
    test split: fewer cache lines and pages per random gather).
    """

    table_rows: np.ndarray  # int64 [m]: the table row of each slot (ctx.split_indices)
    slot_of_row: np.ndarray  # int64 [n]: the slot of each table row (-1: not in the split)
    observations: np.ndarray  # float32 [m, d + 3 + K]: flat observation, zeros for the budget part
    cost_estimate: np.ndarray  # float64 [m, K]
    cheapest_estimate: np.ndarray  # float64 [m]: the lowest cost estimate of any model
    # float64 [m * K + 1, 2]: (correct, cost) of slot * K + model, then (0, 0) at index ``nothing``
    outcomes: np.ndarray
    nothing: int  # m * K: the entry of sub-environments that are reset instead of stepped
    query_ids: np.ndarray  # object [m + 1]: the table's, then None (index ``no_query``)
    datasets: np.ndarray  # object [m + 1]: the table's, then None
    no_query: int  # m
    cheapest_correct_cost: np.ndarray  # float64 [m]: the oracle's price of each query
    best_correct: np.ndarray  # float64 [m]: the best correctness of any model
    binary: np.ndarray  # bool [m]: the query's correctness is all 0/1
    all_binary: bool  # every query's is


@functools.lru_cache(maxsize=16)
def _lookups(ctx: RoutingContext) -> _Lookups:
    # Cached per context (contexts are cached themselves), so vector envs share it like the table.
    # float64 as the step charges and as the oracle computes (check_outcomes casts to float64).
    table, rows = ctx.table, ctx.split_indices
    slot_of_row = np.full(table.n_queries, -1, dtype=np.int64)
    slot_of_row[rows] = np.arange(rows.size)
    correct = table.correct.take(rows, axis=0).astype(np.float64)
    cost = table.cost.take(rows, axis=0).astype(np.float64)
    estimates = ctx.cost_estimate.take(rows, axis=0)
    budget = np.zeros((rows.size, BUDGET_FEATURES), dtype=np.float32)
    observations = np.concatenate(
        (ctx.query_obs.take(rows, axis=0), budget, ctx.model_costs_obs.take(rows, axis=0)), axis=1
    )
    binary = ((correct == 0.0) | (correct == 1.0)).all(axis=1)
    return _Lookups(
        table_rows=_read_only(np.asarray(rows, dtype=np.int64)),
        slot_of_row=_read_only(slot_of_row),
        observations=_read_only(observations),
        cost_estimate=_read_only(estimates),
        cheapest_estimate=_read_only(estimates.min(axis=1)),
        outcomes=_read_only(
            np.stack((np.append(correct.reshape(-1), 0.0), np.append(cost.reshape(-1), 0.0)), axis=1)
        ),
        nothing=correct.size,
        query_ids=_read_only(np.append(table.query_ids.take(rows).astype(object), None)),
        datasets=_read_only(np.append(_shared_strings(table.datasets.take(rows)), None)),
        no_query=rows.size,
        cheapest_correct_cost=_read_only(ctx.cheapest_correct_cost.take(rows)),
        best_correct=_read_only(correct.max(axis=1)),
        binary=_read_only(binary),
        all_binary=bool(binary.all()),
    )


def _shared_strings(values: np.ndarray) -> np.ndarray:
    """``values`` (object array of str) with one str object per distinct value.

    Taking from an object array increments each taken object's reference count: over a few
    shared objects that touches a few cache lines, over one object per row a line per row.
    """
    unique: dict[str, str] = {}
    return np.array([unique.setdefault(v, v) for v in values.tolist()], dtype=object)


def _reported_by(info: dict[str, Any], envs: np.ndarray) -> dict[str, Any]:
    """The part of a batched info that the sub-environments ``envs`` (bool) report, as SyncVectorEnv
    would batch it had only they reported: the others' entries are the fills (0, None for objects,
    False), their ``_key`` masks False, and a key that none of ``envs`` reports is left out.
    """
    part: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        reported = info["_" + key] & envs
        if not reported.any():
            continue
        if isinstance(value, dict):
            part[key] = _reported_by(value, envs)
        else:
            value = value.copy()
            value[~reported] = None if value.dtype == object else 0
            part[key] = value
        part["_" + key] = reported
    return part


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
